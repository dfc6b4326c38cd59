-- calm.model.names: the names and labels of what calmbind creates, and the rules
-- for the names an admin gives. Pure: no requests.
--
--   ok | nil, msg, "USAGE" = names.check_instance_name(n)    -- to create one
--   ok | nil, msg, "USAGE" = names.check_instance_ref(n [, option]) -- may exist
--   ok | nil, msg, "USAGE" = names.check_binding_name(n)
--   name = names.default_instance_name(scenario, runtime)     -- calm.policy.load's
--   labels = names.created_labels(authorities, c)             -- key -> value
local inventory = require "calm.model.inventory"
local M = {}

-- calm.policy.load is loaded on first use: loading it runs the admin's policy.lua
local function policy() return require "calm.policy.load" end


-- ------------------------------------------------------------- rules --

-- Instance names: at most 32 characters of letters, digits, '-', '_'; no
-- '.', because the name becomes the xsappname (which allows no '.').
function M.check_instance_name(n)
  if type(n) ~= "string" or n == "" then
    return nil, "--instance-name must not be empty", "USAGE"
  end
  if n:find("%.") then
    return nil, "--instance-name '" .. n .. "': no '.' allowed (the name becomes the xsappname, "
      .. "which allows no '.')", "USAGE"
  end
  if n:find("%s") then
    return nil, "--instance-name: no spaces allowed (use '_' instead of spaces)", "USAGE"
  end
  if not n:match("^[%w_%-]+$") then
    return nil, "--instance-name: only letters, digits, '-' and '_' are allowed", "USAGE"
  end
  if #n > 32 then
    return nil, string.format("--instance-name '%s' is %d characters long; at most 32 are allowed", n, #n), "USAGE"
  end
  return true
end

-- A name of something that may exist (made elsewhere: it may have '.' or be
-- longer than calmbind's own): not empty, no control characters, <= 255.
local function check_ref(n, option)
  if type(n) ~= "string" or n == "" then return nil, option .. " must not be empty", "USAGE" end
  if n:find("[%c]") then return nil, option .. " must not contain control characters", "USAGE" end
  if #n > 255 then return nil, option .. " is longer than 255 characters", "USAGE" end
  return true
end

-- A name that refers to an instance that may exist: the strict rules above
-- are for creating one.
function M.check_instance_ref(n, option)
  return check_ref(n, option or "--instance-name")
end

-- A binding name, also one that exists; never the <SID>_<client>_<sysno>
-- pattern of the keys Cloud ALM makes for managed systems.
function M.check_binding_name(n, option)
  option = option or "--binding-name"
  local ok, msg, code = check_ref(n, option)
  if not ok then return nil, msg, code end
  if inventory.is_system_binding_name(n) then
    return nil, option .. " '" .. n .. "' looks like <SID>_<client>_<system number> (e.g. S4H_100_00), "
      .. "the pattern Cloud ALM uses for the credentials it creates itself; choose another name", "USAGE"
  end
  return true
end

-- ------------------------------------------------- names and labels --

-- The labels of what calmbind creates (key -> value): the admin's extra
-- labels (calm.policy.load), then created_by and, with the authorities,
-- calmbind_authorities, which reruns and the safety rules depend on.
function M.created_labels(authorities, c)
  local l = {}
  for k, v in pairs(policy().labels(c or {}) or {}) do l[tostring(k)] = tostring(v) end
  l[inventory.CREATED_BY] = inventory.TOOL
  if authorities then l[inventory.AUTH_LABEL] = inventory.AUTH_VALUE end
  return l
end

-- The same in Service Manager's shape (key -> {value}).
function M.sm_labels(authorities, c)
  local l = {}
  local json = require "calm.lib.json"
  for k, v in pairs(M.created_labels(authorities, c)) do l[k] = json.array { v } end
  return l
end

-- Names come from calm.policy.load (an admin's naming convention replaces them).
function M.default_instance_name(scenario, runtime)
  return policy().instance_name { scenario = scenario or "deployment", runtime = runtime }
end

function M.default_binding_name(instance_name, credential_type, scenario)
  return policy().binding_name(instance_name, { credential_type = credential_type, scenario = scenario })
end

function M.deployment_binding_name(instance_name, credential_type)
  return policy().deployment_binding_name(instance_name, { credential_type = credential_type,
    scenario = "deployment" })
end

return M
