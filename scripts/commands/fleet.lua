-- calmbind fleet: run get (or plan, verify, rotate) for every tenant of an inventory, concurrently, in one process.
-- INVENTORY is JSON {"defaults": {...}, "tenants": [...]} or CSV with a header
-- row; fields are the long option names with "_" (calm.ops.fleet_inventory).
-- Exit: 0 every tenant succeeded; 2 a malformed inventory or bad fleet
-- options (before any request); 7 plan --detailed-exitcode: no tenant
-- failed and some would change; otherwise 1. A tenant whose own options or
-- key files are wrong gets its own row (exit 2) and the others run. Each
-- tenant's own exit is in the summary and report.
local cli = require "calm.lib.cli"
local fleet = require "calm.ops.fleet"
local fleet_inventory = require "calm.ops.fleet_inventory"
local fleet_tenant = require "calm.ops.fleet_tenant"
local fs = require "calm.fs"
local input = require "calm.lib.input"
local log = require "calm.log"
local report = require "calm.ops.report"
local task = require "calm.task"
local util = require "calm.key.util"

local function spec()
  return {
    command = "fleet",
    summary = "Run get (or plan, verify, rotate) for every tenant of an inventory, concurrently, in one process.",
    options = {
      command = { arg = "C", choices = { "get", "plan", "verify", "rotate" }, default = "get",
        help = "what to run for each tenant" },
      ["out-dir"] = { arg = "DIR", help = "write each tenant's key to DIR/<name>.json (or the --format's extension); "
        .. "created (0700) when missing" },
      jobs = { arg = "N", number = true, integer = true, min = 1, max = 100000,
        help = "tenants in flight at once (default 64; fewer when the descriptor limit allows "
          .. "less than 4 transfers a tenant)" },
      shard = { arg = "K/N", help = "run only shard K of N (stable by tenant name; for CI matrix jobs)" },
      only = { arg = "NAME[,NAME]", help = "run only these tenants of the inventory" },
      report = { arg = "FILE", help = "write the fleet report (JSON, no secrets) there" },
      format = { arg = "F", choices = util.FORMATS, default = "json", help = "format of each key file" },
      ["tenant-timeout"] = { arg = "DURATION", duration = true, min_exclusive = 0,
        help = "deadline of each tenant's run (default: the run's --timeout)" },
      ["detailed-exitcode"] = { flag = true,
        help = "plan, rotate --dry-run: a tenant that would change exits 7, and so does fleet when none failed" },
      -- defaults for every tenant (a tenant's own field wins)
      ["sm-key"] = { arg = "FILE", help = "default sm_key" },
      ["cis-key"] = { arg = "FILE", help = "default cis_key" },
      ["cis-key2"] = { arg = "FILE", help = "default cis_key2" },
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
      ["delete-old"] = { flag = true, help = "rotate: delete the older keys calmbind made for the same purpose "
        .. "(with --yes: fleet never asks)" },
      yes = { flag = true, help = "rotate: --delete-old deletes without asking (fleet asks no questions: without "
        .. "--yes nothing is deleted)" },
      ["if-older-than"] = { arg = "DURATION", duration = true, min_exclusive = 0,
        help = "rotate: only tenants whose newest calmbind key is this old get a new one (default if_older_than)" },
      ["if-expires-within"] = { arg = "DURATION", duration = true, min_exclusive = 0,
        help = "rotate: only tenants whose newest calmbind key expires within this time get a new one "
          .. "(default if_expires_within)" },
      ["dry-run"] = { flag = true, help = "rotate: print what each tenant's rotation would create and delete; "
        .. "change nothing" },
      ["warn-days"] = { arg = "N", number = true, integer = true, min = 0, max = 36500,
        help = "verify: a key whose certificate ends within N days fails (exit 6) and is listed (default 30)" },
      namespace = { arg = "NS", help = "--format k8s-secret: default namespace (each Secret is named after its "
        .. "tenant unless a secret_name field names it)" },
    },
    positionals = { min = 1, max = 1, names = { "INVENTORY" } },
  }
end

local DEFAULT_FIELDS = { "sm-key", "cis-key", "cis-key2", "subaccount", "provisioned", "scenario", "instance-name",
  "binding-name", "runtime", "cf-api", "cf-space", "credential-type", "no-verify", "update-instance",
  "x509-validity", "delete-old", "yes", "if-older-than", "if-expires-within", "dry-run", "cacert", "namespace", "warn-days" }

-- Checks the options that do not depend on the inventory.
local function check_options(opts)
  local dir = opts["out-dir"]
  -- verify reads the keys there; the other commands create it (0700, parents
  -- too), as a CI job's fresh checkout needs
  if dir and (opts.command == "verify" or fs.exists(dir)) and not fs.exists(dir .. "/.") then
    return nil, "--out-dir " .. dir .. ": " .. (fs.exists(dir) and "not a directory" or "does not exist"), "USAGE"
  end
  if opts["detailed-exitcode"] and opts.command ~= "plan" and not (opts.command == "rotate" and opts["dry-run"]) then
    return nil, "--detailed-exitcode is for --command plan and --command rotate --dry-run", "USAGE"
  end
  for _, o in ipairs { "yes", "if-older-than", "if-expires-within", "dry-run" } do
    if opts[o] ~= nil and opts.command ~= "rotate" then return nil, "--" .. o .. " is for --command rotate", "USAGE" end
  end
  if opts.shard then
    local ok, msg, code = fleet_inventory.parse_shard(opts.shard)
    if not ok then return nil, msg, code end
  end
  if opts.report and not report.is_std(opts.report) then
    local ok, msg, code = input.check_output("--report", opts.report)
    if not ok then return nil, msg, code end
  end
  return true
end

-- --only NAME[,NAME]: the named tenants, each of which must be in the
-- inventory. Returns the tenants | nil, msg, "USAGE".
local function only(tenants, list)
  local want, names = {}, {}
  for _, t in ipairs(tenants) do names[#names + 1] = t.name end
  local by = {}
  for _, t in ipairs(tenants) do by[t.name] = true end
  for name in (list .. ","):gmatch("([^,]*),") do
    name = name:match("^%s*(.-)%s*$")
    if name == "" then return nil, "--only: an empty name in '" .. list .. "'", "USAGE" end
    if not by[name] then
      local near = cli.suggest(name, names)
      return nil, string.format("--only: no tenant '%s' in the inventory%s", name,
        near and (" (did you mean " .. near .. "?)") or ""), "USAGE"
    end
    want[name] = true
  end
  local out = {}
  for _, t in ipairs(tenants) do if want[t.name] then out[#out + 1] = t end end
  return out
end

-- Judges the inventory: a malformed one (its shape, names, fields, two
-- tenants writing one key file) stops the run before any request, in every
-- shard alike. Returns the tenants to run (--only, --shard) and the context
-- their options are made in.
local function prepare(opts, inv_path)
  local inv, msg, code = fleet_inventory.load(inv_path)
  if not inv then return nil, msg, code end
  local given = {}
  for _, k in ipairs(DEFAULT_FIELDS) do
    if opts[k] ~= nil then given[(k:gsub("%-", "_"))] = opts[k] end
  end
  local ctx = { command = opts.command, defaults = inv.defaults, given = given,
    out_dir = opts["out-dir"], format = opts.format, tenant_timeout = opts["tenant-timeout"] }
  local outs = {}
  for _, t in ipairs(inv.tenants) do
    local out = fleet_tenant.key_file(t, ctx)
    if out and opts.command ~= "verify" and opts.command ~= "plan" then
      if outs[out] then
        return nil, string.format("%s (tenant '%s'): key file %s is also tenant '%s''s", t.where, t.name, out,
          outs[out]), "INPUT"
      end
      outs[out] = t.name
    end
  end
  local tenants = inv.tenants
  if opts.only then
    tenants, msg, code = only(tenants, opts.only)
    if not tenants then return nil, msg, code end
  end
  if opts.shard then tenants = fleet_inventory.shard(tenants, fleet_inventory.parse_shard(opts.shard)) end
  return tenants, ctx
end

-- Each tenant's options, judged before any request; a tenant whose own
-- options or key files are wrong keeps its message for its row.
local function judge(tenants, ctx)
  for _, t in ipairs(tenants) do
    local o, msg, code = fleet_tenant.options(t, ctx)
    if o then t.opts = o else t.opts, t.error = {}, { msg, code } end
  end
end

-- The exit of the whole run: 1 when a tenant failed; for plan with
-- --detailed-exitcode 7 when one would change; else 0.
local function fleet_exit(results, opts)
  local changes = false
  for _, r in ipairs(results) do
    if r.exit == 7 then changes = true elseif r.exit ~= 0 then return 1 end
  end
  return changes and opts["detailed-exitcode"] and 7 or 0
end

-- Returns the command and its option spec (for help and shell completion).
return function(args)
  local opts, pos, code = cli.parse(args, spec())
  if not opts then return nil, pos, code end
  if opts.help then io.write(cli.usage(spec())); return 0 end
  local ok, msg, ocode = check_options(opts)
  if not ok then return nil, msg, ocode end
  local tenants, ctx, pcode = prepare(opts, pos[1])
  if not tenants then return nil, ctx, pcode end
  local dir = opts["out-dir"]
  -- made once the inventory is known to be sound, so a bad one leaves nothing behind
  if dir and opts.command ~= "verify" and opts.command ~= "plan" and not opts["dry-run"] then
    local made, mmsg = fs.mkdirs(dir)
    if made then made, mmsg = fs.probe_dir(dir) end
    if not made then return nil, "--out-dir " .. dir .. ": " .. tostring(mmsg), "USAGE" end
  end
  judge(tenants, ctx)
  local started = task.now()
  if #tenants == 0 then
    log.info("fleet: shard %s holds no tenant of %s", tostring(opts.shard), pos[1])
  end
  local jobs = opts.jobs or fleet.default_jobs()
  if not opts.jobs then log.debug("fleet: --jobs %d (the default: %s)", jobs, jobs == fleet.DEFAULT_JOBS
    and "not limited by descriptors" or "a quarter of the transfers the descriptor limit allows") end
  local results = fleet.run(tenants, { command = opts.command, jobs = jobs, tty = fs.isatty("stderr"),
    detailed = opts["detailed-exitcode"] })
  -- with --report - the report is standard output's, the plans and the table go to stderr
  local table_to = opts.report == "-" and io.stderr or io.stdout
  if opts.command == "plan" or opts.command == "rotate" then table_to:write(fleet.plans(results)) end
  table_to:write(fleet.summary(results, "fleet " .. opts.command))
  table_to:flush()
  local report_ok = true
  if opts.report then
    local w, wmsg = report.write(opts.report, fleet.report(results, { command = opts.command,
      inventory = pos[1], shard = opts.shard, only = opts.only, jobs = jobs, seconds = task.now() - started }))
    if not w then log.error("%s", wmsg) end
    report_ok = w
  end
  if opts.command == "rotate" then fleet.after_rotation(results, opts.report) end
  if not report_ok then return 1 end
  return fleet_exit(results, opts)
end, spec()
