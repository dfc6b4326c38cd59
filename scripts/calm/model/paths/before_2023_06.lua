-- calm.model.paths.before_2023_06: tenants provisioned before 2023-06-12.
-- SAP generated nothing: the entitlement may be missing, and the instance is
-- calmbind's to find or create under the name the run's policy gives it --
-- with the imp-cdm-feature-* authorities for Deployment, without them for
-- Monitoring.
--
--   s = before_2023_06.steps(inventory, o, decision)   -- calm.model.plan's o and steps
local steps = require "calm.model.steps"
local M = {}

function M.steps(inv, o, d)
  local s = steps.new()
  if o.scenario ~= "monitoring" then return steps.with_authorities(s, d, inv, o) end
  return steps.as_it_is(s, d, inv, o, { default_instance = true, with_authorities = false })
end

return M
