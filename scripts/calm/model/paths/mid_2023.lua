-- calm.model.paths.mid_2023: tenants provisioned from 2023-06-12 to 2023-10-15.
-- SAP generated an instance and credentials without the imp-cdm-feature-*
-- authorities: they serve Monitoring as they are; Deployment needs an
-- instance with the authorities (calmbind's own, created or updated) and a
-- binding made after it had them. (Tenants requested from 2023-06-14 also got
-- the generated key uploaded to Landscape Management: calm.model.evidence
-- says so in the reasons.)
--
--   s = mid_2023.steps(inventory, o, decision)   -- calm.model.plan's o and steps
local steps = require "calm.model.steps"
local M = {}

function M.steps(inv, o, d)
  local s = steps.new()
  if o.scenario ~= "monitoring" then return steps.with_authorities(s, d, inv, o) end
  return steps.as_it_is(s, d, inv, o, { with_authorities = false })
end

return M
