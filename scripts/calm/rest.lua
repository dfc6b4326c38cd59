-- calm.rest: JSON-over-HTTP for the BTP clients, with the retry rules of
-- reliability.md R2/R3 in one place.
--
--   local c = rest.client{base_url = sm_url, session = s, name = "Service Manager", cacert = ca}
--   local resp, msg, code = c:request{method = "GET", path = "/v1/service_instances",
--                                     query = {fieldQuery = "name eq 'x'"}}
--   -- resp.status, resp.headers, resp.body, resp.json
--
-- HTTP 4xx/5xx are returned as data (callers judge them; rest.fail helps).
-- What is retried:
--   * 429 on any method (it proves the request was not processed), after
--     Retry-After / X-Ratelimit-Reset or our own backoff;
--   * idempotent requests (GET/HEAD/DELETE by default, or idempotent=true):
--     500/502/503/504, 404 with X-Cf-RouterError: unknown_route (the router,
--     not the API, answered), transport failures, truncated/invalid JSON;
--   * any request whose transport failure proves nothing was sent
--     (connect/DNS failure, TLS handshake failure).
-- A POST/PATCH that may have reached the server is never sent again: the
-- caller gets nil, "... the outcome is unknown ...", code and must look the
-- resource up by name.
local json = require "calm.json"
local errtext = require "calm.errtext"
local codec = require "calm.codec"
local log = require "calm.log"
local task = require "calm.task"

local M = {}

-- Backoff policy (tests shrink it). Delay before attempt k+1 is a full-jitter
-- draw from [min, min(cap, base * 2^(k-1))]; 429 without a hint waits at
-- least rate_min.
M.policy = { base = 1, cap = 30, attempts = 6, min = 0.1, rate_min = 2 }

-- Seams for tests: M.http (a calm.http stand-in), M.sleep (task.sleep
-- stand-in), M.random (math.random stand-in), M.wallclock (os.time),
-- M.log (calm.log stand-in for the retry lines).
M.http = nil
M.sleep = nil
M.random = nil
M.wallclock = nil
M.log = nil

local function L()
  return M.log or log
end

local function http()
  return M.http or require "calm.http"
end

local function sleep(s)
  return (M.sleep or task.sleep)(s)
end

local function rand()
  return (M.random or math.random)()
end

local function wallclock()
  if M.wallclock then return M.wallclock() end
  local ok, now = pcall(function() return os.time() end)
  return ok and now or nil
end

