-- tests/lua/test_client.lua: calm.btp.client (the base of the BTP clients) and
-- calm.lib.poll (their one wait loop), through calm.net.rest's http seam.
local t = ...
local client = require "calm.btp.client"
local poll = require "calm.lib.poll"
local task = require "calm.task"
local T = {}

local FAST = { initial = 0.01, factor = 2, max = 0.02 }

-- A class whose complaint is {"why": ...}, and an instance over a fake server.
local C = client.class { api = "Test API", error_text = function(j) return j and j.why end }

local function scripted(steps)
  local fake = t.use_fake_http(steps)
  local rc = client.rest_client("https://api.example/", nil, "Test API")
  return client.new(C, { rest = rc }, { poll = FAST }), rc, fake
end

-- a list is Cloud Foundry's "a or b": literal commas between encoded items;
-- a comma inside a string value is data
function T.where_encodes_the_query()
  local c = scripted({})
  t.eq(c:where("/v3/x", { names = "a,b", q = "x y" }), "/v3/x?names=a%2Cb&q=x%20y")
  t.eq(c:where("/v3/x", { names = { "a b", "c" } }), "/v3/x?names=a%20b,c")
  t.eq(c:where("/v3/x", {}), "/v3/x")
end

function T.code_for_auth_and_api()
  t.eq({ client.code_for(401), client.code_for(403), client.code_for(404), client.code_for(500) },
    { "AUTH", "AUTH", "API", "API" })
end

function T.read_json_error_text_code_and_hint()
  local c, rc = scripted {
    { status = 403, json = { why = "scope missing" } },
    { status = 204 },
    { status = 204 },
    { status = 200, body = '"text"', headers = { ["Content-Type"] = "application/json" } },
  }
  local j, msg, code = c:read_json(rc, "/x", "reading x", { hint = function(s) return " (status " .. s .. ")" end })
  t.eq({ j, msg, code }, { nil, "reading x: HTTP 403 scope missing (status 403)", "AUTH" })
  t.eq((c:read_json(rc, "/x", "reading x", { empty_204 = true })), {})
  j, msg, code = c:read_json(rc, "/x", "reading x")
  t.eq({ j, msg, code }, { nil, "reading x: HTTP 204", "API" })
  j, msg, code = c:read_json(rc, "/x", "reading x")
  t.eq({ j, msg, code }, { nil, "reading x: no JSON object in the answer", "BAD_RESPONSE" })
  t.eq(c.requests, 4)
end

function T.read_pages_follows_and_refuses_a_repeated_page()
  local page = function(j) return j.items, j.next end
  local c, rc, fake = scripted {
    { json = { items = { 1, 2 }, next = "/l?p=2" } },
    { json = { items = { 3 }, next = "" } },
    { json = { items = { 1 }, next = "/l?p=2" } },
    { json = { items = { 2 }, next = "/l?p=2" } },
  }
  local items, pages = c:read_pages(rc, "/l", "listing", page)
  t.eq(items, { 1, 2, 3 })
  t.eq(#pages, 2)
  t.eq(fake.requests[2].url, "https://api.example/l?p=2")
  local none, msg, code = c:read_pages(rc, "/l", "listing", page)
  t.eq({ none, msg, code }, { nil, "listing: the server repeated a page", "BAD_RESPONSE" })
end

function T.named_finds_by_name_and_scope()
  local items = { { name = "a", plan = "p1" }, { name = "a", plan = "p2" } }
  t.eq(client.named(items, "a", "plan", "p2"), items[2])
  t.eq(client.named(items, "a"), items[1])
  t.eq(client.named(items, "b"), false)
end

function T.until_done_returns_the_results_after_pending_rounds()
  local n, states = 0, {}
  local a, b, c = poll.until_done { policy = FAST, waiting = "the test",
    check = function()
      n = n + 1
      states[#states + 1] = n
      if n < 3 then return false, "running" end
      return true, "done", nil, "extra"
    end }
  t.eq({ a, b, c, n }, { "done", nil, "extra", 3 })
end

function T.until_done_honours_a_shorter_retry_after_and_gives_up_after_rounds()
  local started = task.now()
  local r, msg, code = poll.until_done { policy = { initial = 30, factor = 1, max = 30 }, rounds = 3,
    waiting = "the test", too_long = "the test does not end",
    check = function() return false, "running", 0 end }
  t.eq({ r, msg, code }, { nil, "the test does not end", "API" })
  t.ok(task.now() - started < 5, "a Retry-After of 0 cut the 30 s waits")
end

function T.backoff_grows_to_the_cap()
  local b = poll.backoff { initial = 0.01, factor = 3, max = 0.05 }
  t.eq(b.delay, 0.01)
  t.ok(b:wait("x"))
  t.eq(b.delay, 0.03)
  t.ok(b:wait("x"))
  t.eq(b.delay, 0.05)
end

function T.wait_stops_at_the_deadline()
  local f = task.spawn({ timeout = 0.05 }, function() return poll.wait(10, "the broker") end)
  local ok, msg, code = task.wait(f)
  t.eq({ ok, msg, code }, { nil, "deadline passed while waiting for the broker", "DEADLINE" })
end

function T.cf_job_polled_until_failed()
  local cf = require "calm.btp.cf"
  t.use_fake_http {
    { status = 202, headers = { Location = "https://api.cf.example/v3/jobs/j-1" } },
    { json = { state = "PROCESSING" } },
    { json = { state = "FAILED", errors = { { title = "CF-Broken", detail = "broker said no" } } } },
  }
  local c = cf.new { rest = client.rest_client("https://api.cf.example", nil, "Cloud Foundry"), poll = FAST }
  local job, msg, code, resp = c:mutate("POST", "/v3/service_instances", { name = "x" }, "creating x")
  t.eq({ job, msg, code }, { nil, "creating x failed: CF-Broken: broker said no", "API" })
  t.eq(resp and resp.status, 202)
end

function T.cis_assignment_polled_until_ok()
  local cis = require "calm.btp.cis"
  local function assigned(state)
    return { json = { assignedServices = { { name = "SAPCloudALMAPIs", servicePlans = { {
      name = "standard", assignmentInfo = { { entityId = "sa-1", entityState = state } } } } } } } }
  end
  local fake = t.use_fake_http {
    { status = 204 }, { status = 202 }, assigned("STARTED"), assigned("OK"),
  }
  local rc = client.rest_client("https://ent.example", nil, "Entitlements")
  local notes = {}
  local c = cis.new { rest_for = function() return rc end, poll = FAST,
    on_action = function(a) notes[#notes + 1] = a.action end }
  local s, msg = c:assign_entitlement("sa-1")
  t.eq({ s and s.state, msg }, { "OK", nil })
  t.eq(fake.requests[2].method, "PUT")
  t.eq(notes, { "assign-entitlement" })
end

return T
