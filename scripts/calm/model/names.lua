-- calm.model.names: the names and labels of what calmbind creates, and the rules
-- for the names an admin gives. Pure: no requests.
--
--   ok | nil, msg, "USAGE" = names.check_instance_name(n [, label])  -- to create one
--   ok | nil, msg, "USAGE" = names.check_instance_ref(n [, option])  -- may exist
--   ok | nil, msg, "USAGE" = names.check_binding_name(n [, label])
--   labels = names.created_labels(extra, authorities)            -- key -> value (or list)
--   labels = names.sm_labels(labels)                             -- key -> {value...}
-- label names where a name came from in messages: an option ("--instance-name",
-- the default) or a policy field (calm.policy.load's policy:where(field)).
local inventory = require "calm.model.inventory"
local json = require "calm.lib.json"
local M = {}


-- ------------------------------------------------------------- rules --

-- Instance names: at most 32 characters of letters, digits, '-', '_'; no
-- '.', because the name becomes the xsappname (which allows no '.').
function M.check_instance_name(n, label)
  label = label or "--instance-name"
  if type(n) ~= "string" or n == "" then
    return nil, label .. " must not be empty", "USAGE"
  end
  if n:find("%.") then
    return nil, label .. " '" .. n .. "': no '.' allowed (the name becomes the xsappname, "
      .. "which allows no '.')", "USAGE"
  end
  if n:find("%s") then
    return nil, label .. ": no spaces allowed (use '_' instead of spaces)", "USAGE"
  end
  if not n:match("^[%w_%-]+$") then
    return nil, label .. " '" .. n .. "': only letters, digits, '-' and '_' are allowed", "USAGE"
  end
  if #n > 32 then
    return nil, string.format("%s '%s' is %d characters long; at most 32 are allowed", label, n, #n), "USAGE"
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
function M.check_binding_name(n, label)
  label = label or "--binding-name"
  local ok, msg, code = check_ref(n, label)
  if not ok then return nil, msg, code end
  if inventory.is_system_binding_name(n) then
    return nil, label .. " '" .. n .. "' looks like <SID>_<client>_<system number> (e.g. S4H_100_00), "
      .. "the pattern Cloud ALM uses for the credentials it creates itself; choose another name", "USAGE"
  end
  return true
end

-- ------------------------------------------------------- labels --

-- The labels of what calmbind creates (key -> value): the policy's extra
-- labels (policy:labels), then created_by and, with the authorities,
-- calmbind_authorities, which reruns and the safety rules depend on (an
-- extra label of either name is overridden). authorities: the list the
-- instance is given (the label's values: plan compares them with the
-- policy's), or a string for a runtime whose labels hold one value (Cloud
-- Foundry: inventory.AUTH_VALUE), or nil.
function M.created_labels(extra, authorities)
  local l = {}
  for k, v in pairs(extra or {}) do l[k] = v end
  l[inventory.CREATED_BY] = inventory.TOOL
  if authorities then l[inventory.AUTH_LABEL] = authorities end
  return l
end

-- One label's values, a value or a list of them, as a JSON array.
function M.label_values(v)
  if type(v) == "table" then return json.array { table.unpack(v) } end
  return json.array { v }
end

-- Labels in Service Manager's shape (key -> {value...}).
function M.sm_labels(labels)
  local l = {}
  for k, v in pairs(labels) do l[k] = M.label_values(v) end
  return l
end

return M
