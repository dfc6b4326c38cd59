-- tests/lua/test_key.lua: calm.key: parsing every envelope, the checks
-- (good keys of each kind, hostile ones), the formats and verify with a
-- scripted calm.net.oauth. Run by tests/lua/run.lua inside the host.
local t = ...
local key_check = require "calm.key.check"
local key_format = require "calm.key.format"
local key_k8s = require "calm.key.k8s"
local key_parse = require "calm.key.parse"
local key_util = require "calm.key.util"
local key_verify = require "calm.key.verify"
local json = require "calm.lib.json"
local log = require "calm.log"

local T = {}

-- ------------------------------------------------------------ fixtures --

local SECRET = "88888888-aaaa-4bbb-8ccc-000000000008$FAKE-SECRET-VALUE="
local CERT = "-----BEGIN CERTIFICATE-----\nMIIFAKECERT\n-----END CERTIFICATE-----\n"
local PKEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIFAKEKEY\n-----END RSA PRIVATE KEY-----\n"

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, e in pairs(v) do out[k] = copy(e) end
  return out
end

local function secret_key()
  return {
    endpoints = { Api = "https://example-tenant.eu10.alm.cloud.sap/api" },
    uaa = {
      clientid = "sb-calm-api-demo!b9999|calm!b111",
      clientsecret = SECRET,
      ["credential-type"] = "binding-secret",
      url = "https://example-tenant.authentication.eu10.hana.ondemand.com",
      uaadomain = "authentication.eu10.hana.ondemand.com",
      identityzone = "example-tenant",
      identityzoneid = "66666666-aaaa-4bbb-8ccc-000000000006",
      tenantid = "66666666-aaaa-4bbb-8ccc-000000000006",
      tenantmode = "dedicated",
      sburl = "https://internal-xsuaa.authentication.eu10.hana.ondemand.com",
      apiurl = "https://api.authentication.eu10.hana.ondemand.com",
      xsappname = "calm-api-demo!b9999|calm!b111",
      verificationkey = "-----BEGIN PUBLIC KEY-----\nFAKE\n-----END PUBLIC KEY-----",
      someFutureField = { nested = true },
    },
  }
end

local function instance_key()
  local k = secret_key()
  k.uaa["credential-type"] = "instance-secret"
  k.uaa.clientsecret = "FAKE-SECRET-0000"
  return k
end

local function x509_key()
  local k = secret_key()
  k.uaa.clientsecret = nil
  k.uaa["credential-type"] = "x509"
  k.uaa.certificate = CERT
  k.uaa.key = PKEY
  k.uaa.certurl = "https://example-tenant.authentication.cert.eu10.hana.ondemand.com"
  return k
end

local function parse_value(v, source)
  return key_parse.parse(json.encode(v), source or "key.json")
end

local function must_parse(v, source)
  local k, msg = parse_value(v, source)
  t.ok(k, msg)
  return k
end

local function has(list, plain)
  for _, s in ipairs(list) do
    if s:find(plain, 1, true) then return true end
  end
  return false
end

local function expect_problem(v, plain, opts)
  local k = must_parse(v)
  local res = key_check.check(k, opts or { for_landscape = true })
  t.eq(res.ok, false, "verdict for " .. plain)
  t.ok(has(res.problems, plain), "no problem containing " .. t.show(plain) .. " in " .. t.show(res.problems))
  return res, k
end

local function no_secret(text, secrets, what)
  for _, s in ipairs(secrets) do t.nofind(text, s, what) end
end

-- ------------------------------------------------------------- parsing --

function T.parse_bare_key()
  local k = must_parse(secret_key())
  t.eq(k.wrapper, "key")
  t.eq(k.api, "https://example-tenant.eu10.alm.cloud.sap/api")
  t.eq(k.uaa.clientid, "sb-calm-api-demo!b9999|calm!b111")
end

function T.parse_sm_binding_object()
  local b = { id = "88888888-aaaa-4bbb-8ccc-000000000008", name = "demo-tool-key-2025-05",
              service_instance_id = "44444444", ready = true, credentials = secret_key() }
  local k = must_parse(b)
  t.eq(k.wrapper, "binding")
  t.eq(k.name, "demo-tool-key-2025-05")
  t.eq(k.data, secret_key())
end

function T.parse_cf_credentials_envelope()
  local k = must_parse({ credentials = instance_key(), syslog_drain_url = json.null, volume_mounts = json.array({}) })
  t.eq(k.wrapper, "credentials")
  t.eq(k.uaa["credential-type"], "instance-secret")
end

function T.parse_vcap_services()
  local doc = { SAPCloudALMAPIs = { { label = "SAPCloudALMAPIs", name = "calm-key", credentials = secret_key() } },
                xsuaa = { { label = "xsuaa", name = "other", credentials = { clientid = "x" } } } }
  local k = must_parse(doc)
  t.eq(k.wrapper, "vcap")
  t.eq(k.name, "calm-key")
  t.eq(k.data, secret_key())
  -- `cf env` style wrapper
  k = must_parse({ VCAP_SERVICES = doc })
  t.eq(k.name, "calm-key")
end

