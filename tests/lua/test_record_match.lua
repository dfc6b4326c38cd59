local t = ...
local match = require "calm.net.record_match"
local json = require "calm.lib.json"
local codec = require "calm.codec"
local record = require "calm.net.record"
local T = {}

local INSTANCE = {
  name = "calm-api-deployment",
  labels = { created_by = { "calmbind" }, calmbind_authorities = { "imp-cdm-feature" } },
  parameters = { ["xs-security"] = {
    xsappname = "calm-api-deployment",
    authorities = { "$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui" },
  } },
  service_plan_id = "plan-1",
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, e in pairs(v) do out[k] = copy(e) end
  return out
end

-- What --record writes for a request, read back as --replay reads it.
local function recorded(req)
  local x = { method = "POST", url = "https://sm/v1/service_instances", request = req,
              response = { status = 201, headers = {}, body = "{}" } }
  local doc = json.decode(record.new_redactor():document({ x }))
  return doc.exchanges[1].request
end

function T.json_bodies_match_as_data_whatever_the_key_order_and_white_space()
  local rec = recorded({ body = '{"name": "a", "labels": {"x": ["1"]}, "n": 2}' })
  t.eq(match.difference(rec, { body = '{ "n":2.0,\n  "labels" : { "x" : [ "1" ] },"name":"a" }' }), nil)
  t.eq(match.difference(rec, { json = { n = 2, labels = { x = { "1" } }, name = "a" } }), nil)
  t.eq(match.difference(rec, { body = '{"name": "a", "labels": {"x": ["1"]}, "n": 3}' }), "n")
end

function T.the_first_difference_is_the_shallowest_field()
  local rec = recorded({ json = INSTANCE })
  local live = copy(INSTANCE)
  live.name = "acme-basis-calm-deployment"
  live.parameters["xs-security"].xsappname = live.name
  live.labels.cost_center = { "CC-4711" }
  local field, was, now = match.difference(rec, { json = live })
  t.eq(field, "name")
  t.eq({ was, now }, { "calm-api-deployment", "acme-basis-calm-deployment" })
  live = copy(INSTANCE)
  live.parameters["xs-security"].authorities[3] = "$XSMASTERAPPNAME.imp-cdm-feature-admin"
  field, was, now = match.difference(rec, { json = live })
  t.eq(field, "parameters.xs-security.authorities[3]")
  t.eq({ was, now }, { nil, "$XSMASTERAPPNAME.imp-cdm-feature-admin" })
  live = copy(INSTANCE)
  live.labels.owner = { "basis-team" }
  t.eq(match.difference(rec, { json = live }), "labels.owner")
  t.eq(match.difference(rec, { json = INSTANCE }), nil)
end

function T.forms_match_by_their_decoded_fields_secrets_by_placeholder()
  local rec = recorded({ form = { grant_type = "client_credentials", client_id = "sb-1", client_secret = "real-secret-9" } })
  t.eq(rec.form.client_secret:match("^calmbind%-redacted%-"), "calmbind-redacted-")
  -- the live secret is another one (a rotated key, or the stand-in a replayed answer handed out)
  t.eq(match.difference(rec, { form = { client_secret = "calmbind-redacted-4", client_id = "sb-1",
                                        grant_type = "client_credentials" } }), nil)
  t.eq(match.difference(rec, { form = { client_secret = "other-secret", client_id = "sb-1",
                                        grant_type = "client_credentials" } }), nil)
  t.eq(match.difference(rec, { body = "grant_type=client_credentials&client_id=sb-1&client_secret=x%2By",
                               headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }), nil)
  t.eq(match.difference(rec, { form = { client_secret = "s", client_id = "sb-2", grant_type = "client_credentials" } }),
       "client_id")
  t.eq(match.difference(rec, { form = { client_id = "sb-1", grant_type = "client_credentials" } }), "client_secret")
end

function T.tokens_and_private_keys_are_secrets_wherever_they_are()
  local tok = codec.b64url_encode('{"alg":"RS256"}') .. "." .. codec.b64url_encode('{"zid":"z"}') .. ".c2ln"
  local pem = "-----BEGIN PRIVATE KEY-----\nMIIEsecretsecret\n-----END PRIVATE KEY-----\n"
  local rec = recorded({ json = { assertion = tok, material = pem, note = "plain" } })
  t.eq(match.difference(rec, { json = { assertion = tok:gsub("c2ln$", "b3RoZXI"), note = "plain",
    material = "-----BEGIN PRIVATE KEY-----\nMIIEother\n-----END PRIVATE KEY-----\n" } }), nil)
  t.eq(match.difference(rec, { json = { assertion = tok, material = pem, note = "other" } }), "note")
end

function T.a_body_against_none_or_another_kind_is_the_body()
  t.eq(match.difference(recorded({}), {}), nil)
  t.eq(match.difference(recorded({}), { json = { a = 1 } }), "body")
  t.eq(match.difference(recorded({ body = "plain text" }), { body = "other text" }), "body")
  t.eq(match.difference(recorded({ body = "plain text" }), { body = "plain text" }), nil)
  t.eq(match.difference(recorded({ json = { a = 1 } }), { body = "a=1" }), "body")
end

function T.find_picks_the_exchange_whose_body_matches_or_names_the_field()
  local ex = {
    { method = "POST", url = "u", request = { json = { n = 1 } } },
    { method = "POST", url = "u", request = { json = { n = 2 } } },
    { method = "GET", url = "v", request = {} },
  }
  t.eq(match.find(ex, {}, 1, "POST", "u", { json = { n = 2 } }), 2)
  t.eq(match.find(ex, {}, 1, "POST", "u", { json = { n = 2 } }, true), 1)   -- loose
  local i, why = match.find(ex, { [1] = true }, 2, "POST", "u", { json = { n = 1 } })
  t.eq({ i, why.index, why.field }, { nil, 2, "n" })
  i, why = match.find(ex, { true, true }, 3, "POST", "v", {})
  t.eq({ i, why.index, why.field }, { nil, 3, "method" })
  i, why = match.find(ex, { true, true }, 3, "GET", "w", {})
  t.eq({ i, why.index, why.field }, { nil, 3, "url" })
  i, why = match.find(ex, { true, true, true }, 4, "GET", "w", {})
  t.eq({ i, why.index }, { nil, nil })
end

function T.describe_shows_short_scalars_and_hides_secrets()
  t.eq(match.describe("a", "b"), 'recorded "a", requested "b"')
  t.eq(match.describe(nil, 3), "recorded nothing, requested 3")
  t.eq(match.describe(match.SECRET, "x"), 'recorded a secret, requested "x"')
  t.eq(match.describe({}, "x"), nil)
  t.eq(match.describe(string.rep("a", 61), "x"), nil)
end

return T
