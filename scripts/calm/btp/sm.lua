-- calm.btp.sm: SAP BTP Service Manager client (the /v1 API, "Other" environment).
--
--   local sm = require "calm.btp.sm"
--   local c = sm.new{rest = rest_client}            -- or sm.from_key(t, {cacert=})
--   local offering, plan = c:offering_and_plan()    -- SAPCloudALMAPIs / standard
--   local items = c:list("service_instances", {fieldQuery = sm.eq("name", "x")})
--   local inst = c:create_instance{name=, service_plan_id=, parameters=, labels=}
--   local bodies = sm.label_patches{{key =, old =, new =}...}  -- PATCH `labels` arrays
--
-- Expected failures return `nil, message, code` (API, AUTH, DEADLINE, ...).
-- The quirks handled here are those of service-manager-api.md §5: errors as
-- object or array, token paging, 202 + relative Location polled to the end;
-- the mutations (409 -> look up by name, 422 -> wait for the running
-- operation, a failed create's leftover deleted) are in calm.btp.sm_write. The
-- client is built on calm.btp.client; its waits are calm.lib.poll's.
local client = require "calm.btp.client"
local poll = require "calm.lib.poll"
local jwt = require "calm.lib.jwt"
local rest = require "calm.net.rest"
local http = require "calm.http"
local json = require "calm.lib.json"
local url = require "calm.url"

local M = {}

M.OFFERING = "SAPCloudALMAPIs"
M.DISPLAY_NAME = "SAP Cloud ALM API"
M.PLAN = "standard"

-- Operation polling (calm.lib.poll's policy, shared with calm.btp.cf and calm.btp.cis):
-- 2 s growing by half each round up to 15 s, CALMBIND_POLL_INTERVAL for the
-- first interval; a Retry-After on an operation response is honoured when
-- it is shorter.
M.poll_policy = poll.policy
-- How often a create answered 422 (another operation running) is sent again.
M.BUSY_ATTEMPTS = 5

-- ------------------------------------------------------------ labels --

-- Label changes {{key =, old = values?, new = value | {values} | nil}} as the
-- PATCH bodies' `labels` arrays, in order (service-manager-api.md §2.10):
-- there is no replace and a remove and an add of one key cannot share a
-- request, so a changed value is removed in the first PATCH and added in a
-- second; a new key is added and a dropped one (new = nil) removed in the
-- first. Returns {ops...} (one array a PATCH; empty when nothing changes).
function M.label_patches(changes)
  local first, second = json.array {}, json.array {}
  for _, ch in ipairs(changes or {}) do
    local values = ch.new ~= nil and json.array(type(ch.new) == "table" and { table.unpack(ch.new) } or { ch.new })
    if ch.old ~= nil then first[#first + 1] = { op = "remove", key = ch.key } end
    if values then
      local into = ch.old ~= nil and second or first
      into[#into + 1] = { op = "add", key = ch.key, values = values }
    end
  end
  local out = {}
  if #first > 0 then out[#out + 1] = first end
  if #second > 0 then out[#out + 1] = second end
  return out
end

-- ------------------------------------------------------------ queries --

-- A fieldQuery string literal: single quotes, a quote inside doubled.
function M.quote(v)
  v = tostring(v)
  if v:find("[\r\n]") then error("sm.quote: a fieldQuery value cannot hold a newline", 2) end
  return "'" .. v:gsub("'", "''") .. "'"
end

function M.eq(key, value) return key .. " eq " .. M.quote(value) end

-- Joins criteria with " and " (SM has no "or").
function M.all(...)
  local parts = {}
  for _, c in ipairs({ ... }) do
    if c and c ~= "" then parts[#parts + 1] = c end
  end
  return table.concat(parts, " and ")
end

-- Query string with %20 for spaces (the SM accepts both + and %20).

-- ------------------------------------------------------------ errors --

-- One line from an SM error body: {error, description} or an array of them.
function M.errors_text(errs)
  if type(errs) ~= "table" then
    return errs ~= nil and tostring(errs) or nil
  end
  if errs.description or errs.error or errs.message then
    local d = errs.description or errs.message
    if errs.error and d then return tostring(errs.error) .. ": " .. tostring(d) end
    return tostring(d or errs.error)
  end
  local parts = {}
  for _, e in ipairs(errs) do
    local t = M.errors_text(e)
    if t then parts[#parts + 1] = t end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "; ")
end

-- The complaint in an SM error answer; else calm.net.rest's description of
-- the body ("HTML error page", ...).
local function error_text(j, resp)
  return j and M.errors_text(j.errors or j) or rest.error_text(resp)
end

local C = client.class { api = "Service Manager", error_text = error_text }

-- "HTTP 404 NotFound: service instance not found" from a response.
function M.response_text(resp)
  return C.response_text(C, resp)
end

local status_code = client.code_for

-- ------------------------------------------------------------ client --

-- opts.rest: a calm.net.rest client whose base_url is the sm_url.
function M.new(opts)
  assert(type(opts) == "table" and opts.rest, "sm.new: needs {rest = client}")
  return client.new(C, { rest = opts.rest, session = opts.session,
    offering_name = opts.offering or M.OFFERING, display_name = opts.display_name or M.DISPLAY_NAME,
    plan_name = opts.plan or M.PLAN, page_size = opts.page_size or 200 }, opts)
end

-- Builds the client from a parsed SM key table (clientid, clientsecret or
-- certificate+key, url/certurl, sm_url).
function M.from_key(t, opts)
  opts = opts or {}
  if type(t) ~= "table" or type(t.sm_url) ~= "string" then
    return nil, "the Service Manager key has no sm_url (is it a binding of service-manager, plan subaccount-admin?)", "INPUT"
  end
  local session, smsg, scode = client.session_from_key(t, opts.what or "the Service Manager key",
    "Service Manager", opts.cacert)
  if not session then return nil, smsg, scode end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.rest = client.rest_client(t.sm_url, session, "Service Manager", opts.cacert)
  o.session = session
  return M.new(o)
end

-- The subaccount this key belongs to, from its token: GUID, claim
-- ("ext_attr.subaccountid" or "zid") | nil. Needs a token (a request).
function C:token_subaccount()
  if not self.session then return nil end
  local claims = self.session:claims()
  return jwt.subaccount(claims)
end

-- One request; returns resp (any status) | nil, msg, code.
function C:request(r)
  return self:send(self.rest, r)
end

-- GET that must answer 200 with JSON: j, resp | nil, msg, code [, resp].
function C:get_json(path, query, what)
  return self:read_json(self.rest, self:where(path, query), what or path)
end

-- Lists every page of /v1/<kind> (kind = service_instances, ...).
-- q: {fieldQuery=, labelQuery=, attach_last_operations=true}
function C:list(kind, q)
  q = q or {}
  local query = { max_items = self.page_size }
  for k, v in pairs(q) do query[k] = v end
  if q.attach_last_operations then query.attach_last_operations = "true" end
  local path = "/v1/" .. kind
  -- the next page: the same query with the answer's paging token
  local function page(j)
    if j.token == nil or j.token == "" then return j.items end
    query.token = j.token
    return j.items, self:where(path, query)
  end
  local items, msg, code = self:read_pages(self.rest, self:where(path, query),
    "listing " .. kind:gsub("_", " "), page)
  if not items then return nil, msg, code end
  return items
end

function C:get(kind, id)
  return self:get_json("/v1/" .. kind .. "/" .. id, nil, kind:gsub("s$", ""):gsub("_", " ") .. " " .. id)
end

-- ------------------------------------------------- offering and plan --

local function mentions(s, needle)
  return type(s) == "string" and s:lower():find(needle:lower(), 1, true) ~= nil
end

-- Picks the offering from a list: exact catalog_name/name, then the display
-- name (metadata.displayName, description) as a fallback.
function M.pick_offering(items, name, display)
  for _, o in ipairs(items or {}) do
    if o.catalog_name == name or o.name == name then return o end
  end
  for _, o in ipairs(items or {}) do
    local md = type(o.metadata) == "table" and o.metadata or {}
    if (md.displayName and md.displayName:lower() == display:lower())
        or mentions(md.displayName, "Cloud ALM API") or mentions(o.description, "Cloud ALM API") then
      return o
    end
  end
  return nil
end

function M.pick_plan(items, offering_id, plan)
  for _, p in ipairs(items or {}) do
    if p.service_offering_id == offering_id and (p.catalog_name == plan or p.name == plan) then
      return p
    end
  end
  return nil
end

-- Offerings query by catalog name, falling back to a scan of all offerings
-- for the display name. Returns offering | false (not visible) | nil,msg,code.
function C:find_offering(first_page)
  local items = first_page
  if not items then
    local msg, code
    items, msg, code = self:list("service_offerings", { fieldQuery = M.eq("catalog_name", self.offering_name) })
    if not items then return nil, msg, code end
  end
  local o = M.pick_offering(items, self.offering_name, self.display_name)
  if o then return o end
  local all, msg, code = self:list("service_offerings", {})
  if not all then return nil, msg, code end
  return M.pick_offering(all, self.offering_name, self.display_name) or false
end

-- offering, plan | false, false (not entitled) | nil, msg, code
function C:offering_and_plan()
  local o, msg, code = self:find_offering()
  if o == nil then return nil, msg, code end
  if not o then return false, false end
  local plans, pmsg, pcode = self:list("service_plans",
    { fieldQuery = M.all(M.eq("service_offering_id", o.id)) })
  if not plans then return nil, pmsg, pcode end
  return o, M.pick_plan(plans, o.id, self.plan_name) or false
end

-- ------------------------------------------------------- operations --

local function lower(s) return type(s) == "string" and s:lower() or "" end

-- succeeded / failed / pending (every unknown state is pending).
function M.op_state(op)
  local s = lower(type(op) == "table" and op.state)
  if s == "succeeded" then return "succeeded" end
  if s == "failed" then return "failed" end
  return "pending"
end

-- "/v1/service_instances/<id>/operations/<op>" -> kind, id, opid
-- base: the client's base URL; a Location under its path (sm_url with a path,
-- e.g. behind a gateway) is made relative to it, since requests join the
-- returned path to the base URL.
function M.parse_location(loc, base)
  if type(loc) ~= "string" then return nil end
  -- an absolute Location is read by calm.url; a relative one is the path
  local u, b = url.parse(loc), type(base) == "string" and url.parse(base)
  local path = u and u.path or loc
  local prefix = b and b.path:gsub("/+$", "") or ""
  if prefix ~= "" and path:sub(1, #prefix + 1) == prefix .. "/" then path = path:sub(#prefix + 1) end
  local kind, id, op = path:match("^/v1/([%w_]+)/([^/?]+)/operations/([^/?]+)")
  if kind then return kind, id, op, path end
  kind, id = path:match("^/v1/([%w_]+)/([^/?]+)")
  if kind then return kind, id, nil, path end
  return nil
end

local function retry_after(resp)
  local v = resp.headers and resp.headers["retry-after"]
  if not v then return nil end
  return http.parse_retry_after(v)
end

-- Sleeps delay seconds or until the deadline; nil,msg,"DEADLINE" if passed
-- (calm.lib.poll.wait, kept here for scripts that call sm.wait).
M.wait = poll.wait

-- One look at an operation, for poll.until_done: true, op | true, nil, msg,
-- code | false, state, retry_after (still running).
function C:_operation(path, what, is_delete)
  local resp, msg, code = self:request { method = "GET", path = path, idempotent = true }
  if not resp then return true, nil, what .. ": " .. tostring(msg), code end
  if resp.status == 404 and is_delete then return true, { state = "succeeded", type = "delete" } end
  if resp.status ~= 200 then
    return true, nil, what .. ": polling the operation: " .. self:response_text(resp), status_code(resp.status)
  end
  local op = self:body_json(resp)
  if type(op) ~= "table" then return true, nil, what .. ": the operation answer is not JSON", "BAD_RESPONSE" end
  if M.op_state(op) ~= "pending" then return true, op end
  return false, op.state, retry_after(resp)
end

-- Polls an operation URL until succeeded/failed. Returns the operation
-- object (state succeeded or failed) | nil, msg, code.
-- A 404 while polling a delete means the resource is gone: succeeded.
function C:poll(path, what, is_delete)
  return poll.until_done { policy = self.poll_policy, progress = what,
    waiting = what .. " (operation " .. path .. "; rerun the same command to resume: it adopts what exists)",
    check = function() return self:_operation(path, what, is_delete) end }
end

-- Mutations (create, update, delete): calm.btp.sm_write.
require("calm.btp.sm_write").install(C, M)

return M
