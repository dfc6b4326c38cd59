-- calm.policy.load: the decisions admins change most, one function each, in a
-- layered table (the model is lsyncd's behaviour tables): an admin drops a
-- file `policy.lua` into an override directory (CALMBIND_PATH, or
-- $XDG_CONFIG_HOME/calmbind/scripts) that returns a table of the fields to
-- replace; every other field is inherited from the built-in ones below.
-- `plan` and `get` (Service Manager and Cloud Foundry alike) both follow it.
--
--   -- policy.lua of an admin: a company naming convention, nothing else
--   return {
--     instance_name = function(c) return "acme-calm-" .. c.scenario end,
--   }
--
--   local policy = require "calm.policy.load"
--   policy.instance_name{scenario = "deployment"}   --> "calm-api-deployment"
--   policy.default    --> the built-in table (also require "calm.policy.default")
--   policy.origin.instance_name                     --> "built in" | file
--
-- c, the context each function gets: {scenario = "deployment"|"monitoring",
-- runtime = "sm"|"cf", credential_type = "binding-secret"|"x509"}.
local default = require "calm.policy.default"

local M = { default = default, origin = {} }

local function known_names()
  local n = {}
  for k in pairs(default) do n[#n + 1] = k end
  table.sort(n)
  return table.concat(n, ", ")
end

-- The admin's layer: the module "policy" found by the script searcher (an
-- override directory), or nil. The searcher protocol tells "not found"
-- (a string) from a loader (a function), so no message text is matched.
local function admin_layer()
  local searcher = package.searchers[2]
  if type(searcher) ~= "function" then return nil end
  local loader, where = searcher("policy")
  if type(loader) ~= "function" then return nil end
  local t = loader("policy", where)
  local file = type(where) == "string" and where or "policy.lua"
  if type(t) ~= "table" then
    error(file .. ": a policy file must return a table of the fields it replaces", 0)
  end
  return t, file
end

for k, f in pairs(default) do M[k], M.origin[k] = f, "built in" end
local layer, file = admin_layer()
for k, f in pairs(layer or {}) do
  if default[k] == nil then
    error(string.format("%s: unknown policy '%s' (known: %s)", file, tostring(k), known_names()), 0)
  end
  if type(f) ~= "function" then
    error(string.format("%s: policy '%s' must be a function, not a %s", file, k, type(f)), 0)
  end
  M[k], M.origin[k] = f, file
  require("calm.log").debug("policy %s: from %s", k, file)
end
M.file = file

return M
