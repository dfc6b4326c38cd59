-- calm.ops.fleet: runs one command (get, verify or rotate) for many tenants as
-- concurrent flows in one process, `jobs` tenants in flight.
--
--   local results = fleet.run(tenants, {command = "get", jobs = 8, total = n})
--   fleet.summary(results)          -- the table printed at the end (text)
--   fleet.report(results, meta)     -- the --report document (no secrets)
--
-- Each tenant runs in its own flow (its own deadline when it has a timeout)
-- and its own clients and token caches: a tenant that fails, waits on
-- retries or raises holds only its own slot; the others go on unchanged.
-- tenants = {{name =, opts =, where =}} with opts from calm.ops.fleet_tenant.
local key_parse = require "calm.key.parse"
local key_verify = require "calm.key.verify"
local M = {}

local WORD = { [0] = "ok", "api", "usage", "auth", "manual", "deadline", "verify" }
M.WORD = WORD

local function one_line(s, max)
  s = tostring(s or ""):gsub("[\r\n]+%s*", "; ")
  if max and #s > max then s = s:sub(1, max - 3) .. "..." end
  return s
end

-- Fleet's own lines print at info level even while the tenants' runs are
-- kept at warn (their step-by-step lines would interleave without names);
-- with -q (level error) they do not print.
local show = true

local function say(fmt, ...)
  local log = require "calm.log"
  if not show then return end
  local prev = log.level()
  if prev == "warn" then log.set_level("info") end
  log.info(fmt, ...)
  log.set_level(prev)
end

local function progress(state)
  local log = require "calm.log"
  if not show then return end
  local prev = log.level()
  if prev == "warn" then log.set_level("info") end
  log.progress("fleet %s: %d/%d done, %d failed, %d running", state.command, state.done, state.total,
    state.failed, state.running)
  log.set_level(prev)
end

-- ------------------------------------------------------------- one tenant --

local function verify_one(o)
  local k, msg, code = key_parse.load(o.key)
  if not k then return nil, msg, code end
  local r
  r, msg, code = key_verify.verify(k, { scenario = o.scenario, cacert = o.cacert })
  if not r then return nil, msg, code end
  if not r.ok then return nil, "verification failed: " .. table.concat(r.problems, "; "), "VERIFY" end
  return 0
end

-- Runs the command for one tenant; returns status | nil, msg, code and
-- fills sink.report (get, rotate).
local function run_command(command, o, sink)
  if command == "verify" then return verify_one(o) end
  if command == "rotate" then return require("calm.ops.rotate").run(o, sink) end
  return require("calm.ops.runner").run(o, "get", sink)
end

local function outcome(t, command, r, sink, secs)
  local exit = require "calm.lib.exit"
  local log = require "calm.log"
  local status, msg, code = r[1], r[2], r[3]
  local res = { name = t.name, seconds = secs }
  if r.n == 0 or (status == nil and msg == nil) then
    status, msg, code = nil, "the tenant's flow ended without a result", "API"
  end
  if status == nil then
    if code == nil and tostring(msg):find("deadline passed", 1, true) then code = "DEADLINE" end
    res.exit = exit.status_for(code)
    res.error = log.redact(one_line(msg))
    res.code = code
    if res.exit == 5 and t.opts.tenant_timeout and secs >= t.opts.tenant_timeout then
      res.error = res.error .. string.format(" (the tenant's timeout: %g s)", t.opts.tenant_timeout)
    end
  else
    res.exit = math.tointeger(status) or 1
  end
  local rep = sink.report or {}
  res.path = rep.decision and rep.decision.path or nil
  res.actions = rep.actions or {}
  local result = rep.result or {}
  res.binding = result.binding_name
  res.instance = result.instance_name
  res.replaced = rep.replaced
  if command == "verify" then res.key = t.opts.key
  elseif res.exit == 0 then res.key = t.opts.out end
  return res
end

-- The tenant's flow body: raises are caught here (a Lua error in one
-- tenant's run is that tenant's failure, exit 1).
local function tenant_body(command, o, sink)
  local r = table.pack(pcall(run_command, command, o, sink))
  if not r[1] then return nil, "internal error: " .. tostring(r[2]), "INTERNAL" end
  return table.unpack(r, 2, r.n)
end

-- ----------------------------------------------------------------- engine --

local function changed(actions)
  local n = 0
  for _, a in ipairs(actions or {}) do
    if a.action ~= "adopt" then n = n + 1 end
  end
  return n
end

local function done_line(state, res)
  local head = string.format("fleet: [%d/%d] %s: ", state.done, state.total, res.name)
  if res.exit == 0 then
    local what = res.key and (" -> " .. res.key) or ""
    local n = changed(res.actions)
    say("%sok%s%s%s", head, res.path and (" (" .. res.path .. ")") or "", what,
      n > 0 and string.format(", %d change%s", n, n == 1 and "" or "s") or "")
  else
    say("%sexit %d (%s): %s", head, res.exit, WORD[res.exit] or "?", res.error or "")
  end
end

