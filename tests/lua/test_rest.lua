local t = ...
local rest = require "calm.net.rest"
local retry = require "calm.net.retry"
local log = require "calm.log"
local task = require "calm.task"
local T = {}

local BASE = "https://sm.example.test"

local function client(session)
  return rest.client { base_url = BASE .. "/", session = session, name = "Service Manager" }
end

-- a session stand-in that hands out tok1, tok2, ...
local function fake_session()
  local s = { n = 0, name = "Service Manager key (sm.json)", invalidated = 0 }
  function s:token()
    if not self.tok then self.n = self.n + 1; self.tok = "tok" .. self.n end
    return self.tok
  end
  function s:invalidate() self.invalidated = self.invalidated + 1; self.tok = nil end
  return s
end

function T.get_parses_json_and_encodes_query()
  local fake = t.use_fake_http { { status = 200, json = { items = { { name = "a" } }, num_items = 1 } } }
  local resp = assert(client(fake_session()):request {
    path = "/v1/service_instances", query = { fieldQuery = "name eq 'x y'", max_items = 10 } })
  t.eq(resp.status, 200)
  t.eq(resp.json.items[1].name, "a")
  t.eq(resp.json.num_items, 1)
  local req = fake.requests[1]
  t.eq(req.url, BASE .. "/v1/service_instances?fieldQuery=name%20eq%20%27x%20y%27&max_items=10")
  t.eq(req.method, "GET")
  t.eq(req.headers.Authorization, "Bearer tok1")
  t.eq(req.headers.Accept, "application/json")
end

function T.empty_body_has_no_json()
  t.use_fake_http { { status = 204, body = "" } }
  local resp = assert(client():request { method = "DELETE", path = "/v1/x" })
  t.eq(resp.status, 204)
  t.eq(resp.json, nil)
end