function T.parse_vcap_ambiguous_names_the_entries()
  local doc = { SAPCloudALMAPIs = {
    { label = "SAPCloudALMAPIs", name = "a", credentials = secret_key() },
    { label = "SAPCloudALMAPIs", name = "b", credentials = instance_key() } } }
  local msg = t.fails("INPUT", parse_value, doc)
  t.find(msg, "'a', 'b'")
  no_secret(msg, { SECRET })
  local k = key_parse.parse(json.encode(doc), "v.json", { name = "b" })
  t.eq(k.uaa["credential-type"], "instance-secret")
end

function T.parse_vcap_entry_itself()
  local k = must_parse({ label = "SAPCloudALMAPIs", name = "e", tags = json.array({}), credentials = secret_key() })
  t.eq(k.wrapper, "vcap-entry")
  t.eq(k.name, "e")
end

function T.endpoints_api_case_insensitive()
  local v = secret_key()
  v.endpoints = { API = "https://example-tenant.eu10.alm.cloud.sap/api" }
  local k = must_parse(v)
  t.eq(k.api, "https://example-tenant.eu10.alm.cloud.sap/api")
  local res = key_check.check(k, { for_landscape = true })
  t.eq(res.ok, true, t.show(res.problems))
  t.ok(has(res.warnings, "'API'"))
end

function T.unknown_fields_are_ignored()
  local v = secret_key()
  v.extra = { 1, 2, 3 }
  v.uaa.whatever = 42
  local res = key_check.check(must_parse(v), { for_landscape = true })
  t.eq(res.ok, true, t.show(res.problems))
end

function T.byte_order_mark_is_accepted()
  local k = key_parse.parse("\239\187\191" .. json.encode(secret_key()), "bom.txt")
  t.ok(k)
end

function T.broken_files_give_one_line()
  local cases = {
    { "", "empty" },
    { "   \n", "empty" },
    { "{\"uaa\": {\"clientsecret\": \"" .. SECRET .. "\"", "truncated" },
    { "{\"uaa\": {\"clientsecret\": \"" .. SECRET .. "\",}}", "at byte" },
    { "{'uaa': 1}", "invalid" },
    { "[1, 2]", "not an object" },
    { "\"just a string\"", "not an object" },
    { "42", "not an object" },
    { "{}", "no uaa section" },
    { "{\"credentials\": 5}", "credentials must be an object" },
    { "{\"credentials\": {\"a\": 1}}", "credentials holds no uaa section" },
    { "{\"uaa\": {\"clientid\": NaN}}", "invalid" },
    { "\0\1\2", "binary data" },
    { "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM certificate" },
    { "-----BEGIN PRIVATE KEY-----\nMIIB\n", "PEM private key" },
    { "<html><body>Login</body></html>", "HTML" },
    { "export CALM_CLIENT_SECRET='x'\n", "shell variable assignments" },
    { "clientid: x\nclientsecret: y\n", "YAML" },
    { "Getting key k for service instance i as me...\n\nService key not found\n", "without the key JSON" },
    { "hello", "text that is not JSON" },
    { "{\"clientid\": \"sb-x\", \"clientsecret\": \"" .. SECRET .. "\", \"url\": \"https://x\", "
      .. "\"sm_url\": \"https://sm\"}", "Service Manager binding" },
    { "{\"credentials\": {\"clientid\": \"x\", \"sm_url\": \"https://sm\"}}", "it has sm_url" },
    { "{\"endpoints\": {\"accounts_service_url\": \"https://a\"}, \"uaa\": {\"clientid\": \"x\"}}",
      "Cloud Management Service (cis) key" },
  }
  for _, c in ipairs(cases) do
    local msg = t.fails("INPUT", key_parse.parse, c[1], "bad.json")
    t.find(msg, c[2], "message for " .. t.show(c[1]))
    t.find(msg, "bad.json", "names the file")
    t.nofind(msg, "\n", "one line")
    t.nofind(msg, "traceback", "no traceback")
    no_secret(msg, { SECRET, "FAKE-SECRET" }, "no secret")
  end
end

-- raw `cf service-key` output: the header line, a blank line, then the JSON
-- (cf v6: the bare credentials; v7 and later: {"credentials": ...})
function T.cf_service_key_output_is_a_key()
  local bare = json.encode(secret_key())
  for _, body in ipairs { bare, json.encode { credentials = secret_key() } } do
    local text = "Getting key calm-key for service instance calm as admin@example.com...\n\n" .. body .. "\n"
    local k = assert(key_parse.parse(text, "cf.txt"))
    t.eq(k.uaa.clientid, secret_key().uaa.clientid)
  end
end

function T.secrets_are_registered_on_parse()
  local v = x509_key()
  v.uaa.clientsecret = "an-extra-secret-value-1234"
  must_parse(v)
  for _, s in ipairs({ "an-extra-secret-value-1234", "MIIFAKEKEY", "MIIFAKECERT" }) do
    local red = log.redact("value " .. (s == "MIIFAKEKEY" and PKEY or s == "MIIFAKECERT" and CERT or s))
    t.nofind(red, s, "redacted " .. s)
  end
end

