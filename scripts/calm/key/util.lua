-- calm.key.util: what the parts of calm.key share: constants, the helpers
-- for messages (values shown escaped, on one line, never a secret), URLs,
-- credential types, and the token and root URLs of a key.
local json = require "calm.lib.json"
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

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host:sub(-10) == ".localhost"
      or host:match("^127%.%d+%.%d+%.%d+$") ~= nil or host == "[::1]"
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:sub(1, 1) == "["
end

-- Splits an absolute URL strictly: {scheme, host, port, path} or nil, why.
-- Stricter than RFC 3986 on purpose: Cloud ALM and XSUAA URLs are plain
-- ASCII hosts and paths, so quotes, `$(`, spaces or non-ASCII mean damage.
local function parse_url(s)
  if has_control(s) then return nil, "contains a line break or control character" end
  if s:find("[^\33-\126]") then return nil, "contains spaces or non-ASCII characters" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "is not an absolute URL" end
  scheme = scheme:lower()
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if authority:find("@", 1, true) then return nil, "must not carry a user name or password" end
  local host, port = authority:match("^(%[[%x:]+%])(.*)$")
  if not host then host, port = authority:match("^([^:]*)(.*)$") end
  if host == "" then return nil, "has no host" end
  if not host:match("^%[[%x:]+%]$") and not (host:match("^%w[%w.-]*$") and not host:match("[.-]$")) then
    return nil, "has an invalid host name"
  end
  if port ~= "" then
    local p = port:match("^:(%d+)$")
    if not p or tonumber(p) < 1 or tonumber(p) > 65535 then return nil, "has an invalid port" end
    port = tonumber(p)
  else
    port = nil
  end
  if path:find("[?#]") then return nil, "must not have a query or fragment" end
  if path:find("[^%w%-._~/%%:@]") then return nil, "has characters a URL path does not carry" end
  return { scheme = scheme, host = host:lower(), port = port, path = path }
end
M.parse_url = parse_url

local function strip_slash(s)
  return (s:gsub("/+$", ""))
end

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

-- The token endpoint the key's own consumers use.
function M.token_url(k)
  local uaa = k.uaa
  if not uaa then return nil end
  local base = is_x509(uaa) and uaa.certurl or uaa.url
  if type(base) ~= "string" then return nil end
  return strip_slash(base) .. "/oauth/token"
end

-- Root URL for /SDF/ALM_SETUP: endpoints.Api without the trailing /api.
function M.root_url(k)
  if type(k.api) ~= "string" then return nil end
  local root = k.api:gsub("/$", ""):gsub("/[Aa][Pp][Ii]$", "")
  return root
end

-- The Cloud ALM tenant and its region, from the key's URLs (nil where a URL
-- does not say): endpoints.Api is https://<tenant>.<region>.alm.cloud.sap/api
-- (the fake's <tenant>.<region>.alm.localhost), XSUAA's url
-- https://<subdomain>.authentication[.cert].<region>.hana.ondemand.com. The
-- API's host decides; the region of uaa.url (or uaa.uaadomain) is the
-- fallback, for a key whose API URL has another shape.
local function labels(url)
  local u = type(url) == "string" and parse_url(url)
  if not u or is_ip(u.host) then return nil end
  local list = {}
  for l in u.host:gmatch("[^.]+") do list[#list + 1] = l end
  return list
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
    or (type(uaa.uaadomain) == "string" and uaa_region(labels("https://" .. uaa.uaadomain)))
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
M.is_loopback = is_loopback
M.is_ip = is_ip
M.strip_slash = strip_slash
M.credential_type = credential_type
M.SECRET_KIND = SECRET_KIND

return M