-- run(tenants, o) -> results (one per tenant, in the tenants' order).
-- o = {command, jobs, tty (progress line), total}.
function M.run(tenants, o)
  local task = require "calm.task"
  local log = require "calm.log"
  local state = { command = o.command, done = 0, failed = 0, running = 0, total = #tenants }
  local results, next_i = {}, 0
  local quiet = log.level() == "info"
  show = log.level() ~= "error" and log.level() ~= "warn"
  if quiet then log.set_level("warn") end
  local function tick(res)
    if o.tty then
      if res and res.exit ~= 0 then done_line(state, res) end
      progress(state)
    elseif res then
      done_line(state, res)
    end
  end
  local function worker()
    while true do
      next_i = next_i + 1
      local i = next_i
      local t = tenants[i]
      if not t then return end
      state.running = state.running + 1
      tick()
      local sink = {}
      local started = task.now()
      -- the tenant's secrets (its keys' secrets, its tokens) go in a scope of
      -- their own, forgotten once its outcome (redacted) is out: a fleet of
      -- 10 000 does not keep 10 000 tenants' secrets in the redaction registry
      local scope = log.scope()
      local flow = task.spawn({ name = "tenant " .. t.name, timeout = t.opts.tenant_timeout, label = t.name,
        secret_scope = scope },
        tenant_body, o.command, t.opts, sink)
      local r = table.pack(task.wait(flow))
      local res = outcome(t, o.command, r, sink, task.now() - started)
      results[i] = res
      state.running, state.done = state.running - 1, state.done + 1
      if res.exit ~= 0 then state.failed = state.failed + 1 end
      tick(res)
      log.forget(scope)
    end
  end
  local workers = {}
  for w = 1, math.min(o.jobs or 8, #tenants) do workers[w] = worker end
  -- Each tenant in flight has one to four transfers at once (get reads four
  -- lists together): with fewer than 4 x --jobs transfers, tenants would queue
  -- behind task.limit (500 tenants, --jobs 96: 7 s at the default 64, 3.6 s at
  -- --jobs, 2.7 s at 4 x --jobs).
  if 4 * #workers > 64 then task.limit(4 * #workers) end
  if #workers > 0 then task.all(workers) end
  if o.tty then log.progress_done() end
  if quiet then log.set_level("info") end
  return results
end

-- ---------------------------------------------------------------- output --

local function counts(results)
  local ok, by_exit = 0, {}
  for _, r in ipairs(results) do
    if r.exit == 0 then ok = ok + 1 end
    by_exit[tostring(r.exit)] = (by_exit[tostring(r.exit)] or 0) + 1
  end
  return ok, by_exit
end

-- The table printed at the end (stdout).
function M.summary(results, command)
  local w = 6
  for _, r in ipairs(results) do w = math.max(w, #r.name) end
  local lines = { string.format("%-" .. w .. "s  %-4s  %-8s  %-17s  %s", "TENANT", "EXIT", "RESULT", "PATH", "DETAIL") }
  for _, r in ipairs(results) do
    local detail
    if r.exit == 0 then
      local n = changed(r.actions)
      detail = (r.key or "") .. (n > 0 and string.format(" (%d change%s)", n, n == 1 and "" or "s") or "")
    else
      detail = one_line(r.error, 100)
    end
    lines[#lines + 1] = string.format("%-" .. w .. "s  %-4d  %-8s  %-17s  %s", r.name, r.exit,
      WORD[r.exit] or "?", r.path or "-", detail)
  end
  local ok, by_exit = counts(results)
  local parts = {}
  for code = 1, 6 do
    local n = by_exit[tostring(code)]
    if n then parts[#parts + 1] = string.format("%d %s", n, WORD[code]) end
  end
  lines[#lines + 1] = string.format("%s: %d tenant%s, %d ok, %d failed%s", command, #results,
    #results == 1 and "" or "s", ok, #results - ok, #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or "")
  return table.concat(lines, "\n") .. "\n"
end

-- The --report document: meta = {command, inventory, shard, seconds}.
function M.report(results, meta)
  local json = require "calm.lib.json"
  local tenants = {}
  for i, r in ipairs(results) do
    local acts = {}
    for j, a in ipairs(r.actions or {}) do
      acts[j] = { action = a.action, resource = a.resource, id = a.id, name = a.name }
    end
    tenants[i] = { name = r.name, exit = r.exit, result = WORD[r.exit], path = r.path,
      actions = json.array(acts), error = r.error, code = r.code, key = r.key,
      instance = r.instance, binding = r.binding, replaced = r.replaced and json.array(r.replaced) or nil,
      seconds = math.floor(r.seconds * 1000 + 0.5) / 1000 }
  end
  local ok, by_exit = counts(results)
  return { tool = "calmbind", command = "fleet", report_version = 1, fleet_command = meta.command,
    inventory = meta.inventory, shard = meta.shard, tenants = json.array(tenants),
    summary = { tenants = #results, ok = ok, failed = #results - ok, by_exit = by_exit,
      seconds = math.floor((meta.seconds or 0) * 1000 + 0.5) / 1000 } }
end

-- fleet --command rotate: the admin's steps once for all rotated tenants.
function M.after_rotation(results, report)
  local deliver = require "calm.ops.deliver"
  local rotated, todo, deleted = 0, 0, 0
  for _, r in ipairs(results) do
    if r.exit == 0 then
      rotated = rotated + 1
      local d, t = deliver.tally(r.replaced)
      deleted, todo = deleted + d, todo + t
    end
  end
  if rotated == 0 then return end
  say("%d tenant%s rotated: each new key is in its key file", rotated, rotated == 1 and "" or "s")
  local where = report and ("listed with replace: true in " .. report) or "that rotate listed (see --report)"
  for _, l in ipairs(deliver.next_steps(todo, deleted, where)) do say("%s", l) end
end

return M
