-- calmbind fleet: run get (or verify, rotate) for every tenant of an inventory, concurrently, in one process.
-- INVENTORY is JSON {"defaults": {...}, "tenants": [...]} or CSV with a header
-- row; fields are the long option names with "_" (calm.ops.fleet_inventory).
-- Exit: 0 every tenant succeeded; 2 bad inventory or options (before any
-- request); otherwise 1. Each tenant's own exit is in the summary and report.
local cli = require "calm.lib.cli"

local function spec()
  local key_util = require "calm.key.util"
  return {
    command = "fleet",
    summary = "Run get (or verify, rotate) for every tenant of an inventory, concurrently, in one process.",
    options = {
      command = { arg = "C", choices = { "get", "verify", "rotate" }, default = "get",
        help = "what to run for each tenant" },
      ["out-dir"] = { arg = "DIR", help = "write each tenant's key to DIR/<name>.json (or the --format's extension)" },
      jobs = { arg = "N", number = true, integer = true, min = 1, max = 100000, default = 8,
        help = "tenants in flight at once" },
      shard = { arg = "K/N", help = "run only shard K of N (stable by tenant name; for CI matrix jobs)" },
      report = { arg = "FILE", help = "write the fleet report (JSON, no secrets) there" },
      format = { arg = "F", choices = key_util.FORMATS, default = "json", help = "format of each key file" },
      ["tenant-timeout"] = { arg = "DURATION", duration = true, min_exclusive = 0,
        help = "deadline of each tenant's run (default: the run's --timeout)" },
      -- defaults for every tenant (a tenant's own field wins)
      ["sm-key"] = { arg = "FILE", help = "default sm_key" },
      ["cis-key"] = { arg = "FILE", help = "default cis_key" },
      subaccount = { arg = "GUID", help = "default subaccount" },
      provisioned = { arg = "DATE", help = "default provisioned (YYYY-MM-DD or auto)" },
      scenario = { arg = "S", choices = { "deployment", "monitoring" }, help = "default scenario" },
      ["instance-name"] = { arg = "N", help = "default instance_name" },
      ["binding-name"] = { arg = "N", help = "default binding_name" },
      runtime = { arg = "R", choices = { "sm", "cf" }, help = "default runtime" },
      ["cf-api"] = { arg = "URL", help = "default cf_api" },
      ["cf-space"] = { arg = "GUID", help = "default cf_space" },
      ["credential-type"] = { arg = "T", choices = { "binding-secret", "x509" }, help = "default credential_type" },
      ["no-verify"] = { flag = true, help = "get: write each key without checking it live first" },
      ["update-instance"] = { arg = "N", help = "default update_instance" },
      ["x509-validity"] = { arg = "N", help = "default x509_validity" },
      ["delete-old"] = { flag = true, help = "rotate: delete the older keys calmbind made for the same purpose" },
    },
    positionals = { min = 1, max = 1, names = { "INVENTORY" } },
  }
end

local DEFAULT_FIELDS = { "sm-key", "cis-key", "subaccount", "provisioned", "scenario", "instance-name",
  "binding-name", "runtime", "cf-api", "cf-space", "credential-type", "no-verify", "update-instance",
  "x509-validity", "delete-old", "cacert" }

-- Checks the options that do not depend on the inventory.
local function check_options(opts)
  local input = require "calm.lib.input"
  local fs = require "calm.fs"
  local dir = opts["out-dir"]
  -- verify reads the keys there; the other commands create it (0700, parents
  -- too), as a CI job's fresh checkout needs
  if dir and (opts.command == "verify" or fs.exists(dir)) and not fs.exists(dir .. "/.") then
    return nil, "--out-dir " .. dir .. ": " .. (fs.exists(dir) and "not a directory" or "does not exist"), "USAGE"
  end
  if opts.report and not require("calm.ops.report").is_std(opts.report) then
    local ok, msg, code = input.check_output("--report", opts.report)
    if not ok then return nil, msg, code end
  end
  return true
end

-- Judges every tenant of the inventory (not only this shard: every matrix
-- job refuses a bad inventory alike). Returns the shard's tenants.
local function prepare(opts, inv_path)
  local inventory = require "calm.ops.fleet_inventory"
  local tenant = require "calm.ops.fleet_tenant"
  local inv, msg, code = inventory.load(inv_path)
  if not inv then return nil, msg, code end
  local given = {}
  for _, k in ipairs(DEFAULT_FIELDS) do
    if opts[k] ~= nil then given[(k:gsub("%-", "_"))] = opts[k] end
  end
  local ctx = { command = opts.command, defaults = inv.defaults, given = given,
    out_dir = opts["out-dir"], format = opts.format }
  local outs = {}
  for _, t in ipairs(inv.tenants) do
    local o
    o, msg, code = tenant.options(t, ctx)
    if not o then return nil, msg, code end
    if opts.command ~= "verify" then
      if outs[o.out] then
        return nil, string.format("%s (tenant '%s'): key file %s is also tenant '%s''s", t.where, t.name, o.out,
          outs[o.out]), "INPUT"
      end
      outs[o.out] = t.name
    end
    t.opts = o
  end
  local tenants = inv.tenants
  if opts.shard then
    local k, n = inventory.parse_shard(opts.shard)
    tenants = inventory.shard(tenants, k, n)
  end
  return tenants
end

-- Returns the command and its option spec (for help and shell completion).
return function(args)
  local opts, pos, code = cli.parse(args, spec())
  if not opts then return nil, pos, code end
  if opts.help then io.write(cli.usage(spec())); return 0 end
  local fleet = require "calm.ops.fleet"
  local fs = require "calm.fs"
  local task = require "calm.task"
  local ok, msg
  if opts.shard then
    ok, msg, code = require("calm.ops.fleet_inventory").parse_shard(opts.shard)
    if not ok then return nil, msg, code end
  end
  ok, msg, code = check_options(opts)
  if not ok then return nil, msg, code end
  local dir = opts["out-dir"]
  if dir and opts.command ~= "verify" then
    ok, msg = fs.mkdirs(dir)
    if ok then ok, msg = fs.probe_dir(dir) end
    if not ok then return nil, "--out-dir " .. dir .. ": " .. tostring(msg), "USAGE" end
  end
  local tenants, pmsg, pcode = prepare(opts, pos[1])
  if not tenants then return nil, pmsg, pcode end
  local started = task.now()
  if #tenants == 0 then
    require("calm.log").info("fleet: shard %s holds no tenant of %s", tostring(opts.shard), pos[1])
  end
  local results = fleet.run(tenants, { command = opts.command, jobs = opts.jobs, tty = fs.isatty("stderr") })
  -- with --report - the report is standard output's, the table goes to stderr
  local table_to = opts.report == "-" and io.stderr or io.stdout
  table_to:write(fleet.summary(results, "fleet " .. opts.command))
  table_to:flush()
  local report_ok = true
  if opts.report then
    local w, wmsg = require("calm.ops.report").write(opts.report, fleet.report(results, { command = opts.command,
      inventory = pos[1], shard = opts.shard, seconds = task.now() - started }))
    if not w then require("calm.log").error("%s", wmsg) end
    report_ok = w
  end
  if opts.command == "rotate" then fleet.after_rotation(results, opts.report) end
  if not report_ok then return 1 end
  for _, r in ipairs(results) do
    if r.exit ~= 0 then return 1 end
  end
  return 0
end, spec()