-- ------------------------------------------------------------ checking --

function T.check_good_binding_secret_key()
  local k = must_parse(secret_key())
  local res = key_check.check(k, { for_landscape = true })
  t.eq(res.ok, true, t.show(res.problems))
  t.eq(res.summary.type, "binding-secret")
  t.eq(res.summary.tenant, "example-tenant")
  t.eq(res.summary.client, "sb-calm-api-demo!b9999|calm!b111")
  t.eq(res.summary.token_url, "https://example-tenant.authentication.eu10.hana.ondemand.com/oauth/token")
  t.eq(res.summary.root_url, "https://example-tenant.eu10.alm.cloud.sap")
  local text = key_check.check_text(res, { for_landscape = true })
  t.find(text, "result: passes the Landscape Management upload rules")
  t.find(text, "binding secret")
  no_secret(text, { SECRET })
end

function T.check_good_instance_secret_key()
  local res = key_check.check(must_parse({ credentials = instance_key() }), { for_landscape = true })
  t.eq(res.ok, true, t.show(res.problems))
  t.eq(res.summary.type, "instance-secret")
  t.find(res.summary.secret, "shared")
end

function T.check_x509_landscape_refused_alm_setup_fine()
  local res, k = expect_problem(x509_key(), "uaa.credential-type is x509: fine for /SDF/ALM_SETUP")
  t.find(res.problems[1], "Landscape Management accepts only binding-secret or instance-secret keys")
  t.eq(#res.problems, 1, t.show(res.problems))
  no_secret(key_check.check_text(res, { for_landscape = true }), { "MIIFAKEKEY", "MIIFAKECERT" })
  local res2 = key_check.check(k, { for_landscape = false })
  t.eq(res2.ok, true, t.show(res2.problems))
  t.eq(res2.summary.token_url, "https://example-tenant.authentication.cert.eu10.hana.ondemand.com/oauth/token")
end

function T.check_x509_needs_cert_key_certurl()
  local v = x509_key()
  v.uaa.key = nil
  expect_problem(v, "uaa.key is missing", {})
  v = x509_key()
  v.uaa.certificate = "not a pem"
  expect_problem(v, "uaa.certificate is not a PEM certificate", {})
  v = x509_key()
  v.uaa.certurl = "http://example-tenant.authentication.cert.eu10.hana.ondemand.com"
  expect_problem(v, "uaa.certurl must use https", {})
  v = x509_key()
  v.uaa.certurl = "https://other.authentication.cert.eu10.hana.ondemand.com"
  expect_problem(v, "does not match uaa.certurl", {})
end

function T.check_missing_empty_wrong_type_fields()
  local cases = {
    { function(v) v.uaa.clientsecret = nil end, "uaa.clientsecret is missing" },
    { function(v) v.uaa.clientsecret = "" end, "uaa.clientsecret is empty" },
    { function(v) v.uaa.clientsecret = 12345 end, "uaa.clientsecret must be a string, not a number" },
    { function(v) v.uaa.clientsecret = json.null end, "uaa.clientsecret is missing" },
    { function(v) v.uaa.clientid = nil end, "uaa.clientid is missing" },
    { function(v) v.uaa.clientid = "  " end, "uaa.clientid is empty" },
    { function(v) v.uaa.clientid = { "a" } end, "uaa.clientid must be a string, not an array" },
    { function(v) v.uaa.identityzone = nil end, "uaa.identityzone is missing" },
    { function(v) v.uaa.identityzone = true end, "uaa.identityzone must be a string, not a boolean" },
    { function(v) v.uaa.url = nil end, "uaa.url is missing" },
    { function(v) v.uaa["credential-type"] = nil end, "uaa.credential-type is missing" },
    { function(v) v.uaa["credential-type"] = "password" end, "uaa.credential-type 'password' is unknown" },
    { function(v) v.uaa["credential-type"] = 1 end, "uaa.credential-type must be a string" },
    { function(v) v.uaa = "x" end, "uaa must be an object, not a string" },
    { function(v) v.uaa = nil end, "uaa is missing" },
    { function(v) v.endpoints = nil end, "endpoints.Api is missing" },
    { function(v) v.endpoints = { Api = 1 } end, "endpoints.Api must be a string, not a number" },
    { function(v) v.endpoints = "https://x/api" end, "endpoints must be an object, not a string" },
    { function(v) v.endpoints.Api = "" end, "endpoints.Api is empty" },
  }
  for _, c in ipairs(cases) do
    local v = secret_key()
    c[1](v)
    local res = expect_problem(v, c[2])
    no_secret(key_check.check_text(res, { for_landscape = true }), { SECRET }, c[2])
  end
end

function T.check_identity_zone_mismatch()
  local v = secret_key()
  v.uaa.identityzone = "other-tenant"
  expect_problem(v, "uaa.identityzone 'other-tenant' does not match uaa.url")
  v = secret_key()
  v.uaa.identityzone = "example tenant"
  expect_problem(v, "uaa.identityzone is not a subdomain")
  -- a zone that is right for the url but not the tenant asked for
  expect_problem(secret_key(), "is not the tenant 'acme'", { for_landscape = true, tenant = "acme" })
  local res = key_check.check(must_parse(secret_key()), { for_landscape = true, tenant = "Example-Tenant" })
  t.eq(res.ok, true, t.show(res.problems))
end

function T.check_url_shapes()
  local cases = {
    { function(v) v.uaa.url = "http://example-tenant.authentication.eu10.hana.ondemand.com" end, "uaa.url must use https, not http" },
    { function(v) v.endpoints.Api = "http://example-tenant.eu10.alm.cloud.sap/api" end, "endpoints.Api must use https, not http" },
    { function(v) v.endpoints.Api = "https://example-tenant.eu10.alm.cloud.sap/" end, "endpoints.Api must end in /api" },
    { function(v) v.endpoints.Api = "example-tenant.eu10.alm.cloud.sap/api" end, "endpoints.Api is not an absolute URL" },
    { function(v) v.endpoints.Api = "https://x/$(reboot)/api" end, "endpoints.Api has characters a URL path does not carry" },
    { function(v) v.endpoints.Api = "https://x.example/api\n" end, "endpoints.Api contains a line break" },
    { function(v) v.endpoints.Api = "https://user:pw@x.example/api" end, "must not carry a user name" },
    { function(v) v.endpoints.Api = "https://x.example/api?x=1" end, "must not have a query" },
    { function(v) v.endpoints.Api = "https://exämple.example/api" end, "non-ASCII" },
    { function(v) v.uaa.url = "https://example-tenant.authentication.eu10.hana.ondemand.com/oauth/token" end, "uaa.url must be the UAA base URL" },
    { function(v) v.uaa.url = "ftp://example-tenant.authentication.eu10.hana.ondemand.com" end, "uaa.url must use https, not ftp" },
    { function(v) v.uaa.url = "https://exa`mple-tenant.authentication/" end, "invalid host name" },
  }
  for _, c in ipairs(cases) do
    local v = secret_key()
    c[1](v)
    expect_problem(v, c[2])
  end
  -- http to a loopback test server is only a warning
  local v = secret_key()
  v.uaa.url = "http://example-tenant.localhost:8443"
  v.endpoints.Api = "http://127.0.0.1:8443/api"
  local res = key_check.check(must_parse(v), { for_landscape = true })
  t.eq(res.ok, true, t.show(res.problems))
  t.ok(has(res.warnings, "local test server"))
end

function T.check_hostile_values_verdicts_and_no_secret()
  local hostile = {
    "it's \"quoted\"",
    "line1\nline2",
    "$(touch /tmp/pwned)",
    "`id`",
    "ünïcødé-€-秘密",
    "a'\\''b;|&<>*?[]{}~#!",
  }
  for _, h in ipairs(hostile) do
    local v = secret_key()
    v.uaa.clientsecret = "S3CRET-" .. h
    local k = must_parse(v)
    local res = key_check.check(k, { for_landscape = true })
    local want = not h:find("\n", 1, true)
    t.eq(res.ok, want, "landscape verdict for " .. t.show(h) .. ": " .. t.show(res.problems))
    local text = key_check.check_text(res, { for_landscape = true })
    t.nofind(text, "S3CRET-", "secret in check output")
    for _, p in ipairs(res.problems) do t.nofind(p, "S3CRET-") end
    for _, w in ipairs(res.warnings) do t.nofind(w, "S3CRET-") end
    -- base checks (export) let it through with a warning at most
    t.eq(key_check.check(k, {}).ok, true, "base verdict for " .. t.show(h))
    -- the same values as a client id: a line break is a problem, the rest a warning
    v = secret_key()
    v.uaa.clientid = "sb-" .. h
    res = key_check.check(must_parse(v), { for_landscape = true })
    t.eq(res.ok, want, "clientid verdict for " .. t.show(h))
    local ct = key_check.check_text(res)
    t.nofind(ct:gsub("\n", "", 1):sub(1, -2), "\n\n", "one line per item")
  end
end

function T.check_text_escapes_control_characters()
  local v = secret_key()
  v.uaa.clientid = "sb-x\27[31mred"
  local res = key_check.check(must_parse(v, "evil\nname.json"), { for_landscape = true })
  local text = key_check.check_text(res, { for_landscape = true })
  t.nofind(text, "\27", "no raw escape character")
  t.find(text, "evil\\x0aname.json")
end

function T.check_binding_name_pattern_warns()
  local res = key_check.check(must_parse({ id = "1", name = "S4H_100_00", credentials = secret_key() }), { for_landscape = true })
  t.eq(res.ok, true)
  t.ok(has(res.warnings, "<SID>_<client>_<sysno>"))
end

-- endpoints.Api with one trailing slash is the same API root (review finding 3)
function T.check_api_trailing_slash_accepted()
  local v = secret_key()
  v.endpoints.Api = "https://example-tenant.eu10.alm.cloud.sap/api/"
  local k = must_parse(v)
  local res = key_check.check(k, { for_landscape = true })
  t.eq(res.ok, true, t.show(res.problems))
  t.eq(res.summary.root_url, "https://example-tenant.eu10.alm.cloud.sap")
  t.eq(key_util.root_url(k), "https://example-tenant.eu10.alm.cloud.sap")
  local text = assert(key_format.format(k, "alm-setup"))
  t.match(text, "Root URL:%s+https://example%-tenant%.eu10%.alm%.cloud%.sap\n")
  local env = assert(key_format.format(k, "env"))
  t.find(env, "export CALM_ROOT_URL='https://example-tenant.eu10.alm.cloud.sap'\n")
  -- two slashes are still not an /api path
  v.endpoints.Api = "https://example-tenant.eu10.alm.cloud.sap/api//"
  res = key_check.check(must_parse(v), {})
  t.ok(has(res.problems, "endpoints.Api must end in /api"), t.show(res.problems))
end

-- ------------------------------------------------------------- formats --

function T.format_json_is_bare_pretty_and_stable()
  local k = must_parse({ id = "1", name = "b", credentials = secret_key() })
  local text = assert(key_format.format(k, "json"))
  t.match(text, '^{\n  "endpoints": {\n    "Api": "https://example%-tenant%.eu10%.alm%.cloud%.sap/api"\n  },\n  "uaa": {\n    "clientid": ')
  t.nofind(text, "\\/", "no escaped slashes")
  t.nofind(text, '"credentials"')
  t.eq(json.decode(text), secret_key())
  t.eq(key_format.format(must_parse(json.decode(text)), "json"), text, "stable")
end

function T.format_json_round_trips_hostile_values()
  local v = secret_key()
  v.uaa.clientsecret = "q\"uo'te\\back\nnl\ttab$(x)`y`ü€\1"
  local text = assert(key_format.format(must_parse(v), "json"))
  t.eq(json.decode(text), v)
end

function T.format_vcap_parses_back()
  local k = must_parse(secret_key())
  local text = assert(key_format.format(k, "vcap", { name = "calm" }))
  local doc = json.decode(text)
  t.eq(doc.SAPCloudALMAPIs[1].label, "SAPCloudALMAPIs")
  t.eq(doc.SAPCloudALMAPIs[1].name, "calm")
  t.find(text, '"tags": []')
  t.eq(doc.SAPCloudALMAPIs[1].credentials, secret_key())
  local back = must_parse(doc)
  t.eq(back.data, k.data)
  t.eq(back.wrapper, "vcap")
end

function T.format_alm_setup_secret_key()
  local text = assert(key_format.format(must_parse(secret_key()), "alm-setup"))
  t.match(text, "OAuth token endpoint:%s+https://example%-tenant%.authentication%.eu10%.hana%.ondemand%.com/oauth/token\n")
  t.match(text, "Client ID:%s+sb%-calm%-api%-demo!b9999|calm!b111\n")
  t.find(text, "Client secret:                 " .. SECRET .. "\n")
  t.match(text, "Root URL:%s+https://example%-tenant%.eu10%.alm%.cloud%.sap\n")
end

function T.format_alm_setup_x509_key()
  local text = assert(key_format.format(must_parse(x509_key()), "alm-setup"))
  t.match(text, "OAuth token endpoint %(mTLS%):%s+https://example%-tenant%.authentication%.cert%.eu10%.hana%.ondemand%.com/oauth/token\n")
  t.nofind(text, "Client secret")
  -- no PEM pasted into fields the screen does not have: the mTLS setup is explained
  t.nofind(text, CERT)
  t.nofind(text, PKEY)
  -- the Cloud ALM setup guide: from ST-PI 7.40 SP29 /SDF/ALM_SETUP activates mTLS itself,
  -- and SAP generates and rotates the certificate; that comes first
  local activate = text:find("ST-PI 7.40 SP29", 1, true)
  t.ok(activate and activate < (text:find("Client ID", 1, true) or 0), "the SP29 Activate path comes first")
  t.find(text, "Activate")
  t.find(text, "generates and rotates")
  -- the manual fields the guide documents; no steps it does not document
  t.find(text, "token endpoint, client ID, client secret, proxy and root URL")
  t.nofind(text, "PKCS#12")
  t.nofind(text, "STRUST")
end

function T.format_alm_setup_refuses_multiline_field()
  local v = secret_key()
  v.uaa.clientsecret = "a\nb"
  local msg = t.fails("INPUT", key_format.format, must_parse(v), "alm-setup")
  t.find(msg, "uaa.clientsecret contains a line break")
  t.nofind(msg, "a\nb")
end

function T.format_env_quotes_everything()
  local v = secret_key()
  v.uaa.clientsecret = "it's $(x) `y` \"z\"\nü"
  local text = assert(key_format.format(must_parse(v), "env"))
  t.find(text, "export CALM_CLIENT_SECRET='it'\\''s $(x) `y` \"z\"\nü'\n")
  t.find(text, "export CALM_API_URL='https://example-tenant.eu10.alm.cloud.sap/api'\n")
  t.find(text, "export CALM_ROOT_URL='https://example-tenant.eu10.alm.cloud.sap'\n")
  t.find(text, "export CALM_TOKEN_URL='https://example-tenant.authentication.eu10.hana.ondemand.com/oauth/token'\n")
  t.find(text, "export CALM_CLIENT_ID='sb-calm-api-demo!b9999|calm!b111'\n")
  -- every line outside the quotes is a comment or an export
  local x = assert(key_format.format(must_parse(x509_key()), "env"))
  t.find(x, "export CALM_CLIENT_KEY='" .. PKEY .. "'\n")
  t.find(x, "export CALM_TOKEN_URL='https://example-tenant.authentication.cert.eu10.hana.ondemand.com/oauth/token'\n")
  t.nofind(x, "CALM_CLIENT_SECRET")
end

function T.format_env_refuses_nul()
  local v = secret_key()
  v.uaa.clientsecret = "a\0b"
  local msg = t.fails("INPUT", key_format.format, must_parse(v), "env")
  t.find(msg, "CALM_CLIENT_SECRET contains a NUL")
end

function T.format_refuses_broken_keys()
  local v = secret_key()
  v.uaa.clientsecret = nil
  for _, f in ipairs(key_util.FORMATS) do
    local msg = t.fails("INPUT", key_format.format, must_parse(v), f)
    t.find(msg, "uaa.clientsecret is missing")
  end
  t.fails("USAGE", key_format.format, must_parse(secret_key()), "yaml")
end

-- key.output writes through the real calm.fs (the terminal refusal is the
-- pty case of tests/integration/test_get_paths.py).
function T.output_writes_private_file_and_names_it_once()
  local dir = os.getenv("TMPDIR") or "/tmp"
  local path = dir .. "/calmbind-lua-out-" .. require("calm.codec").random_hex(6) .. ".json"
  t.ok(key_format.output("secret text", { out = path }))
  t.eq(require("calm.fs").read(path), "secret text")
  os.remove(path)
  -- calm.fs names the file; output passes that on without naming it again
  local missing = dir .. "/calmbind-lua-missing-" .. require("calm.codec").random_hex(6) .. "/key.json"
  local msg = t.fails("USAGE", key_format.output, "secret text", { out = missing })
  local _, count = msg:gsub(missing:gsub("%p", "%%%0"), "")
  t.eq(count, 1, msg)
end

-- -------------------------------------------------------------- verify --

local function b64url(s)
  local codec = require "calm.codec"
  return codec.b64url_encode(s)
end

local function make_jwt(claims)
  return b64url('{"alg":"RS256"}') .. "." .. b64url(json.encode(claims)) .. ".c2ln"
end

local FULL = { "calm!b111.imp-cdm-feature-display-ui", "calm!b111.imp-cdm-feature-manage-ui", "uaa.resource" }

local function claims(scopes, zid, zdn)
  return { scope = scopes, zid = zid or "66666666-aaaa-4bbb-8ccc-000000000006",
           ext_attr = { zdn = zdn or "example-tenant" }, cid = "sb-calm-api-demo!b9999|calm!b111" }
end

-- The token endpoint answers with a script through the fake calm.http under
-- calm.net.rest: answer(n) -> token table | nil, msg, code; "AUTH" is a 401
-- from XSUAA, any other code a transport failure of that kind.
local function with_oauth(answer, fn)
  local seen = {}
  local function step(req, n)
    seen.req = req
    local tok, msg, code = answer(n)
    if tok then return { status = 200, json = tok } end
    if code == "AUTH" then
      return { status = 401, json = { error = "invalid_client", error_description = "Bad credentials" } }
    end
    return { fail = code, msg = msg }
  end
  local fake = t.use_fake_http(setmetatable({}, { __index = function() return step end }))
  local ok, err = pcall(fn, seen, fake)
  if not ok then error(err, 0) end
end

function T.verify_deployment_key_passes()
  with_oauth(function() return { access_token = make_jwt(claims(FULL)), expires_in = 43199 } end, function(seen)
    local r = assert(key_verify.verify(must_parse(secret_key()), { scenario = "deployment", cacert = "/ca.pem" }))
    t.eq(r.ok, true, t.show(r.problems))
    t.eq(r.deployment["imp-cdm-feature-manage-ui"], true)
    t.eq(seen.req.cacert, "/ca.pem")
    local text = key_verify.verify_text(r, "key.json")
    t.find(text, "result: the key works for Deployment")
    no_secret(text, { SECRET })
  end)
end

function T.verify_monitoring_only_key_fails_deployment()
  with_oauth(function() return { access_token = make_jwt(claims({ "uaa.resource" })) } end, function()
    local k = must_parse(secret_key())
    local r = assert(key_verify.verify(k, { scenario = "deployment" }))
    t.eq(r.ok, false)
    t.ok(has(r.problems, "token scope imp-cdm-feature-display-ui missing"))
    t.ok(has(r.problems, "token scope imp-cdm-feature-manage-ui missing"))
    r = assert(key_verify.verify(k, { scenario = "monitoring" }))
    t.eq(r.ok, true, t.show(r.problems))
  end)
end

function T.verify_zone_mismatch()
  with_oauth(function() return { access_token = make_jwt(claims(FULL, "99999999-0000", "other")) } end, function()
    local r = assert(key_verify.verify(must_parse(secret_key()), {}))
    t.eq(r.ok, false)
    t.ok(has(r.problems, "the token's zone 99999999-0000 is not uaa.identityzoneid"))
    t.ok(has(r.problems, "the token's subdomain other is not uaa.identityzone example-tenant"))
  end)
end

function T.verify_refused_unreachable_deadline()
  local k = must_parse(secret_key())
  with_oauth(function() return nil, "401 invalid_client: Bad credentials", "AUTH" end, function()
    local msg = t.fails("AUTH", key_verify.verify, k, {})
    t.find(msg, "credentials refused: "); t.find(msg, "(HTTP 401): invalid_client")
    no_secret(msg, { SECRET })
  end)
  with_oauth(function() return nil, "Could not connect", "COULDNT_CONNECT" end, function()
    local msg = t.fails("COULDNT_CONNECT", key_verify.verify, k, {})
    t.find(msg, "cannot get a token")
  end)
  with_oauth(function() return nil, "gave up after 6 attempts", "RETRY_EXHAUSTED" end, function()
    local _, msg, code = key_verify.verify(k, {})
    t.eq(code, "UNREACHABLE", msg)
    t.eq(require("calm.lib.exit").status_for(code), 1)
  end)
  with_oauth(function() return nil, "deadline", "DEADLINE" end, function()
    t.fails("DEADLINE", key_verify.verify, k, {})
  end)
end

function T.verify_opaque_token_fails_verification()
  with_oauth(function() return { access_token = "opaque", scope = FULL[1] .. " " .. FULL[2] } end, function()
    local r = assert(key_verify.verify(must_parse(secret_key()), {}))
    t.eq(r.ok, false)
    t.ok(has(r.problems, "not a readable JWT"))
    t.eq(r.deployment["imp-cdm-feature-display-ui"], true, "scopes from the token response")
  end)
end

function T.verify_refuses_broken_key_without_network()
  local v = secret_key()
  v.uaa.url = nil
  with_oauth(function() error("no network expected") end, function()
    t.fails("INPUT", key_verify.verify, must_parse(v), {})
  end)
end

-- ------------------------------------------- consumers: tenant, SDK, k8s --

function T.tenant_and_region_from_the_key_urls()
  local function tr(api, url, extra)
    local v = secret_key()
    v.endpoints.Api, v.uaa.url = api, url
    for f, x in pairs(extra or {}) do v.uaa[f] = x end
    return { key_util.tenant_region(must_parse(v)) }
  end
  -- SAP's shapes: https://<tenant>.<region>.alm.cloud.sap, the fake's .alm.localhost
  t.eq(tr("https://acme-prod.us10.alm.cloud.sap/api", "https://example-tenant.authentication.us10.hana.ondemand.com"),
    { "acme-prod", "us10" })
  t.eq(tr("http://calm-demo.eu10.alm.localhost:8080/api", "http://example-tenant.authentication.localhost:8080"),
    { "calm-demo", "eu10" })
  -- an API URL of another shape: no tenant; the region from uaa.url, its cert host, or uaadomain
  t.eq(tr("https://calm.example.com/api", "https://example-tenant.authentication.jp10.hana.ondemand.com"), { nil, "jp10" })
  t.eq(tr("https://calm.example.com/api", "https://example-tenant.example.com",
    { uaadomain = "authentication.cn40.platform.sapcloud.cn" }), { nil, "cn40" })
  t.eq(tr("https://calm.example.com/api", "https://example-tenant.example.com",
    { certurl = "https://example-tenant.authentication.cert.ap21.hana.ondemand.com", uaadomain = "example.com" }),
    { nil, "ap21" })
  -- nothing to say: an IP address, a host without a region
  t.eq(tr("https://127.0.0.1:8443/api", "http://example-tenant.authentication.localhost:1",
    { uaadomain = "authentication.localhost" }),
    { nil, nil })
  local env = assert(key_format.format(must_parse(secret_key()), "env"))
  t.find(env, "export CALM_ROOT_URL='https://example-tenant.eu10.alm.cloud.sap'\n"
    .. "export CALM_TENANT='example-tenant'\nexport CALM_REGION='eu10'\n")
  local dot = assert(key_format.format(must_parse(secret_key()), "dotenv"))
  t.find(dot, "\nCALM_TENANT=example-tenant\nCALM_REGION=eu10\n")
  local v = secret_key()
  v.endpoints.Api, v.uaa.url, v.uaa.uaadomain = "https://calm.example.com/api", "https://example-tenant.example.com", nil
  t.nofind(assert(key_format.format(must_parse(v), "env")), "CALM_REGION", "no region: no variable")
end

function T.format_vcap_has_the_cloud_sdk_entry()
  local k = must_parse(secret_key())
  local doc = json.decode(assert(key_format.format(k, "vcap", { name = "calm" })))
  local e = doc.xsuaa[1]
  t.eq({ e.label, e.name, e.plan, e.tags }, { "xsuaa", "calm-xsuaa", "standard", { "xsuaa", "SAPCloudALMAPIs" } })
  -- XSUAA's fields on top, apiurl the Cloud ALM API (the SDK's destination URL)
  t.eq(e.credentials.clientid, secret_key().uaa.clientid)
  t.eq(e.credentials.clientsecret, SECRET)
  t.eq(e.credentials.url, secret_key().uaa.url)
  t.eq(e.credentials.apiurl, "https://example-tenant.eu10.alm.cloud.sap/api")
  t.eq(e.credentials.endpoints, secret_key().endpoints)
  t.eq(e.credentials.uaa, nil)
  -- the key read back is the SAPCloudALMAPIs entry's; the SDK's copy is refused by name
  t.eq(must_parse(doc).data, secret_key())
  local msg = t.fails("INPUT", key_parse.parse, json.encode(doc), "v.json", { name = "calm-xsuaa" })
  t.find(msg, "'calm-xsuaa' (label xsuaa) holds XSUAA's fields, not the key; read the SAPCloudALMAPIs entry")
  local x = json.decode(assert(key_format.format(must_parse(x509_key()), "vcap")))
  t.eq({ x.xsuaa[1].credentials.certificate, x.xsuaa[1].credentials.key, x.xsuaa[1].credentials.certurl },
    { CERT, PKEY, x509_key().uaa.certurl })
