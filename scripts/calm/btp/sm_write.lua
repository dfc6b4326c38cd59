-- calm.btp.sm_write: the Service Manager client's mutations -- create (find or
-- create), update, delete -- with the quirks of service-manager-api.md §5:
-- 201/200 or 202 + Location, 409 -> look up by name, 422 -> wait for the
-- running operation, a failed create leaves a ready:false record that is
-- deleted before reporting. calm.btp.sm installs these methods on its client
-- (write.install(C, sm)); use them through calm.btp.sm.
local log = require "calm.log"
local poll = require "calm.lib.poll"
local client = require "calm.btp.client"

local C = {}
local M -- calm.btp.sm, set by install

local function header(resp, name)
  return resp.headers and resp.headers[name]
end

-- A 200/201/204 answer's entity: done, or failed when its last operation failed.
local function sync_result(e)
  if type(e) ~= "table" then e = {} end
  local lo = e.last_operation
  if lo and M.op_state(lo) == "failed" then
    return { status = "failed", id = e.id, entity = e, text = M.errors_text(lo.errors) or lo.description }
  end
  return { status = "done", entity = e, id = e.id }
end

-- A 202: polls the operation its Location names to the end.
function C:_follow(resp, method, what)
  local k, id, opid, p = M.parse_location(header(resp, "location"), self.rest and self.rest.base_url)
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

-- Sends a mutation and follows it to the end.
-- Returns {status="done", entity=?, id=?, op=?} |
--         {status="failed", id=, op=, text=} |
--         {status="conflict", text=} | {status="busy", text=} |
--         {status="unknown", text=} (no answer: look the resource up) |
--         nil, msg, code for a final HTTP error.
function C:mutate(method, path, body, what)
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
  if s == 200 or s == 201 or s == 204 then return sync_result(self:body_json(resp)) end
  if s == 202 then return self:_follow(resp, method, what) end
  if s == 404 and method == "DELETE" then
    if header(resp, "x-cf-routererror") == "unknown_route" then
      return nil, what .. ": Service Manager unreachable (unknown_route)", "API"
    end
    return { status = "done", gone = true }
  end
  if s == 409 then return { status = "conflict", text = M.response_text(resp) } end
  if s == 422 then return { status = "busy", text = M.response_text(resp) } end
  if s == 410 and method == "DELETE" then return { status = "done", gone = true } end
  return nil, what .. ": " .. M.response_text(resp), client.code_for(s), resp
end

-- Waits for the running operation of a resource (422 answers).
function C:wait_idle(kind, id, what)
  return poll.until_done { policy = self.poll_policy, rounds = 1000,
    waiting = what .. " (another operation is running on " .. id .. ")",
    too_long = what .. ": the running operation does not end",
    check = function()
      local e, msg, code = self:get(kind, id)
      if not e then return true, nil, msg, code end
      local lo = e.last_operation
      if not lo or M.op_state(lo) ~= "pending" then return true, e end
      return false
    end }
end

-- Looks up one resource by name (instances: by name and plan; bindings:
-- by name and instance). Returns item | false | nil, msg, code.
function C:find_by_name(kind, name, scope_key, scope_id)
  local fq = M.all(M.eq("name", name), scope_id and M.eq(scope_key, scope_id) or nil)
  local items, msg, code = self:list(kind, { fieldQuery = fq, attach_last_operations = true })
  if not items then return nil, msg, code end
  return client.named(items, name, scope_key, scope_id)
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
      local ok, wmsg, wcode = poll.wait(self.poll_policy.initial, what)
      if not ok then deadline_hit = { wmsg, wcode }; break end
    end
  end
  if deadline_hit then return nil, deadline_hit[1], deadline_hit[2] end
  return false
end

-- Deletes an instance or binding and waits for it to be gone.
function C:delete(kind, id, what)
  local r, msg, code = self:mutate("DELETE", "/v1/" .. kind .. "/" .. id, nil, what)
  if not r then return nil, msg, code end
  if r.status == "busy" then
    local ok, wmsg, wcode = self:wait_idle(kind, id, what)
    if not ok then return nil, wmsg, wcode end
    r, msg, code = self:mutate("DELETE", "/v1/" .. kind .. "/" .. id, nil, what)
    if not r then return nil, msg, code end
  end
  if r.status ~= "done" then
    return nil, what .. ": " .. tostring(r.text), "API"
  end
  self:_note { action = "delete", resource = kind:gsub("^service_", ""):gsub("s$", ""), id = id }
  return true
end

