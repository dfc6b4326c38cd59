local t = ...
local record = require "calm.net.record"
local jwt = require "calm.lib.jwt"
local json = require "calm.lib.json"
local codec = require "calm.codec"
local log = require "calm.log"
local T = {}

local function token(claims)
  return codec.b64url_encode('{"alg":"RS256","typ":"JWT"}') .. "." ..
         codec.b64url_encode(json.encode(claims)) .. ".c2lnbmF0dXJlLXRoYXQtbWF0dGVycw"
end

local PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretsecretsecret\n-----END RSA PRIVATE KEY-----\n"
local CERT = "-----BEGIN CERTIFICATE-----\nMIIDpublicpublic\n-----END CERTIFICATE-----\n"

function T.secret_fields_become_stable_standins()
  local r = record.new_redactor()
  local out = r:walk({ clientsecret = "s3cr3t-value", nested = { password = "s3cr3t-value", url = "https://x" },
                       list = { "plain" } }, false, nil, 0)
  t.eq(out.clientsecret, "calmbind-redacted-1")
  t.eq(out.nested.password, "calmbind-redacted-1")   -- the same secret, the same stand-in
  t.eq(out.nested.url, "https://x")
  t.eq(out.list, { "plain" })
end

function T.tokens_keep_their_claims_not_their_signature()
  local r = record.new_redactor()
  local tok = token({ zid = "zone-1", scope = { "a.imp-cdm-feature-manage-ui" } })
  local out = r:walk({ access_token = tok, note = "Bearer " .. tok }, false, nil, 0)
  local claims = assert(jwt.decode(out.access_token))
  t.eq(claims.zid, "zone-1")
  t.eq(jwt.scopes(claims), { "a.imp-cdm-feature-manage-ui" })
  t.nofind(out.access_token, "c2lnbmF0dXJl")
  t.nofind(out.access_token, tok:match("^[^.]+%.([^.]+)"))
  t.nofind(out.note, "c2lnbmF0dXJl")
end

function T.private_keys_keep_their_armour_certificates_stay()
  local r = record.new_redactor()
  local out = r:walk({ key = PEM, certificate = CERT, text = "see " .. PEM }, false, nil, 0)
  t.match(out.key, "^%-%-%-%-%-BEGIN RSA PRIVATE KEY%-%-%-%-%-\n")
  t.nofind(out.key, "secretsecret")
  t.eq(out.certificate, CERT)
  t.nofind(out.text, "secretsecret")
end

function T.registered_secrets_anywhere_are_hidden()
  log.secret("registered-canary-42")
  local r = record.new_redactor()
  local out = r:walk({ message = "echo of registered-canary-42 here" }, false, nil, 0)
  t.eq(out.message, "echo of *** here")
end

function T.json_bodies_keep_their_bytes_but_the_secrets()
  local r = record.new_redactor()
  local body = '{"b": 1,  "clientsecret": "abc$def-ghi", "url": "https://h/p"}'
  t.eq(r:body(body), '{"b": 1,  "clientsecret": "calmbind-redacted-1", "url": "https://h/p"}')
  t.eq(r:body("not json client_secret=abcdefgh"), "not json client_secret=***")
  t.eq(r:body(""), "")
end

function T.document_refuses_a_surviving_secret()
  local r = record.new_redactor()
  local text = r:document({ { method = "POST", url = "https://h/oauth/token",
    request = { form = { client_secret = "form-secret-1", grant_type = "client_credentials" },
                headers = { Authorization = "Basic dXNlcjpwYXNzd29yZA==" } },
    response = { status = 200, headers = {}, body = '{"access_token":"opaque-token-123456"}' } } })
  t.nofind(text, "form-secret-1")
  t.nofind(text, "dXNlcjpwYXNzd29yZA")
  t.nofind(text, "opaque-token-123456")
  local doc = json.decode(text)
  t.eq(doc.calmbind_recording, 1)
  t.eq(doc.exchanges[1].request.form.grant_type, "client_credentials")
end

return T
