-- calm.net.rest: JSON-over-HTTP for the BTP clients, with the retry rules of
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
-- resource up by name. rest.send is the loop; calm.net.retry judges
-- transport failures and waits, calm.net.answer judges HTTP answers.
local json = require "calm.lib.json"
local errtext = require "calm.net.errtext"
local log = require "calm.log"
local http = require "calm.http"
local url = require "calm.url"
local retry, answer = require "calm.net.retry", require "calm.net.answer"

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

local function transport()
  return M.http or http
end

local IDEMPOTENT_METHODS = { GET = true, HEAD = true, DELETE = true, OPTIONS = true, PUT = false }

-- What is retried, and the waits: calm.net.retry (transport failures,
-- backoff, Retry-After) and calm.net.answer (statuses, bad JSON).
M.trickled = {} -- hosts that trickled, counted per process
M.trickle_limit = 2

-- host[:port] of a URL (a user name and password dropped), what messages
-- and the trickle count name a server by; the text itself if it is no URL.
local function host_port(u)
  return u.port and (u.host .. ":" .. u.port) or u.host
end

function M.host_of(s)
  local u = type(s) == "string" and url.parse(s, { userinfo = true })
  if not u then return tostring(s) end
  return host_port(u)
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
function M.proxy_for(s)
  local u = url.parse(tostring(s), { userinfo = true })
  if not u then return nil end
  local scheme, host = u.scheme, u.host
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
      -- a proxy setting may be host:port alone (http, as libcurl reads it)
      local p = url.parse(v, { userinfo = true, default_scheme = "http" })
      return name, p and host_port(p) or "(unreadable)"
    end
  end
  return nil
end

-- rest.transport_hint(code, url) -> "" or "; ..." with what to do: a TLS
-- failure names --cacert and SSL_CERT_FILE, a failure behind a proxy names
-- the variable that set it.
function M.transport_hint(code, target)
  local var, hp = M.proxy_for(target)
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

-- ------------------------------------------------------------ error_text --

-- rest.error_text(resp): see calm.net.errtext.
M.error_text = errtext.error_text

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

-- ----------------------------------------------------------------- send --

-- rest.send(req, opts) -> resp | nil, msg, code
-- req: a calm.http request table. opts: {idempotent = bool (default by
-- method), what = "text naming the request"}. Used by client:request and
-- by calm.net.oauth for token requests.
function M.send(req, opts)
  opts = opts or {}
  local method = (req.method or "GET"):upper()
  local idempotent = opts.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT_METHODS[method] == true end
  local st = { method = method, idempotent = idempotent, url = req.url, host = M.host_of(req.url),
    what = opts.what or (method .. " " .. log.redact(tostring(req.url))),
    attempts = math.max(1, M.policy.attempts), unreachable = 0, env = M }
  for attempt = 1, st.attempts do
    local resp, emsg, ecode = transport().request(req)
    st.wait, st.hinted, st.why = nil, nil, nil
    local r
    if resp == nil then
      r = table.pack(retry.transport(st, emsg, ecode))
    else
      r = table.pack(answer.judge(st, resp))
    end
    if r[1] then return table.unpack(r, 2, r.n) end
    if attempt == st.attempts then break end
    local ok, pmsg, pcode = retry.pause(st, attempt, resp)
    if not ok then return nil, pmsg, pcode end
  end
  return retry.exhausted(st)
end

-- --------------------------------------------------------------- client --

local Client = {}
Client.__index = Client


-- rest.client{base_url, session, name, cacert, headers} -> client
function M.client(o)
  if type(o) ~= "table" then error("rest.client: expects a table", 2) end
  if o.base_url ~= nil and type(o.base_url) ~= "string" then
    error("rest.client: 'base_url' must be a string", 2)
  end
  return setmetatable({
    base_url = o.base_url,
    session = o.session,
    name = o.name or (o.base_url and M.host_of(o.base_url)) or "server",
    cacert = o.cacert,
    headers = o.headers or {},
  }, Client)
end

-- The URL of a request: o.url, or o.path (which may carry ?query, or be an
-- absolute URL: a next-page link) under the base URL's path; o.query added
-- (calm.url.query). url | nil, why (a URL calm.url refuses).
function Client:url_for(o)
  local target = o.url or o.path
  if type(target) ~= "string" then error("client:request: needs 'path' or 'url'", 3) end
  local joined, why, code = url.join(self.base_url or "", target, o.query and next(o.query) and o.query or nil)
  if joined then return joined end
  if not self.base_url and code == "NOT_URL" and not url.parse(target) then
    error("client:request: no base_url for a path", 3)
  end
  return nil, string.format("%s: %s %s", self.name, log.redact(target), why)
end

-- o.json as the body (calm.lib.json: a json.array is [] even when empty), with
-- its Content-Type unless the headers name one. calm.http sends strings.
local function json_body(o, headers)
  if o.body ~= nil or o.form ~= nil then error("client:request: give only one of json, form and body", 4) end
  local has_type = false
  for k in pairs(headers) do
    if type(k) == "string" and k:lower() == "content-type" then has_type = true end
  end
  if not has_type then headers["Content-Type"] = "application/json" end
  return json.encode(o.json)
end

-- client:request{method, path | url, query, json | form | body, headers,
--                idempotent, timeout} -> resp | nil, msg, code
function Client:request(o)
  if type(o) ~= "table" then error("client:request: expects a table", 2) end
  local method = (o.method or "GET"):upper()
  local target, why = self:url_for(o)
  if not target then return nil, why, "INSECURE_URL" end
  local idempotent = o.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT_METHODS[method] == true end
  local what = method .. " " .. log.redact(target)

  local function build(token)
    local headers = { Accept = "application/json" }
    for k, v in pairs(self.headers) do headers[k] = v end
    for k, v in pairs(o.headers or {}) do headers[k] = v end
    if token then headers.Authorization = "Bearer " .. token end
    return { url = target, method = method, headers = headers, form = o.form,
             body = o.json ~= nil and json_body(o, headers) or o.body, timeout = o.timeout, cacert = self.cacert }
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
