-- calm.ops.fleet: runs one command (get, plan, verify or rotate) for many
-- tenants as concurrent flows in one process, `jobs` tenants in flight.
--
--   local results = fleet.run(tenants, {command = "get", jobs = 64, total = n})
--   fleet.default_jobs()            -- --jobs when not given (the descriptor limit's share)
--   fleet.summary(results)          -- the table printed at the end (text)
--   fleet.plans(results)            -- plan: each tenant's plan (text)
--   fleet.report(results, meta)     -- the --report document (no secrets)
--
-- A tenant judged unfit before any request (t.error = {msg, code}: a key
-- file missing or not a key, a bad value) is a row of its own, exit 2; the
-- others run.
--
-- Each tenant runs in its own flow (its own deadline when it has a timeout)
-- and its own clients and token caches: a tenant that fails, waits on
-- retries or raises holds only its own slot; the others go on unchanged.
-- tenants = {{name =, opts =, where =}} with opts from calm.ops.fleet_tenant.
local key_parse = require "calm.key.parse"
local key_verify = require "calm.key.verify"
local deliver = require "calm.ops.deliver"
local exit = require "calm.lib.exit"
local json = require "calm.lib.json"
local log = require "calm.log"
local rotate = require "calm.ops.rotate"
local runner = require "calm.ops.runner"
local task = require "calm.task"
local M = {}

local WORD = { [0] = "ok", "api", "input", "auth", "manual", "deadline", "verify", "changes" }
M.WORD = WORD

-- A message's lines (a manual step's text keeps its lines everywhere); the
-- first cut at max characters, as the table's DETAIL column shows it.
local function lines_of(s, max)
  local out = {}
  for l in (tostring(s or "") .. "\n"):gmatch("([^\r\n]*)\r?\n") do
    if l:match("%S") then out[#out + 1] = l end
  end
  if max and out[1] and #out[1] > max then out[1] = out[1]:sub(1, max - 3) .. "..." end
  return out
end

-- Fleet's own lines print at info level even while the tenants' runs are
-- kept at warn (their step-by-step lines would interleave without names);
-- with -q (level error) they do not print.
local show = true

local function say(fmt, ...)
  if not show then return end
  local prev = log.level()
  if prev == "warn" then log.set_level("info") end
  log.info(fmt, ...)
  log.set_level(prev)
end

local function progress(state)
  if not show then return end
  local prev = log.level()
  if prev == "warn" then log.set_level("info") end
  log.progress("fleet %s: %d/%d done, %d failed, %d running", state.command, state.done, state.total,
    state.failed, state.running)
  log.set_level(prev)
end

-- ------------------------------------------------------------- one tenant --

local function verify_one(o, sink)
  local k, msg, code = key_parse.load(o.key)
  if not k then return nil, msg, code end
  local r
  r, msg, code = key_verify.verify(k, { scenario = o.scenario, cacert = o.cacert, warn_days = o.warn_days })
  if not r then return nil, msg, code end
  sink.verify = r
  if not r.ok then return nil, "verification failed: " .. table.concat(r.problems, "; "), "VERIFY" end
  return 0
end

-- Runs the command for one tenant; returns status | nil, msg, code and
-- fills sink.report (get, rotate).
local function run_command(command, o, sink)
  if command == "verify" then return verify_one(o, sink) end
  if command == "plan" then
    sink.keep_plan = true
    return runner.run(o, "plan", sink)
  end
  if command == "rotate" then
    -- a dry run's text is printed whole after the run, as plans are
    sink.keep_plan = true
    return rotate.run(o, sink)
  end
  return runner.run(o, "get", sink)
end

local function outcome(t, o, r, sink, secs)
  local command = o.command
  local status, msg, code = r[1], r[2], r[3]
  local res = { name = t.name, seconds = secs }
  if r.n == 0 or (status == nil and msg == nil) then
    status, msg, code = nil, "the tenant's flow ended without a result", "API"
  end
  if status == nil then
    if code == nil and tostring(msg):find("deadline passed", 1, true) then code = "DEADLINE" end
    res.exit = exit.status_for(code)
    res.error = log.redact(table.concat(lines_of(msg), "\n"))
    res.code = code
    if res.exit == 5 and t.opts.tenant_timeout and secs >= t.opts.tenant_timeout then
      res.error = res.error .. string.format(" (the tenant's timeout: %g s)", t.opts.tenant_timeout)
    end
  else
    res.exit = math.tointeger(status) or 1
  end
  if command == "plan" or t.opts["dry-run"] then
    -- every tenant's plan (and rotate --dry-run) runs with
    -- --detailed-exitcode: 7 is "would change"
    res.changes = res.exit == 7
    if res.changes and not o.detailed then res.exit = 0 end
    res.plan = sink.plan_text
  end
  local rep = sink.report or {}
  res.path = rep.decision and rep.decision.path or nil
  res.actions = rep.actions or {}
  local result = rep.result or {}
  res.binding = result.binding_name
  res.instance = result.instance_name
  res.replaced = rep.replaced
  -- rotate: no rule found its key due (nothing created), old keys
  -- kept for want of --yes
  if rep.rotation and not rep.rotation.rotate and not res.changes then res.not_rotated = rep.rotation.why end
  if rep.delete_old and not rep.delete_old.deleted then res.kept_old = true end
  -- when the key ends: verify's report, or the key get and rotate delivered
  local ex = sink.verify or result
  res.expires, res.days_left, res.expiry_source = ex.expires, ex.days_left, ex.expiry_source
  res.expiring = sink.verify and sink.verify.expiring or nil
  if command == "verify" then res.key = t.opts.key
  elseif res.exit == 0 and command ~= "plan" then res.key = t.opts.out end
  return res
end

-- The row of a tenant judged unfit before any request.
local function refused(t)
  local msg, code = t.error[1], t.error[2]
  return { name = t.name, seconds = 0, exit = exit.status_for(code or "INPUT"), code = code or "INPUT",
    error = log.redact(table.concat(lines_of(msg), "\n")), where = t.where, actions = {} }
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
  if res.exit == 0 or res.exit == 7 then
    local what = res.key and (" -> " .. res.key) or ""
    local n = changed(res.actions)
    say("%s%s%s%s%s", head, res.exit == 7 and "exit 7 (changes)" or "ok", res.path and (" (" .. res.path .. ")") or "",
      what, res.changes and ", would change" or n > 0 and string.format(", %d change%s", n, n == 1 and "" or "s") or "")
  else
    local l = lines_of(res.error)
    say("%sexit %d (%s): %s%s", head, res.exit, WORD[res.exit] or "?", l[1] or "",
      res.where and (" (" .. res.where .. ")") or "")
    for i = 2, #l do say("fleet:   %s", l[i]) end
  end
end

-- The --jobs of a fleet that names none: DEFAULT_JOBS tenants, fewer when
-- the descriptor limit allows fewer than 4 transfers each (a tenant reads
-- four lists at once; below that, tenants would queue behind each other's
-- reads). 64 because 500 tenants at 100 ms a request then take 1.05-1.4x the
-- time of the fastest --jobs of 32-128 while holding about 28 MiB (96 already
-- reaches 32 MiB, the target), and 10 000 stay below 128 MiB (reliability.md,
-- "The default --jobs").
-- cap: the transfers the descriptor limit allows (task.limit's second value).
M.DEFAULT_JOBS = 64
function M.default_jobs(cap)
  if cap == nil then cap = select(2, task.limit()) end
  return math.max(1, math.min(M.DEFAULT_JOBS, cap // 4))
end

-- run(tenants, o) -> results (one per tenant, in the tenants' order).
-- o = {command, jobs (default: default_jobs()), tty (progress line), total}.
function M.run(tenants, o)
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
      if t.error then
        local res = refused(t)
        results[i] = res
        state.done, state.failed = state.done + 1, state.failed + 1
        tick(res)
        goto continue
      end
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
      local res = outcome(t, o, r, sink, task.now() - started)
      results[i] = res
      state.running, state.done = state.running - 1, state.done + 1
      if res.exit ~= 0 and res.exit ~= 7 then state.failed = state.failed + 1 end
      tick(res)
      log.forget(scope)
      ::continue::
    end
  end
  local workers = {}
  for w = 1, math.min(o.jobs or M.default_jobs(), #tenants) do workers[w] = worker end
  -- Each tenant in flight has one to four transfers at once (get reads four
  -- lists together): with fewer than 4 x --jobs transfers, tenants would queue
  -- behind task.limit (500 tenants, --jobs 96: 7 s at the default 64, 3.6 s at
  -- --jobs, 2.7 s at 4 x --jobs). The descriptor limit still caps it.
  if 4 * #workers > 64 then task.limit(4 * #workers) end
  if #workers > 0 then task.all(workers) end
  if o.tty then log.progress_done() end
  if quiet then log.set_level("info") end
  return results
end

-- ---------------------------------------------------------------- output --

-- ok: exit 0 (or 7, a plan that would change); changes: plans that would change.
local function counts(results)
  local ok, changes, by_exit = 0, 0, {}
  for _, r in ipairs(results) do
    if r.exit == 0 or r.exit == 7 then ok = ok + 1 end
    if r.changes then changes = changes + 1 end
    by_exit[tostring(r.exit)] = (by_exit[tostring(r.exit)] or 0) + 1
  end
  return ok, by_exit, changes
end

local function detail_lines(r)
  if r.exit == 0 or r.exit == 7 then
    if r.changes ~= nil then return { r.changes and "would change (see its plan above)" or "no change" } end
    local n = changed(r.actions)
    return { (r.key or "") .. (n > 0 and string.format(" (%d change%s)", n, n == 1 and "" or "s") or "")
      .. (r.not_rotated and (" (not rotated: " .. r.not_rotated .. ")") or "") }
  end
  return lines_of(r.error, 100)
end

-- EXPIRES: an x509 key's end date and whole days left ("2026-12-14 6d"),
-- "never" for a secret key (its tokens expire, the key does not), "-" when
-- no key was read.
local function expires_cell(r)
  if type(r.expires) == "string" then return r.expires:sub(1, 10) .. " " .. tostring(r.days_left) .. "d" end
  return r.expiry_source == "none" and "never" or "-"
end

-- The tenants whose key ends within verify's --warn-days (or has ended).
local function expiring(results)
  local names = {}
  for _, r in ipairs(results) do if r.expiring then names[#names + 1] = r.name end end
  return names
end

-- The table printed at the end (stdout): a row per tenant, a message's
-- further lines (a manual step's) indented under DETAIL.
function M.summary(results, command)
  local w = 6
  for _, r in ipairs(results) do w = math.max(w, #r.name) end
  local row = "%-" .. w .. "s  %-4s  %-8s  %-17s  %-14s  %s"
  local lines = { string.format(row, "TENANT", "EXIT", "RESULT", "PATH", "EXPIRES", "DETAIL") }
  local indent = string.rep(" ", w + 2 + 4 + 2 + 8 + 2 + 17 + 2 + 14 + 2)
  for _, r in ipairs(results) do
    local d = detail_lines(r)
    lines[#lines + 1] = string.format(row, r.name, tostring(r.exit), WORD[r.exit] or "?", r.path or "-",
      expires_cell(r), d[1] or "")
    for i = 2, #d do lines[#lines + 1] = indent .. d[i] end
  end
  local ok, by_exit, changes = counts(results)
  local parts = {}
  for code = 1, 6 do
    local n = by_exit[tostring(code)]
    if n then parts[#parts + 1] = string.format("%d %s", n, WORD[code]) end
  end
  local plan = results[1] and results[1].changes ~= nil
  local what = plan and string.format("%d would change, %d unchanged", changes, ok - changes)
    or string.format("%d ok", ok)
  lines[#lines + 1] = string.format("%s: %d tenant%s, %s, %d failed%s", command, #results,
    #results == 1 and "" or "s", what, #results - ok, #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or "")
  local soon = expiring(results)
  if #soon > 0 then
    lines[#lines + 1] = string.format("%d key%s expire%s within --warn-days (rotate them: fleet --command rotate "
      .. "--only %s): %s", #soon, #soon == 1 and "" or "s", #soon == 1 and "s" or "", table.concat(soon, ","),
      table.concat(soon, ", "))
  end
  return table.concat(lines, "\n") .. "\n"
end

-- plan: each tenant's plan, one block per tenant, in the inventory's order.
function M.plans(results)
  local out = {}
  for _, r in ipairs(results) do
    if r.plan then
      out[#out + 1] = "== tenant " .. r.name .. (r.changes and " (would change)" or "") .. "\n" .. r.plan
    end
  end
  return table.concat(out, "\n") .. (#out > 0 and "\n" or "")
end

-- The --report document: meta = {command, inventory, shard, only, seconds}.
function M.report(results, meta)
  local tenants = {}
  for i, r in ipairs(results) do
    local acts = {}
    for j, a in ipairs(r.actions or {}) do
      acts[j] = { action = a.action, resource = a.resource, id = a.id, name = a.name }
    end
    tenants[i] = { name = r.name, exit = r.exit, result = WORD[r.exit], path = r.path,
      actions = json.array(acts), error = r.error, where = r.where, code = r.code, key = r.key,
      instance = r.instance, binding = r.binding, replaced = r.replaced and json.array(r.replaced) or nil,
      changes = r.changes, plan = r.plan and json.array(lines_of(r.plan)) or nil, not_rotated = r.not_rotated,
      expires = r.expires, days_left = r.days_left, expiry_source = r.expiry_source, expiring = r.expiring,
      seconds = math.floor(r.seconds * 1000 + 0.5) / 1000 }
  end
  local ok, by_exit, changes = counts(results)
  return { tool = "calmbind", command = "fleet", report_version = 1, fleet_command = meta.command,
    inventory = meta.inventory, shard = meta.shard, only = meta.only, jobs = meta.jobs, tenants = json.array(tenants),
    summary = { tenants = #results, ok = ok, failed = #results - ok, by_exit = by_exit,
      changes = meta.command == "plan" and changes or nil,
      expiring = meta.command == "verify" and json.array(expiring(results)) or nil,
      seconds = math.floor((meta.seconds or 0) * 1000 + 0.5) / 1000 } }
end

-- fleet --command rotate: the admin's steps once for all rotated tenants.
function M.after_rotation(results, report)
  local rotated, todo, deleted, unchanged, kept = 0, 0, 0, 0, 0
  for _, r in ipairs(results) do
    -- a dry run (r.changes set) changed nothing; a tenant in its window made no key
    if r.exit == 0 and r.changes == nil then
      if r.not_rotated then unchanged = unchanged + 1 else rotated = rotated + 1 end
      if r.kept_old then kept = kept + 1 end
      local d, t = deliver.tally(r.replaced)
      deleted, todo = deleted + d, todo + t
    end
  end
  if unchanged > 0 then
    say("%d tenant%s not rotated: %s key is not due by --if-older-than or --if-expires-within (it was verified "
      .. "and written)", unchanged,
      unchanged == 1 and "" or "s", unchanged == 1 and "its" or "each one's")
  end
  if kept > 0 then
    say("%d tenant%s kept %s old keys: --delete-old without --yes (fleet asks no questions; --yes deletes them)", kept,
      kept == 1 and "" or "s", kept == 1 and "its" or "their")
  end
  if rotated == 0 then return end
  say("%d tenant%s rotated: each new key is in its key file", rotated, rotated == 1 and "" or "s")
  local where = report and ("listed with replace: true in " .. report) or "that rotate listed (see --report)"
  for _, l in ipairs(deliver.next_steps(todo, deleted, where)) do say("%s", l) end
end

return M
