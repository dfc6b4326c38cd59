-- calm.sm: SAP BTP Service Manager client (the /v1 API, "Other" environment).
--
--   local sm = require "calm.sm"
--   local c = sm.new{rest = rest_client}            -- or sm.from_key(t, {cacert=})
--   local offering, plan = c:offering_and_plan()    -- SAPCloudALMAPIs / standard
--   local items = c:list("service_instances", {fieldQuery = sm.eq("name", "x")})
--   local inst = c:create_instance{name=, service_plan_id=, parameters=, labels=}
--
-- Expected failures return `nil, message, code` (API, AUTH, DEADLINE, ...).
-- The quirks handled here are those of service-manager-api.md §5: 201/200 or
-- 202 + relative Location for every mutation, errors as object or array,
-- 409 -> look up by name, 422 -> wait for the running operation, a failed
-- create leaves a ready:false record that is deleted before reporting.
local log = require "calm.log"
local task = require "calm.task"
local codec = require "calm.codec"

local M = {}

M.OFFERING = "SAPCloudALMAPIs"
M.DISPLAY_NAME = "SAP Cloud ALM API"
M.PLAN = "standard"

-- Operation polling: 2 s growing by half each round up to 15 s. A user
-- script may change this table (e.g. a fleet run with many operations);
-- a Retry-After on an operation response is honoured when it is shorter.
M.poll_policy = { initial = 2, factor = 1.5, max = 15 }
-- How often a create answered 422 (another operation running) is sent again.
M.BUSY_ATTEMPTS = 5

