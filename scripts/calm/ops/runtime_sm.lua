-- calm.ops.runtime_sm: the Service Manager runtime adapter of calm.ops.apply
-- (the primitives it lists, over ctx.sm and ctx.cis): entitlement through
-- the Entitlements API and the wait for the offering, SM's asynchronous
-- operations, label changes as SM's PATCHes take them, and the x509
-- binding's two documented parameter shapes.
--
--   creds | nil, msg, code = apply.run(ctx, runtime_sm)
local parameters = require "calm.model.parameters"
local names = require "calm.model.names"
local log = require "calm.log"
local poll = require "calm.lib.poll"
local sm = require "calm.btp.sm"
local M = {}

M.RESOURCE = { instance = "instance", binding = "binding" }
M.BINDING = "binding"

function M.place() return "" end

-- Waits until the offering and plan are visible after an entitlement
-- assignment (Service Manager picks it up with a delay): calm.lib.poll's loop,
-- starting at 1 s, up to 10 s a wait, 60 looks.
local PLAN_POLL = { initial = 1, factor = 1.5, max = 10 }

local function wait_for_plan(ctx)
  return poll.until_done {
    policy = PLAN_POLL, rounds = 60,
    waiting = "the SAP Cloud ALM API offering to appear in Service Manager after the entitlement",
    too_long = "the entitlement was assigned but the SAPCloudALMAPIs offering does not appear in Service Manager",
    check = function()
      local o, p, code = ctx.sm:offering_and_plan()
      if o == nil then return true, nil, p, code end
      if o and p then return true, o, p end
      return false
    end,
  }
end

function M.entitle(ctx)
  local ok, msg, code = ctx.cis:assign_entitlement(ctx.opts.subaccount)
  if not ok then return nil, msg, code end
  local o, p, pcode = wait_for_plan(ctx)
  if not o then return nil, p, pcode end
  return p
end

function M.wait_running(ctx, w)
  return ctx.sm:wait_idle("service_instances", w.id, "the running operation of instance '" .. w.name .. "'")
end

function M.create_instance(ctx, inst, plan)
  return ctx.sm:create_instance { name = inst.name, service_plan_id = plan.id,
    parameters = inst.parameters, labels = names.sm_labels(inst.labels) }
end

function M.delete_instance(ctx, inst)
  return ctx.sm:delete("service_instances", inst.id, "deleting the failed instance '" .. inst.name .. "'")
end

-- The PATCHes of an update in place: body (parameters, name) goes with the
-- first; a changed label value takes a second PATCH (calm.btp.sm.label_patches).
local function patch(ctx, resource, st, body)
  local c = ctx.sm
  local patches = sm.label_patches(st.label_changes)
  local what = "updating " .. resource .. " '" .. tostring(st.name) .. "'"
  local update = resource == "instance" and c.update_instance or c.update_binding
  local first = body and (body.parameters or body.name) and body or nil
  for i = 1, math.max(#patches, first and 1 or 0) do
    local b = i == 1 and first and { parameters = first.parameters, name = first.name } or {}
    b.labels = patches[i]
    local e, msg, code = update(c, st.id, b, what)
    if not e then return nil, msg, code end
  end
  return true
end

function M.update_instance(ctx, inst, body) return patch(ctx, "instance", inst, body) end

function M.update_binding(ctx, b) return patch(ctx, "binding", b) end

local function credential_type_of(binding)
  local uaa = type(binding.credentials) == "table" and binding.credentials.uaa
  return type(uaa) == "table" and uaa["credential-type"] or nil
end

-- One binding create, with its credentials (read again when the answer has none).
local function bind_once(ctx, b, entity, params)
  local c = ctx.sm
  -- the planner's labels: a binding made once the instance had the
  -- authorities carries the Deployment scopes, and its label lets a rerun
  -- tell it from older keys
  local e, msg, code = c:create_binding { name = b.name, service_instance_id = entity.id,
    parameters = params, labels = names.sm_labels(b.labels) }
  if not e then return nil, msg, code end
  if type(e.credentials) ~= "table" then return c:get("service_bindings", e.id) end
  return e
end

-- Creates the binding. An x509 key is asked for in the plain shape SAP
-- documents first; a broker that ignores it (the key comes back of another
-- type) gets the {"xsuaa": {...}} shape, after the wrong key -- calmbind's
-- own, made a moment ago -- is deleted. Returns the binding entity.
function M.create_binding(ctx, b, entity)
  local want = ctx.opts["credential-type"]
  local binding, msg, code = bind_once(ctx, b, entity, b.parameters)
  if not binding or want ~= "x509" or credential_type_of(binding) == "x509" then return binding, msg, code end
  local got = tostring(credential_type_of(binding))
  log.warn("binding '%s' came back as a %s key, not x509: the broker ignored the plain x509 parameters; "
    .. "deleting it and asking again with {\"xsuaa\": {...}}", b.name, got)
  local ok, dmsg, dcode = ctx.sm:delete("service_bindings", binding.id, "deleting binding '" .. b.name .. "'")
  if not ok then return nil, dmsg, dcode end
  binding, msg, code = bind_once(ctx, b, entity, parameters.binding_parameters { credential_type = "x509",
    validity = ctx.opts.x509_validity, wrapped = true })
  if binding and credential_type_of(binding) ~= "x509" then
    return nil, string.format("binding '%s' came back as a %s key in both documented parameter shapes, not x509: "
      .. "the instance does not issue x509 keys (its oauth2-configuration credential-types must allow x509)",
      b.name, tostring(credential_type_of(binding))), "API"
  end
  return binding, msg, code
end

function M.delete_binding(ctx, b)
  return ctx.sm:delete("service_bindings", b.id, "deleting the failed binding '" .. b.name .. "'")
end

function M.wait_binding(ctx, b)
  return ctx.sm:wait_idle("service_bindings", b.id, "binding '" .. b.name .. "'")
end

-- A binding's credentials, read from Service Manager.
function M.credentials(ctx, b)
  local e, msg, code = ctx.sm:get("service_bindings", b.id)
  if not e then return nil, msg, code end
  if type(e.credentials) ~= "table" then
    return nil, "binding '" .. tostring(e.name or b.name) .. "' (" .. tostring(b.id) .. ") has no credentials", "API"
  end
  return e.credentials
end

return M
