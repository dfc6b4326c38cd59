-- calm.btp.client: what every BTP client (calm.btp.sm, calm.btp.cf, calm.btp.cis) is built
-- on, so that none of them borrows from a sibling.
--
--   local client = require "calm.btp.client"
--   local C = client.class { api = "Service Manager", error_text = function(j, resp) ... end }
--   local session = client.session_from_key(t.uaa, "the cis key", "Cloud Management service", cacert)
--   local self = client.new(C, { rest = rc, session = session }, opts)  -- opts.poll, opts.on_action
--   local j, msg, code = self:read_json(self.rest, "/v1/x", "reading x")
--
-- A class names its API (for JSON and error messages) and how to find the
-- complaint in an error answer; the base gives it the JSON reads
-- (client:read_json), the one-line error text (client:response_text), the
-- status -> code mapping (client.code_for), paths with a query
-- (client:where, over calm.url.query) and the run report's note (client:_note). Waits for
-- asynchronous work are calm.lib.poll's. Expected failures: nil, message, code.
local rest = require "calm.net.rest"
local poll = require "calm.lib.poll"
local oauth = require "calm.net.oauth"
local url = require "calm.url"

local M = {}

-- 401/403 -> "AUTH" (exit 3), any other HTTP failure -> "API" (exit 1).
M.code_for = rest.code_for

-- The JSON of a response (decoded once), api naming the server in messages.
function M.body_json(resp, api)
  return rest.body_json(resp, api)
end

-- "HTTP 404 <text>": the complaint extract(j, resp) finds in the decoded
-- error answer (j is nil when the body is no JSON object).
function M.response_text(resp, api, extract)
  local j = M.body_json(resp, api)
  local t = extract(type(j) == "table" and j or nil, resp)
  return "HTTP " .. tostring(resp.status) .. ((t and t ~= "") and (" " .. t) or "")
end

-- A session for the OAuth credentials block t of a key (calm.net.oauth):
-- session | nil, msg, code ("INPUT" for a key without usable credentials).
function M.session_from_key(t, what, name, cacert)
  local grant, msg, code = oauth.grant_from_key(t, what)
  if not grant then return nil, msg, code or "INPUT" end
  grant.cacert = grant.cacert or cacert
  return oauth.session(grant, { name = name })
end

-- A calm.net.rest client for one API base URL.
function M.rest_client(base_url, session, name, cacert)
  return rest.client { base_url = base_url, session = session, name = name, cacert = cacert }
end

-- ------------------------------------------------------------- class --

local Base = {}

-- client.class{api = "Service Manager", error_text = function(j, resp) -> text|nil}
-- -> a method table whose instances have Base's methods.
function M.class(spec)
  assert(type(spec) == "table" and type(spec.api) == "string" and type(spec.error_text) == "function",
    "client.class: needs {api = name, error_text = function}")
  local C = { api = spec.api, error_text = spec.error_text }
  C.__index = C
  return setmetatable(C, { __index = Base })
end

-- client.new(C, fields, opts) -> an instance of C with fields, the poll
-- policy (opts.poll, else calm.lib.poll's) and the run report's hook
-- (opts.on_action(action_table)).
function M.new(C, fields, opts)
  opts = opts or {}
  fields.poll_policy = opts.poll or poll.policy
  fields.on_action = opts.on_action
  fields.requests = 0
  return setmetatable(fields, C)
end

function Base:_note(action)
  if self.on_action then self.on_action(action) end
end

function Base:response_text(resp)
  return M.response_text(resp, self.api, self.error_text)
end

function Base:body_json(resp)
  return M.body_json(resp, self.api)
end

-- One request through rest client rc (path relative to its base URL, or an
-- absolute URL); resp (any status) | nil, msg, code.
function Base:send(rc, r)
  self.requests = self.requests + 1
  return rc:request(r)
end

-- where(?query): a path or an absolute URL; query: a table or nil, encoded
-- by calm.url.query (a list value is Cloud Foundry's "a or b": literal
-- commas between the encoded items).
function Base:where(path, query)
  if query and next(query) then return path .. "?" .. url.query(query) end
  return path
end

-- GET that must answer 200 with a JSON object. o: {empty_204 = true (a 204
-- reads as {}), hint = function(status) -> text added to an error}.
-- Returns j, resp | nil, msg, code [, resp].
function Base:read_json(rc, where, what, o)
  local resp, msg, code = self:send(rc, { method = "GET", path = where, idempotent = true })
  if not resp then return nil, what .. ": " .. tostring(msg), code end
  if resp.status == 204 and o and o.empty_204 then return {}, resp end
  if resp.status ~= 200 then
    local hint = o and o.hint and o.hint(resp.status) or ""
    return nil, what .. ": " .. self:response_text(resp) .. hint, M.code_for(resp.status), resp
  end
  local j, jmsg = self:body_json(resp)
  if type(j) ~= "table" then
    return nil, what .. ": " .. (jmsg or "no JSON object in the answer"), "BAD_RESPONSE"
  end
  return j, resp
end

-- Every page of a list. page(j) -> the items of one page, the next page's
-- where (nil or "" at the end). Refuses a repeated page and more than 1000.
-- Returns items, the JSON of every page | nil, msg, code.
function Base:read_pages(rc, where, what, page)
  local items, pages, seen = {}, {}, {}
  for _ = 1, 1000 do
    local j, msg, code = self:read_json(rc, where, what)
    if not j then return nil, msg, code end
    pages[#pages + 1] = j
    local list, nxt = page(j)
    for _, it in ipairs(list or {}) do items[#items + 1] = it end
    if nxt == nil or nxt == "" then return items, pages end
    if seen[nxt] then return nil, what .. ": the server repeated a page", "BAD_RESPONSE" end
    seen[nxt] = true
    where = nxt
  end
  return nil, what .. ": more than 1000 pages", "BAD_RESPONSE"
end

-- The first item of items whose name is name (and whose field key is
-- value, when given) | false.
function M.named(items, name, key, value)
  for _, it in ipairs(items) do
    if it.name == name and (key == nil or value == nil or it[key] == value) then return it end
  end
  return false
end

return M
