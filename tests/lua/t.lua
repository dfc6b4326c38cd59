-- tests/lua/t.lua: the small assertion helper the Lua tests share.
-- run.lua loads it and passes it to every test file as the chunk's `...`:
--
--   local t = ...
--   local T = {}
--   function T.adds() t.eq(1 + 1, 2) end
--   return T
--
-- Every assertion raises with a one-line reason; run.lua reports it.
local t = {}

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    local parts, n = {}, 0
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      n = n + 1
      if n > 20 then parts[#parts + 1] = "..."; break end
      parts[#parts + 1] = tostring(k) .. "=" .. show(v[k])
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end
t.show = show

local function deep_eq(a, b, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do
    if not deep_eq(v, b[k], seen) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
t.deep_eq = deep_eq

local function fail(msg, level)
  error(msg, (level or 1) + 2)
end

-- t.eq(got, want [, what]): deep equality for tables.
function t.eq(got, want, what)
  if not deep_eq(got, want) then
    fail((what and (what .. ": ") or "") .. "got " .. show(got) .. ", want " .. show(want))
  end
end

function t.ok(v, what)
  if not v then fail(what or "expected a true value", 1) end
  return v
end

-- t.match(s, pattern [, what]): s is a string and matches the Lua pattern.
function t.match(s, pattern, what)
  if type(s) ~= "string" or not s:find(pattern) then
    fail((what and (what .. ": ") or "") .. show(s) .. " does not match " .. show(pattern))
  end
end

-- t.find(s, plain [, what]): s contains the plain text.
function t.find(s, plain, what)
  if type(s) ~= "string" or not s:find(plain, 1, true) then
    fail((what and (what .. ": ") or "") .. show(s) .. " does not contain " .. show(plain))
  end
end

function t.nofind(s, plain, what)
  if type(s) == "string" and s:find(plain, 1, true) then
    fail((what and (what .. ": ") or "") .. show(s) .. " contains " .. show(plain))
  end
end

-- t.fails(code, f, ...): f returns nil, message, code; returns the message.
function t.fails(code, f, ...)
  local r = table.pack(f(...))
  if r[1] ~= nil then fail("expected failure " .. tostring(code) .. ", got " .. show(r[1])) end
  if type(r[2]) ~= "string" then fail("failure without a message: " .. show(r[2])) end
  if code ~= nil and r[3] ~= code then
    fail("expected code " .. tostring(code) .. ", got " .. show(r[3]) .. " (" .. r[2] .. ")")
  end
  return r[2]
end

-- t.raises(f, [pattern]): f raises an error (matching the plain text).
function t.raises(f, plain)
  local ok, err = pcall(f)
  if ok then fail("expected an error") end
  if plain and not tostring(err):find(plain, 1, true) then
    fail("error " .. show(tostring(err)) .. " does not contain " .. show(plain))
  end
  return err
end

-- A scripted stand-in for calm.http. `steps` is an array; each step is a
-- response table ({status=, headers=, body=}), a failure {fail = "CODE",
-- msg = "..."}, or a function(req, n) returning either. Every request is
-- recorded in fake.requests. Running out of steps raises.
function t.fake_http(steps)
  local fake = { requests = {}, steps = steps or {} }
  function fake.request(req)
    local n = #fake.requests + 1
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    fake.requests[n] = copy
    local step = fake.steps[n]
    if step == nil then error("fake http: unexpected request " .. n .. ": "
      .. tostring(req.method or "GET") .. " " .. tostring(req.url), 0) end
    if type(step) == "function" then step = step(req, n) end
    if step.fail then return nil, step.msg or ("failed: " .. step.fail), step.fail end
    local resp = { status = step.status or 200, headers = {}, body = step.body or "",
                   url = req.url, close_delimited = step.close_delimited or false }
    for k, v in pairs(step.headers or {}) do resp.headers[k:lower()] = v end
    if step.json ~= nil then
      resp.body = require("calm.lib.json").encode(step.json)
      resp.headers["content-type"] = resp.headers["content-type"] or "application/json"
    end
    return resp
  end
  -- Delegates to the real parser when the host has one.
  function fake.parse_retry_after(value, now)
    local ok, http = pcall(require, "calm.http")
    if ok and type(http) == "table" and http.parse_retry_after then
      return http.parse_retry_after(value, now)
    end
    local n = tonumber(value)
    if n and n >= 0 then return n end
    return nil
  end
  return fake
end

-- Restores the test seams of calm.net.rest and calm.net.oauth; run.lua calls it
-- before every test so one test's fakes never leak into the next.
local saved
local function copy(tbl)
  local c = {}
  for k, v in pairs(tbl) do c[k] = v end
  return c
end
function t.reset()
  local okr, rest = pcall(require, "calm.net.rest")
  local oko, oauth = pcall(require, "calm.net.oauth")
  if not saved then
    saved = { rest = okr and copy(rest.policy), oauth = oko and copy(oauth.policy) }
  end
  if okr then
    rest.http, rest.sleep, rest.random, rest.wallclock, rest.log = nil, nil, nil, nil, nil
    rest.policy = copy(saved.rest)
  end
  if oko then
    oauth.now = nil
    oauth.policy = copy(saved.oauth)
  end
end

-- Installs a fake calm.http (see t.fake_http) into calm.net.rest with instant,
-- recorded sleeps, a fixed jitter draw and a recording logger. Returns the
-- fake; fake.sleeps lists the waits, fake.logs the retry lines.
function t.use_fake_http(steps)
  local rest = require "calm.net.rest"
  local fake = t.fake_http(steps)
  fake.sleeps, fake.logs = {}, {}
  rest.http = fake
  rest.sleep = function(s) fake.sleeps[#fake.sleeps + 1] = s; return true end
  rest.random = function() return 0.5 end
  local function rec(fmt, ...) fake.logs[#fake.logs + 1] = string.format(fmt, ...) end
  rest.log = { info = rec, debug = function() end, warn = rec, error = rec, trace = function() end }
  return fake
end

return t
