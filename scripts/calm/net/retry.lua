-- calm.net.retry: when calm.net.rest sends a request again, and how long it
-- waits first (reliability.md R2/R3). Part of calm.net.rest.send, which keeps
-- the per-request state st = {what, url, host, idempotent, attempts,
-- unreachable, last, why, wait, hinted, env}; env is calm.net.rest itself,
-- passed down (never required: rest is the layer above), whose seams
-- (policy, http, sleep, random, wallclock, log, trickled, trickle_limit,
-- transport_hint) are read at call time.
local errtext = require "calm.net.errtext"
local task = require "calm.task"
local http = require "calm.http"
local log = require "calm.log"

local M = {}


-- Transport failures an idempotent request is sent again after.
M.RETRY_TRANSPORT = {
  COULDNT_CONNECT = true, COULDNT_RESOLVE_HOST = true, COULDNT_RESOLVE_PROXY = true,
  OPERATION_TIMEDOUT = true, RECV_ERROR = true, SEND_ERROR = true, GOT_NOTHING = true,
  PARTIAL_FILE = true, SSL_CONNECT_ERROR = true, HTTP2 = true, HTTP2_STREAM = true,
  TRICKLE = true,
}
-- Failures that prove the request never left: safe to resend a POST.
M.NOT_SENT = {
  COULDNT_CONNECT = true, COULDNT_RESOLVE_HOST = true, COULDNT_RESOLVE_PROXY = true,
  SSL_CONNECT_ERROR = true,
}
-- Failures that happen before any byte of the request is sent (refused
-- URL, TLS verification): final, but never "outcome unknown".
local PRE_SEND = {
  INSECURE_URL = true, URL_MALFORMAT = true, UNSUPPORTED_PROTOCOL = true,
  PEER_FAILED_VERIFICATION = true, SSL_CACERT_BADFILE = true, SSL_CERTPROBLEM = true,
  SSL_CIPHER = true, SSL_ENGINE_NOTFOUND = true, BAD_FUNCTION_ARGUMENT = true,
  -- calm.http found no free file descriptor (EMFILE/ENFILE): a local limit,
  -- not the server; said as it is, not retried as "couldn't connect".
  TOO_MANY_OPEN_FILES = true,
}
-- An unreachable host: a name that does not resolve will not resolve a
-- second later (one try); a refused connection gets one more try (a
-- restarting router). Then the failure is final, with curl's code (exit 1),
-- instead of six tries ending in RETRY_EXHAUSTED (exit 5).
local UNREACHABLE = { COULDNT_RESOLVE_HOST = 1, COULDNT_RESOLVE_PROXY = 1, COULDNT_CONNECT = 2 }

-- Hosts whose answers calm.http cut for trickling (under its speed floor),
-- counted for the whole process: from the second such answer on, a host is
-- not retried any more (one slow answer may be bad luck; two are the host).

local one_line = errtext.one_line

function M.fmt_secs(s)
  if s >= 10 then return string.format("%ds", math.ceil(s)) end
  if s >= 1 then
    if s == math.floor(s) then return string.format("%ds", s) end
    return string.format("%.1fs", s)
  end
  return string.format("%.2gs", s)
end

local function wallclock(env)
  if env and env.wallclock then return env.wallclock() end
  local ok, now = pcall(function() return os.time() end)
  return ok and now or nil
end

-- Seconds the server asks us to wait, or nil (no usable hint):
-- Retry-After, else X-Ratelimit-Reset. env: the seams (see above), or nil.
function M.server_wait(resp, env)
  local h = resp.headers or {}
  local ra = h["retry-after"]
  if ra and ra ~= "" then
    local ok, s = pcall((env and env.http or http).parse_retry_after, ra)
    if ok and type(s) == "number" and s >= 0 then return s end
  end
  local reset = tonumber(h["x-ratelimit-reset"] or "")
  if reset and reset > 0 then
    local now = wallclock(env)
    if reset > 1e12 then -- epoch milliseconds (BTP Accounts/Entitlements)
      if now then return math.max(0, reset / 1000 - now) end
    elseif reset > 1e9 then -- epoch seconds (CF)
      if now then return math.max(0, reset - now) end
    else
      return reset -- delta seconds
    end
  end
  return nil
end

