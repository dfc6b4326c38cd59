-- calm.net.record: --record FILE and --replay FILE (the host calls start and finish).
--
--   record.start("record", path)  -- http.request also keeps every exchange
--   record.start("replay", path, {loose =, stop =})  -- http.request answers from the file
--   record.finish()               -- writes the recording / reports unused exchanges
--
-- A recording is JSON: {"calmbind_recording": 1, "exchanges": [{method, url,
-- request = {headers, json | form | body, mtls}, response = {status, headers,
-- body, close_delimited} | error = {message, code}}, ...]} in the order the
-- answers arrived. Every secret is replaced before anything is written (see
-- Redactor): the file holds stand-ins, which the replay serves as they are.
-- Which exchange answers a request is calm.net.record_match's decision.
local http = require "calm.http"
local json = require "calm.lib.json"
local log = require "calm.log"
local codec = require "calm.codec"
local match = require "calm.net.record_match"
local fs = require "calm.fs"
local jwt = require "calm.lib.jwt"
local task = require "calm.task"

local M = {}

local FORMAT = 1
local MAX_FILE = 256 << 20
local STANDIN = "calmbind-redacted-"
local NONE_HEADER = codec.b64url_encode('{"alg":"none","typ":"JWT"}')
local ORDER = { "calmbind_recording", "note", "exchanges", "method", "url", "request", "response",
                "error", "status", "headers", "json", "form", "body", "close_delimited", "message", "code" }

-- ------------------------------------------------------------- redaction --

-- One Redactor per written file: the same secret gets the same stand-in everywhere.
--  * a value of a field whose name redaction treats as secret (log.secret_name:
--    clientsecret, password, access_token, key, certificate, Authorization, ...):
--    a JWT becomes an unsigned JWT ("alg": "none") with the same claims, so
--    scopes and zone still read the same; a PEM block keeps its BEGIN/END
--    lines around a stand-in body; anything else becomes "calmbind-redacted-N";
--  * any other string: a whole JWT or a PEM private key as above, then
--    log.redact (registered secrets, Bearer/Basic, URL userinfo: "***").
local Redactor = {}
Redactor.__index = Redactor

local function new_redactor()
  return setmetatable({ map = {}, standins = {}, n = 0 }, Redactor)
end

local function is_jwt(s)
  return s:match("^eyJ[%w_%-]+%.[%w_%-]+%.[%w_%-]*$") ~= nil
end

function Redactor:fake_jwt(s)
  local claims = jwt.decode(s)
  if type(claims) ~= "table" then return nil end
  -- pretty, not compact: the stand-in's payload never repeats the original's bytes
  return NONE_HEADER .. "." .. codec.b64url_encode(json.pretty(claims)) .. "." .. STANDIN .. "signature"
end

function Redactor:fake_pem(s, n)
  local label = s:match("%-%-%-%-%-BEGIN ([%u%d ]+)%-%-%-%-%-")
  if not label then return nil end
  return "-----BEGIN " .. label .. "-----\n" .. codec.b64encode(STANDIN .. n) ..
         "\n-----END " .. label .. "-----\n"
end

-- Certificates and public keys are public: they stay, even as the value of
-- a "certificate" or "verificationkey" field.
local function public_pem(s)
  local any = false
  for label in s:gmatch("%-%-%-%-%-BEGIN ([%u%d ]+)%-%-%-%-%-") do
    if label ~= "CERTIFICATE" and label ~= "PUBLIC KEY" then return false end
    any = true
  end
  return any and not s:find("PRIVATE", 1, true)
end

-- The stand-in for a secret value (stable within this redactor).
function Redactor:standin(s)
  if self.standins[s] or public_pem(s) then return s end
  local v = self.map[s]
  if v then return v end
  self.n = self.n + 1
  v = (is_jwt(s) and self:fake_jwt(s)) or (s:find("-----BEGIN", 1, true) and self:fake_pem(s, self.n))
      or (STANDIN .. self.n)
  self.map[s], self.standins[v] = v, true
  return v
end

local PRIVATE_PEM = "%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-.-%-%-%-%-%-END [%u ]*PRIVATE KEY%-%-%-%-%-\n?"

-- A string not under a secret name.
function Redactor:scrub(s)
  if self.standins[s] then return s end
  if is_jwt(s) then return self:standin(s) end
  s = s:gsub(PRIVATE_PEM, function(block) return self:standin(block) end)
  local r = log.redact(s)
  if r ~= s and not self.standins[s] then return r end
  return s
end

