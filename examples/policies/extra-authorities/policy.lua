-- Another SAP integration on this tenant needs an authority of its own. An
-- update replaces an instance's whole authority list, so every instance
-- calmbind creates (or updates with --update-instance) gets it next to the
-- two imp-cdm-feature-* ones Deployment needs.
--   CALMBIND_PATH=examples/policies/extra-authorities calmbind get --out key.json
local default = require "calm.policy.default"

return {
  authorities = function(c)
    local a = default.authorities(c)
    a[#a + 1] = "$XSMASTERAPPNAME.calm-api.analytics.read"
    return a
  end,
}
