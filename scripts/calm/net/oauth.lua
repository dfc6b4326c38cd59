-- calm.net.oauth: OAuth 2 token grants against XSUAA/UAA, and a token cache.
--
--   local grant = assert(oauth.grant_from_key(key, "Service Manager key (sm.json)"))
--   local s = oauth.session(grant, {name = "Service Manager key (sm.json)"})
--   local token = assert(s:token())
--
-- Every secret (client secret, password, private key, access and refresh
-- tokens) is registered with log.secret before it can reach a request, a log
-- line or an error message. Token requests are idempotent and go through
-- calm.net.rest's retry policy (429/5xx/connect failures, deadline-aware).
local codec = require "calm.codec"
local log = require "calm.log"
local task = require "calm.task"
local rest = require "calm.net.rest"
local jwt = require "calm.lib.jwt"
local url = require "calm.url"

local M = {}

-- Renew a cached token when fewer than max(min_margin, fraction * lifetime)
-- seconds remain, but never more than half its lifetime early (so a
-- 2-minute token is still reused for a minute). Tests shrink these.
M.policy = { min_margin = 60, fraction = 0.1, default_lifetime = 600 }
local MAX_LIFETIME = 366 * 86400

-- Seam for tests: a clock in place of task.now.
M.now = nil
local function now()
  return (M.now or task.now)()
end

local function secret(v)
  if type(v) == "string" and v ~= "" then log.secret(v) end
  return v
end

local function str(v)
  return type(v) == "string" and v ~= "" and v or nil
end

local function register(grant)
  secret(grant.client_secret)
  secret(grant.password)
  secret(grant.key)
end