-- A copy of v with every secret replaced; changes[#changes+1] = {from, to}.
function Redactor:walk(v, secret, changes, depth)
  local tv = type(v)
  if tv == "string" then
    local r = secret and self:standin(v) or self:scrub(v)
    if r ~= v and changes then changes[#changes + 1] = { v, r } end
    return r
  end
  if tv ~= "table" then return v end
  if depth > 200 then error("record: data nested deeper than 200 levels", 0) end
  local out = json.is_array(v) and json.array({}) or {}
  for k, e in pairs(v) do
    local s = secret
    if type(k) == "string" then s = log.secret_name(k) end
    out[k] = self:walk(e, s, changes, depth + 1)
  end
  return out
end

local function escaped_forms(s)
  local e = json.encode(s):sub(2, -2)
  local plain = e:gsub("\\/", "/")
  return plain ~= e and { e, plain } or { e }
end

local function replace_plain(text, from, to)
  local out, pos = {}, 1
  while true do
    local a, b = text:find(from, pos, true)
    if not a then break end
    out[#out + 1] = text:sub(pos, a - 1)
    out[#out + 1] = to
    pos = b + 1
  end
  out[#out + 1] = text:sub(pos)
  return table.concat(out)
end

-- A body: JSON keeps its bytes with only the secret strings swapped (checked
-- by decoding again; re-encoded if a secret is written in a way not found);
-- anything else is scrubbed as text.
function Redactor:body(text)
  if text == nil or text == "" then return text end
  local doc = json.decode(text, "body")
  if type(doc) ~= "table" then return self:scrub(text) end
  local changes = {}
  local clean = self:walk(doc, false, changes, 0)
  if #changes == 0 then return text end
  local out = text
  for _, c in ipairs(changes) do
    local to = escaped_forms(c[2])[1]:gsub("\\/", "/")
    for _, form in ipairs(escaped_forms(c[1])) do out = replace_plain(out, form, to) end
  end
  local again = json.decode(out, "body")
  local left = {}
  if type(again) == "table" then self:walk(again, false, left, 0) end
  if type(again) ~= "table" or #left > 0 then return json.encode(clean) end
  return out
end

function Redactor:exchange(x)
  local req, out = x.request, { method = x.method, url = log.redact(x.url), request = {} }
  out.request.headers = self:walk(req.headers or {}, false, nil, 0)
  if req.json ~= nil then out.request.json = self:walk(req.json, false, nil, 0) end
  if req.form ~= nil then out.request.form = self:walk(req.form, false, nil, 0) end
  if req.body ~= nil then out.request.body = self:body(req.body) end
  out.request.mtls = req.mtls or nil
  if x.response then
    local r = x.response
    out.response = { status = r.status, headers = self:walk(r.headers or {}, false, nil, 0),
                     body = self:body(r.body), close_delimited = r.close_delimited }
  else
    out.error = { message = log.redact(tostring(x.error.message)), code = x.error.code }
  end
  return out
end

-- The whole file's text; raises if any secret it replaced is still in it.
function Redactor:document(exchanges)
  local doc = { calmbind_recording = FORMAT, exchanges = json.array({}),
                note = "HTTP exchanges recorded by calmbind --record; secrets replaced by stand-ins" }
  for i, x in ipairs(exchanges) do doc.exchanges[i] = self:exchange(x) end
  local text = json.pretty(doc, ORDER) .. "\n"
  for secret in pairs(self.map) do
    for _, form in ipairs(escaped_forms(secret)) do
      if #secret >= 6 and text:find(form, 1, true) then
        error("record: a secret survived redaction; the recording was not written", 0)
      end
    end
  end
  return text
end

M.new_redactor = new_redactor   -- for tests

-- -------------------------------------------------------------- recording --

local state = nil   -- {mode, path, real, exchanges, used, first, loose, stop}

local function copy(v, depth)
  if type(v) ~= "table" then return v end
  depth = depth or 0
  if depth > 200 then return nil end
  local out = {}
  for k, e in pairs(v) do out[k] = copy(e, depth + 1) end
  return setmetatable(out, getmetatable(v))
end

local function recording_request(opts)
  -- what goes out is captured before the call: the caller may change its tables later
  local req = { headers = copy(opts.headers), json = copy(opts.json), form = copy(opts.form),
                body = opts.body, mtls = opts.cert ~= nil }
  local resp, msg, code = state.real(opts)
  local x = { method = (type(opts.method) == "string" and opts.method or "GET"):upper(),
              url = opts.url, request = req }
  if resp then
    x.response = { status = resp.status, headers = copy(resp.headers), body = resp.body,
                   close_delimited = resp.close_delimited }
  else
    x.error = { message = msg, code = code }
  end
  state.exchanges[#state.exchanges + 1] = x
  return resp, msg, code
end

-- ----------------------------------------------------------------- replay --

local function bad_file(path, what)
  return nil, string.format("--replay %s: %s", path, what), "INPUT"
end

local function load_recording(path)
  local text, msg, code = fs.read(path, MAX_FILE)
  if not text then return nil, "--replay: " .. msg, code end
  local doc, jmsg = json.decode(text, path)
  if not doc then return bad_file(path, jmsg) end
  if type(doc) ~= "table" or doc.calmbind_recording ~= FORMAT or type(doc.exchanges) ~= "table" then
    return bad_file(path, "not a calmbind recording (no \"calmbind_recording\": 1 with \"exchanges\")")
  end
  for i, x in ipairs(doc.exchanges) do
    local r = x.response
    if type(x.method) ~= "string" or type(x.url) ~= "string" then
      return bad_file(path, "exchange " .. i .. " has no method or url")
    end
    if r ~= nil and (type(r) ~= "table" or math.type(r.status) ~= "integer"
                     or type(r.body or "") ~= "string" or type(r.headers or {}) ~= "table") then
      return bad_file(path, "exchange " .. i .. ": response needs an integer status, headers and a body")
    end
    if r == nil and (type(x.error) ~= "table" or type(x.error.message) ~= "string") then
      return bad_file(path, "exchange " .. i .. " has neither a response nor an error")
    end
  end
  return doc.exchanges
end

local function next_unused()
  for i = state.first, #state.exchanges do
    if not state.used[i] then return i end
  end
  return nil
end

-- The one line a strict replay stops with.
local function mismatch_line(method, url, why)
  local ex, n = state.exchanges, why.index
  if not n then
    return string.format("replay: %s %s is not in the recording %s (every recorded exchange was used)",
      method, url, state.path)
  end
  local head
  if why.field == "method" or why.field == "url" then
    head = string.format("replay: %s %s is not in the recording %s: the next unused exchange, #%d %s %s, "
      .. "differs at '%s'", method, url, state.path, n, ex[n].method, ex[n].url, why.field)
  else
    head = string.format("replay: %s %s differs from exchange #%d of the recording %s at '%s'",
      method, url, n, state.path, why.field)
  end
  local values = why.field ~= "method" and why.field ~= "url" and match.describe(why.recorded, why.requested)
  return log.redact(values and head .. ": " .. values or head)
end

local function serve(i, opts)
  state.used[i] = true
  while state.used[state.first] do state.first = state.first + 1 end
  local x = state.exchanges[i]
  if not x.response then return nil, x.error.message, x.error.code end
  local r = x.response
  return { status = r.status, headers = copy(r.headers or {}), body = r.body or "", url = opts.url,
           close_delimited = r.close_delimited == true }
end

local function replaying_request(opts)
  if type(opts) ~= "table" then error("http.request: bad argument #1 (table expected)", 2) end
  if type(opts.url) ~= "string" then error("http.request: 'url' must be a string", 2) end
  if not task.current() then
    error("http.request must be called from a flow (not at module load time, "
      .. "in a metamethod or inside a plain coroutine)", 2)
  end
  if task.remaining() <= 0 then return nil, "deadline passed (--timeout)", "DEADLINE" end
  local method = (type(opts.method) == "string" and opts.method or "GET"):upper()
  local url = log.redact(opts.url)
  local ex = state.exchanges
  local i, why = match.find(ex, state.used, state.first, method, url,
    { headers = opts.headers, json = opts.json, form = opts.form, body = opts.body }, state.loose)
  if i then return serve(i, opts) end
  if not state.loose then
    -- the first request the recording did not expect ends the run: whatever
    -- the script would do with a borrowed answer is no test of it
    local line = mismatch_line(method, url, why)
    state.stop(line)
    error(line, 0)   -- a stop that returned
  end
  local n = next_unused()
  error(string.format("replay: %s %s is not in the recording %s (%s)", method, url, state.path,
    n and string.format("next unused exchange: #%d %s %s", n, ex[n].method, ex[n].url)
      or "every recorded exchange was used"), 0)
end

-- ------------------------------------------------------------------- API --

-- record.start(mode, path [, how]) -> true | nil, message, code
-- how (replay): loose = true matches by method and URL only; stop(line) ends
-- the run on a request that differs from the recording (the host's: prints
-- line, exit 1).
function M.start(mode, path, how)
  if state then error("record.start: already started", 2) end
  if mode == "record" then
    state = { mode = mode, path = path, real = http.request, exchanges = {} }
    http.request = recording_request
  elseif mode == "replay" then
    local exchanges, msg, code = load_recording(path)
    if not exchanges then return nil, msg, code end
    how = how or {}
    if how.stop ~= nil and type(how.stop) ~= "function" then error("record.start: stop must be a function", 2) end
    state = { mode = mode, path = path, real = http.request, exchanges = exchanges, used = {}, first = 1,
              loose = how.loose == true, stop = how.stop or function(line) error(line, 0) end }
    http.request = replaying_request
    log.debug("replay: %d exchanges from %s (matched by %s); no request leaves this process", #exchanges, path,
      state.loose and "method and URL" or "method, URL and body")
  else
    error("record.start: mode must be \"record\" or \"replay\"", 2)
  end
  return true
end

-- record.finish() -> true | nil, message, code
function M.finish()
  if not state then return true end
  local s = state
  if s.mode == "replay" then
    local n, unused = next_unused(), 0
    for i = 1, #s.exchanges do if not s.used[i] then unused = unused + 1 end end
    if n then
      log.warn("replay: %d recorded exchange(s) were not requested (first: #%d %s %s)", unused, n,
        s.exchanges[n].method, s.exchanges[n].url)
    end
    return true
  end
  local ok, text = pcall(function() return new_redactor():document(s.exchanges) end)
  if not ok then return nil, text, "INPUT" end
  local wrote, msg, code = fs.write_private(s.path, text)
  if not wrote then return nil, "--record: " .. msg, code end
  log.debug("record: %d exchanges written to %s", #s.exchanges, s.path)
  return true
end

return M