-- CALMBIND_POLL_INTERVAL (seconds) sets the first interval (tests, and
-- admins who know their broker is fast); the growth and cap stay.
do
  local ok, v = pcall(function() return os.getenv("CALMBIND_POLL_INTERVAL") end)
  local n = ok and tonumber(v or "") or nil
  if n and n >= 0.01 and n <= 60 then
    M.poll_policy.initial = n
    if M.poll_policy.max < n then M.poll_policy.max = n end
  end
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
function M.query_string(q)
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    out[#out + 1] = codec.url_encode(k) .. "=" .. codec.url_encode(tostring(q[k]))
  end
  return table.concat(out, "&")
end

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

local function body_json(resp)
  return require("calm.rest").body_json(resp, "Service Manager")
end

-- "HTTP 404 NotFound: service instance not found" from a response.
function M.response_text(resp)
  local j = (resp.status and resp.status >= 400) and body_json(resp) or nil
  local t = type(j) == "table" and M.errors_text(j.errors or j) or nil
  if not t then
    local ok, rest = pcall(require, "calm.rest")
    if ok and rest.error_text then t = rest.error_text(resp) end
  end
  return "HTTP " .. tostring(resp.status) .. (t and (" " .. t) or "")
end

local function status_code(status)
  if status == 401 or status == 403 then return "AUTH" end
  return "API"
end

-- ------------------------------------------------------------ client --

local C = {}
C.__index = C

-- opts.rest: a calm.rest client whose base_url is the sm_url.
function M.new(opts)
  assert(type(opts) == "table" and opts.rest, "sm.new: needs {rest = client}")
  local self = setmetatable({}, C)
  self.rest = opts.rest
  self.offering_name = opts.offering or M.OFFERING
  self.display_name = opts.display_name or M.DISPLAY_NAME
  self.plan_name = opts.plan or M.PLAN
  self.page_size = opts.page_size or 200
  self.policy = opts.poll or M.poll_policy
  self.on_action = opts.on_action -- function(action_table) for the run report
  self.requests = 0
  return self
end

-- Builds the client from a parsed SM key table (clientid, clientsecret or
-- certificate+key, url/certurl, sm_url).
function M.from_key(t, opts)
  opts = opts or {}
  local oauth = require "calm.oauth"
  local rest = require "calm.rest"
  if type(t) ~= "table" or type(t.sm_url) ~= "string" then
    return nil, "the Service Manager key has no sm_url (is it a binding of service-manager, plan subaccount-admin?)", "INPUT"
  end
  local grant, msg, code = oauth.grant_from_key(t, opts.what or "the Service Manager key")
  if not grant then return nil, msg, code or "INPUT" end
  grant.cacert = grant.cacert or opts.cacert
  local session, smsg, scode = oauth.session(grant, { name = "Service Manager" })
  if not session then return nil, smsg, scode end
  local client, cmsg, ccode = rest.client { base_url = t.sm_url, session = session,
    name = "Service Manager", cacert = opts.cacert }
  if not client then return nil, cmsg, ccode end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.rest = client
  local self = M.new(o)
  self.session = session
  return self
end

-- The subaccount this key belongs to, from its token: GUID, claim
-- ("ext_attr.subaccountid" or "zid") | nil. Needs a token (a request).
function C:token_subaccount()
  if not self.session then return nil end
  local claims = self.session:claims()
  return require("calm.jwt").subaccount(claims)
end

function C:_note(action)
  if self.on_action then self.on_action(action) end
end

-- One request; returns resp (any status) | nil, msg, code.
function C:request(r)
  self.requests = self.requests + 1
  return self.rest:request(r)
end

-- GET that must answer 200 with JSON.
function C:get_json(path, query, what)
  local p = path
  if query and next(query) then p = p .. "?" .. M.query_string(query) end
  local resp, msg, code = self:request { method = "GET", path = p, idempotent = true }
  if not resp then return nil, (what or path) .. ": " .. tostring(msg), code end
  if resp.status ~= 200 then
    return nil, (what or path) .. ": " .. M.response_text(resp), status_code(resp.status), resp
  end
  local j, jmsg = body_json(resp)
  if type(j) ~= "table" then
    return nil, (what or path) .. ": " .. (jmsg or "no JSON object in the answer"), "BAD_RESPONSE"
  end
  return j, resp
end

-- Lists every page of /v1/<kind> (kind = service_instances, ...).
-- q: {fieldQuery=, labelQuery=, attach_last_operations=true}
function C:list(kind, q)
  q = q or {}
  local items, seen = {}, {}
  local token
  for _ = 1, 1000 do
    local query = { max_items = self.page_size }
    for k, v in pairs(q) do query[k] = v end
    if q.attach_last_operations then query.attach_last_operations = "true" end
    query.token = token
    local j, msg, code = self:get_json("/v1/" .. kind, query, "listing " .. kind:gsub("_", " "))
    if not j then return nil, msg, code end
    for _, it in ipairs(j.items or {}) do items[#items + 1] = it end
    token = j.token
    if token == nil or token == "" then return items end
    if seen[token] then
      return nil, "listing " .. kind .. ": Service Manager repeated a paging token", "BAD_RESPONSE"
    end
    seen[token] = true
  end
  return nil, "listing " .. kind .. ": more than 1000 pages", "BAD_RESPONSE"
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
  local path = loc:gsub("^https?://[^/]+", "")
  local prefix = type(base) == "string" and base:gsub("^https?://[^/]+", ""):gsub("/+$", "") or ""
  if prefix ~= "" and path:sub(1, #prefix + 1) == prefix .. "/" then path = path:sub(#prefix + 1) end
  local kind, id, op = path:match("^/v1/([%w_]+)/([^/?]+)/operations/([^/?]+)")
  if kind then return kind, id, op, path end
  kind, id = path:match("^/v1/([%w_]+)/([^/?]+)")
  if kind then return kind, id, nil, path end
  return nil
end

local function header(resp, name)
  return resp.headers and resp.headers[name]
end

local function retry_after(resp)
  local v = header(resp, "retry-after")
  if not v then return nil end
  local ok, http = pcall(require, "calm.http")
  if ok and http.parse_retry_after then return http.parse_retry_after(v) end
  return tonumber(v)
end

-- Sleeps delay seconds or until the deadline; nil,msg,"DEADLINE" if passed.
local function wait(delay, what)
  local left = task.remaining()
  if left <= 0 then
    return nil, "deadline passed while waiting for " .. what, "DEADLINE"
  end
  local ok, msg, code = task.sleep(math.min(delay, left))
  if not ok then return nil, "deadline passed while waiting for " .. what, code or "DEADLINE" end
  if delay >= left then
    return nil, "deadline passed while waiting for " .. what, "DEADLINE"
  end
  return true
end
M.wait = wait

-- Polls an operation URL until succeeded/failed. Returns the operation
-- object (state succeeded or failed) | nil, msg, code.
-- A 404 while polling a delete means the resource is gone: succeeded.
function C:poll(path, what, is_delete)
  local delay = self.policy.initial
  local started = task.now()
  while true do
    local resp, msg, code = self:request { method = "GET", path = path, idempotent = true }
    if not resp then return nil, what .. ": " .. tostring(msg), code end
    if resp.status == 404 and is_delete then
      log.progress_done()
      return { state = "succeeded", type = "delete" }
    end
    if resp.status ~= 200 then
      log.progress_done()
      return nil, what .. ": polling the operation: " .. M.response_text(resp), status_code(resp.status)
    end
    local op = body_json(resp)
    if type(op) ~= "table" then
      log.progress_done()
      return nil, what .. ": the operation answer is not JSON", "BAD_RESPONSE"
    end
    local st = M.op_state(op)
    if st ~= "pending" then
      log.progress_done()
      return op
    end
    local d = delay
    local ra = retry_after(resp)
    if ra and ra >= 0 and ra < d then d = ra end
    log.progress(string.format("%s: %s, %d s", what, tostring(op.state or "pending"),
      math.floor(task.now() - started + 0.5)))
    local ok, wmsg, wcode = wait(d, what .. " (operation " .. path ..
      "; rerun the same command to resume: it adopts what exists)")
    if not ok then log.progress_done(); return nil, wmsg, wcode end
    delay = math.min(delay * self.policy.factor, self.policy.max)
  end
end

-- ------------------------------------------------------- mutations --

-- Sends a mutation and follows it to the end.
-- Returns {status="done", entity=?, id=?, op=?} |
--         {status="failed", id=, op=, text=} |
--         {status="conflict", text=} | {status="busy", text=} |
--         {status="unknown", text=} (no answer: look the resource up) |
--         nil, msg, code for a final HTTP error.
function C:mutate(method, path, body, what, kind)
  local resp, msg, code = self:request { method = method, path = path, json = body,
    idempotent = (method == "DELETE") }
  if not resp then
    if code == "DEADLINE" or code == "AUTH" then return nil, what .. ": " .. tostring(msg), code end
    return { status = "unknown", text = tostring(msg), code = code }
  end
  local s = resp.status
  if resp.outcome_unknown or (s >= 500 and method ~= "DELETE") then
    -- a 5xx after the body was sent: the server may have acted on it
    return { status = "unknown", text = M.response_text(resp), code = "API" }
  end
  if s == 200 or s == 201 or s == 204 then
    local e = body_json(resp)
    if type(e) ~= "table" then e = {} end
    local lo = e.last_operation
    if lo and M.op_state(lo) == "failed" then
      return { status = "failed", id = e.id, entity = e, text = M.errors_text(lo.errors) or lo.description }
    end
    return { status = "done", entity = e, id = e.id }
  end
  if s == 202 then
    local loc = header(resp, "location")
    local k, id, opid, p = M.parse_location(loc, self.rest and self.rest.base_url)
    if not (k and opid) then
      -- no usable Location: the caller looks the resource up by name
      return { status = "unknown", text = "202 without an operation Location", id = id }
    end
    local op, pmsg, pcode = self:poll(p, what, method == "DELETE")
    if not op then return nil, pmsg, pcode, id end
    id = id or op.resource_id
    if M.op_state(op) == "failed" then
      return { status = "failed", id = id, op = op,
        text = M.errors_text(op.errors) or op.description or "the operation failed" }
    end
    return { status = "done", id = id, op = op }
  end
  if s == 404 and method == "DELETE" then
    if header(resp, "x-cf-routererror") == "unknown_route" then
      return nil, what .. ": Service Manager unreachable (unknown_route)", "API"
    end
    return { status = "done", gone = true }
  end
  if s == 409 then return { status = "conflict", text = M.response_text(resp) } end
  if s == 422 then return { status = "busy", text = M.response_text(resp) } end
  if s == 410 and method == "DELETE" then return { status = "done", gone = true } end
  return nil, what .. ": " .. M.response_text(resp), status_code(s), resp
end

-- Waits for the running operation of a resource (422 answers).
function C:wait_idle(kind, id, what)
  local delay = self.policy.initial
  for _ = 1, 1000 do
    local e, msg, code = self:get(kind, id)
    if not e then return nil, msg, code end
    local lo = e.last_operation
    if not lo or M.op_state(lo) ~= "pending" then return e end
    local ok, wmsg, wcode = wait(delay, what .. " (another operation is running on " .. id .. ")")
    if not ok then return nil, wmsg, wcode end
    delay = math.min(delay * self.policy.factor, self.policy.max)
  end
  return nil, what .. ": the running operation does not end", "API"
end

-- Looks up one resource by name (instances: by name and plan; bindings:
-- by name and instance). Returns item | false | nil, msg, code.
function C:find_by_name(kind, name, scope_key, scope_id)
  local fq = M.all(M.eq("name", name), scope_id and M.eq(scope_key, scope_id) or nil)
  local items, msg, code = self:list(kind, { fieldQuery = fq, attach_last_operations = true })
  if not items then return nil, msg, code end
  for _, it in ipairs(items) do
    if it.name == name and (not scope_id or it[scope_key] == scope_id) then return it end
  end
  return false
end

-- Shared find-or-create tail: after a conflict or an unanswered POST the
-- resource is looked up by name (our first attempt may have succeeded);
-- a pending one is waited for, a failed one is reported.
function C:_settle_by_name(kind, name, scope_key, scope_id, what, why)
  local deadline_hit
  for attempt = 1, 3 do
    local it, msg, code = self:find_by_name(kind, name, scope_key, scope_id)
    if it == nil then return nil, msg, code end
    if it then
      log.info("%s: %s; found it by name (%s)", what, why, it.id)
      local lo = it.last_operation
      if lo and M.op_state(lo) == "pending" then
        local e, wmsg, wcode = self:wait_idle(kind, it.id, what)
        if not e then return nil, wmsg, wcode end
        it = e
        lo = it.last_operation
      end
      if (lo and M.op_state(lo) == "failed") or it.ready == false then
        return { status = "failed", id = it.id, entity = it,
          text = lo and (M.errors_text(lo.errors) or lo.description) or "not ready" }
      end
      return { status = "done", id = it.id, entity = it, adopted = true }
    end
    -- not (yet) visible: a create that timed out may still land
    if attempt < 3 then
      local ok, wmsg, wcode = wait(self.policy.initial, what)
      if not ok then deadline_hit = { wmsg, wcode }; break end
    end
  end
  if deadline_hit then return nil, deadline_hit[1], deadline_hit[2] end
  return false
end

-- Deletes an instance or binding and waits for it to be gone.
function C:delete(kind, id, what)
  local r, msg, code = self:mutate("DELETE", "/v1/" .. kind .. "/" .. id, nil, what, kind)
  if not r then return nil, msg, code end
  if r.status == "busy" then
    local ok, wmsg, wcode = self:wait_idle(kind, id, what)
    if not ok then return nil, wmsg, wcode end
    r, msg, code = self:mutate("DELETE", "/v1/" .. kind .. "/" .. id, nil, what, kind)
    if not r then return nil, msg, code end
  end
  if r.status ~= "done" then
    return nil, what .. ": " .. tostring(r.text), "API"
  end
  self:_note { action = "delete", resource = kind:gsub("^service_", ""):gsub("s$", ""), id = id }
  return true
end

-- Create with the find-or-create rules. body = POST body (name required).
-- Returns entity (fetched, with credentials for bindings), created(bool) |
-- nil, msg, code.
function C:create(kind, body, scope_key, what)
  local name = body.name
  local scope_id = scope_key and body[scope_key]
  local r, msg, code
  local delay = self.policy.initial
  for attempt = 1, M.BUSY_ATTEMPTS do
    r, msg, code = self:mutate("POST", "/v1/" .. kind, body, what, kind)
    if not r then return nil, msg, code end
    if r.status ~= "busy" or attempt == M.BUSY_ATTEMPTS then break end
    -- 422: another operation is running (on the instance we bind to, or on
    -- one of this name). SM processed nothing, so unless a resource of this
    -- name exists (settled below), wait for that operation and create again.
    local it, fmsg, fcode = self:find_by_name(kind, name, scope_key, scope_id)
    if it == nil then return nil, fmsg, fcode end
    if it then break end
    if kind == "service_bindings" and scope_id then
      local idle, imsg, icode = self:wait_idle("service_instances", scope_id, what)
      if not idle then return nil, imsg, icode end
    end
    -- and back off in any case: the busy operation need not be visible to us
    local ok, wmsg, wcode = wait(delay, what)
    if not ok then return nil, wmsg, wcode end
    delay = math.min(delay * self.policy.factor, self.policy.max)
    log.info("%s: %s; creating again (attempt %d/%d)", what, tostring(r.text), attempt + 1, M.BUSY_ATTEMPTS)
  end
  local created = true
  if r.status == "conflict" or r.status == "unknown" or r.status == "busy" then
    local why = r.status == "conflict" and ("409 " .. tostring(r.text))
      or r.status == "busy" and tostring(r.text)
      or ("no answer to the create (" .. tostring(r.text) .. ")")
    local s, smsg, scode = self:_settle_by_name(kind, name, scope_key, scope_id, what, why)
    if s == nil then return nil, smsg, scode end
    if s == false then
      if r.status == "unknown" then
        return nil, what .. ": the create got no answer (" .. tostring(r.text) ..
          ") and nothing named '" .. name .. "' exists; rerun to try again", r.code or "API"
      end
      if r.status == "busy" then
        return nil, string.format("%s: %s (still busy after %d attempts: another operation is running; "
          .. "rerun when it is over)", what, tostring(r.text), M.BUSY_ATTEMPTS), "API"
      end
      return nil, what .. ": " .. tostring(r.text), "API"
    end
    r = s
    created = false
  end
  if r.status == "failed" then
    local text = r.text or "unknown error"
    local cleaned = ""
    if r.id then
      local ok, dmsg = self:delete(kind, r.id, "deleting the failed " .. what:gsub("^creating ", ""))
      cleaned = ok and ("; the leftover (" .. r.id .. ", ready: false) was deleted")
        or ("; deleting the leftover " .. r.id .. " failed too: " .. tostring(dmsg))
    end
    self:_note { action = "create-failed", resource = kind:gsub("^service_", ""):gsub("s$", ""),
      id = r.id, name = name, error = text }
    return nil, what .. " failed: " .. text .. cleaned, "API"
  end
  local id = r.id or (r.entity and r.entity.id)
  local e = r.entity
  if id and (not e or not e.id or (kind == "service_bindings" and not e.credentials)) then
    local got, gmsg, gcode = self:get(kind, id)
    if not got then return nil, gmsg, gcode end
    e = got
  end
  if not e or not e.id then
    -- a sync answer without a body: find it by name
    local it, fmsg, fcode = self:find_by_name(kind, name, scope_key, scope_id)
    if not it then return nil, fmsg or (what .. ": created, but not found by name"), fcode or "API" end
    e = it
  end
  return e, created
end

-- create() plus the run report's note of what happened.
function C:_create_noted(kind, body, scope_key, what, resource)
  local e, created, code = self:create(kind, body, scope_key, what)
  if not e then return nil, created, code end
  self:_note { action = created and "create" or "adopt-after-conflict", resource = resource,
    id = e.id, name = body.name }
  return e, created
end

-- Instance create body: {name, service_plan_id, parameters, labels}.
function C:create_instance(body)
  return self:_create_noted("service_instances", body, "service_plan_id",
    "creating instance '" .. body.name .. "'", "instance")
end

function C:create_binding(body)
  return self:_create_noted("service_bindings", body, "service_instance_id",
    "creating binding '" .. body.name .. "'", "binding")
end

-- PATCH an instance (parameters/labels). 422 -> wait for the running
-- operation, then once more. Returns entity | nil, msg, code.
function C:update_instance(id, body, what)
  what = what or ("updating instance " .. id)
  local r, msg, code
  for attempt = 1, 3 do
    r, msg, code = self:mutate("PATCH", "/v1/service_instances/" .. id, body, what, "service_instances")
    if not r then return nil, msg, code end
    if r.status == "busy" then
      local ok, wmsg, wcode = self:wait_idle("service_instances", id, what)
      if not ok then return nil, wmsg, wcode end
    elseif r.status == "unknown" then
      -- a PATCH is safe to repeat: same parameters, same result
      if attempt == 3 then return nil, what .. ": " .. tostring(r.text), r.code or "API" end
    else
      break
    end
  end
  if r.status == "failed" then
    self:_note { action = "update-failed", resource = "instance", id = id, error = r.text }
    return nil, what .. " failed: " .. tostring(r.text), "API"
  end
  if r.status ~= "done" then return nil, what .. ": " .. tostring(r.text), "API" end
  self:_note { action = "update", resource = "instance", id = id }
  return r.entity or { id = id }
end

return M