-- A full-jitter draw from [min, min(cap, base * 2^(k-1))], at least floor;
-- env.policy and env.random are the seams.
function M.backoff(k, floor, env)
  local p = env.policy
  local hi = math.min(p.cap, p.base * 2 ^ (k - 1))
  local lo = math.max(p.min or 0, floor or 0)
  if hi < lo then hi = lo end
  return lo + (hi - lo) * (env.random or math.random)()
end

-- A request that failed for good, without a retry to come.
local function final_failure(st, emsg, ecode)
  if not st.idempotent and not PRE_SEND[ecode] then
    return nil, string.format("%s failed (%s); the outcome is unknown: the server may have "
      .. "acted on it, so look the resource up by name before trying again",
      st.what, one_line(emsg or ecode)), ecode
  end
  return nil, string.format("%s failed: %s", st.what, one_line(emsg or tostring(ecode))), ecode
end

-- Judges a transport failure: true, nil, msg, code when it is final; false
-- when the request goes out again (st.why and st.last say why).
function M.transport(st, emsg, ecode)
  if ecode == "DEADLINE" or ecode == "CANCELLED" then return true, nil, emsg, ecode end
  -- curl's text without calm.http's "METHOD URL: " (what names the request),
  -- then what the user can do about it
  local hint = st.env.transport_hint(ecode, st.url)
  emsg = one_line(emsg or tostring(ecode)):gsub("^%u+ %S+: ", "", 1)
  if UNREACHABLE[ecode] then
    st.unreachable = st.unreachable + 1
    if st.unreachable >= UNREACHABLE[ecode] then
      return true, nil, string.format("%s failed: cannot reach %s (%s)%s", st.what, st.host, emsg,
        hint == "" and "; check the URL and the network or proxy" or hint), ecode
    end
  end
  emsg = emsg .. hint
  local retry = (st.idempotent and M.RETRY_TRANSPORT[ecode]) or M.NOT_SENT[ecode]
  if ecode == "TRICKLE" then
    local n = (st.env.trickled[st.host] or 0) + 1
    st.env.trickled[st.host] = n
    if retry and n >= st.env.trickle_limit then
      return true, nil, string.format("%s failed: %s; %s keeps trickling (%d slow answers), so it is "
        .. "not retried", st.what, one_line(emsg or ecode), st.host, n), ecode
    end
  end
  if not retry then return true, final_failure(st, emsg, ecode) end
  st.why = string.format("%s failed (%s)", st.host, ecode)
  st.last = { msg = string.format("%s failed: %s", st.what, one_line(emsg or ecode)), code = "RETRY_EXHAUSTED" }
  return false
end

-- Waits before attempt + 1: the server's hint (a hint of 0 or in the past
-- still gets the minimum backoff), else backoff (at least rate_min after a
-- 429). true | nil, msg, "DEADLINE" when the wait would pass the deadline.
function M.pause(st, attempt, resp)
  local env = st.env
  local wait = st.wait
  if st.hinted then
    if wait <= 0 then wait = M.backoff(1, nil, env) end
  else
    wait = M.backoff(attempt, (resp and resp.status == 429) and env.policy.rate_min or nil, env)
  end
  local remaining = task.remaining()
  if wait > remaining then
    if st.hinted then
      return nil, string.format("%s asks to wait %s, beyond the --timeout deadline (%s left)",
        st.host, M.fmt_secs(wait), M.fmt_secs(math.max(0, remaining))), "DEADLINE"
    end
    return nil, string.format("%s; the next retry in %s would pass the --timeout deadline",
      st.last and st.last.msg or st.why, M.fmt_secs(wait)), "DEADLINE"
  end
  local log = env.log or log
  log.info("%s; retrying in %s (attempt %d/%d)", st.why, M.fmt_secs(wait), attempt + 1, st.attempts)
  local ok, smsg, scode = (env.sleep or task.sleep)(wait)
  if not ok then return nil, smsg or "deadline passed", scode or "DEADLINE" end
  return true
end

-- The failure after the last attempt.
function M.exhausted(st)
  local msg = st.last and st.last.msg or (st.what .. " failed")
  return nil, string.format("%s (gave up after %d attempts; safe to rerun)", msg, st.attempts),
    st.last and st.last.code or "RETRY_EXHAUSTED"
end

return M
