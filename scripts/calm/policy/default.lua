-- calm.policy.default: the built-in policy functions (see calm.policy.load). An
-- admin's policy.lua can call them to extend rather than replace one:
--
--   local default = require "calm.policy.default"
--   return { authorities = function(c)
--     local a = default.authorities(c); a[#a + 1] = "$XSMASTERAPPNAME.x"; return a end }
--
-- Every function takes one table c: the run's context ({scenario, runtime,
-- credential_type, tenant}) plus the views the decision is about (c.instance,
-- c.binding: names, labels, dates and scopes, never credentials; see
-- calm.policy.load).
local default = {}

local DEPLOYMENT_AUTHORITIES = {
  "$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
  "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui",
}

-- The instance calmbind creates when none is named (at most 32 characters
-- of letters, digits, '-', '_': it becomes the xsappname).
function default.instance_name(c)
  return "calm-api-" .. (c.scenario or "deployment")
end

-- The binding calmbind creates on c.instance. x509 keys get their own name,
-- so asking for one kind never adopts a key of the other kind by its name.
function default.binding_name(c)
  return tostring(c.instance.name) .. (c.credential_type == "x509" and "-x509-key" or "-key")
end

-- The binding for Deployment on c.instance when the default name is taken by
-- an older key (one made before the authorities were added).
function default.deployment_binding_name(c)
  return tostring(c.instance.name) .. "-deployment" .. (c.credential_type == "x509" and "-x509" or "") .. "-key"
end

-- The authorities an instance gets for Deployment: the two imp-cdm-feature-*
-- ones are what Deployment needs; add others (e.g. calm-api.* authorities of
-- another SAP integration) here so that an update does not drop them.
function default.authorities(c)
  local a = {}
  if c.scenario ~= "monitoring" then
    for i, v in ipairs(DEPLOYMENT_AUTHORITIES) do a[i] = v end
  end
  return a
end

-- Extra labels (key -> value) on what calmbind creates: c.instance, and
-- c.binding when the labels are a binding's. created_by and
-- calmbind_authorities are always added: reruns and the safety rules depend
-- on them.
function default.labels(_)
  return {}
end

-- Whether c.binding (on c.instance) may be adopted (its key written out)
-- instead of making a new one. Cloud ALM's own <SID>_<client>_<sysno> keys
-- are never adopted, whatever this says.
function default.adoptable(_)
  return true
end

-- Among adoptable keys that already fit, which comes first: lower rank
-- wins, ties go to the oldest. Default: a key calmbind made, then any.
function default.adopt_rank(c)
  return c.binding.ours and 1 or 2
end

return default
