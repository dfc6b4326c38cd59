-- calm.ops.fleet_tenant: turns one inventory row (plus defaults) into the options
-- of the command fleet runs for it, and judges them before any request.
--
--   local opts = fleet_tenant.options(t, ctx)   -- | nil, message, "INPUT"|"USAGE"
--   local path = fleet_tenant.key_file(t, ctx)  -- the key file it writes (or reads) | nil
--
-- ctx = {command = "get"|"plan"|"verify"|"rotate", defaults = {field = v},
--        given = {field = v} (command-line options), out_dir = DIR, format = F}
-- Precedence: the tenant's field, then the command line, then the
-- inventory's defaults. The options are a table judged by the command's own
-- spec (calm.lib.cli.from_table) and checks, so every value is judged as
-- `calmbind get` judges it, and messages name the field or option as written.
local cli = require "calm.lib.cli"
local fs = require "calm.fs"
local input = require "calm.lib.input"
local key_k8s = require "calm.key.k8s"
local options = require "calm.ops.options"
local rotate = require "calm.ops.rotate"
local M = {}

-- Key file extension per --format.
M.EXT = { json = "json", vcap = "json", env = "env", dotenv = "env", ["alm-setup"] = "txt", ["k8s-secret"] = "json" }

-- Fields that are not options of the command itself.
local NOT_OPTION = { name = true, key = true, timeout = true, out = true, where = true, policy = true,
  warn_days = true }

local function spec_for(command)
  if command == "rotate" then return rotate.spec() end
  return options.spec(command == "plan" and "plan" or "get")
end

-- The tenant's fields over the command line's over the inventory's
-- defaults, each with how the user wrote it: the field ("sm_key"), the
-- option ("--sm-key"), or the field of the defaults.
local function merged(t, ctx)
  local f, label = {}, {}
  for k, v in pairs(ctx.defaults or {}) do
    if k ~= "_where" and k ~= "where" then f[k], label[k] = v, k .. " (inventory defaults)" end
  end
  for k, v in pairs(ctx.given or {}) do f[k], label[k] = v, "--" .. k:gsub("_", "-") end
  for k, v in pairs(t) do f[k], label[k] = v, k end
  return f, label
end

local function key_out(t, f, label, ctx)
  if f.out then return f.out, label.out end
  if not ctx.out_dir then return nil end
  return ctx.out_dir .. "/" .. t.name .. "." .. M.EXT[ctx.format or "json"], "--out-dir"
end

local function verify_options(t, f, label, ctx)
  -- warn_days: the tenant's, the command line's or the defaults' (30 as verify's)
  local o = { scenario = f.scenario or "deployment", cacert = f.cacert, warn_days = f.warn_days or 30 }
  if o.scenario ~= "deployment" and o.scenario ~= "monitoring" then
    return nil, (label.scenario or "scenario") .. " must be one of deployment, monitoring (got '"
      .. tostring(o.scenario) .. "')", "USAGE"
  end
  local how
  if f.key then o.key, how = f.key, label.key else o.key, how = key_out(t, f, label, ctx) end
  if not o.key then return nil, "no key field and no --out-dir DIR: which key file to verify?", "USAGE" end
  if not fs.exists(o.key) then return nil, how .. ": key file " .. o.key .. " does not exist", "INPUT" end
  return o
end

-- Reads the key files now, so a missing or wrong one is found before the
-- first request of any tenant.
local function check_keys(o)
  for _, what in ipairs { "sm-key", "cis-key", "cis-key2" } do
    if o[what] then
      local ok, msg, code = input.load_key(o[what], what == "sm-key" and "sm" or "cis", cli.label(o, what))
      if not ok then return nil, msg, code end
    end
  end
  return true
end

-- The options of get, plan or rotate from the fields, judged by the
-- command's own spec (calm.lib.cli.from_table) and checks, messages naming
-- each value as the user wrote it.
local function command_options(t, f, label, ctx)
  local spec = spec_for(ctx.command)
  local values = {}
  for k, v in pairs(f) do
    local opt = k:gsub("_", "-")
    if not NOT_OPTION[k] and (spec.options[opt] or cli.GLOBAL[opt]) then values[opt] = v end
  end
  local o, msg, code = cli.from_table(values, spec, function(opt) return label[(opt:gsub("%-", "_"))] end)
  if not o then return nil, msg, code end
  if o.runtime ~= "cf" and not o["sm-key"] then
    return nil, "no sm_key field and no --sm-key option (the Service Manager binding)", "INPUT"
  end
  if ctx.command == "plan" or o["dry-run"] then
    -- always asked, so fleet can count the tenants that would change; a
    -- dry run writes no key, so it needs no key file
    o["detailed-exitcode"] = true
  else
    local how
    o.out, how = key_out(t, f, label, ctx)
    if not o.out then return nil, "no out field and no --out-dir DIR option: where does the key go?", "USAGE" end
    cli.set_label(o, "out", how)
    o.format = ctx.format or "json"
    -- one Secret per tenant: named after the tenant unless a field or option names it
    if o.format == "k8s-secret" and not o["secret-name"] then o["secret-name"] = key_k8s.default_name(t.name) end
  end
  -- the tenant's own policy (a file or directory), loaded by validate, so a
  -- mistake in it is found before any request; nil: the override
  -- directories' policy.lua, as for get
  o.policy, o.tenant = f.policy, t.name
  -- tenants run at once: no prompt (calm.ops.rotate_old), --delete-old needs --yes
  if ctx.command == "rotate" then o.never_ask = true end
  local ok, vmsg, vcode
  if ctx.command == "rotate" then ok, vmsg, vcode = rotate.validate(o)
  else ok, vmsg, vcode = options.validate(o, ctx.command == "plan" and "plan" or "get") end
  if not ok then return nil, vmsg, vcode end
  ok, vmsg, vcode = check_keys(o)
  if not ok then return nil, vmsg, vcode end
  return o
end

-- The key file the tenant's run writes (get, rotate) or reads (verify) | nil.
function M.key_file(t, ctx)
  local f, label = merged(t, ctx)
  if ctx.command == "verify" and f.key then return f.key end
  return (key_out(t, f, label, ctx))
end

-- options(t, ctx) -> opts for runner.run / rotate.run / the verify step,
-- with opts.tenant_timeout, opts.tenant (the name) and opts.policy (the
-- tenant's policy field: a file or directory) | nil, message, code (the
-- message names the field or option; t.where says which row).
function M.options(t, ctx)
  local f, label = merged(t, ctx)
  local o, msg, code
  if ctx.command == "verify" then o, msg, code = verify_options(t, f, label, ctx)
  else o, msg, code = command_options(t, f, label, ctx) end
  if not o then return nil, tostring(msg), code or "INPUT" end
  -- the tenant's own timeout, else fleet's --tenant-timeout
  o.tenant_timeout = f.timeout or ctx.tenant_timeout
  return o
end

return M