-- POSTs the create, sending it again while SM answers 422 (another
-- operation is running: on the instance we bind to, or on one of this name)
-- and nothing of this name exists. Returns mutate's last result | nil, msg, code.
function C:_post(kind, body, scope_key, what)
  local scope_id = scope_key and body[scope_key]
  local backoff = poll.backoff(self.poll_policy)
  local r, msg, code
  for attempt = 1, M.BUSY_ATTEMPTS do
    r, msg, code = self:mutate("POST", "/v1/" .. kind, body, what)
    if not r then return nil, msg, code end
    if r.status ~= "busy" or attempt == M.BUSY_ATTEMPTS then return r end
    -- SM processed nothing, so unless a resource of this name exists
    -- (settled by the caller), wait for that operation and create again
    local it, fmsg, fcode = self:find_by_name(kind, body.name, scope_key, scope_id)
    if it == nil then return nil, fmsg, fcode end
    if it then return r end
    if kind == "service_bindings" and scope_id then
      local idle, imsg, icode = self:wait_idle("service_instances", scope_id, what)
      if not idle then return nil, imsg, icode end
    end
    -- and back off in any case: the busy operation need not be visible to us
    local ok, wmsg, wcode = backoff:wait(what)
    if not ok then return nil, wmsg, wcode end
    log.info("%s: %s; creating again (attempt %d/%d)", what, tostring(r.text), attempt + 1, M.BUSY_ATTEMPTS)
  end
  return r
end

-- After a conflict, a create still busy or one without an answer: the
-- resource of this name (settled) | nil, msg, code when there is none.
function C:_settle_create(kind, body, scope_key, what, r)
  local name = body.name
  local why = r.status == "conflict" and ("409 " .. tostring(r.text))
    or r.status == "busy" and tostring(r.text)
    or ("no answer to the create (" .. tostring(r.text) .. ")")
  local s, smsg, scode = self:_settle_by_name(kind, name, scope_key, scope_key and body[scope_key], what, why)
  if s == nil then return nil, smsg, scode end
  if s then return s end
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

-- A failed create: the leftover (ready: false) is deleted, then reported.
function C:_create_failed(kind, r, name, what)
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

-- The created resource in full (a binding with its credentials): fetched
-- by id, or by name after a sync answer without a body.
function C:_created_entity(kind, r, body, scope_key, what)
  local id = r.id or (r.entity and r.entity.id)
  local e = r.entity
  if id and (not e or not e.id or (kind == "service_bindings" and not e.credentials)) then
    local got, gmsg, gcode = self:get(kind, id)
    if not got then return nil, gmsg, gcode end
    e = got
  end
  if not e or not e.id then
    local it, fmsg, fcode = self:find_by_name(kind, body.name, scope_key, scope_key and body[scope_key])
    if not it then return nil, fmsg or (what .. ": created, but not found by name"), fcode or "API" end
    e = it
  end
  return e
end

-- Create with the find-or-create rules. body = POST body (name required).
-- Returns entity (fetched, with credentials for bindings), created(bool) |
-- nil, msg, code.
function C:create(kind, body, scope_key, what)
  local r, msg, code = self:_post(kind, body, scope_key, what)
  if not r then return nil, msg, code end
  local created = true
  if r.status == "conflict" or r.status == "unknown" or r.status == "busy" then
    r, msg, code = self:_settle_create(kind, body, scope_key, what, r)
    if not r then return nil, msg, code end
    created = false
  end
  if r.status == "failed" then return self:_create_failed(kind, r, body.name, what) end
  local e, emsg, ecode = self:_created_entity(kind, r, body, scope_key, what)
  if not e then return nil, emsg, ecode end
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

-- PATCH a resource. 422 -> wait for the running operation, then once more.
-- Returns entity | nil, msg, code.
function C:_update(kind, resource, id, body, what)
  local r, msg, code
  for attempt = 1, 3 do
    r, msg, code = self:mutate("PATCH", "/v1/" .. kind .. "/" .. id, body, what)
    if not r then return nil, msg, code end
    if r.status == "busy" then
      local ok, wmsg, wcode = self:wait_idle(kind, id, what)
      if not ok then return nil, wmsg, wcode end
    elseif r.status == "unknown" then
      -- a PATCH is safe to repeat: same parameters, same result
      if attempt == 3 then return nil, what .. ": " .. tostring(r.text), r.code or "API" end
    else
      break
    end
  end
  if r.status == "failed" then
    self:_note { action = "update-failed", resource = resource, id = id, error = r.text }
    return nil, what .. " failed: " .. tostring(r.text), "API"
  end
  if r.status ~= "done" then return nil, what .. ": " .. tostring(r.text), "API" end
  self:_note { action = "update", resource = resource, id = id }
  return r.entity or { id = id }
end

-- PATCH an instance (name, parameters, labels as label changes).
function C:update_instance(id, body, what)
  return self:_update("service_instances", "instance", id, body, what or ("updating instance " .. id))
end

-- PATCH a binding (name and labels only, service-manager-api.md §2.7).
function C:update_binding(id, body, what)
  return self:_update("service_bindings", "binding", id, body, what or ("updating binding " .. id))
end

local W = {}

-- Puts the methods on calm.btp.sm's client table; sm is the calm.btp.sm module.
function W.install(target, sm)
  M = sm
  for k, f in pairs(C) do target[k] = f end
end

return W
