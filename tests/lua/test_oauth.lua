local t = ...
local oauth = require "calm.net.oauth"
local rest = require "calm.net.rest"
local log = require "calm.log"
local codec = require "calm.codec"
local T = {}

local SM_KEY = { clientid = "sb-x!b1|service-manager!b5", clientsecret = "canary-sm-secret-91d2",
                 url = "https://acme.authentication.eu10.example.test/", sm_url = "https://sm.example.test",
                 xsappname = "x!b1|service-manager!b5" }
local X509_KEY = { clientid = "sb-y!b2", ["credential-type"] = "x509",
                   certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                   key = "-----BEGIN PRIVATE KEY-----\ncanary-private-key-5e1b\n-----END PRIVATE KEY-----\n",
                   url = "https://acme.authentication.eu10.example.test",
                   certurl = "https://acme.authentication.cert.eu10.example.test" }

local function form_of(req)
  return req.form or codec.form_decode(req.body or "")
end

function T.grant_from_flat_secret_key()
  local g = assert(oauth.grant_from_key(SM_KEY, "Service Manager key (sm.json)"))
  t.eq(g.kind, "secret")
  t.eq(g.token_url, "https://acme.authentication.eu10.example.test/oauth/token")
  t.eq(g.client_id, SM_KEY.clientid)
  t.eq(g.client_secret, SM_KEY.clientsecret)
  t.eq(log.redact("x " .. SM_KEY.clientsecret), "x ***", "secret registered on read")
end

function T.grant_from_nested_uaa_section()
  local g = assert(oauth.grant_from_key({ uaa = { clientid = "c", clientsecret = "canary-uaa-secret-33", url = "https://u.example.test" },
                                          endpoints = { Api = "https://api.example.test" } }))
  t.eq(g.token_url, "https://u.example.test/oauth/token")
  t.eq(g.client_secret, "canary-uaa-secret-33")
end

function T.grant_from_x509_key()
  local g = assert(oauth.grant_from_key(X509_KEY))
  t.eq(g.kind, "x509")
  t.eq(g.token_url, "https://acme.authentication.cert.eu10.example.test/oauth/token")
  t.eq(g.client_secret, nil)
  t.eq(g.key, X509_KEY.key)
  t.eq(g.cert, X509_KEY.certificate)
  t.nofind(log.redact(X509_KEY.key), "canary-private-key-5e1b", "private key registered")
end

function T.grant_errors_name_fields_not_values()
  local msg = t.fails("INPUT", oauth.grant_from_key, { clientid = "c", ["credential-type"] = "x509", clientsecret = "canary-zz-1" }, "k.json")
  t.eq(msg, "k.json: credential-type x509 requires certificate and key; found clientsecret")
  t.find(t.fails("INPUT", oauth.grant_from_key, { clientid = "c", url = "https://u" }, "k.json"), "no clientsecret")
  t.find(t.fails("INPUT", oauth.grant_from_key, { clientsecret = "canary-s-1", url = "https://u" }, "k.json"), "no clientid")
  t.find(t.fails("INPUT", oauth.grant_from_key, { clientid = "c", clientsecret = "canary-s-2", url = "ftp://u" }, "k.json"), "not an http(s) URL")
  t.fails("INPUT", oauth.grant_from_key, "nope", "k.json")
end

function T.fetch_client_credentials_form()
  local fake = t.use_fake_http { { status = 200, json = { access_token = "canary-access-token-aa1", token_type = "bearer",
                                                          expires_in = 43199, scope = "a.read b.write" } } }
  oauth.now = function() return 1000 end
  local g = assert(oauth.grant_from_key(SM_KEY))
  local tok = assert(oauth.fetch(g))
  t.eq(tok.access_token, "canary-access-token-aa1")
  t.eq(tok.expires_in, 43199)
  t.eq(tok.expires_at, 1000 + 43199)
  t.eq(tok.scope, "a.read b.write")
  local req = fake.requests[1]
  t.eq(req.method, "POST")
  t.eq(req.url, "https://acme.authentication.eu10.example.test/oauth/token")
  t.eq(form_of(req), { grant_type = "client_credentials", client_id = SM_KEY.clientid, client_secret = SM_KEY.clientsecret })
  t.eq(req.headers.Authorization, nil)
  t.eq(req.reuse, true, "a grant may go on a kept connection (sending it twice only makes two tokens)")
  t.eq(log.redact("Bearer canary-access-token-aa1"), "Bearer ***", "token registered")
