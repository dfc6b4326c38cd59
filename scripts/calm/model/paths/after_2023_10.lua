-- calm.model.paths.after_2023_10: tenants provisioned on or after 2023-10-16.
-- SAP generated the instance (without parameters: its xsappname is its
-- GUID) and its credentials, with the imp-cdm-feature-* authorities for
-- Deployment: both scenarios find them and take them as they are. When every
-- probed key's token lacks the Deployment scopes (calm.model.evidence:
-- decision.keys_lack_scopes), the authorities are missing after all and
-- Deployment goes the mid-2023 way: an instance with them, then a new binding.
--
--   s = after_2023_10.steps(inventory, o, decision)   -- calm.model.plan's o and steps
local steps = require "calm.model.steps"
local M = {}

function M.steps(inv, o, d)
  local s = steps.new()
  if o.scenario ~= "monitoring" and d.keys_lack_scopes then
    return steps.with_authorities(s, d, inv, o)
  end
  -- an instance created because the generated one is gone gets the
  -- authorities SAP would have given it
  return steps.as_it_is(s, d, inv, o, { with_authorities = o.scenario ~= "monitoring" })
end

return M
