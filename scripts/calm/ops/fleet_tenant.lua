-- calm.ops.fleet_tenant: turns one inventory row (plus defaults) into the options
-- of the command fleet runs for it, and judges them before any request.
--
--   local opts = fleet_tenant.options(t, ctx)   -- | nil, message, "INPUT"|"USAGE"
--
-- ctx = {command = "get"|"verify"|"rotate", defaults = {field = v},
--        given = {field = v} (command-line options), out_dir = DIR, format = F}
-- Precedence: the tenant's field, then the command line, then the
-- inventory's defaults. The options are parsed by the command's own spec
-- (calm.lib.cli), so every value is judged exactly as `calmbind get` judges it.
local M = {}

-- Key file extension per --format.
M.EXT = { json = "json", vcap = "json", env = "env", ["alm-setup"] = "txt" }

-- Fields that are not options of the command itself.
local NOT_OPTION = { name = true, key = true, timeout = true, out = true, where = true }

local function field_msg(msg)
  -- the message names the option (--sm-key); the inventory has the field (sm_key)
  return (tostring(msg):gsub("%-%-(%a[%w%-]*)", function(o) return (o:gsub("%-", "_")) end))
end

-- The command's spec without environment fallbacks: a tenant without
-- sm_key must not silently get CALMBIND_SM_KEY.
local function spec_for(command)
  local spec
  if command == "rotate" then spec = require("calm.ops.rotate").spec()
  else spec = require("calm.ops.runner").spec("get") end
  local copy = {}
  for k, v in pairs(spec.options) do
    local d = {}
    for dk, dv in pairs(v) do d[dk] = dv end
    d.env = nil
    copy[k] = d
  end
  spec.options = copy
  return spec
end

local specs = {}

local function merged(t, ctx)
  local f = {}
  for k, v in pairs(ctx.defaults or {}) do f[k] = v end
  for k, v in pairs(ctx.given or {}) do f[k] = v end
  for k, v in pairs(t) do f[k] = v end
  return f
end

-- The argv for the command's parser.
local function argv_of(f, spec)
  local argv = {}
  local names = {}
  for k in pairs(f) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local opt = k:gsub("_", "-")
    if not NOT_OPTION[k] and spec.options[opt] then
      local v = f[k]
      if v == true then argv[#argv + 1] = "--" .. opt
      elseif v ~= false then argv[#argv + 1] = "--" .. opt .. "=" .. tostring(v) end
    end
  end
  return argv
end

local function key_out(t, f, ctx)
  if f.out then return f.out end
  if not ctx.out_dir then return nil end
  return ctx.out_dir .. "/" .. t.name .. "." .. M.EXT[ctx.format or "json"]
end

local function verify_options(t, f, ctx)
  local o = { scenario = f.scenario or "deployment", cacert = f.cacert }
  if o.scenario ~= "deployment" and o.scenario ~= "monitoring" then
    return nil, "scenario must be one of deployment, monitoring (got '" .. tostring(o.scenario) .. "')", "USAGE"
  end
  o.key = f.key or key_out(t, f, ctx)
  if not o.key then return nil, "no key file: give the tenant a key field or use --out-dir DIR", "USAGE" end
  local fs = require "calm.fs"
  if not fs.exists(o.key) then return nil, "key file " .. o.key .. " does not exist", "INPUT" end
  return o
end

-- Reads the key files now, so a missing or wrong one is exit 2 before the
-- first request of any tenant.
local function check_keys(o)
  local input = require "calm.lib.input"
  for _, what in ipairs { "sm-key", "cis-key", "cis-key2" } do
    if o[what] then
      local ok, msg, code = input.load_key(o[what], what == "sm-key" and "sm" or "cis", "--" .. what)
      if not ok then return nil, msg, code end
    end
  end
  if o.cacert then return input.check_cacert(o.cacert) end
  return true
end

-- options(t, ctx) -> opts for runner.run / rotate.run / the verify step,
-- with opts.tenant_timeout | nil, message, code.
function M.options(t, ctx)
  local f = merged(t, ctx)
  local prefix = string.format("%s (tenant '%s'): ", t.where or "inventory", t.name)
  local function fail(msg, code) return nil, prefix .. field_msg(msg), code or "INPUT" end
  local o, msg, code
  if ctx.command == "verify" then
    o, msg, code = verify_options(t, f, ctx)
    if not o then return fail(msg, code) end
  else
    local spec = specs[ctx.command] or spec_for(ctx.command)
    specs[ctx.command] = spec
    local cli = require "calm.lib.cli"
    o, msg, code = cli.parse(argv_of(f, spec), spec)
    if not o then return fail(msg, code) end
    o.cacert = f.cacert -- a global option: not in the command's spec
    if f.runtime ~= "cf" and not f.sm_key then return fail("no sm_key (the Service Manager binding)", "INPUT") end
    o.out = key_out(t, f, ctx)
    o.format = ctx.format or "json"
    if not o.out then return fail("no out and no --out-dir DIR: where does the key go?", "USAGE") end
    local validate = ctx.command == "rotate" and require("calm.ops.rotate").validate
      or function(x) return require("calm.ops.runner").validate(x, "get") end
    local ok, vmsg, vcode = validate(o)
    if not ok then return fail(vmsg, vcode) end
    ok, vmsg, vcode = check_keys(o)
    if not ok then return fail(vmsg, vcode) end
  end
  o.tenant_timeout = f.timeout
  return o
end

return M
