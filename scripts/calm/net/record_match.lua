-- calm.net.record_match: which recorded exchange answers a request under --replay.
--
--   match.find(exchanges, used, first, method, url, request, loose)
--     -> index | nil, {index = n | nil, field = "name"}
--   match.difference(recorded_request, live_request) -> nil | field
--
-- Strict (the default): method, URL and request body must match. Bodies are
-- compared as data: JSON (`json`, or a `body` that parses) by value, so key
-- order and white space do not matter; forms (`form`, or a form-encoded
-- `body`) by their decoded fields. Secrets compare as their placeholders: a
-- recording holds stand-ins, so every value redaction would replace (under a
-- secret name, a JWT, a private key, a registered secret) counts as the same
-- secret on both sides. The first differing field is the shallowest, fields
-- of one level in sorted order: `name` before `labels.owner`, arrays counted
-- from 1 (`parameters.xs-security.authorities[3]`). Headers are not compared.
-- Loose: method and URL only, the first unused exchange (as before strict).
local json = require "calm.lib.json"
local log = require "calm.log"
local codec = require "calm.codec"

local M = {}

local SECRET = setmetatable({}, { __tostring = function() return "<secret>" end })
local STANDIN_RUN = "calmbind%-redacted%-[%w]+"
local PRIVATE_PEM = "%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY%-%-%-%-%-.-%-%-%-%-%-END [%u ]*PRIVATE KEY%-%-%-%-%-\n?"

local function is_jwt(s)
  return s:match("^eyJ[%w_%-]+%.[%w_%-]+%.[%w_%-]*$") ~= nil
end

-- A string as the comparison sees it: what record's redactor replaces by a
-- stand-in is SECRET; inside longer text, stand-ins and redacted runs are "***".
local function plain(s, secret)
  if secret or is_jwt(s) or s:match("^calmbind%-redacted%-[%w]+$") then return SECRET end
  if s:find("-----BEGIN", 1, true) and s:find("PRIVATE KEY", 1, true) and
     s:gsub(PRIVATE_PEM, ""):match("^%s*$") then
    return SECRET
  end
  if s:find("-----BEGIN", 1, true) and s:find(codec.b64encode("calmbind-redacted-"):sub(1, 20), 1, true) then
    return SECRET   -- record's stand-in for a private key
  end
  s = s:gsub(PRIVATE_PEM, "***")
  return (log.redact(s):gsub(STANDIN_RUN, "***"))
end

local function normal(v, secret, depth)
  local tv = type(v)
  if tv == "string" then return plain(v, secret) end
  if tv ~= "table" then return v end
  if depth > 200 then error("replay: request data nested deeper than 200 levels", 0) end
  local out = {}
  for k, e in pairs(v) do
    local s = secret
    if type(k) == "string" then s = log.secret_name(k) end
    out[k] = normal(e, s, depth + 1)
  end
  return out
end

local function header(headers, name)
  for k, v in pairs(headers or {}) do
    if type(k) == "string" and k:lower() == name then return v end
  end
end

-- The body of a request ({json | form | body, headers}) as data, secrets as SECRET.
local function payload(req)
  if req.json ~= nil then return normal(req.json, false, 0) end
  if req.form ~= nil then
    local fields = {}
    for k, v in pairs(req.form) do fields[k] = tostring(v) end
    return normal(fields, false, 0)
  end
  local body = req.body
  if body == nil or body == "" then return nil end
  local ctype = tostring(header(req.headers, "content-type") or ""):lower()
  if ctype:find("x-www-form-urlencoded", 1, true) then
    local fields = codec.form_decode(body)
    if fields then return normal(fields, false, 0) end
  end
  local ok, doc = pcall(json.decode, body, "body")
  if ok and type(doc) == "table" then return normal(doc, false, 0) end
  return plain(body, false)
end

local function sorted_keys(a, b)
  local keys, seen = {}, {}
  for _, t in ipairs({ a, b }) do
    for k in pairs(t) do
      if not seen[k] then seen[k], keys[#keys + 1] = true, k end
    end
  end
  table.sort(keys, function(x, y)
    local tx, ty = type(x), type(y)
    if tx ~= ty then return tx == "number" end   -- array entries first
    return x < y
  end)
  return keys
end

local function field(path, k)
  if type(k) == "number" then return path .. "[" .. k .. "]" end
  return path == "" and tostring(k) or path .. "." .. tostring(k)
end

-- The shallowest differing field of two normalised values, "" for the whole body.
local function first_difference(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then return nil end
    return "", a, b, 0
  end
  local level, depth = { { "", a, b } }, 1
  while #level > 0 do
    local next_level = {}
    for _, item in ipairs(level) do
      local path, x, y = item[1], item[2], item[3]
      for _, k in ipairs(sorted_keys(x, y)) do
        local u, v = x[k], y[k]
        if type(u) == "table" and type(v) == "table" then
          next_level[#next_level + 1] = { field(path, k), u, v }
        elseif u ~= v then
          return field(path, k), u, v, depth
        end
      end
    end
    level, depth = next_level, depth + 1
  end
  return nil
end

-- The recorded side, normalised once per exchange.
local recorded_cache = setmetatable({}, { __mode = "k" })

local function recorded_payload(req)
  local hit = recorded_cache[req]
  if hit == nil then
    hit = { payload(req) }
    recorded_cache[req] = hit
  end
  return hit[1]
end

-- nil when the bodies match, else the first differing field ("body" when one
-- has a body and the other none, or they are of different kinds), the
-- recorded value, the requested one (normalised: secrets are M.SECRET) and
-- the field's depth (0 for the whole body).
function M.difference(recorded, live)
  local path, r, l, depth = first_difference(recorded_payload(recorded or {}), payload(live or {}))
  if path == nil then return nil end
  if path == "" then return "body", r, l, 0 end
  return path, r, l, depth
end

-- The first unused exchange of that method and URL whose body matches (loose:
-- whatever its body). Else nil and why: of the exchanges with that method and
-- URL the one that matches longest (its first difference is deepest; the
-- first of those), or with none the next unused exchange and "method"/"url".
function M.find(exchanges, used, first, method, url, request, loose)
  local best
  for i = first, #exchanges do
    local x = exchanges[i]
    if not used[i] and x.method == method and x.url == url then
      if loose then return i end
      local f, r, l, depth = M.difference(x.request, request)
      if not f then return i end
      if not best or depth > best.depth then
        best = { index = i, field = f, recorded = r, requested = l, depth = depth }
      end
    end
  end
  if best then return nil, best end
  for i = first, #exchanges do
    if not used[i] then
      return nil, { index = i, field = exchanges[i].url == url and "method" or "url" }
    end
  end
  return nil, {}
end

-- "recorded X, requested Y" for scalars short enough for one line, else nil.
function M.describe(recorded, requested)
  local function show(v)
    if v == nil then return "nothing" end
    if v == SECRET then return "a secret" end
    if type(v) == "table" then return nil end
    if type(v) == "string" and #v > 60 then return nil end
    local ok, text = pcall(json.encode, v)
    return ok and text or tostring(v)
  end
  local r, l = show(recorded), show(requested)
  if not r or not l then return nil end
  return "recorded " .. r .. ", requested " .. l
end

M.SECRET = SECRET

return M