end

function T.fetch_x509_uses_mtls_without_secret()
  local fake = t.use_fake_http { { status = 200, json = { access_token = "canary-access-token-x509", expires_in = 600 } } }
  assert(oauth.fetch(assert(oauth.grant_from_key(X509_KEY))))
  local req = fake.requests[1]
  t.eq(form_of(req), { grant_type = "client_credentials", client_id = "sb-y!b2" })
  t.eq(req.cert, X509_KEY.certificate)
  t.eq(req.key, X509_KEY.key)
  t.eq(req.url, "https://acme.authentication.cert.eu10.example.test/oauth/token")
end

function T.fetch_password_grant_basic_cf()
  local fake = t.use_fake_http { { status = 200, json = { access_token = "canary-cf-token-1", refresh_token = "canary-rt-1", expires_in = 1199 } } }
  local tok = assert(oauth.fetch { token_url = "https://uaa.cf.example.test/oauth/token", client_id = "cf", client_secret = "",
                                   username = "admin@example.com", password = "canary-password-42" })
  t.eq(tok.access_token, "canary-cf-token-1")
  local req = fake.requests[1]
  t.eq(req.headers.Authorization, "Basic Y2Y6")
  t.eq(form_of(req), { grant_type = "password", username = "admin@example.com", password = "canary-password-42" })
  t.eq(log.redact("canary-password-42 canary-rt-1"), "*** ***")
end

