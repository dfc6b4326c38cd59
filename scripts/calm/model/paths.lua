-- calm.model.paths: what each of SAP's three provisioning-date paths asks
-- for (PATHS, read by calm.model.plan), the parameters of what calmbind
-- creates and the entitlement steps. The decision between the paths is
-- calm.model.evidence's. Pure: no requests.
local evidence = require "calm.model.evidence"
local M = {}

-- What each path asks for, per scenario -- the data calm.model.plan plans from:
--   authorities: the instance needs the authorities (the run's policy says
--     which: calm.policy.load; built in, the two imp-cdm-feature-* ones): true,
--     or "when-keys-lack" (only when the existing keys' tokens lack them:
--     SAP generates the instance with them since 2023-10-16);
--   default_instance: without --instance-name, find or create the instance
--     the run's policy names (instead of adopting whatever exists);
--   with_authorities: an instance calmbind creates gets the authorities.
-- Every path first adopts a key whose token already has both scopes, and
-- assigns the entitlement when it is missing.
M.PATHS = {
  [evidence.AFTER] = {
    deployment = { authorities = "when-keys-lack", with_authorities = true },
    monitoring = { authorities = false, with_authorities = false },
  },
  [evidence.MID] = {
    deployment = { authorities = true, with_authorities = true },
    monitoring = { authorities = false, with_authorities = false },
  },
  [evidence.BEFORE] = {
    deployment = { authorities = true, default_instance = true, with_authorities = true },
    monitoring = { authorities = false, default_instance = true, with_authorities = false },
  },
}

function M.rule(path, scenario)
  local p = M.PATHS[path] or M.PATHS[evidence.BEFORE]
  return p[scenario == "monitoring" and "monitoring" or "deployment"]
end


-- ------------------------------------------------------ parameters --

-- The `parameters` object of create/update, built as a table (no shell
-- can eat "$XSMASTERAPPNAME"). runtime "cf" follows SAP's 2023 CF variant
-- (instance secrets: no oauth2-configuration). o.authorities: the list the
-- run's policy gives (policy:authorities), or nil for none.
function M.instance_parameters(xsappname, o)
  local json = require "calm.lib.json"
  local xs = { xsappname = xsappname }
  if o.authorities then
    -- a JSON array even when a policy leaves it empty (the broker wants one)
    xs.authorities = json.array { table.unpack(o.authorities) }
  end
  if o.runtime ~= "cf" then
    local types = json.array { "binding-secret" }
    -- every type an existing binding uses must stay: removing one invalidates
    -- those bindings (SAP's migration guide: allow both first, move
    -- consumers, then restrict). o.keep_types = {"instance-secret", "x509"}
    local keep = {}
    for _, t in ipairs(o.keep_types or {}) do keep[t] = true end
    if o.keep_instance_secret then keep["instance-secret"] = true end
    if keep["instance-secret"] then types[#types + 1] = "instance-secret" end
    if keep.x509 or o.credential_type == "x509" then types[#types + 1] = "x509" end
    xs["oauth2-configuration"] = { ["credential-types"] = types }
  end
  return { ["xs-security"] = xs }
end

-- o.validity = {validity = N, ["validity-type"] = "DAYS"} (default 7 DAYS).
-- o.wrapped: the {"xsuaa": {...}} shape some SAP reuse services want
-- instead of the plain one (calm.ops.runner tries both).
function M.binding_parameters(o)
  if o.credential_type == "x509" then
    local v = o.validity or { validity = 7, ["validity-type"] = "DAYS" }
    local p = { ["credential-type"] = "x509",
      x509 = { ["key-length"] = 2048, validity = v.validity, ["validity-type"] = v["validity-type"] } }
    if o.wrapped then return { xsuaa = p } end
    return p
  end
  return nil
end

-- XSUAA generates certificates of 1 to 30 DAYS, validity-type DAYS only
-- (SAP's "Parameters for X.509 Certificates Managed by SAP Authorization
-- and Trust Management Service"); MONTHS and YEARS belong to Service
-- Manager's own bindings. Refused here, before any request.
M.X509_MAX_DAYS = 30

-- "--x509-validity" values: N or Nd (days); label names the field (an
-- inventory's x509_validity) instead of the option.
function M.parse_validity(s, label)
  local n = tonumber(tostring(s):match("^(%d+)[dD]?$"))
  if not n or n < 1 or n > M.X509_MAX_DAYS then
    return nil, string.format("%s must be 1-%d days (N or Nd): XSUAA generates certificates of "
      .. "at most %d days, validity-type DAYS only (got '%s'); rotate the key before it expires",
      label or "--x509-validity", M.X509_MAX_DAYS, M.X509_MAX_DAYS, tostring(s)), "USAGE"
  end
  return { validity = n, ["validity-type"] = "DAYS" }
end

-- ------------------------------------------------------------ steps --

local ENTITLEMENT_STEPS = table.concat({
  "In the BTP cockpit: open the global account > Entitlements > Entity Assignments,",
  "select the SAP Cloud ALM subaccount, Edit > Add Service Plans, choose \"SAP Cloud ALM API\"",
  "(SAPCloudALMAPIs), tick plan \"standard\", Add, set the quota to 1 if asked, and Save.",
  "Then rerun calmbind get (or pass --cis-key FILE --subaccount GUID to let calmbind assign it).",
}, "\n  ")
M.ENTITLEMENT_STEPS = ENTITLEMENT_STEPS


return M