local RETRY_TRANSPORT = {
  COULDNT_CONNECT = true, COULDNT_RESOLVE_HOST = true, COULDNT_RESOLVE_PROXY = true,
  OPERATION_TIMEDOUT = true, RECV_ERROR = true, SEND_ERROR = true, GOT_NOTHING = true,
  PARTIAL_FILE = true, SSL_CONNECT_ERROR = true, HTTP2 = true, HTTP2_STREAM = true,
  TRICKLE = true,
}
-- Failures that prove the request never left: safe to resend a POST.
local NOT_SENT = {
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
local RETRY_STATUS = { [500] = true, [502] = true, [503] = true, [504] = true }
local IDEMPOTENT_METHODS = { GET = true, HEAD = true, DELETE = true, OPTIONS = true, PUT = false }

M.retry_transport = RETRY_TRANSPORT

-- Hosts whose answers calm.http cut for trickling (under its speed floor),
-- counted for the whole process: from the second such answer on, a host is
-- not retried any more (one slow answer may be bad luck; two are the host).
local trickled = {}
M.trickled = trickled
M.trickle_limit = 2
M.not_sent = NOT_SENT

function M.host_of(url)
  local h = type(url) == "string" and url:match("^%a[%w+.-]*://([^/?#]+)") or nil
  if not h then return tostring(url) end
  return (h:gsub("^.*@", ""))
end

-- TLS verification failures: what the user can do about them.
local TLS_TRUST = { PEER_FAILED_VERIFICATION = true, SSL_CACERT = true, SSL_CACERT_BADFILE = true,
  SSL_ISSUER_ERROR = true }
-- Failures a proxy in the way would explain.
local VIA_PROXY = { COULDNT_CONNECT = true, COULDNT_RESOLVE_PROXY = true, PROXY = true,
  RECV_ERROR = true, SEND_ERROR = true, SSL_CONNECT_ERROR = true, OPERATION_TIMEDOUT = true,
  GOT_NOTHING = true }

local function env(name)
  local ok, v = pcall(os.getenv, name)
  if ok and v and v ~= "" then return v end
  return nil
end

-- The proxy libcurl uses for url, as (variable name, host:port), or nil:
-- https_proxy/HTTPS_PROXY for https, http_proxy for http, then
-- all_proxy/ALL_PROXY, unless no_proxy/NO_PROXY names the host. The proxy's
-- user and password are never shown.
function M.proxy_for(url)
  local scheme, host = tostring(url):match("^(%a[%w+.-]*)://([^/?#:]+)")
  if not scheme then return nil end
  scheme, host = scheme:lower(), host:gsub("^.*@", ""):lower()
  local no = env("no_proxy") or env("NO_PROXY")
  for entry in (no or ""):gmatch("[^,%s]+") do
    local e = entry:lower():gsub("^%.", "")
    if e == "*" or host == e or host:sub(-(#e + 1)) == "." .. e then return nil end
  end
  local names = scheme == "https" and { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" }
    or { "http_proxy", "all_proxy", "ALL_PROXY" }
  for _, name in ipairs(names) do
    local v = env(name)
    if v then
      local hp = v:gsub("^%a[%w+.-]*://", ""):gsub("^.*@", ""):gsub("/.*$", "")
      return name, hp
    end
  end
  return nil
end

-- rest.transport_hint(code, url) -> "" or "; ..." with what to do: a TLS
-- failure names --cacert and SSL_CERT_FILE, a failure behind a proxy names
-- the variable that set it.
function M.transport_hint(code, url)
  local var, hp = M.proxy_for(url)
  local via = var and string.format(" (through the proxy %s from %s)", hp, var) or ""
  if TLS_TRUST[code] then
    return "; the server's certificate is not trusted" .. via .. ": if a proxy or a private CA "
      .. "signs it, add that CA with --cacert FILE or SSL_CERT_FILE (verification stays on)"
  end
  if var and VIA_PROXY[code] then
    return string.format("; through the proxy %s from %s: check it, or list the host in no_proxy", hp, var)
  end
  return ""
end

local function fmt_secs(s)
  if s >= 10 then return string.format("%ds", math.ceil(s)) end
  if s >= 1 then
    if s == math.floor(s) then return string.format("%ds", s) end
    return string.format("%.1fs", s)
  end
  return string.format("%.2gs", s)
end
M.fmt_secs = fmt_secs

-- ------------------------------------------------------------ error_text --

-- rest.error_text(resp): see calm.errtext.
M.error_text = errtext.error_text
local one_line = errtext.one_line

-- rest.code_for(status): "AUTH" for 401/403 (exit 3), "API" otherwise.
function M.code_for(status)
  if status == 401 or status == 403 then return "AUTH" end
  return "API"
end

-- rest.fail(resp, what) -> nil, "<what> answered HTTP <status>: <text>", code
-- For callers judging a reply.
function M.fail(resp, what)
  return nil, string.format("%s answered HTTP %s: %s", what, tostring(resp.status), M.error_text(resp)),
    M.code_for(resp.status)
end

-- ---------------------------------------------------------------- waits --

-- Seconds the server asks us to wait, or nil (no usable hint).
local function server_wait(resp)
  local h = resp.headers or {}
  local ra = h["retry-after"]
  if ra and ra ~= "" then
    local ok, s = pcall(http().parse_retry_after, ra)
    if ok and type(s) == "number" and s >= 0 then return s end
  end
  local reset = tonumber(h["x-ratelimit-reset"] or "")
  if reset and reset > 0 then
    local now = wallclock()
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
M.server_wait = server_wait

local function backoff(k, floor)
  local p = M.policy
  local hi = math.min(p.cap, p.base * 2 ^ (k - 1))
  local lo = math.max(p.min or 0, floor or 0)
  if hi < lo then hi = lo end
  return lo + (hi - lo) * rand()
end
M.backoff = backoff

-- ----------------------------------------------------------------- send --

local function method_of(req)
  return (req.method or "GET"):upper()
end

-- The JSON of a response, or nil plus whether that is a defect (as opposed
-- to an HTML/text error page on a 4xx/5xx, which is data), and for a defect
-- calm.json's kind and message.
local function parse_body(resp)
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

-- calm.json kinds that are properties of the text, not of its transfer: the
-- same answer would be refused again, so it is not retried (issue 13).
local PERMANENT_JSON = { utf8 = true, surrogate = true, noncharacter = true, duplicate = true,
                         number = true, depth = true }
M.permanent_json = PERMANENT_JSON

-- rest.send(req, opts) -> resp | nil, msg, code
-- req: a calm.http request table. opts: {idempotent = bool (default by
-- method), what = "text naming the request"}. Used by client:request and
-- by calm.oauth for token requests.
function M.send(req, opts)
  opts = opts or {}
  local method = method_of(req)
  local idempotent = opts.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT_METHODS[method] == true end
  local url = req.url
  local host = M.host_of(url)
  local what = opts.what or (method .. " " .. log.redact(tostring(url)))
  local attempts = math.max(1, M.policy.attempts)
  local last -- description of the last retryable problem
  local unreachable = 0

  for attempt = 1, attempts do
    local resp, emsg, ecode = http().request(req)
    local wait, why, hinted
    if resp == nil then
      if ecode == "DEADLINE" or ecode == "CANCELLED" then return nil, emsg, ecode end
      -- curl's text without calm.http's "METHOD URL: " (what names the request),
      -- then what the user can do about it
      local hint = M.transport_hint(ecode, url)
      emsg = one_line(emsg or tostring(ecode)):gsub("^%u+ %S+: ", "", 1)
      if UNREACHABLE[ecode] then
        unreachable = unreachable + 1
        if unreachable >= UNREACHABLE[ecode] then
          return nil, string.format("%s failed: cannot reach %s (%s)%s", what, host, emsg,
            hint == "" and "; check the URL and the network or proxy" or hint), ecode
        end
      end
      emsg = emsg .. hint
      local retry = (idempotent and RETRY_TRANSPORT[ecode]) or NOT_SENT[ecode]
      if ecode == "TRICKLE" then
        trickled[host] = (trickled[host] or 0) + 1
        if retry and trickled[host] >= M.trickle_limit then
          return nil, string.format("%s failed: %s; %s keeps trickling (%d slow answers), so it is "
            .. "not retried", what, one_line(emsg or ecode), host, trickled[host]), ecode
        end
      end
      if not retry then
        if not idempotent and not PRE_SEND[ecode] then
          return nil, string.format("%s failed (%s); the outcome is unknown: the server may have "
            .. "acted on it, so look the resource up by name before trying again",
            what, one_line(emsg or ecode)), ecode
        end
        return nil, string.format("%s failed: %s", what, one_line(emsg or tostring(ecode))), ecode
      end
      why = string.format("%s failed (%s)", host, ecode)
      last = { msg = string.format("%s failed: %s", what, one_line(emsg or ecode)),
               code = "RETRY_EXHAUSTED" }
    else
      local status = resp.status
      local router_404 = status == 404 and (resp.headers or {})["x-cf-routererror"] ~= nil
        and tostring(resp.headers["x-cf-routererror"]):find("unknown_route", 1, true)
      if status == 429 or ((RETRY_STATUS[status] or router_404) and idempotent) then
        -- 503 may carry Retry-After too
        wait = server_wait(resp)
        hinted = wait ~= nil
        why = status == 429 and ("rate limited by " .. host)
          or string.format("%s answered %d", host, status)
        last = { msg = string.format("%s answered HTTP %d: %s", what, status, M.error_text(resp)),
                 code = "RETRY_EXHAUSTED" }
      elseif RETRY_STATUS[status] then
        -- not idempotent: data, but flagged, since the server may have acted
        resp.json = (parse_body(resp))
        resp.outcome_unknown = true
        return resp
      else
        local v, defect, kind, jmsg = parse_body(resp)
        if not defect then
          resp.json = v
          return resp
        end
        if PERMANENT_JSON[kind] then
          return nil, string.format("%s answered HTTP %d with JSON that is not I-JSON (RFC 7493), "
            .. "refused and not retried: %s", what, status,
            one_line((tostring(jmsg):gsub("^invalid JSON from response: ", "")))), "BAD_RESPONSE"
        end
        local m = string.format("truncated or invalid JSON from %s %s (HTTP %d)",
          method, log.redact(tostring(url)), status)
        if not idempotent then return nil, m, "BAD_RESPONSE" end
        why = "truncated or invalid JSON from " .. host
        last = { msg = m, code = "BAD_RESPONSE" }
      end
    end

    if attempt == attempts then break end
    -- hinted waits of 0 (a date in the past) still get the minimum backoff
    if hinted then
      if wait <= 0 then wait = backoff(1) end
    else
      wait = backoff(attempt, (resp and resp.status == 429) and M.policy.rate_min or nil)
    end
    local remaining = task.remaining()
    if wait > remaining then
      if hinted then
        return nil, string.format("%s asks to wait %s, beyond the --timeout deadline (%s left)",
          host, fmt_secs(wait), fmt_secs(math.max(0, remaining))), "DEADLINE"
      end
      return nil, string.format("%s; the next retry in %s would pass the --timeout deadline",
        last and last.msg or why, fmt_secs(wait)), "DEADLINE"
    end
    L().info("%s; retrying in %s (attempt %d/%d)", why, fmt_secs(wait), attempt + 1, attempts)
    local ok, smsg, scode = sleep(wait)
    if not ok then return nil, smsg or "deadline passed", scode or "DEADLINE" end
  end

  local msg = last and last.msg or (what .. " failed")
  return nil, string.format("%s (gave up after %d attempts; safe to rerun)", msg, attempts),
    last and last.code or "RETRY_EXHAUSTED"
end

-- --------------------------------------------------------------- client --

local Client = {}
Client.__index = Client

-- One query value: a table is a comma-separated list; literal_commas keeps
-- the commas between encoded parts (Cloud Foundry filters: a comma is "or",
-- one inside a value would be %2C).
local function encode_value(v, literal_commas)
  if type(v) == "table" then
    local items = {}
    for i, e in ipairs(v) do items[i] = tostring(e) end
    v = table.concat(items, ",")
  end
  v = tostring(v)
  if not literal_commas then return codec.url_encode(v) end
  local parts = {}
  for part in (v .. ","):gmatch("([^,]*),") do parts[#parts + 1] = codec.url_encode(part) end
  return table.concat(parts, ",")
end

-- rest.encode_query(q [, literal_commas]) -> "k=v&..." with sorted keys.
local function encode_query(q, literal_commas)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = codec.url_encode(tostring(k)) .. "=" .. encode_value(q[k], literal_commas)
  end
  return table.concat(parts, "&")
end
M.encode_query = encode_query

-- rest.client{base_url, session, name, cacert, headers} -> client
function M.client(o)
  if type(o) ~= "table" then error("rest.client: expects a table", 2) end
  if o.base_url ~= nil and type(o.base_url) ~= "string" then
    error("rest.client: 'base_url' must be a string", 2)
  end
  return setmetatable({
    base_url = o.base_url and o.base_url:gsub("/+$", "") or nil,
    session = o.session,
    name = o.name or (o.base_url and M.host_of(o.base_url)) or "server",
    cacert = o.cacert,
    headers = o.headers or {},
  }, Client)
end

function Client:url_for(o)
  local url = o.url
  if not url then
    if type(o.path) ~= "string" then error("client:request: needs 'path' or 'url'", 3) end
    if o.path:match("^https?://") then
      url = o.path
    else
      if not self.base_url then error("client:request: no base_url for a path", 3) end
      url = self.base_url .. (o.path:sub(1, 1) == "/" and "" or "/") .. o.path
    end
  end
  if o.query and next(o.query) then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. encode_query(o.query)
  end
  return url
end

-- client:request{method, path | url, query, json | form | body, headers,
--                idempotent, timeout} -> resp | nil, msg, code
function Client:request(o)
  if type(o) ~= "table" then error("client:request: expects a table", 2) end
  local method = (o.method or "GET"):upper()
  local url = self:url_for(o)
  local idempotent = o.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT_METHODS[method] == true end
  local what = method .. " " .. log.redact(url)

  local function build(token)
    local headers = { Accept = "application/json" }
    for k, v in pairs(self.headers) do headers[k] = v end
    for k, v in pairs(o.headers or {}) do headers[k] = v end
    if token then headers.Authorization = "Bearer " .. token end
    return { url = url, method = method, headers = headers, json = o.json, form = o.form,
             body = o.body, timeout = o.timeout, cacert = self.cacert }
  end

  local function token()
    if not self.session then return true end
    return self.session:token()
  end

  local tok, tmsg, tcode = token()
  if not tok then return nil, tmsg, tcode end
  local resp, msg, code = M.send(build(self.session and tok or nil), { idempotent = idempotent, what = what })
  if resp and resp.status == 401 and self.session then
    -- the token may have been revoked or expired early: one fresh token, one resend
    -- (a 401 means the request was refused, so resending a POST is safe)
    L().debug("%s answered 401; fetching a new token", what)
    self.session:invalidate()
    tok, tmsg, tcode = token()
    if not tok then return nil, tmsg, tcode end
    resp, msg, code = M.send(build(tok), { idempotent = idempotent, what = what })
    if resp and resp.status == 401 then
      -- name the key that was refused (the session knows its file), so the
      -- user knows which credentials to renew
      return nil, string.format("%s was refused (HTTP 401): %s",
        self.session.key_name or self.session.name or self.name,
        M.error_text(resp)), "AUTH"
    end
  end
  -- (calm.http already logs every exchange at debug level, with its timing)
  return resp, msg, code
end

-- The JSON of a response, decoded once and cached on it: rest already
-- decodes what it can; a caller that got the response another way (or
-- wants the error body of a 4xx) calls this. `what` names the API for the
-- error message. Returns nil for an empty body.
function M.body_json(resp, what)
  if resp.json ~= nil then return resp.json end
  if resp.body and resp.body:find("%S") then
    resp.json = json.decode(resp.body, what)
    return resp.json
  end
  return nil
end

return M