-- XSUAA form-decodes a Basic id and secret only with X-CF-ENCODED-CREDENTIALS: true
-- (SAP's XSUAA troubleshooting page); without it "sb-x%21b1" is not "sb-x!b1"
function T.fetch_basic_sends_x_cf_encoded_credentials()
  local fake = t.use_fake_http { { status = 200, json = { access_token = "canary-basic-token-7", expires_in = 600 } } }
  local g = assert(oauth.grant_from_key(SM_KEY))
  g.basic = true
  assert(oauth.fetch(g))
  local req = fake.requests[1]
  t.eq(req.headers["X-CF-ENCODED-CREDENTIALS"], "true")
  t.eq(req.headers.Authorization, "Basic " .. codec.b64encode(codec.url_encode(SM_KEY.clientid) .. ":"
    .. codec.url_encode(SM_KEY.clientsecret)))
  t.eq(form_of(req), { grant_type = "client_credentials" })
end

function T.fetch_401_is_auth_with_description()
  t.use_fake_http { { status = 401, json = { error = "invalid_client", error_description = "Bad credentials" },
                      headers = { ["WWW-Authenticate"] = 'Basic realm="UAA/client"' } } }
  local msg = t.fails("AUTH", oauth.fetch, assert(oauth.grant_from_key(SM_KEY)), "Service Manager key (sm.json)")
  t.eq(msg, "Service Manager key (sm.json) was refused by https://acme.authentication.eu10.example.test/oauth/token (HTTP 401): invalid_client: Bad credentials")
  t.nofind(msg, SM_KEY.clientsecret)
end

function T.fetch_400_is_auth()
  t.use_fake_http { { status = 400, json = { error = "invalid_grant", error_description = "User authentication failed." } } }
  t.fails("AUTH", oauth.fetch, { token_url = "https://u/oauth/token", client_id = "cf", username = "u", password = "canary-p-9" })
end

function T.fetch_200_without_token_is_bad_response()
  t.use_fake_http { { status = 200, json = { token_type = "bearer" } } }
  t.find(t.fails("BAD_RESPONSE", oauth.fetch, assert(oauth.grant_from_key(SM_KEY))), "without an access_token")
end

function T.fetch_retries_429_and_503()
  local fake = t.use_fake_http { { status = 429, headers = { ["Retry-After"] = "1" } }, { status = 503, body = "<html/>" },
                                 { status = 200, json = { access_token = "canary-tok-r", expires_in = 60 } } }
  assert(oauth.fetch(assert(oauth.grant_from_key(SM_KEY))))
  t.eq(#fake.requests, 3)
end

function T.session_caches_and_renews()
  local n = 0
  local function issue()
    n = n + 1
    return { status = 200, json = { access_token = "canary-session-tok-" .. n, expires_in = 1000 } }
  end
  local fake = t.use_fake_http { issue, issue, issue }
  local clock = 0
  oauth.now = function() return clock end
  local s = oauth.session(assert(oauth.grant_from_key(SM_KEY)), { name = "Service Manager key (sm.json)" })
  t.eq(s:token(), "canary-session-tok-1")
  clock = 500
  t.eq(s:token(), "canary-session-tok-1", "cached while far from expiry")
  t.eq(#fake.requests, 1)
  clock = 901 -- 99 s left; margin = max(60, 10% of 1000) = 100
  t.eq(s:token(), "canary-session-tok-2", "renewed inside the margin")
  s:invalidate()
  t.eq(s:token(), "canary-session-tok-3", "renewed after invalidate")
  t.eq(#fake.requests, 3)
end

function T.session_short_lifetime_reused_half_way()
  local n = 0
  local function issue() n = n + 1; return { status = 200, json = { access_token = "canary-short-" .. n, expires_in = 100 } } end
  t.use_fake_http { issue, issue }
  local clock = 0
  oauth.now = function() return clock end
  local s = oauth.session(assert(oauth.grant_from_key(SM_KEY)))
  t.eq(s:token(), "canary-short-1")
  clock = 40
  t.eq(s:token(), "canary-short-1")
  clock = 51
  t.eq(s:token(), "canary-short-2")
end

-- Issue 13: a lifetime that is not a finite number of seconds (a string
-- "1e400" reads as inf, "nan" as nil) must never make the margin NaN or
-- infinite: the default lifetime is used, and the token is cached as usual.
function T.session_odd_expires_in_uses_default_lifetime()
  for _, odd in ipairs { "1e400", "-1e400", "nan", "inf", 1e300, -5, "soon" } do
    local n = 0
    local function issue()
      n = n + 1
      return { status = 200, body = '{"access_token":"canary-odd-' .. n .. '","expires_in":'
        .. (type(odd) == "string" and ('"' .. odd .. '"') or string.format("%.17g", odd)) .. '}',
        headers = { ["Content-Type"] = "application/json" } }
    end
    local fake = t.use_fake_http { issue, issue }
    local clock = 0
    oauth.now = function() return clock end
    local s = oauth.session(assert(oauth.grant_from_key(SM_KEY)))
    t.eq(s:token(), "canary-odd-1", tostring(odd))
    clock = 400 -- default lifetime 600, margin 60: still cached
    t.eq(s:token(), "canary-odd-1", "cached at 400 s with expires_in " .. tostring(odd))
    clock = 541
    t.eq(s:token(), "canary-odd-2", "renewed at 541 s with expires_in " .. tostring(odd))
    t.eq(#fake.requests, 2, tostring(odd))
  end
end

function T.fetch_refuses_non_finite_expires_in_number()
  -- as a JSON number 1e400 never reaches oauth: calm.lib.json refuses it, and
  -- calm.net.rest does not retry an answer that is wrong in itself
  local fake = t.use_fake_http { { status = 200, body = '{"access_token":"canary-inf-tok","expires_in":1e400}',
                                   headers = { ["Content-Type"] = "application/json" } } }
  local s = oauth.session(assert(oauth.grant_from_key(SM_KEY)), { name = "sm key (sm.json)" })
  local msg = t.fails("BAD_RESPONSE", s.token, s)
  t.find(msg, "number out of range")
  t.nofind(msg, "canary-inf-tok")
  t.eq(#fake.requests, 1, "not retried")
end

function T.session_failure_passes_code()
  t.use_fake_http { { status = 401, json = { error = "unauthorized", error_description = "Bad credentials" } } }
  local s = oauth.session(assert(oauth.grant_from_key(SM_KEY)), { name = "cis key (cis.json)" })
  t.match(t.fails("AUTH", s.token, s), "^cis key %(cis%.json%) was refused by ")
end

function T.session_with_rest_client_end_to_end()
  local fake = t.use_fake_http {
    { status = 200, json = { access_token = "canary-e2e-1", expires_in = 3600 } },
    { status = 401, json = { error = "Unauthorized", description = "expired" } },
    { status = 200, json = { access_token = "canary-e2e-2", expires_in = 3600 } },
    { status = 200, json = { items = {} } } }
  local s = oauth.session(assert(oauth.grant_from_key(SM_KEY)), { name = "Service Manager key (sm.json)" })
  local c = rest.client { base_url = SM_KEY.sm_url, session = s }
  local resp = assert(c:request { path = "/v1/service_offerings" })
  t.eq(resp.status, 200)
  t.eq(fake.requests[2].headers.Authorization, "Bearer canary-e2e-1")
  t.eq(fake.requests[4].headers.Authorization, "Bearer canary-e2e-2")
end

return T
