-- calm.net.answer: what calm.net.rest.send makes of an HTTP answer -- data for
-- the caller, a retry, or a final failure -- and the decoding of its JSON.
-- Part of calm.net.rest.send (st: its per-request state, see calm.net.retry).
local json = require "calm.lib.json"
local log = require "calm.log"
local errtext = require "calm.net.errtext"
local retry = require "calm.net.retry"

local M = {}

-- Statuses an idempotent request is sent again after.
M.RETRY_STATUS = { [500] = true, [502] = true, [503] = true, [504] = true }

-- calm.lib.json kinds that are properties of the text, not of its transfer: the
-- same answer would be refused again, so it is not retried (issue 13).
M.PERMANENT_JSON = { utf8 = true, surrogate = true, noncharacter = true, duplicate = true,
                     number = true, depth = true }

-- The JSON of a response, or nil plus whether that is a defect (as opposed
-- to an HTML/text error page on a 4xx/5xx, which is data), and for a defect
-- calm.lib.json's kind and message.
function M.parse_body(resp)
  local body = resp.body
  if type(body) ~= "string" or body == "" then return nil, false end
  local ct = resp.headers and resp.headers["content-type"] or ""
  if resp.status >= 400 and ct ~= "" and not ct:find("json", 1, true) then
    return nil, false
  end
  local v, msg, _, kind = json.decode(body, "response")
  if v == nil then
    -- a 4xx HTML page without content-type: still data, not a defect
    if resp.status >= 400 and body:match("^%s*<") then return nil, false end
    return nil, true, kind, msg
  end
  return v, false
end

-- A body that is no JSON: final (not I-JSON, or a request that must not be
-- repeated) or a retry.
local function bad_body(st, resp, kind, jmsg)
  if M.PERMANENT_JSON[kind] then
    return true, nil, string.format("%s answered HTTP %d with JSON that is not I-JSON (RFC 7493), "
      .. "refused and not retried: %s", st.what, resp.status,
      errtext.one_line((tostring(jmsg):gsub("^invalid JSON from response: ", "")))), "BAD_RESPONSE"
  end
  local m = string.format("truncated or invalid JSON from %s %s (HTTP %d)",
    st.method, log.redact(tostring(st.url)), resp.status)
  if not st.idempotent then return true, nil, m, "BAD_RESPONSE" end
  st.why = "truncated or invalid JSON from " .. st.host
  st.last = { msg = m, code = "BAD_RESPONSE" }
  return false
end

-- Judges an answer: true, resp (with resp.json) or true, nil, msg, code when
-- it is final; false when the request goes out again (st.why, st.last, and
-- st.wait with st.hinted when the server said how long to wait).
function M.judge(st, resp)
  local status = resp.status
  local h = resp.headers or {}
  local router_404 = status == 404 and h["x-cf-routererror"] ~= nil
    and tostring(h["x-cf-routererror"]):find("unknown_route", 1, true)
  if status == 429 or ((M.RETRY_STATUS[status] or router_404) and st.idempotent) then
    -- 503 may carry Retry-After too
    st.wait = retry.server_wait(resp, st.env)
    st.hinted = st.wait ~= nil
    st.why = status == 429 and ("rate limited by " .. st.host)
      or string.format("%s answered %d", st.host, status)
    st.last = { msg = string.format("%s answered HTTP %d: %s", st.what, status, errtext.error_text(resp)),
                code = "RETRY_EXHAUSTED" }
    return false
  end
  if M.RETRY_STATUS[status] then
    -- not idempotent: data, but flagged, since the server may have acted
    resp.json = (M.parse_body(resp))
    resp.outcome_unknown = true
    return true, resp
  end
  local v, defect, kind, jmsg = M.parse_body(resp)
  if not defect then
    resp.json = v
    return true, resp
  end
  return bad_body(st, resp, kind, jmsg)
end

return M
