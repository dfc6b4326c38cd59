-- calm.key: the SAP Cloud ALM API service key: parse it in whatever envelope
-- BTP hands it out, check it against the Landscape Management upload rules
-- and URL shapes, write it in the formats its consumers want, and verify it
-- live against its token endpoint.
--
--   local k = assert(key.load("key.json"))          -- or key.parse(text, source)
--   local res = key.check(k, {for_landscape = true}) -- {ok, problems, warnings, summary}
--   local text = assert(key.format(k, "env"))
--   assert(key.output(text, {out = path, show_secrets = false}))
--   local report = assert(key.verify(k, {scenario = "deployment"}))
--
-- Rule of the house: no message ever carries the value of a secret field
-- (uaa.clientsecret, uaa.key, uaa.certificate). Messages name fields; values
-- of non-secret fields are shown escaped, on one line.
local json = require "calm.json"
local log = require "calm.log"

local M = {}

M.LABEL = "SAPCloudALMAPIs"
M.FORMATS = { "json", "alm-setup", "env", "vcap" }
M.SECRET_FIELDS = { "clientsecret", "key", "certificate" }

local DEPLOYMENT_SCOPES = { "imp-cdm-feature-display-ui", "imp-cdm-feature-manage-ui" }
M.DEPLOYMENT_SCOPES = DEPLOYMENT_SCOPES

-- ------------------------------------------------------------- helpers --

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

-- ------------------------------------------------------------- parsing --

local function looks_like_key(t)
  return type(t) == "table" and (t.uaa ~= nil or get_ci(t, "endpoints") ~= nil)
end