-- grant.token_url from the key's field holding the token host: base's
-- /oauth/token (base itself when it names the token endpoint already).
local function set_token_url(grant, what, field, base)
  local u = url.parse(base)
  if not u or (u.scheme ~= "https" and u.scheme ~= "http") then
    return nil, what .. ": " .. field .. " is not an http(s) URL"
  end
  if u.query or u.fragment then return nil, what .. ": " .. field .. " must not have a query or fragment" end
  local segs = {}
  for seg in u.path:gmatch("[^/]+") do segs[#segs + 1] = seg end
  local named = #segs >= 2 and segs[#segs - 1] == "oauth" and segs[#segs] == "token"
  grant.token_url = url.join(base, named and "" or "oauth/token")
  return true
end

-- url with XSUAA's mTLS host (<zone>.authentication.cert.<region>...), or nil
-- when its host has no "authentication" label to put "cert" after.
local function cert_host_url(s)
  local u = url.parse(s)
  if not u or u.query or u.fragment then return nil end
  local labels = {}
  for l in u.host:gmatch("[^.]+") do labels[#labels + 1] = l end
  for i = 2, #labels - 1 do
    if labels[i] == "authentication" then
      if labels[i + 1] ~= "cert" then table.insert(labels, i + 1, "cert") end
      return url.build { scheme = u.scheme, host = table.concat(labels, "."), port = u.port, path = u.path }
    end
  end
  return nil
end

-- An x509 key (mutual TLS): certificate, key, certurl (or url with ".cert.").
local function x509_grant(grant, s, what, ctype)
  local cert, key = str(s.certificate), str(s.key)
  if not cert or not key then
    local found = {}
    for _, f in ipairs { "clientsecret", "certificate", "key" } do
      if str(s[f]) then found[#found + 1] = f end
    end
    return nil, string.format("%s: credential-type %s requires certificate and key; found %s",
      what, ctype or "x509", #found > 0 and table.concat(found, ", ") or "neither")
  end
  grant.key, grant.cert, grant.kind = key, cert, "x509"
  local base = str(s.certurl)
  if not base and str(s.url) then
    -- XSUAA's mTLS host is the secret host with "cert" after its
    -- "authentication" label (B.1)
    base = cert_host_url(s.url)
  end
  if not base then return nil, what .. ": an x509 key needs certurl (the mTLS token host)" end
  return set_token_url(grant, what, "certurl", base)
end

-- A key with a client secret and url.
local function secret_grant(grant, s, what)
  local sec = str(s.clientsecret)
  if not sec then return nil, what .. " has no clientsecret (and no certificate and key)" end
  grant.client_secret, grant.kind = sec, "secret"
  local base = str(s.url)
  if not base then return nil, what .. " has no url (the token host)" end
  return set_token_url(grant, what, "url", base)
end

-- oauth.grant_from_key(t [, what]) -> grant | nil, message, "INPUT"
-- t is a whole service key ({uaa = {...}, ...}) or a flat credentials
-- block (Service Manager binding, cis key's uaa section): clientid,
-- clientsecret, url, certurl, certificate, key, credential-type.
function M.grant_from_key(t, what)
  local named = what ~= nil
  what = what or "the key"
  if type(t) ~= "table" then
    return nil, what .. " is not a JSON object", "INPUT"
  end
  local s = type(t.uaa) == "table" and t.uaa or t
  local ctype = str(s["credential-type"])
  local is_x509 = (ctype and ctype:lower():find("^x509") ~= nil)
    or (ctype == nil and str(s.certificate) ~= nil and str(s.key) ~= nil and str(s.clientsecret) == nil)
  local client_id = str(s.clientid)
  if not client_id then
    return nil, what .. " has no clientid", "INPUT"
  end
  -- named: the caller said which key this is (e.g. "the Service Manager key
  -- (sm.json)"); refusals then name the key rather than the session's service
  local grant = { client_id = client_id, name = what, named = named, key_grant_type = str(t.grant_type) }
  local ok, msg = (is_x509 and x509_grant or secret_grant)(grant, s, what, ctype)
  if not ok then return nil, msg, "INPUT" end
  -- registered once the key is known to be well-formed (a malformed key
  -- must not register stray short strings that would then be redacted)
  register(grant)
  return grant
end

-- The form and headers of a token request: client id and secret in the
-- form, or by HTTP Basic (the password grant's default).
local function token_request(grant)
  local form = { grant_type = grant.grant_type or (grant.username and "password" or "client_credentials") }
  if grant.username then
    form.username = grant.username
    form.password = grant.password or ""
  end
  local headers = { Accept = "application/json" }
  local basic = grant.basic
  if basic == nil then basic = grant.username ~= nil end
  if basic then
    -- RFC 6749 2.3.1: form-encode id and secret before base64 (ids hold ! and |);
    -- XSUAA decodes them only when told so by X-CF-ENCODED-CREDENTIALS
    local id = codec.url_encode(grant.client_id) .. ":" .. codec.url_encode(grant.client_secret or "")
    headers.Authorization = "Basic " .. codec.b64encode(id)
    headers["X-CF-ENCODED-CREDENTIALS"] = "true"
  else
    form.client_id = grant.client_id
    form.client_secret = grant.client_secret -- nil for x509
  end
  for k, v in pairs(grant.params or {}) do form[k] = v end
  return form, headers
end

-- The token of a token endpoint's answer | nil, msg, code.
local function token_from(resp, grant, name, started)
  local st = resp.status
  if st == 400 or st == 401 or st == 403 then
    return nil, string.format("%s was refused by %s (HTTP %d): %s", name, grant.token_url, st,
      rest.error_text(resp)), "AUTH"
  end
  if st < 200 or st > 299 then
    return nil, string.format("%s: token endpoint %s answered HTTP %d: %s", name, grant.token_url, st,
      rest.error_text(resp)), "API"
  end
  local j = resp.json
  if type(j) ~= "table" or type(j.access_token) ~= "string" or j.access_token == "" then
    return nil, string.format("%s: token endpoint %s answered HTTP %d without an access_token",
      name, grant.token_url, st), "BAD_RESPONSE"
  end
  secret(j.access_token)
  secret(j.refresh_token)
  secret(j.id_token)
  -- calm.lib.json refuses 1e400, but "1e400" as a string reads as inf and "nan"
  -- as nil: only a finite lifetime of up to a year counts, so the renewal
  -- margin is always a number
  local lifetime = tonumber(j.expires_in)
  if not lifetime or lifetime ~= lifetime or lifetime <= 0 or lifetime > MAX_LIFETIME then
    lifetime = M.policy.default_lifetime
  end
  return {
    access_token = j.access_token,
    token_type = j.token_type or "bearer",
    expires_in = lifetime,
    expires_at = started + lifetime,
    scope = j.scope,
    refresh_token = j.refresh_token,
  }
end

-- oauth.fetch(grant [, name]) -> token | nil, message, code
-- grant = {token_url, client_id, client_secret | cert + key, username,
--          password, basic, cacert, params, timeout}
-- token = {access_token, token_type, expires_in, expires_at, scope,
--          refresh_token}
-- codes: AUTH (400/401/403 from the endpoint), BAD_RESPONSE (no
-- access_token), API (other statuses), plus calm.net.rest's.
function M.fetch(grant, name)
  if type(grant) ~= "table" then error("oauth.fetch: grant must be a table", 2) end
  if type(grant.token_url) ~= "string" then error("oauth.fetch: grant.token_url must be a string", 2) end
  if type(grant.client_id) ~= "string" then error("oauth.fetch: grant.client_id must be a string", 2) end
  register(grant)
  name = name or grant.name or "the OAuth client"
  local form, headers = token_request(grant)
  local started = now()
  -- reuse: a grant sent twice only makes two tokens, so it may go on the
  -- connection of an earlier grant to the same host (get's token with the
  -- key found goes to the XSUAA its Service Manager token came from)
  local resp, msg, code = rest.send({
    method = "POST", url = grant.token_url, form = form, headers = headers,
    cacert = grant.cacert, cert = grant.cert, key = grant.key, timeout = grant.timeout, reuse = true,
  }, { idempotent = true, what = "token request to " .. grant.token_url })
  if not resp then return nil, name .. ": " .. msg, code end
  return token_from(resp, grant, name, started)
end

-- ------------------------------------------------------------- sessions --

local Session = {}
Session.__index = Session
Session.__tostring = function(s) return "oauth session (" .. tostring(s.name) .. ")" end

local function margin(tok)
  local p = M.policy
  local m = math.max(p.min_margin, p.fraction * tok.expires_in)
  return math.min(m, tok.expires_in / 2)
end

-- oauth.session(grant, {name = "..."}) -> session
function M.session(grant, o)
  if type(grant) ~= "table" then error("oauth.session: grant must be a table", 2) end
  register(grant)
  o = o or {}
  -- key_name: what a refusal names (the key that was refused, when the grant
  -- knows which file it came from; else the session's name)
  local name = o.name or grant.name or "the OAuth client"
  return setmetatable({ grant = grant, name = name,
                        key_name = (grant.named and grant.name) or name }, Session)
end

-- session:token() -> access_token | nil, message, code. Cached; renewed
-- ahead of expiry. Flows that ask while another flow is fetching wait for
-- that fetch instead of starting their own.
function Session:token()
  while self.fetching do
    local ok, msg, code = task.sleep(0.05)
    if not ok then return nil, msg or "deadline passed", code or "DEADLINE" end
  end
  local tok = self.cached
  if tok and now() < tok.expires_at - margin(tok) then
    return tok.access_token
  end
  self.fetching = true
  local ok, res, msg, code = pcall(M.fetch, self.grant, self.key_name or self.name)
  self.fetching = false
  if not ok then error(res, 0) end
  if not res then return nil, msg, code end
  self.cached = res
  return res.access_token
end

-- The whole token table (scope, expiry) of the current token.
function Session:token_info()
  local t, msg, code = self:token()
  if not t then return nil, msg, code end
  return self.cached
end

-- The claims of the current token (calm.lib.jwt.decode) | nil, msg, code.
function Session:claims()
  local t, msg, code = self:token()
  if not t then return nil, msg, code end
  return jwt.decode(t)
end

function Session:invalidate()
  self.cached = nil
end

return M
