-- calm.lib.poll: the one wait loop for BTP's asynchronous work -- Service
-- Manager operations, Cloud Foundry v3 jobs, cis entitlement assignments --
-- and the deadline-aware sleep under it.
--
--   local poll = require "calm.lib.poll"
--   local job, msg, code = poll.until_done {
--     check = function() ... end,  -- false, state, retry_after | true, results...
--     progress = "creating instance 'x'", waiting = "the job (rerun to resume)" }
--   local b = poll.backoff(); b:wait("another operation to end")
--
-- Waits start at policy.initial seconds and grow by policy.factor up to
-- policy.max; a Retry-After shorter than the wait is honoured. Every wait
-- ends at the --timeout deadline (task.remaining()) with code DEADLINE.
local log = require "calm.log"
local task = require "calm.task"

local M = {}

-- 2 s growing by half each round up to 15 s. A user script may change this
-- table (e.g. a fleet run with many operations); calm.btp.sm, calm.btp.cf and
-- calm.btp.cis share it (sm.poll_policy, cf.poll_policy, cis.poll_policy).
M.policy = { initial = 2, factor = 1.5, max = 15 }

-- CALMBIND_POLL_INTERVAL (seconds) sets the first interval (tests, and
-- admins who know their broker is fast); the growth and cap stay.
do
  local ok, v = pcall(function() return os.getenv("CALMBIND_POLL_INTERVAL") end)
  local n = ok and tonumber(v or "") or nil
  if n and n >= 0.01 and n <= 60 then
    M.policy.initial = n
    if M.policy.max < n then M.policy.max = n end
  end
end

-- poll.wait(delay, what): sleeps delay seconds -> true, or stops at the
-- deadline -> nil, "deadline passed while waiting for <what>", "DEADLINE".
function M.wait(delay, what)
  local left = task.remaining()
  if left <= 0 then
    return nil, "deadline passed while waiting for " .. what, "DEADLINE"
  end
  local ok, _, code = task.sleep(math.min(delay, left))
  if not ok then return nil, "deadline passed while waiting for " .. what, code or "DEADLINE" end
  if delay >= left then
    return nil, "deadline passed while waiting for " .. what, "DEADLINE"
  end
  return true
end

local Backoff = {}
Backoff.__index = Backoff

-- poll.backoff([policy]) -> b; b:wait(what [, retry_after]) sleeps the
-- current interval (or retry_after seconds when shorter), then grows it.
function M.backoff(policy)
  policy = policy or M.policy
  return setmetatable({ policy = policy, delay = policy.initial }, Backoff)
end

function Backoff:wait(what, retry_after)
  local d = self.delay
  if retry_after and retry_after >= 0 and retry_after < d then d = retry_after end
  self.delay = math.min(self.delay * self.policy.factor, self.policy.max)
  return M.wait(d, what)
end

local function seconds_since(t0)
  return math.floor(task.now() - t0 + 0.5)
end

-- poll.until_done{check, waiting, progress, policy, rounds, too_long}:
-- calls check() until it answers true, then returns what followed the true
-- (check answers `true, nil, msg, code` for a failure). `false, state,
-- retry_after` means not yet: with progress set, a progress line
-- "<progress>: <state>, N s" is shown, then the backoff waits ("deadline
-- passed while waiting for <waiting>"). After rounds checks (default: no
-- limit): nil, too_long, "API".
function M.until_done(o)
  local b = M.backoff(o.policy)
  local started = task.now()
  local function finish(...)
    if o.progress then log.progress_done() end
    return ...
  end
  for _ = 1, o.rounds or math.maxinteger do
    local r = table.pack(o.check())
    if r[1] ~= false then return finish(table.unpack(r, 2, r.n)) end
    if o.progress then
      log.progress(string.format("%s: %s, %d s", o.progress, tostring(r[2] or "pending"),
        seconds_since(started)))
    end
    local ok, wmsg, wcode = b:wait(o.waiting, r[3])
    if not ok then return finish(nil, wmsg, wcode) end
  end
  return nil, o.too_long or (tostring(o.waiting) .. " does not end"), "API"
end

return M
