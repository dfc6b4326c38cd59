-- calm.key.util: what the parts of calm.key share: constants, the helpers
-- for messages (values shown escaped, on one line, never a secret), URLs,
-- credential types, and the token and root URLs of a key.
local json = require "calm.lib.json"
local url = require "calm.url"
local M = {}

-- What `check` calls each envelope a key came in.
M.WRAPPER_TEXT = {
  key = "bare key", binding = "Service Manager binding", credentials = "credentials envelope",
  ["vcap-entry"] = "VCAP_SERVICES entry", vcap = "VCAP_SERVICES", ["k8s-secret"] = "Kubernetes Secret",
}

M.LABEL = "SAPCloudALMAPIs"
M.FORMATS = { "json", "alm-setup", "env", "dotenv", "vcap", "k8s-secret" }
M.SECRET_FIELDS = { "clientsecret", "key", "certificate" }

local DEPLOYMENT_SCOPES = { "imp-cdm-feature-display-ui", "imp-cdm-feature-manage-ui" }
M.DEPLOYMENT_SCOPES = DEPLOYMENT_SCOPES

-- "a string", "an object", ... for messages about wrong types.
local function kind_of(v)
  local tv = type(v)
  if tv == "table" then
    if json.is_array and json.is_array(v) then return "an array" end
    if next(v) ~= nil and #v > 0 then return "an array" end
    return "an object"
  end
  if tv == "string" then return "a string" end
  if tv == "number" then return "a number" end
  if tv == "boolean" then return "a boolean" end
  return tv
end

-- One printable line: control characters (C0, DEL, C1 as UTF-8) escaped,
-- long values cut. Only for values that are not secret.
local function shown(s, max)
  s = tostring(s)
  max = max or 120
  local cut = false
  if #s > max then s, cut = s:sub(1, max), true end
  s = s:gsub("[%c\127]", function(c) return string.format("\\x%02x", c:byte()) end)
  s = s:gsub("\194([\128-\159])", function(c) return string.format("\\u%04x", c:byte()) end)
  return cut and (s .. "...") or s
end
M.shown = shown

-- t[name], else the first key equal to name ignoring case (endpoints.API).
local function get_ci(t, name)
  if type(t) ~= "table" then return nil end
  if t[name] ~= nil then return t[name], name end
  local lname = name:lower()
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and k:lower() == lname then keys[#keys + 1] = k end
  end
  table.sort(keys)
  if keys[1] then return t[keys[1]], keys[1] end
  return nil
end

local function is_nonempty_string(v)
  return type(v) == "string" and v ~= ""
end

local function has_control(s)
  return s:find("[%c\127]") ~= nil
end

-- A key's URL taken apart by calm.url (libcurl's URL API, strictly: plain
-- ASCII, no user name or password, a path without `$(`, quotes or
-- spaces): {scheme, host, port, path, origin, ip, loopback} or nil, why.
-- A key's URLs are bases other paths are joined to, so a query or fragment
-- is refused too.
local function parse_url(s)
  local u, why = url.parse(s)
  if not u then return nil, why end
  if u.query or u.fragment then return nil, "must not have a query or fragment" end
  return u
end
M.parse_url = parse_url

-- Credential type: "binding-secret", "instance-secret", "x509", or nil
-- (absent) / false (unknown value), plus the raw value.
local function credential_type(uaa)
  local ct = uaa["credential-type"]
  if ct == nil then return nil end
  if type(ct) ~= "string" then return false, ct end
  local l = ct:lower()
  if l == "binding-secret" or l == "instance-secret" then return l, ct end
  if l:match("^x509") then return "x509", ct end
  return false, ct
end

-- Is this an x509 key? (declared, or a certificate and no secret)
local function is_x509(uaa)
  if type(uaa) ~= "table" then return false end
  local ct = credential_type(uaa)
  if ct == "x509" then return true end
  return ct == nil and uaa.certificate ~= nil and uaa.clientsecret == nil
end
M.is_x509 = is_x509

-- The token endpoint the key's own consumers use (nil for a key without
-- a usable token URL: check says why).
function M.token_url(k)
  local uaa = k.uaa
  if not uaa then return nil end
  local base = is_x509(uaa) and uaa.certurl or uaa.url
  if type(base) ~= "string" then return nil end
  return (url.join(base, "oauth/token"))
end

-- A parsed URL's path without one trailing "/" ("/" itself becomes "").
local function path_of(u)
  local p = u.path
  if p:sub(-1) == "/" then p = p:sub(1, -2) end
  return p
end

-- Does endpoints.Api end in /api (one trailing "/" is fine)?
function M.ends_in_api(u)
  return path_of(u):sub(-4):lower() == "/api"
end

-- Root URL for /SDF/ALM_SETUP: endpoints.Api without the trailing /api
-- (and without a trailing "/": the host alone for https://<tenant>.../api).
function M.root_url(k)
  local u = type(k.api) == "string" and parse_url(k.api)
  if not u then return nil end
  local p = path_of(u)
  if M.ends_in_api(u) then p = p:sub(1, -5) end
  return u.origin .. p
end

-- The Cloud ALM tenant and its region, from the key's URLs (nil where a URL
-- does not say): endpoints.Api is https://<tenant>.<region>.alm.cloud.sap/api
-- (the fake's <tenant>.<region>.alm.localhost), XSUAA's url
-- https://<subdomain>.authentication[.cert].<region>.hana.ondemand.com. The
-- API's host decides; the region of uaa.url (or uaa.uaadomain) is the
-- fallback, for a key whose API URL has another shape.
-- The labels of a parsed URL's host name ("a.b.c" -> {"a", "b", "c"}).
function M.host_labels(u)
  local list = {}
  for l in u.host:gmatch("[^.]+") do list[#list + 1] = l end
  return list
end

local function labels(s)
  local u = type(s) == "string" and parse_url(s)
  if not u or u.ip then return nil end
  return M.host_labels(u)
end

local function uaa_region(host_labels)
  if not host_labels then return nil end
  for i, l in ipairs(host_labels) do
    if l == "authentication" then
      local r = host_labels[i + 1] == "cert" and i + 2 or i + 1
      -- a region is followed by the platform's domain (authentication.localhost has none)
      if host_labels[r] and host_labels[r + 1] then return host_labels[r] end
      return nil
    end
  end
  return nil
end

function M.tenant_region(k)
  local tenant, region
  local api = labels(k.api)
  if api and #api >= 4 and api[3] == "alm" then tenant, region = api[1], api[2] end
  local uaa = k.uaa or {}
  region = region or uaa_region(labels(uaa.url)) or uaa_region(labels(uaa.certurl))
    or (type(uaa.uaadomain) == "string" and uaa_region(labels(url.build { scheme = "https", host = uaa.uaadomain })))
  return tenant, region or nil
end

local SECRET_KIND = {
  ["binding-secret"] = "binding secret (this binding's own; deleting the binding revokes it)",
  ["instance-secret"] = "instance secret (an old key: shared by the instance's keys, so deleting a binding does "
    .. "not revoke it; new bindings get binding secrets since 19 January 2026: calmbind rotate replaces it, "
    .. "on a Cloud Foundry instance calmbind get --runtime cf --binding-name NEW or cf create-service-key)",
  x509 = "X.509 certificate and private key (token over mutual TLS at uaa.certurl)",
}

M.kind_of = kind_of
M.get_ci = get_ci
M.is_nonempty_string = is_nonempty_string
M.has_control = has_control
M.credential_type = credential_type
M.SECRET_KIND = SECRET_KIND

return M