-- Candidates of a VCAP_SERVICES document: {entry, label} pairs.
local function vcap_entries(doc)
  local found, any_array = {}, false
  for label, list in pairs(doc) do
    if type(list) ~= "table" then return nil end
    any_array = true
    for _, e in ipairs(list) do
      if type(e) == "table" and looks_like_key(e.credentials) then
        found[#found + 1] = { entry = e, label = type(e.label) == "string" and e.label or label }
      end
    end
  end
  if not any_array then return nil end
  return found
end

local function entry_name(e)
  return type(e.name) == "string" and e.name or nil
end

-- Finds the bare key inside what BTP handed out. Returns bare, info | nil, why.
local function unwrap(v, want_name)
  if looks_like_key(v) then return v, { wrapper = "key" } end
  if type(v.credentials) == "table" then
    if not looks_like_key(v.credentials) then
      return nil, "credentials holds no uaa section"
    end
    local wrapper = "credentials"
    if v.service_instance_id ~= nil or v.id ~= nil then wrapper = "binding"
    elseif v.label ~= nil then wrapper = "vcap-entry" end
    return v.credentials, { wrapper = wrapper, name = entry_name(v) }
  elseif v.credentials ~= nil then
    return nil, "credentials must be an object, not " .. kind_of(v.credentials)
  end
  -- `cf env` shows {"VCAP_SERVICES": {...}}
  local inner = v.VCAP_SERVICES
  if inner == nil and type(v.system_env_json) == "table" then inner = v.system_env_json.VCAP_SERVICES end
  if type(inner) == "table" then v = inner end
  local entries = vcap_entries(v)
  if entries then
    if want_name then
      local picked = {}
      for _, c in ipairs(entries) do
        if entry_name(c.entry) == want_name then picked[#picked + 1] = c end
      end
      entries = picked
      if #entries == 0 then return nil, "VCAP_SERVICES has no entry named '" .. shown(want_name) .. "'" end
    end
    if #entries > 1 then
      local ours = {}
      for _, c in ipairs(entries) do
        if c.label == M.LABEL then ours[#ours + 1] = c end
      end
      if #ours > 0 then entries = ours end
    end
    if #entries == 1 then
      return entries[1].entry.credentials, { wrapper = "vcap", name = entry_name(entries[1].entry) }
    end
    if #entries == 0 then return nil, "VCAP_SERVICES holds no entry with a uaa section" end
    local names = {}
    for _, c in ipairs(entries) do names[#names + 1] = "'" .. shown(entry_name(c.entry) or "?") .. "'" end
    table.sort(names)
    return nil, "VCAP_SERVICES holds " .. #entries .. " service keys (" .. table.concat(names, ", ")
      .. "); name the one you mean (--name)"
  end
  return nil, "not a service key: no uaa section (expected the key, a binding with credentials, "
    .. "a {\"credentials\": ...} envelope or VCAP_SERVICES)"
end

local WRAPPER_TEXT = {
  key = "bare key", binding = "Service Manager binding", credentials = "credentials envelope",
  ["vcap-entry"] = "VCAP_SERVICES entry", vcap = "VCAP_SERVICES",
}

-- Registers every secret value with the log redaction as soon as we see it.
local function register_secrets(uaa)
  if type(uaa) ~= "table" then return end
  for _, f in ipairs(M.SECRET_FIELDS) do
    if is_nonempty_string(uaa[f]) then log.secret(uaa[f]) end
  end
end

-- key.from_value(value, source [, opts]) -> k | nil, message, "INPUT"
-- value is decoded JSON (a bare key, a binding, an envelope or VCAP_SERVICES).
-- opts.name picks a VCAP_SERVICES entry by name.
function M.from_value(v, source, opts)
  opts = opts or {}
  source = source and shown(source, 200) or "key"
  if type(v) ~= "table" or (next(v) ~= nil and #v > 0) then
    return nil, source .. ": not a service key: the JSON is " .. kind_of(v) .. ", not an object", "INPUT"
  end
  local input = require "calm.input"
  local kind, why = input.kind(v)
  local refused = input.refusal(kind, why, "calm", source)
  if refused then return nil, refused, "INPUT" end
  local bare, info = unwrap(v, opts.name)
  if not bare then return nil, source .. ": " .. info, "INPUT" end
  if type(bare.uaa) == "table" then register_secrets(bare.uaa) end
  local endpoints = get_ci(bare, "endpoints")
  local api = type(endpoints) == "table" and get_ci(endpoints, "Api") or nil
  local k = {
    data = bare,
    source = source,
    wrapper = info.wrapper,
    name = info.name,
    uaa = type(bare.uaa) == "table" and bare.uaa or nil,
    api = type(api) == "string" and api or nil,
  }
  return k
end

-- key.parse(text, source [, opts]) -> k | nil, message, "INPUT"
function M.parse(text, source, opts)
  local label = source and shown(source, 200) or "key"
  -- BOM, raw `cf service-key` output, what a file that is not JSON looks like
  local v, msg = require("calm.input").decode(text, label)
  if v == nil then return nil, msg, "INPUT" end
  return M.from_value(v, label, opts)
end

-- key.read(path) -> text | nil, message, "INPUT". "-" is standard input.
function M.read(path)
  if path == "-" then
    local ok, text = pcall(function() return io.stdin:read("a") end)
    if not ok or text == nil then return nil, "cannot read the key from standard input", "INPUT" end
    return text
  end
  local fs = require "calm.fs"
  local text, msg = fs.read(path, 1024 * 1024)
  if not text then
    return nil, "cannot read " .. shown(path, 200) .. ": " .. tostring(msg), "INPUT"
  end
  return text
end

-- key.load(path [, opts]) -> k | nil, message, "INPUT"
function M.load(path, opts)
  local text, msg, code = M.read(path)
  if not text then return nil, msg, code end
  return M.parse(text, path == "-" and "standard input" or path, opts)
end

-- ------------------------------------------------------------ checking --

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

local SECRET_KIND = {
  ["binding-secret"] = "binding secret (this binding's own; deleting the binding revokes it)",
  ["instance-secret"] = "instance secret (shared by every key of the instance; deleting a binding does not revoke it)",
  x509 = "X.509 certificate and private key (token over mutual TLS at uaa.certurl)",
}

-- key.check(k, opts) -> {ok = bool, problems = {...}, warnings = {...}, summary = {...}}
-- opts.for_landscape: apply the Landscape Management upload rules (x509 and
-- keys without uaa.credential-type fail); opts.tenant: the identity zone
-- (subaccount subdomain) the key must belong to.
function M.check(k, opts)
  opts = opts or {}
  local problems, warnings = {}, {}
  local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  local function warn(fmt, ...) warnings[#warnings + 1] = string.format(fmt, ...) end
  local summary = { source = k.source, envelope = WRAPPER_TEXT[k.wrapper] or k.wrapper }
  local data = k.data or {}

  -- a string field: nil when missing/empty/wrong type (reported)
  local function str(t, prefix, name, required, secret)
    local v = t[name]
    local label = prefix .. name
    if v == nil then
      if required then problem("%s is missing", label) end
      return nil
    end
    if type(v) ~= "string" then
      problem("%s must be a string, not %s", label, kind_of(v))
      return nil
    end
    if v == "" or (not secret and not v:find("%S")) then
      if required then problem("%s is empty", label) else warn("%s is empty", label) end
      return nil
    end
    return v
  end

  local function url_field(t, prefix, name, required)
    local v = str(t, prefix, name, required)
    if not v then return nil end
    local u, why = parse_url(v)
    local label = prefix .. name
    if not u then problem("%s %s", label, why); return nil end
    if u.scheme ~= "https" then
      if u.scheme == "http" and is_loopback(u.host) then
        warn("%s uses http (accepted for a local test server only)", label)
      else
        problem("%s must use https, not %s", label, u.scheme)
        return nil
      end
    end
    return u, v
  end

  -- endpoints.Api ------------------------------------------------------
  local endpoints, ename = get_ci(data, "endpoints")
  if endpoints == nil then
    problem("endpoints.Api is missing (no endpoints section)")
  elseif type(endpoints) ~= "table" then
    problem("%s must be an object, not %s", ename, kind_of(endpoints))
  else
    local api, aname = get_ci(endpoints, "Api")
    local label = ename .. "." .. (aname or "Api")
    if api == nil then problem("%s is missing", label)
    elseif type(api) ~= "string" then problem("%s must be a string, not %s", label, kind_of(api))
    elseif api == "" then problem("%s is empty", label)
    else
      local u, why = parse_url(api)
      if not u then problem("%s %s", label, why)
      else
        if u.scheme ~= "https" then
          if u.scheme == "http" and is_loopback(u.host) then
            warn("%s uses http (accepted for a local test server only)", label)
          else
            problem("%s must use https, not %s", label, u.scheme)
          end
        end
        -- one trailing "/" is fine (".../api/"): the root URL drops it too
        if not (u.path:gsub("/$", "")):match("/[Aa][Pp][Ii]$") then
          problem("%s must end in /api (it is the root URL of the Cloud ALM APIs)", label)
        end
        summary.api = api
        summary.root_url = M.root_url(k)
      end
    end
    if aname and aname ~= "Api" then
      warn("%s is spelled '%s' (BTP writes 'Api'; read anyway)", label, shown(aname))
    end
  end

  -- uaa -------------------------------------------------------------------
  local uaa = data.uaa
  if uaa == nil then
    problem("uaa is missing (no uaa section)")
  elseif type(uaa) ~= "table" or (next(uaa) ~= nil and #uaa > 0) then
    problem("uaa must be an object, not %s", kind_of(uaa))
  else
    local ct, raw = credential_type(uaa)
    local x509 = is_x509(uaa)
    if ct == false then
      if type(raw) == "string" then
        problem("uaa.credential-type '%s' is unknown (expected binding-secret, instance-secret or x509)", shown(raw, 40))
      else
        problem("uaa.credential-type must be a string, not %s", kind_of(raw))
      end
    elseif ct == nil then
      if opts.for_landscape then
        problem("uaa.credential-type is missing: Landscape Management accepts only binding-secret or instance-secret keys")
      else
        warn("uaa.credential-type is missing (assumed %s)", x509 and "x509" or "binding-secret")
      end
    end
    if ct then
      summary.type, summary.secret = ct, SECRET_KIND[ct]
    elseif ct == nil then
      local assumed = x509 and "x509" or "binding-secret"
      summary.type, summary.secret = assumed .. " (assumed: no uaa.credential-type)", SECRET_KIND[assumed]
    else
      summary.type = type(raw) == "string" and shown(raw, 40) or "invalid"
    end

    local clientid = str(uaa, "uaa.", "clientid", true)
    if clientid then
      if has_control(clientid) then
        problem("uaa.clientid contains a line break or control character")
      elseif clientid:find("[^%w!|._%-]") then
        warn("uaa.clientid has characters XSUAA does not issue (expected letters, digits, ! | . _ -)")
        summary.client = clientid
      else
        summary.client = clientid
      end
    end

    if x509 then
      if opts.for_landscape then
        problem("%s: fine for /SDF/ALM_SETUP (mutual TLS via uaa.certurl), "
          .. "but Landscape Management accepts only binding-secret or instance-secret keys "
          .. "(create a binding with credential-type binding-secret for the upload)",
          ct == "x509" and "uaa.credential-type is x509" or "the key is an x509 key (a certificate, no secret)")
      end
      local cert = str(uaa, "uaa.", "certificate", true, true)
      if cert and not cert:find("-----BEGIN CERTIFICATE-----", 1, true) then
        problem("uaa.certificate is not a PEM certificate")
      end
      local pkey = str(uaa, "uaa.", "key", true, true)
      if pkey and not pkey:match("%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-") then
        problem("uaa.key is not a PEM private key")
      end
      local cu = url_field(uaa, "uaa.", "certurl", true)
      if cu then summary.token_url = M.token_url(k) end
    else
      local secret = str(uaa, "uaa.", "clientsecret", true, true)
      if secret then
        local bad
        if has_control(secret) then
          bad = "uaa.clientsecret contains a line break or control character"
        elseif secret:find("^%s") or secret:find("%s$") then
          bad = "uaa.clientsecret has leading or trailing white space"
        end
        -- Landscape Management and /SDF/ALM_SETUP take it as one line
        if bad and opts.for_landscape then problem("%s", bad) elseif bad then warn("%s", bad) end
      end
    end

    local uu = url_field(uaa, "uaa.", "url", true)
    if uu then
      if uu.path ~= "" and uu.path ~= "/" then
        problem("uaa.url must be the UAA base URL (https://<subdomain>.authentication.<region>...), without a path")
      elseif not x509 then
        summary.token_url = M.token_url(k)
      end
    end

    -- identity zone: present, a subdomain, and the one uaa.url points at
    local zone = str(uaa, "uaa.", "identityzone", opts.for_landscape)
    if zone then
      if not zone:match("^%w[%w-]*$") or zone:match("-$") then
        problem("uaa.identityzone is not a subdomain (letters, digits, hyphens)")
        zone = nil
      else
        summary.tenant = zone
      end
    elseif not opts.for_landscape and uaa.identityzone == nil then
      warn("uaa.identityzone is missing: the token's zone cannot be checked")
    end
    if zone then
      local function same_zone(u, field)
        if not u then return end
        if is_ip(u.host) then
          warn("uaa.%s has an IP address as host: uaa.identityzone not checked against it", field)
          return
        end
        local first = u.host:match("^([^.]+)")
        if first ~= zone:lower() then
          problem("uaa.identityzone '%s' does not match uaa.%s (host %s): the key mixes two tenants",
            shown(zone), field, shown(u.host))
        end
      end
      same_zone(uu, "url")
      if x509 and type(uaa.certurl) == "string" then same_zone(parse_url(uaa.certurl), "certurl") end
      if opts.tenant and zone:lower() ~= tostring(opts.tenant):lower() then
        problem("uaa.identityzone '%s' is not the tenant '%s': Landscape Management takes only keys of its own tenant",
          shown(zone), shown(opts.tenant))
      end
    end

    local zid = uaa.identityzoneid
    if zid ~= nil and type(zid) ~= "string" then
      warn("uaa.identityzoneid should be a string, not %s", kind_of(zid))
    elseif is_nonempty_string(zid) then
      summary.zone_id = zid
      if is_nonempty_string(uaa.tenantid) and uaa.tenantid ~= zid then
        warn("uaa.tenantid differs from uaa.identityzoneid")
      end
    end
    for _, f in ipairs({ "tenantid", "uaadomain", "xsappname", "tenantmode", "sburl", "apiurl", "verificationkey" }) do
      if uaa[f] ~= nil and type(uaa[f]) ~= "string" then
        warn("uaa.%s should be a string, not %s", f, kind_of(uaa[f]))
      end
    end
  end

  -- naming: Cloud ALM's own automatic credentials are called <SID>_<client>_<sysno>
  if k.name and k.name:match("^%w%w%w_%d%d%d_%d%d$") then
    warn("binding name '%s' looks like <SID>_<client>_<sysno>, the pattern of credentials Cloud ALM creates itself",
      shown(k.name))
  end

  summary.name = k.name and shown(k.name) or nil
  return { ok = #problems == 0, problems = problems, warnings = warnings, summary = summary }
end

-- key.check_text(result [, opts]) -> the human report `check` prints.
function M.check_text(res, opts)
  opts = opts or {}
  local s = res.summary
  local out = {}
  local function line(label, v)
    if v ~= nil then out[#out + 1] = string.format("  %-12s %s", label .. ":", shown(v, 200)) end
  end
  out[#out + 1] = "key " .. shown(s.source or "?", 200) .. " (" .. tostring(s.envelope) .. ")"
  line("type", s.type)
  line("secret", s.secret)
  line("tenant", s.tenant and (s.tenant .. (s.zone_id and (" (zone " .. s.zone_id .. ")") or "")))
  line("client", s.client)
  line("binding", s.name)
  line("API", s.api)
  line("root URL", s.root_url)
  line("token URL", s.token_url)
  for _, p in ipairs(res.problems) do out[#out + 1] = "problem: " .. p end
  for _, w in ipairs(res.warnings) do out[#out + 1] = "warning: " .. w end
  local target = opts.for_landscape and "the Landscape Management upload rules" or "the checks for /SDF/ALM_SETUP"
  if res.ok then
    out[#out + 1] = "result: passes " .. target
      .. "; Deployment scopes show only in a token: calmbind verify " .. shown(s.source or "FILE", 200)
  else
    out[#out + 1] = string.format("result: fails %s (%d problem%s)", target, #res.problems,
      #res.problems == 1 and "" or "s")
  end
  return table.concat(out, "\n") .. "\n"
end

-- ------------------------------------------------------------- formats --

-- Key files are written with a stable key order: these first, the rest sorted.
local ORDER = {
  "endpoints", "Api", "uaa",
  "clientid", "clientsecret", "credential-type", "url", "certurl", "certificate", "key",
  "identityzone", "identityzoneid", "tenantid", "subaccountid", "zoneid", "tenantmode",
  "uaadomain", "xsappname", "serviceInstanceId", "sburl", "apiurl", "verificationkey",
  -- VCAP entry fields
  "label", "provider", "plan", "name", "instance_name", "binding_name", "tags", "credentials",
}
-- key.pretty_json(value) -> text ending in a newline.
function M.pretty_json(v)
  return json.pretty(v, ORDER) .. "\n"
end

-- POSIX sh single quoting: everything literal, ' becomes '\''.
local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
M.shell_quote = shq

-- The structural problems that stop any export (base checks, no Landscape rules).
local function exportable(k)
  local res = M.check(k, {})
  if not res.ok then
    local more = #res.problems > 1 and string.format(" (and %d more; see calmbind check)", #res.problems - 1) or ""
    return nil, k.source .. ": " .. res.problems[1] .. more, "INPUT"
  end
  return res
end

local function fmt_json(k)
  return M.pretty_json(k.data)
end

local function fmt_vcap(k, opts)
  local name = opts.name or k.name or "calm-api-key"
  local entry = {
    label = M.LABEL, plan = "standard", name = name,
    instance_name = opts.instance_name, binding_name = opts.binding_name or k.name,
    tags = json.array({}), credentials = k.data,
  }
  return M.pretty_json({ [M.LABEL] = json.array({ entry }) })
end

-- (variable, value) pairs in a fixed order; only fields the key has.
local function env_pairs(k)
  local uaa = k.uaa
  local x509 = is_x509(uaa)
  local list = {}
  local function add(name, v) if is_nonempty_string(v) then list[#list + 1] = { name, v } end end
  add("CALM_API_URL", k.api)
  add("CALM_ROOT_URL", M.root_url(k))
  add("CALM_TOKEN_URL", M.token_url(k))
  add("CALM_CLIENT_ID", uaa.clientid)
  if x509 then
    add("CALM_CERT_URL", uaa.certurl)
    add("CALM_CLIENT_CERTIFICATE", uaa.certificate)
    add("CALM_CLIENT_KEY", uaa.key)
  else
    add("CALM_CLIENT_SECRET", uaa.clientsecret)
  end
  add("CALM_CREDENTIAL_TYPE", type(uaa["credential-type"]) == "string" and uaa["credential-type"] or (x509 and "x509" or nil))
  add("CALM_UAA_URL", uaa.url)
  add("CALM_IDENTITY_ZONE", uaa.identityzone)
  add("CALM_IDENTITY_ZONE_ID", uaa.identityzoneid)
  add("CALM_TENANT_ID", uaa.tenantid)
  return list
end
M.env_pairs = env_pairs

local function fmt_env(k)
  local out = { "# SAP Cloud ALM API key (" .. k.source:gsub("[^%w %./_%-]", "?") .. "); POSIX sh: . this file" }
  for _, p in ipairs(env_pairs(k)) do
    if p[2]:find("\0", 1, true) then
      return nil, k.source .. ": the value for " .. p[1] .. " contains a NUL character, which no shell variable can hold", "INPUT"
    end
    out[#out + 1] = "export " .. p[1] .. "=" .. shq(p[2])
  end
  return table.concat(out, "\n") .. "\n"
end

local X509_SETUP = {
  "",
  "# This is an x509 (mutual TLS) key: /SDF/ALM_SETUP has no field for its certificate or",
  "# private key, and Landscape Management does not accept x509 keys. On the managed system:",
  "#   1. make a PKCS#12 file of uaa.certificate and uaa.key (e.g. calmbind export FILE --format json,",
  "#      then openssl pkcs12 -export -in cert.pem -inkey key.pem -out calm-client.p12);",
  "#   2. import it in STRUST as the SSL client identity the connection to SAP Cloud ALM uses,",
  "#      and trust the CA of the token endpoint above;",
  "#   3. in /SDF/ALM_SETUP choose certificate-based authentication and enter the mTLS token",
  "#      endpoint, the client ID and the root URL above (no client secret).",
  "# The certificate expires (see --x509-validity): repeat this with a new key before then.",
}

local function fmt_alm_setup(k)
  local uaa = k.uaa
  local x509 = is_x509(uaa)
  local function one_line(field, v)
    if has_control(v) then
      return nil, k.source .. ": " .. field .. " contains a line break or control character and cannot be entered as one field", "INPUT"
    end
    return v
  end
  local lines = {}
  local function add(label, field, v)
    local ok, msg, code = one_line(field, v)
    if not ok then return nil, msg, code end
    lines[#lines + 1] = string.format("%-30s %s", label .. ":", v)
    return true
  end
  local steps = {
    { x509 and "OAuth token endpoint (mTLS)" or "OAuth token endpoint", x509 and "uaa.certurl" or "uaa.url", M.token_url(k) },
    { "Client ID", "uaa.clientid", uaa.clientid },
  }
  if not x509 then steps[#steps + 1] = { "Client secret", "uaa.clientsecret", uaa.clientsecret } end
  steps[#steps + 1] = { "Root URL", "endpoints.Api", M.root_url(k) }
  for _, s in ipairs(steps) do
    local ok, msg, code = add(s[1], s[2], s[3])
    if not ok then return nil, msg, code end
  end
  local head = "# /SDF/ALM_SETUP fields for SAP Cloud ALM"
    .. (is_nonempty_string(uaa.identityzone) and (" (tenant " .. shown(uaa.identityzone) .. ")") or "")
  local out = { head, "" }
  for _, l in ipairs(lines) do out[#out + 1] = l end
  if x509 then
    -- /SDF/ALM_SETUP has no field for a certificate or a private key: they
    -- go into the managed system's trust store, not into this screen
    for _, l in ipairs(X509_SETUP) do out[#out + 1] = l end
  end
  out[#out + 1] = ""
  out[#out + 1] = "# Or paste the whole key (calmbind export FILE --format json) under \"Paste Service Keys\"."
  out[#out + 1] = "# The managed system must reach the root URL and the token endpoint (proxy fields if needed)."
  return table.concat(out, "\n") .. "\n"
end

local FORMATTERS = { json = fmt_json, vcap = fmt_vcap, env = fmt_env, ["alm-setup"] = fmt_alm_setup }

-- key.format(k, fmt [, opts]) -> text | nil, message, code
-- fmt: json | alm-setup | env | vcap. opts.name: the VCAP entry name.
-- Refuses ("INPUT") a key that fails the structural checks.
function M.format(k, fmt, opts)
  local f = FORMATTERS[fmt]
  if not f then
    return nil, "unknown format '" .. shown(fmt) .. "' (json, alm-setup, env or vcap)", "USAGE"
  end
  local res, msg, code = exportable(k)
  if not res then return nil, msg, code end
  return f(k, opts or {})
end

-- Maps a calm.fs failure to our codes: a bad --out is the user's to fix.
local USER_FS = { ENOENT = true, EACCES = true, EISDIR = true, ENOTDIR = true, ELOOP = true,
                  NOT_FILE = true, SYMLINK = true, EPERM = true, EROFS = true }

-- key.output(text, opts) -> true | nil, message, code
-- opts.out: a path (written 0600, atomically) or nil/"-" for stdout.
-- opts.show_secrets: allow writing to a terminal. opts.secret = false when
-- the text holds no secret.
function M.output(text, opts)
  opts = opts or {}
  local fs = require "calm.fs"
  if opts.out and opts.out ~= "-" then
    local ok, msg, code = fs.write_private(opts.out, text)
    if not ok then
      return nil, "cannot write " .. shown(opts.out, 200) .. ": " .. tostring(msg), USER_FS[code] and "USAGE" or (code or "IO")
    end
    return true
  end
  if opts.secret ~= false and not opts.show_secrets and fs.isatty("stdout") then
    return nil, "refusing to print the key's secret to a terminal: use --out FILE, "
      .. "pipe the output, or add --show-secrets", "USAGE"
  end
  io.stdout:write(text)
  io.stdout:flush()
  return true
end

-- key.export(k, opts) -> true | nil, message, code: format + output in one
-- call, for `export` and `get --format`. opts: format (default json), out,
-- show_secrets, name; warnings of the structural check go to the log.
function M.export(k, opts)
  opts = opts or {}
  local res, msg, code = exportable(k)
  if not res then return nil, msg, code end
  for _, w in ipairs(res.warnings) do log.warn("%s: %s", k.source, w) end
  local text
  text, msg, code = M.format(k, opts.format or "json", opts)
  if not text then return nil, msg, code end
  return M.output(text, opts)
end

-- ------------------------------------------------------------ verifying --

local function has_scope(scopes, suffix)
  for _, s in ipairs(scopes) do
    if type(s) == "string" and (s == suffix or s:sub(-(#suffix + 1)) == "." .. suffix) then return true end
  end
  return false
end

-- key.verify(k, opts) -> report | nil, message, code
-- opts.scenario = "deployment" (default) | "monitoring"; opts.cacert.
-- Fetches a token the way the key's consumers do (secret at uaa.url, or
-- mutual TLS at uaa.certurl), decodes it and checks scopes and zone.
-- Failures to get a token at all return nil: "AUTH" when the endpoint
-- refuses the credentials (exit 3), "DEADLINE" (5), "INPUT" for a key that
-- cannot be used (2), otherwise the transport's code or "UNREACHABLE"
-- (retries used up), "API"/"BAD_RESPONSE" (odd answers): all exit 1. Otherwise a report
-- {ok, problems, warnings, scopes, token_url, mtls, expires_in, zone, client, scenario}.
function M.verify(k, opts)
  opts = opts or {}
  local scenario = opts.scenario or "deployment"
  local res, msg, code = exportable(k)
  if not res then return nil, msg, code end
  local oauth = require "calm.oauth"
  local jwt = require "calm.jwt"
  local uaa = k.uaa
  local token_url = M.token_url(k)
  local report = {
    ok = true, problems = {}, warnings = {}, scopes = {}, scenario = scenario,
    token_url = token_url, mtls = is_x509(uaa),
  }
  local function problem(fmt, ...) report.problems[#report.problems + 1] = string.format(fmt, ...); report.ok = false end
  local function warn(fmt, ...) report.warnings[#report.warnings + 1] = string.format(fmt, ...) end

  local grant, gmsg, gcode = oauth.grant_from_key(uaa, "key " .. k.source)
  if not grant then return nil, tostring(gmsg), gcode or "INPUT" end
  if opts.cacert and type(grant) == "table" and grant.cacert == nil then grant.cacert = opts.cacert end
  local tok, tmsg, tcode = oauth.fetch(grant)
  if not tok then
    -- oauth's messages name the key and the token URL, never the secret
    if tcode == "AUTH" then
      return nil, "credentials refused: " .. tostring(tmsg), "AUTH"
    elseif tcode == "DEADLINE" then
      return nil, "no token from " .. token_url .. " before the deadline", "DEADLINE"
    end
    -- every other failure is "cannot reach" (exit 1), also once calm.rest
    -- has used up its retries (RETRY_EXHAUSTED would be 5, the deadline's)
    if tcode == nil or tcode == "RETRY_EXHAUSTED" then tcode = "UNREACHABLE" end
    return nil, "cannot get a token from " .. token_url .. ": " .. tostring(tmsg), tcode
  end
  if type(tok.access_token) == "string" then log.secret(tok.access_token) end
  report.expires_in = tonumber(tok.expires_in)

  local claims, jmsg = nil, "no access_token in the answer"
  if type(tok.access_token) == "string" then claims, jmsg = jwt.decode(tok.access_token) end
  if claims then
    report.scopes = jwt.scopes(claims) or {}
  else
    problem("the token is not a readable JWT (%s)", tostring(jmsg))
  end
  if #report.scopes == 0 and type(tok.scope) == "string" then
    for s in tok.scope:gmatch("%S+") do report.scopes[#report.scopes + 1] = s end
  end
  table.sort(report.scopes)

  report.deployment = {}
  local missing = {}
  for _, s in ipairs(DEPLOYMENT_SCOPES) do
    report.deployment[s] = has_scope(report.scopes, s)
    if not report.deployment[s] then missing[#missing + 1] = s end
  end
  if scenario == "deployment" and #missing > 0 then
    for _, s in ipairs(missing) do
      problem("token scope %s missing: the key works but not for Deployment", s)
    end
  end

  if claims then
    local ext = type(claims.ext_attr) == "table" and claims.ext_attr or {}
    local zid, zdn = claims.zid, ext.zdn
    report.zone = { id = type(zid) == "string" and zid or nil, subdomain = type(zdn) == "string" and zdn or nil }
    local want_id = is_nonempty_string(uaa.identityzoneid) and uaa.identityzoneid
      or (is_nonempty_string(uaa.tenantid) and uaa.tenantid) or nil
    local checked = false
    if report.zone.id and want_id then
      checked = true
      if report.zone.id ~= want_id then
        problem("the token's zone %s is not uaa.%s %s: the key and its token endpoint belong to different tenants",
          shown(report.zone.id), is_nonempty_string(uaa.identityzoneid) and "identityzoneid" or "tenantid", shown(want_id))
      end
    end
    if report.zone.subdomain and is_nonempty_string(uaa.identityzone) then
      checked = true
      if report.zone.subdomain:lower() ~= uaa.identityzone:lower() then
        problem("the token's subdomain %s is not uaa.identityzone %s", shown(report.zone.subdomain), shown(uaa.identityzone))
      end
    end
    if not checked then warn("the token names no zone the key can be compared with (zid, ext_attr.zdn)") end
    local cid = claims.cid or claims.client_id
    report.client = type(cid) == "string" and cid or nil
    if report.client and is_nonempty_string(uaa.clientid) and report.client ~= uaa.clientid then
      warn("the token was issued to client %s, not uaa.clientid", shown(report.client))
    end
  end
  return report
end

-- key.verify_text(report, source) -> the human report `verify` prints.
function M.verify_text(r, source)
  local out = {}
  out[#out + 1] = "verify " .. shown(source or "key", 200) .. " (scenario " .. r.scenario .. ")"
  out[#out + 1] = string.format("  %-12s %s%s: token issued%s", "token:", shown(r.token_url or "?", 200),
    r.mtls and " (mutual TLS)" or "", r.expires_in and (", expires in " .. math.floor(r.expires_in) .. " s") or "")
  if r.zone then
    out[#out + 1] = string.format("  %-12s %s%s", "zone:", shown(r.zone.subdomain or "?"),
      r.zone.id and (" (" .. shown(r.zone.id) .. ")") or "")
  end
  if r.client then out[#out + 1] = string.format("  %-12s %s", "client:", shown(r.client)) end
  out[#out + 1] = string.format("  %-12s %s", "scopes:", #r.scopes > 0 and shown(table.concat(r.scopes, " "), 1000) or "(none)")
  local d = {}
  for _, s in ipairs(DEPLOYMENT_SCOPES) do
    d[#d + 1] = s .. " " .. ((r.deployment and r.deployment[s]) and "yes" or "no")
  end
  out[#out + 1] = string.format("  %-12s %s", "deployment:", table.concat(d, ", "))
  for _, p in ipairs(r.problems) do out[#out + 1] = "problem: " .. p end
  for _, w in ipairs(r.warnings) do out[#out + 1] = "warning: " .. w end
  if r.scenario == "deployment" and r.deployment and not (r.deployment[DEPLOYMENT_SCOPES[1]] and r.deployment[DEPLOYMENT_SCOPES[2]]) then
    out[#out + 1] = "hint: the instance lacks the $XSMASTERAPPNAME.imp-cdm-feature-* authorities (tenants of June to "
      .. "October 2023): calmbind get --scenario deployment adds them and creates a new binding"
  end
  if r.ok then
    out[#out + 1] = "result: the key works" .. (r.scenario == "deployment" and " for Deployment" or " (monitoring)")
  else
    out[#out + 1] = string.format("result: verification failed (%d problem%s)", #r.problems, #r.problems == 1 and "" or "s")
  end
  return table.concat(out, "\n") .. "\n"
end

-- ------------------------------------------------------------- rotation --

-- key.rotation_hint{created = "new-binding", others = {"old", ...},
--                   credential_type = "binding-secret"} -> text | nil
-- nil unless a binding was created while other keys exist. The text tells
-- the user to replace the key in Landscape Management and /SDF/ALM_SETUP.
-- Only entries with ours = true (bindings calmbind created) are named for
-- deletion afterwards; calmbind never advises deleting a key it did not
-- create (SAP's generated key, hand-made ones): those are listed as kept.
function M.rotation_hint(opts)
  opts = opts or {}
  local others, ours, kept, instance_secret = {}, {}, {}, {}
  for _, o in ipairs(opts.others or {}) do
    -- an entry is a binding name, or {name=, instance=, credential_type=, generated=, ours=}
    local name = type(o) == "table" and o.name or o
    if name ~= opts.created then
      local text = "'" .. shown(name) .. "'"
      if type(o) == "table" and o.instance then text = text .. " (instance '" .. shown(o.instance) .. "')" end
      others[#others + 1] = text
      if type(o) == "table" and o.ours then
        ours[#ours + 1] = text
        if (o.credential_type or opts.credential_type) == "instance-secret" then
          instance_secret[#instance_secret + 1] = "'" .. shown(name) .. "'"
        end
      else
        kept[#kept + 1] = text
      end
    end
  end
  if not opts.created or #others == 0 then return nil end
  local one = #others == 1
  local out = {
    string.format("New binding '%s' created; %s %s. Next:",
      shown(opts.created), one and "another SAP Cloud ALM API key exists:" or "other SAP Cloud ALM API keys exist:",
      table.concat(others, ", ")),
    "  1. upload the new key in Cloud ALM Landscape Management (Settings > SAP Cloud ALM Service Key):"
      .. " it keeps one key per tenant;",
    "  2. paste the new key in /SDF/ALM_SETUP on every managed system and client of the transport track;",
  }
  if #ours > 0 then
    out[#out + 1] = string.format("  3. then the older binding%s %s that calmbind created can go (deleting a binding "
      .. "in BTP does not delete an uploaded copy).", #ours == 1 and "" or "s", table.concat(ours, ", "))
  end
  if #kept > 0 then
    out[#out + 1] = string.format("  Kept as they are: %s: calmbind did not create %s, and other systems or "
      .. "integrations may use %s.", table.concat(kept, ", "), #kept == 1 and "it" or "them",
      #kept == 1 and "it" or "them")
  end
  if #instance_secret > 0 then
    out[#out + 1] = "  Note: " .. table.concat(instance_secret, ", ") .. (#instance_secret == 1 and " is an" or " are")
      .. " instance-secret key" .. (#instance_secret == 1 and "" or "s") .. ": the secret is shared by all keys"
      .. " of its instance, so removing the binding does not revoke it (removing the instance does)."
  end
  return table.concat(out, "\n")
end

return M