end

function T.k8s_names()
  for _, ok in ipairs { "a", "calm-api-key", "calm.api-key.2", ("a"):rep(63) .. "." .. ("b"):rep(63) } do
    t.ok(key_k8s.check_name(ok, "--secret-name"), ok)
  end
  for _, bad in ipairs { "", "-a", "a-", "A", "a_b", "a..b", ".a", "a b", ("a"):rep(64), ("a."):rep(127) .. "a" } do
    local msg = t.fails("USAGE", key_k8s.check_name, bad, "--secret-name")
    t.find(msg, "--secret-name '")
  end
  t.ok(key_k8s.check_namespace("calm-ops", "--namespace"))
  for _, bad in ipairs { "a.b", "Calm", ("n"):rep(64), "-x" } do
    t.find(t.fails("USAGE", key_k8s.check_namespace, bad, "--namespace"), "a namespace must be a DNS-1123 label")
  end
  t.eq(key_k8s.default_name("S4H_Calm Key.2025"), "s4h-calm-key.2025")
  t.eq(key_k8s.default_name("__x__"), "x")
  t.eq(key_k8s.default_name("a.-.b"), "a.b")
  t.eq(key_k8s.default_name("ü"), "calm-api-key")
  t.eq(key_k8s.default_name(nil), "calm-api-key")
  t.eq(key_k8s.default_name(("x"):rep(300)), ("x"):rep(63), "a label stays within 63")
  t.ok(key_k8s.check_options({ format = "k8s-secret", ["secret-name"] = "s", namespace = "n" }))
  t.find(t.fails("USAGE", key_k8s.check_options, { format = "json", namespace = "n" }),
    "--namespace needs --format k8s-secret")
