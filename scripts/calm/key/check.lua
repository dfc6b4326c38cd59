-- calm.key.check: offline checks of a key: the structure every consumer
-- needs, the Landscape Management upload rules, URL shapes and naming.
--
--   res = check.check(k [, {for_landscape =, tenant =, warn_days =, now =}]) -- {ok, problems, warnings, summary}
--   text = check.check_text(res [, opts]); res | nil, msg, code = check.exportable(k)
local expiry = require "calm.key.expiry"
local U = require "calm.key.util"
local kind_of, shown, get_ci, is_nonempty_string, has_control, parse_url, credential_type, is_x509 =
  U.kind_of, U.shown, U.get_ci, U.is_nonempty_string, U.has_control, U.parse_url, U.credential_type, U.is_x509
local M = {}

-- The checks, in the order their messages appear: a table, so a script can
-- read, reorder or extend them (table.insert(require("calm.key.check").RULES,
-- {name =, uaa =, run = function(r) ... end})). A rule with uaa = true runs
-- only when the key has a uaa object. r: problem(fmt, ...), warn(fmt, ...),
-- str(t, prefix, name, required, secret), url_field(t, prefix, name,
-- required), summary, opts, k, data, uaa; rules pass facts on in r (ct,
-- x509, uu).
M.RULES = {
  { name = "endpoints.Api", run = function(r)
    local problem, warn, summary, k = r.problem, r.warn, r.summary, r.k
    local endpoints, ename = get_ci(r.data, "endpoints")
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
            if u.scheme == "http" and u.loopback then
              warn("%s uses http (accepted for a local test server only)", label)
            else
              problem("%s must use https, not %s", label, u.scheme)
            end
          end
          -- one trailing "/" is fine (".../api/"): the root URL drops it too
          if not U.ends_in_api(u) then
            problem("%s must end in /api (it is the root URL of the Cloud ALM APIs)", label)
          end
          summary.api = api
          summary.root_url = U.root_url(k)
        end
      end
      if aname and aname ~= "Api" then
        warn("%s is spelled '%s' (BTP writes 'Api'; read anyway)", label, shown(aname))
      end
    end
  end },
  { name = "uaa section", run = function(r)
    local uaa = r.data.uaa
    if uaa == nil then
      r.problem("uaa is missing (no uaa section)")
    elseif type(uaa) ~= "table" or (next(uaa) ~= nil and #uaa > 0) then
      r.problem("uaa must be an object, not %s", kind_of(uaa))
    else
      r.uaa = uaa  -- the rules with uaa = true run from here on
    end
  end },
  { name = "credential type", uaa = true, run = function(r)
    local problem, warn, summary, opts, uaa = r.problem, r.warn, r.summary, r.opts, r.uaa
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
      summary.type, summary.secret = ct, U.SECRET_KIND[ct]
    elseif ct == nil then
      local assumed = x509 and "x509" or "binding-secret"
      summary.type, summary.secret = assumed .. " (assumed: no uaa.credential-type)", U.SECRET_KIND[assumed]
    else
      summary.type = type(raw) == "string" and shown(raw, 40) or "invalid"
    end
    r.ct, r.x509 = ct, x509
  end },
  { name = "client id", uaa = true, run = function(r)
    local problem, warn, str, summary, uaa = r.problem, r.warn, r.str, r.summary, r.uaa
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
  end },
  { name = "secret or certificate", uaa = true, run = function(r)
    local problem, warn, str, url_field, summary, opts, uaa, k = r.problem, r.warn, r.str, r.url_field, r.summary, r.opts, r.uaa, r.k
    local ct, x509 = r.ct, r.x509
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
      if cu then summary.token_url = U.token_url(k) end
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
  end },
  { name = "expiry", uaa = true, run = function(r)
    -- an x509 key ends with its certificate's notAfter; a secret key does not
    -- expire (summary.expires stays nil: no date is made up for it). Judged
    -- only when the caller asks (opts.warn_days: check and verify), so an
    -- export or get of a key is not refused for its date.
    local e = expiry.of_key(r.k, r.opts.now)
    r.summary.expiry = e
    -- a PEM that libcrypto cannot read: the end date is unknown (a warning:
    -- the mutual TLS of verify is the test of whether the key works)
    local cert = r.uaa.certificate
    if e.error and r.x509 and type(cert) == "string" and cert:find("-----BEGIN CERTIFICATE-----", 1, true) then
      r.warn("%s: when the key expires is unknown", e.error)
    end
    local line = r.opts.warn_days and expiry.warning(e, r.opts.warn_days, r.opts.now)
    if line then r.problem("%s", line); r.summary.expiring = true end
  end },
  { name = "token endpoint", uaa = true, run = function(r)
    local problem, url_field, summary, uaa, k = r.problem, r.url_field, r.summary, r.uaa, r.k
    local x509 = r.x509
    local uu = url_field(uaa, "uaa.", "url", true)
    if uu then
      if uu.path ~= "" and uu.path ~= "/" then
        problem("uaa.url must be the UAA base URL (https://<subdomain>.authentication.<region>...), without a path")
      elseif not x509 then
        summary.token_url = U.token_url(k)
      end
    end
    r.uu = uu
  end },
  { name = "identity zone", uaa = true, run = function(r)
    local problem, warn, str, summary, opts, uaa = r.problem, r.warn, r.str, r.summary, r.opts, r.uaa
    local uu, x509 = r.uu, r.x509
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
        if u.ip then
          warn("uaa.%s has an IP address as host: uaa.identityzone not checked against it", field)
          return
        end
        local first = U.host_labels(u)[1]
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
  end },
  { name = "other uaa fields", uaa = true, run = function(r)
    local warn, summary, uaa = r.warn, r.summary, r.uaa
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
  end },
  { name = "binding name", run = function(r)
    local warn, k = r.warn, r.k
    if k.name and k.name:match("^%w%w%w_%d%d%d_%d%d$") then
      warn("binding name '%s' looks like <SID>_<client>_<sysno>, the pattern of credentials Cloud ALM creates itself",
        shown(k.name))
    end
  end },
}

-- key.check(k, opts) -> {ok = bool, problems = {...}, warnings = {...}, summary = {...}}
-- opts.for_landscape: apply the Landscape Management upload rules (x509 and
-- keys without uaa.credential-type fail); opts.tenant: the identity zone
-- (subaccount subdomain) the key must belong to; opts.warn_days: an x509 key
-- whose certificate ends sooner (or has ended) fails; opts.now: the clock.
function M.check(k, opts)
  opts = opts or {}
  local problems, warnings = {}, {}
  local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end
  local function warn(fmt, ...) warnings[#warnings + 1] = string.format(fmt, ...) end
  local summary = { source = k.source, envelope = U.WRAPPER_TEXT[k.wrapper] or k.wrapper }
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
      if u.scheme == "http" and u.loopback then
        warn("%s uses http (accepted for a local test server only)", label)
      else
        problem("%s must use https, not %s", label, u.scheme)
        return nil
      end
    end
    return u, v
  end
  local r = { problem = problem, warn = warn, str = str, url_field = url_field, summary = summary,
    opts = opts, k = k, data = data }
  for _, rule in ipairs(M.RULES) do
    if not rule.uaa or r.uaa then rule.run(r) end
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
  if s.expiry then line("expires", expiry.key_text(s.expiry)) end
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

-- The structural problems that stop any export (base checks, no Landscape rules).
function M.exportable(k)
  local res = M.check(k, {})
  if not res.ok then
    local more = #res.problems > 1 and string.format(" (and %d more; see calmbind check)", #res.problems - 1) or ""
    return nil, k.source .. ": " .. res.problems[1] .. more, "INPUT"
  end
  return res
end

return M