function T.retry_429_retry_after_seconds()
  local fake = t.use_fake_http {
    { status = 429, headers = { ["Retry-After"] = "2" }, json = { description = "limit" } },
    { status = 200, json = { ok = true } } }
  local resp = assert(client():request { path = "/v1/service_plans" })
  t.eq(resp.json.ok, true)
  t.eq(#fake.requests, 2)
  t.eq(fake.sleeps, { 2 })
  t.eq(fake.logs, { "rate limited by sm.example.test; retrying in 2s (attempt 2/6)" })
end

function T.retry_429_http_date_and_sm_form_in_the_past()
  for _, ra in ipairs { "Wed, 21 Oct 2015 07:28:00 GMT", "2024-11-11 14:59:33 +0000 UTC" } do
    t.reset()
    local fake = t.use_fake_http {
      { status = 429, headers = { ["Retry-After"] = ra } }, { status = 200, json = {} } }
    assert(client():request { path = "/v1/x" })
    t.eq(#fake.requests, 2, ra)
    -- a date in the past: minimum backoff, never a zero-time spin
    t.ok(fake.sleeps[1] > 0 and fake.sleeps[1] <= rest.policy.base, ra .. ": waited " .. tostring(fake.sleeps[1]))
  end
end

function T.retry_429_http_date_in_the_future()
  local okd, date = pcall(function() return os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 20) end)
  if not okd or not date then return end -- no os.date in this host
  local real_ok, http = pcall(require, "calm.http")
  if not real_ok or not http.parse_retry_after or not http.parse_retry_after(date) then return end
  local fake = t.use_fake_http { { status = 429, headers = { ["Retry-After"] = date } }, { status = 200, json = {} } }
  assert(client():request { path = "/v1/x" })
  t.ok(fake.sleeps[1] >= 18 and fake.sleeps[1] <= 21, "waited " .. tostring(fake.sleeps[1]))
end

function T.retry_429_without_or_with_garbage_hint_backs_off()
  for _, h in ipairs { {}, { ["Retry-After"] = "abc" }, { ["Retry-After"] = "" }, { ["Retry-After"] = "-5" } } do
    t.reset()
    local fake = t.use_fake_http { { status = 429, headers = h }, { status = 200, json = {} } }
    assert(client():request { path = "/v1/x" })
    t.ok(fake.sleeps[1] >= rest.policy.rate_min, "429 backoff at least rate_min, got " .. tostring(fake.sleeps[1]))
  end
end

function T.retry_429_x_ratelimit_reset_epoch_ms()
  local fake = t.use_fake_http {
    { status = 429, headers = { ["X-Ratelimit-Reset"] = "1700000003000" } }, { status = 200, json = {} } }
  rest.wallclock = function() return 1700000000 end
  assert(client():request { path = "/accounts/v1/x" })
  t.eq(fake.sleeps, { 3 })
end

function T.retry_503_then_200()
  local fake = t.use_fake_http { { status = 503, body = "<html>busy</html>", headers = { ["content-type"] = "text/html" } },
                                 { status = 200, json = { a = 1 } } }
  local resp = assert(client():request { path = "/v1/x" })
  t.eq(resp.json.a, 1)
  t.eq(#fake.requests, 2)
  t.eq(#fake.sleeps, 1)
  t.match(fake.logs[1], "^sm%.example%.test answered 503; retrying in .* %(attempt 2/6%)$")
end

function T.gives_up_after_the_budget()
  local steps = {}
  for i = 1, 6 do steps[i] = { status = 503, json = { error = "Unavailable", description = "try later" } } end
  local fake = t.use_fake_http(steps)
  local msg = t.fails("RETRY_EXHAUSTED", client().request, client(), { path = "/v1/x" })
  t.eq(#fake.requests, 6)
  t.find(msg, "HTTP 503: Unavailable: try later")
  t.find(msg, "gave up after 6 attempts")
end

function T.post_not_resent_after_timeout()
  local fake = t.use_fake_http { { fail = "OPERATION_TIMEDOUT", msg = "Operation timed out after 30000 ms" } }
  local msg = t.fails("OPERATION_TIMEDOUT", client().request, client(),
    { method = "POST", path = "/v1/service_instances", json = { name = "x" } })
  t.eq(#fake.requests, 1)
  t.find(msg, "outcome is unknown")
  t.find(msg, "look the resource up by name")
end

function T.post_resent_when_nothing_was_sent()
  local fake = t.use_fake_http { { fail = "COULDNT_CONNECT" }, { status = 201, json = { id = "i1" } } }
  local resp = assert(client():request { method = "POST", path = "/v1/service_instances", json = {} })
  t.eq(resp.json.id, "i1")
  t.eq(#fake.requests, 2)
end

function T.post_5xx_is_data_marked_unknown()
  local fake = t.use_fake_http { { status = 502, body = "<html>bad gateway</html>" } }
  local resp = assert(client():request { method = "POST", path = "/v1/service_instances", json = {} })
  t.eq(resp.status, 502)
  t.eq(resp.outcome_unknown, true)
  t.eq(#fake.requests, 1)
end

function T.post_429_is_retried()
  local fake = t.use_fake_http { { status = 429, headers = { ["Retry-After"] = "1" } }, { status = 202, body = "{}" } }
  local resp = assert(client():request { method = "POST", path = "/v1/service_instances", json = {} })
  t.eq(resp.status, 202)
  t.eq(#fake.requests, 2)
end

function T.put_idempotent_by_request()
  local fake = t.use_fake_http { { fail = "RECV_ERROR" }, { status = 200, json = {} } }
  assert(client():request { method = "PUT", path = "/entitlements/v1/x", json = {}, idempotent = true })
  t.eq(#fake.requests, 2)
end

function T.get_transport_failures_retried()
  local fake = t.use_fake_http { { fail = "COULDNT_CONNECT" }, { fail = "GOT_NOTHING" },
                                 { fail = "PARTIAL_FILE" }, { status = 200, json = {} } }
  assert(client():request { path = "/v1/x" })
  t.eq(#fake.requests, 4)
end

-- a name that does not resolve will not resolve a second later: one try,
-- the curl code (exit 1), not six tries ending in RETRY_EXHAUSTED (exit 5)
function T.dns_failure_is_final()
  for _, code in ipairs { "COULDNT_RESOLVE_HOST", "COULDNT_RESOLVE_PROXY" } do
    local fake = t.use_fake_http { { fail = code, msg = "Could not resolve host: sm.example.test" },
                                   { status = 200, json = {} } }
    local msg = t.fails(code, client().request, client(), { path = "/v1/x" })
    t.eq(#fake.requests, 1)
    t.eq(#fake.sleeps, 0)
    t.find(msg, "cannot reach sm.example.test")
    t.find(msg, "Could not resolve host")
  end
end

-- a host that refuses connections gets one more try, then the failure is final
function T.refused_connection_tried_twice()
  local fake = t.use_fake_http { { fail = "COULDNT_CONNECT", msg = "Failed to connect" },
                                 { fail = "COULDNT_CONNECT", msg = "Failed to connect" },
                                 { status = 200, json = {} } }
  local msg = t.fails("COULDNT_CONNECT", client().request, client(), { path = "/v1/x" })
  t.eq(#fake.requests, 2)
  t.find(msg, "cannot reach sm.example.test")
  t.eq(require("calm.lib.exit").status_for("COULDNT_CONNECT"), 1)
end

-- out of file descriptors: a local limit, said as it is, never resent as
-- "nothing was sent" (POST) nor retried as a transport failure (GET)
function T.out_of_descriptors_is_final_and_named()
  for _, method in ipairs { "GET", "POST" } do
    local fake = t.use_fake_http {
      { fail = "TOO_MANY_OPEN_FILES", msg = "POST x: out of file descriptors (Too many open files)" },
      { status = 201, json = {} } }
    local msg = t.fails("TOO_MANY_OPEN_FILES", client().request, client(),
                        { method = method, path = "/v1/service_instances", json = {} })
    t.eq(#fake.requests, 1, method .. " is not sent again")
    t.find(msg, "out of file descriptors")
    t.eq(msg:find("outcome is unknown", 1, true), nil, "nothing reached the server")
    t.eq(require("calm.lib.exit").status_for("TOO_MANY_OPEN_FILES"), 1)
  end
end

function T.tls_verification_failure_is_final()
  local fake = t.use_fake_http { { fail = "PEER_FAILED_VERIFICATION", msg = "SSL certificate problem" } }
  t.fails("PEER_FAILED_VERIFICATION", client().request, client(), { path = "/v1/x" })
  t.eq(#fake.requests, 1)
end

function T.truncated_json_get_retried_post_refused()
  local fake = t.use_fake_http { { status = 200, body = '{"items":[', close_delimited = true },
                                 { status = 200, json = { items = {} } } }
  assert(client():request { path = "/v1/x" })
  t.eq(#fake.requests, 2)
  t.reset()
  fake = t.use_fake_http { { status = 201, body = '{"id":"abc' } }
  local msg = t.fails("BAD_RESPONSE", client().request, client(), { method = "POST", path = "/v1/service_bindings", json = {} })
  t.eq(msg, "truncated or invalid JSON from POST https://sm.example.test/v1/service_bindings (HTTP 201)")
  t.eq(#fake.requests, 1)
end

function T.invalid_json_exhausted_is_bad_response()
  local steps = {}
  for i = 1, 6 do steps[i] = { status = 200, body = "{NaN}" } end
  t.use_fake_http(steps)
  local msg = t.fails("BAD_RESPONSE", client().request, client(), { path = "/v1/x" })
  t.find(msg, "truncated or invalid JSON from GET")
end

-- Issue 13: an answer that is wrong in itself is refused once, not retried.
function T.non_ijson_answer_is_refused_at_once()
  local bodies = {
    { '{"items":[{"clientsecret":"a","clientsecret":"b"}]}', "duplicate member 'clientsecret' at byte 31" },
    { '{"items":[{"clientsecret":"\255\254"}]}', "invalid UTF-8 at byte 28" },
    { '{"num_items":1e400}', "number out of range" },
    { string.rep("[", 5000) .. string.rep("]", 5000), "nested deeper than 1000 levels at byte 1001" },
  }
  for _, b in ipairs(bodies) do
    local steps = {}
    for i = 1, 6 do steps[i] = { status = 200, body = b[1], headers = { ["Content-Type"] = "application/json" } } end
    local fake = t.use_fake_http(steps)
    local msg = t.fails("BAD_RESPONSE", client().request, client(), { path = "/v1/service_bindings" })
    t.eq(#fake.requests, 1, b[2])
    t.eq(#fake.sleeps, 0, b[2])
    t.find(msg, "GET https://sm.example.test/v1/service_bindings answered HTTP 200 with JSON that is not I-JSON")
    t.find(msg, b[2])
    t.nofind(msg, "safe to rerun")
  end
end

function T.broken_headers_are_final()
  local fake = t.use_fake_http { { fail = "BAD_HEADERS", msg = "GET x: the answer has more than 256 header lines; refused" } }
  local msg = t.fails("BAD_HEADERS", client().request, client(), { path = "/v1/x" })
  t.eq(#fake.requests, 1)
  t.find(msg, "more than 256 header lines")
end

function T.trickling_host_retried_once_then_given_up()
  for k in pairs(rest.trickled) do rest.trickled[k] = nil end
  local slow = { fail = "TRICKLE", msg = "GET x: the server sent 5 bytes in 5 s after it began answering" }
  local fake = t.use_fake_http { slow, { status = 200, json = {} } }
  assert(client():request { path = "/v1/a" })
  t.eq(#fake.requests, 2, "one slow answer is retried")
  -- the same host again: this time it is given up on without a retry
  fake = t.use_fake_http { slow, { status = 200, json = {} } }
  local msg = t.fails("TRICKLE", client().request, client(), { path = "/v1/b" })
  t.eq(#fake.requests, 1)
  t.find(msg, "sm.example.test keeps trickling (2 slow answers), so it is not retried")
  -- another host is not affected
  fake = t.use_fake_http { slow, { status = 200, json = {} } }
  assert(rest.client { base_url = "https://cf.example.test" }:request { path = "/v3/x" })
  t.eq(#fake.requests, 2)
  for k in pairs(rest.trickled) do rest.trickled[k] = nil end
end

function T.router_404_retried_plain_404_is_data()
  local fake = t.use_fake_http { { status = 404, headers = { ["X-Cf-RouterError"] = "unknown_route" }, body = "404 Not Found: Requested route does not exist" },
                                 { status = 200, json = {} } }
  assert(client():request { method = "DELETE", path = "/v1/service_instances/i1" })
  t.eq(#fake.requests, 2)
  t.reset()
  fake = t.use_fake_http { { status = 404, json = { error = "NotFound", description = "not found" } } }
  local resp = assert(client():request { path = "/v1/service_instances/i1" })
  t.eq(resp.status, 404)
  t.eq(resp.json.error, "NotFound")
  t.eq(#fake.requests, 1)
end

function T.html_4xx_is_data()
  t.use_fake_http { { status = 403, body = "<html>denied</html>", headers = { ["content-type"] = "text/html" } } }
  local resp = assert(client():request { path = "/v1/x" })
  t.eq(resp.status, 403)
  t.eq(rest.error_text(resp), "HTML error page")
end

function T.unauthorized_renews_token_once()
  local fake = t.use_fake_http { { status = 401, json = { error = "Unauthorized", description = "token expired" } },
                                 { status = 200, json = { ok = true } } }
  local s = fake_session()
  local resp = assert(client(s):request { method = "POST", path = "/v1/service_bindings", json = {} })
  t.eq(resp.json.ok, true)
  t.eq(fake.requests[1].headers.Authorization, "Bearer tok1")
  t.eq(fake.requests[2].headers.Authorization, "Bearer tok2")
  t.eq(s.invalidated, 1)
end

function T.second_401_is_auth()
  local fake = t.use_fake_http { { status = 401, json = { error = "Unauthorized", description = "invalid token" } },
                                 { status = 401, json = { error = "Unauthorized", description = "invalid token" } } }
  local s = fake_session()
  local msg = t.fails("AUTH", client(s).request, client(s), { path = "/v1/x" })
  t.eq(msg, "Service Manager key (sm.json) was refused (HTTP 401): Unauthorized: invalid token")
  t.eq(#fake.requests, 2)
end

function T.session_failure_is_returned()
  local fake = t.use_fake_http {}
  local s = { name = "x", token = function() return nil, "x was refused", "AUTH" end, invalidate = function() end }
  t.eq(t.fails("AUTH", client(s).request, client(s), { path = "/v1/x" }), "x was refused")
  t.eq(#fake.requests, 0)
end

function T.deadline_refusal_is_immediate()
  local fake = t.use_fake_http { { status = 429, headers = { ["Retry-After"] = "3600" } } }
  local flow = task.spawn({ timeout = 5 }, function()
    return client():request { path = "/v1/x" }
  end)
  local r = table.pack(task.wait(flow))
  t.eq(r[1], nil)
  t.eq(r[3], "DEADLINE")
  t.match(r[2], "^sm%.example%.test asks to wait 3600s, beyond the %-%-timeout deadline")
  t.eq(#fake.requests, 1)
  t.eq(fake.sleeps, {})
end

function T.error_text_shapes()
  local function r(j, h) return { status = 400, headers = h or { ["content-type"] = "application/json" },
                                  body = require("calm.lib.json").encode(j) } end
  t.eq(rest.error_text(r { error = "Conflict", description = "binding with same name exists" }),
    "Conflict: binding with same name exists")
  t.eq(rest.error_text(r { description = "The allowed request limit of 600 requests has been reached." }),
    "The allowed request limit of 600 requests has been reached.")
  t.eq(rest.error_text(r { errors = { { code = 10008, title = "CF-UnprocessableEntity", detail = "Invalid service plan." } } }),
    "CF-UnprocessableEntity: Invalid service plan.")
  t.eq(rest.error_text(r { error = { code = 11006, message = "Request rate limit exceeded.",
                                     correlationID = "corr-1", details = { { code = 11007, message = "Max 5 in 3s" } } } }),
    "11006: Request rate limit exceeded. (Max 5 in 3s) [correlation id corr-1]")
  t.eq(rest.error_text(r { error = "invalid_client", error_description = "Bad credentials" }),
    "invalid_client: Bad credentials")
  t.eq(rest.error_text({ status = 502, headers = {}, body = "<!DOCTYPE html><html>oops</html>" }), "HTML error page")
  t.eq(rest.error_text({ status = 500, headers = { ["content-type"] = "text/plain" }, body = "secret stuff" }),
    "non-JSON body of 12 bytes")
  t.eq(rest.error_text({ status = 500, headers = {}, body = "" }), "empty body")
end

function T.error_text_redacted_and_capped()
  local secret = log.secret("canary-secret-7f3a9c")
  local txt = rest.error_text({ status = 400, headers = {}, body = require("calm.lib.json").encode(
    { error = "invalid_request", error_description = "bad client_secret " .. secret .. "\n" .. string.rep("x", 500) }) })
  t.nofind(txt, secret)
  t.nofind(txt, "\n")
  t.ok(#txt <= 300, "capped: " .. #txt)
end

function T.backoff_is_capped_full_jitter()
  rest.random = function() return 1 end
  t.eq(retry.backoff(1, nil, rest), rest.policy.base)
  t.eq(retry.backoff(20, nil, rest), rest.policy.cap)
  rest.random = function() return 0 end
  t.eq(retry.backoff(5, nil, rest), rest.policy.min)
end

return T