end

function T.format_k8s_secret_manifest()
  local k = must_parse({ id = "1", name = "S4H Key", credentials = secret_key() })
  local text = assert(key_format.format(k, "k8s-secret", { namespace = "calm", instance_name = "calm-inst" }))
  local doc = json.decode(text)
  t.eq({ doc.apiVersion, doc.kind, doc.type, doc.metadata.name, doc.metadata.namespace },
    { "v1", "Secret", "Opaque", "s4h-key", "calm" })
  t.eq(doc.data, nil, "stringData only")
  local sd = doc.stringData
  t.eq({ sd.label, sd.type, sd.plan, sd.instance_name }, { "SAPCloudALMAPIs", "SAPCloudALMAPIs", "standard", "calm-inst" })
  t.eq(json.decode(sd.uaa), secret_key().uaa)
  t.eq(json.decode(sd.endpoints), secret_key().endpoints)
  -- the SAP BTP service operator's .metadata: which entries are credentials, in which format
  t.eq(sd[".metadata"], '{"metaDataProperties":[{"name":"label","format":"text"},{"name":"plan","format":"text"},'
    .. '{"name":"type","format":"text"},{"name":"instance_name","format":"text"}],"credentialProperties":'
    .. '[{"name":"endpoints","format":"json"},{"name":"uaa","format":"json"}]}')
  t.eq(key_format.format(must_parse(json.decode(text)), "k8s-secret", { namespace = "calm", instance_name = "calm-inst",
    secret_name = "s4h-key" }), text, "reads back and writes the same")
  local back = must_parse(doc, "secret.json")
  t.eq({ back.data, back.wrapper, back.name }, { secret_key(), "k8s-secret", "s4h-key" })
  -- a key whose field the format reserves is refused, naming it
  local v = secret_key()
  v.plan = "x"
  t.find(t.fails("INPUT", key_format.format, must_parse(v), "k8s-secret"), "the key's field 'plan' cannot be an entry")
  -- a Secret that is not the key's
  t.find(t.fails("INPUT", key_parse.parse, json.encode({ kind = "Secret", stringData = { a = "b" } }), "s.json"),
    "s.json: Kubernetes Secret: the Secret holds no uaa entry")
  t.find(t.fails("INPUT", key_parse.parse, json.encode({ kind = "Secret", data = { uaa = "%%%" } }), "s.json"),
    "data.uaa is not base64")
end

return T
