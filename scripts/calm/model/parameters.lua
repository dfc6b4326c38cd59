-- calm.model.parameters: the `parameters` of what calmbind creates (the
-- instance's xs-security, an x509 binding's certificate) and the
-- --x509-validity they take. Pure: no requests.
--
--   params = parameters.instance_parameters(xsappname, {authorities = list?,
--              credential_type=, keep_types = {...}?})
--   params | nil = parameters.binding_parameters{credential_type=, validity=, wrapped=}
--   validity | nil, msg, "USAGE" = parameters.parse_validity("30d" [, label])
local json = require "calm.lib.json"
local M = {}

-- The `parameters` object of create/update, built as a table (no shell
-- can eat "$XSMASTERAPPNAME"). Both runtimes send credential-types: an
-- update's xs-security replaces the instance's descriptor, and without them
-- XSUAA falls back to its default (binding-secret since 19 January 2026),
-- which would cut off an old instance-secret key of a Cloud Foundry
-- instance as well. o.authorities: the list the run's policy gives
-- (policy:authorities), or nil for none.
function M.instance_parameters(xsappname, o)
  local xs = { xsappname = xsappname }
  if o.authorities then
    -- a JSON array even when a policy leaves it empty (the broker wants one)
    xs.authorities = json.array { table.unpack(o.authorities) }
  end
  local types = json.array { "binding-secret" }
  -- every type an existing binding uses must stay: removing one invalidates
  -- those bindings (SAP's migration guide: allow both first, move
  -- consumers, then restrict). o.keep_types = {"instance-secret", "x509"}
  local keep = {}
  for _, t in ipairs(o.keep_types or {}) do keep[t] = true end
  if keep["instance-secret"] then types[#types + 1] = "instance-secret" end
  if keep.x509 or o.credential_type == "x509" then types[#types + 1] = "x509" end
  xs["oauth2-configuration"] = { ["credential-types"] = types }
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

return M
