-- calm.ops.exec_sm: carries out the steps calm.model.plan planned through
-- Service Manager (entitlement, instance, binding) and returns the key's
-- credentials. It decides nothing a plan did not say (the label changes of an
-- update in place too: calm.model.drift).
--
--   credentials | nil, msg, code = exec_sm.execute(ctx)
--   ok | nil, msg, code = exec_sm.patch(ctx, "instance" | "binding", step, body?)
--   exec_sm.action(ctx, {action =, resource =, id =, name =})  -- into the run report
local parameters = require "calm.model.parameters"
local names = require "calm.model.names"
local log = require "calm.log"
local poll = require "calm.lib.poll"
local sm = require "calm.btp.sm"
local M = {}

-- ------------------------------------------------------- execution --


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

function M.action(ctx, a)
  ctx.report.actions[#ctx.report.actions + 1] = a
end

-- The calm.key.probe result of an inventory binding, if it was probed.
local function probed_binding(inv, instance_id, binding_id)
  for _, x in ipairs(inv.by_id[instance_id] and inv.by_id[instance_id].bindings or {}) do
    if x.id == binding_id then return x.probe end
  end
  return nil
end

local create_binding

-- One binding create, with its credentials.
local function bind_once(ctx, b, entity, parameters)
  local c = ctx.sm
  -- the planner's labels: a binding made once the instance had the
  -- authorities carries the Deployment scopes, and its label lets a rerun
  -- tell it from older keys
  local e, msg, code = c:create_binding { name = b.name, service_instance_id = entity.id,
    parameters = parameters, labels = names.sm_labels(b.labels) }
  if not e then return nil, msg, code end
  ctx.result.created_binding = true
  if type(e.credentials) ~= "table" then return c:get("service_bindings", e.id) end
  return e
end

local function credential_type_of(binding)
  local uaa = type(binding.credentials) == "table" and binding.credentials.uaa
  return type(uaa) == "table" and uaa["credential-type"] or nil
end

-- Creates the binding. An x509 key is asked for in the plain shape SAP
-- documents first; a broker that ignores it (the key comes back of another
-- type) gets the {"xsuaa": {...}} shape, after the wrong key -- calmbind's
-- own, made a moment ago -- is deleted. Returns the binding entity.
create_binding = function(ctx, b, entity)
  local want = ctx.opts["credential-type"]
  log.info("creating binding '%s'", b.name)
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

-- Runs the steps through Service Manager; returns the binding entity
-- (with credentials) | nil, msg, code.
-- The entitlement, when the plan says to assign it; returns the plan entity.
local function entitle(ctx, plan)
  if ctx.steps.entitlement.op ~= "assign" then return plan end
  log.info("assigning the entitlement SAP Cloud ALM API / standard to subaccount %s", ctx.opts.subaccount)
  local ok, msg, code = ctx.cis:assign_entitlement(ctx.opts.subaccount)
  if not ok then return nil, msg, code end
  local o, p, pcode = wait_for_plan(ctx)
  if not o then return nil, p, pcode end
  return p
end

-- A create (or update) an earlier run left running: wait for it, then go on.
local function wait_for_running(ctx, inv)
  local w = ctx.steps.wait_for
  if not w then return true end
  log.info("instance '%s' has an operation running; waiting for it", w.name)
  local e, msg, code = ctx.sm:wait_idle("service_instances", w.id,
    "the running operation of instance '" .. w.name .. "'")
  if not e then return nil, msg, code end
  if e.ready == false then
    return nil, string.format("instance '%s' (%s): its create failed while calmbind waited; rerun to clean it up",
      w.name, w.id), "API"
  end
  return true
end

-- The instance step; returns the instance entity.
local function instance(ctx, inv, plan)
  local c, inst = ctx.sm, ctx.steps.instance
  if inst.op == "adopt" then
    M.action(ctx, { action = "adopt", resource = "instance", id = inst.id, name = inst.name })
    return inv.by_id[inst.id]
  elseif inst.op == "create" or inst.op == "recreate" then
    if inst.op == "recreate" then
      local ok, msg, code = c:delete("service_instances", inst.id, "deleting the failed instance '" .. inst.name .. "'")
      if not ok then return nil, msg, code end
    end
    log.info("creating instance '%s'", inst.name)
    return c:create_instance { name = inst.name, service_plan_id = plan.id,
      parameters = inst.parameters, labels = names.sm_labels(inst.labels) }
  end
  if inst.parameters then
    log.info("updating instance '%s' (%s): %s the authorities %s%s", inst.name, inst.id,
      inst.drift and "giving it" or "adding", table.concat(inst.parameters["xs-security"].authorities, ", "),
      inv.by_id[inst.id] and inv.by_id[inst.id].usable == false
        and " again (usable: false: calmbind's own update failed and left it unusable)" or "")
  end
  local body = (inst.parameters or inst.rename) and { parameters = inst.parameters, name = inst.rename } or nil
  if inst.rename then log.info("instance '%s' (%s): renaming it '%s'", inst.name, inst.id, inst.rename) end
  local ok, msg, code = M.patch(ctx, "instance", inst, body)
  if not ok then return nil, msg, code end
  local rec = inv.by_id[inst.id]
  -- the run goes on with what the instance is now called
  if inst.rename and rec then rec.name = inst.rename end
  return rec
end

-- The PATCHes of an in-place update (calm.model.drift: the step's
-- label_changes): body (parameters) goes with the first; a changed label
-- value takes a second PATCH (calm.btp.sm.label_patches). Returns true | nil, msg, code.
function M.patch(ctx, resource, st, body)
  local c = ctx.sm
  local patches = sm.label_patches(st.label_changes)
  for _, ch in ipairs(st.label_changes or {}) do
    log.info("%s '%s': label %s: %s -> %s", resource, st.name, ch.key, M.value_text(ch.old), M.value_text(ch.new))
  end
  local what = "updating " .. resource .. " '" .. tostring(st.name) .. "'"
  local update = resource == "instance" and c.update_instance or c.update_binding
  for i = 1, math.max(#patches, body and 1 or 0) do
    local b = i == 1 and body or {}
    b.labels = patches[i]
    local e, msg, code = update(c, st.id, b, what)
    if not e then return nil, msg, code end
  end
  return true
end

-- A label's values for messages: (none), "v" or "v1,v2".
function M.value_text(v)
  if v == nil then return "(none)" end
  return '"' .. (type(v) == "table" and table.concat(v, ",") or tostring(v)) .. '"'
end

-- An existing binding, with its credentials (waited for when still being created).
local function adopted_binding(ctx, inv, inst_id, b)
  local c, raw = ctx.sm, nil
  if b.wait then
    log.info("binding '%s' is still being created; waiting for it", b.name)
    local ok, msg, code = c:wait_idle("service_bindings", b.id, "binding '" .. b.name .. "'")
    if not ok then return nil, msg, code end
  else
    for _, x in ipairs(inv.by_id[inst_id] and inv.by_id[inst_id].bindings or {}) do
      if x.id == b.id then raw = x end
    end
  end
  if not raw or type(raw.credentials) ~= "table" then
    local got, msg, code = c:get("service_bindings", b.id)
    if not got then return nil, msg, code end
    raw = got
  end
  ctx.result.probe = probed_binding(inv, inst_id, b.id)
  M.action(ctx, { action = "adopt", resource = "binding", id = b.id, name = b.name })
  return raw
end

-- The binding step; returns the binding entity with its credentials.
local function binding(ctx, inv, entity)
  local b = ctx.steps.binding
  if b.op == "adopt" then
    if b.label_changes then
      local ok, msg, code = M.patch(ctx, "binding", b)
      if not ok then return nil, msg, code end
    end
    return adopted_binding(ctx, inv, ctx.steps.instance.id, b)
  end
  if b.op == "recreate" then
    local ok, msg, code = ctx.sm:delete("service_bindings", b.id, "deleting the failed binding '" .. b.name .. "'")
    if not ok then return nil, msg, code end
  end
  return create_binding(ctx, b, entity)
end

function M.execute(ctx)
  local inv = ctx.evidence.inventory
  local plan, msg, code = entitle(ctx, inv.plan)
  if not plan then return nil, msg, code end
  local ok, wmsg, wcode = wait_for_running(ctx, inv)
  if not ok then return nil, wmsg, wcode end
  local entity
  entity, msg, code = instance(ctx, inv, plan)
  if not entity then return nil, msg, code end
  ctx.result.instance_id = entity.id
  ctx.result.instance_name = entity.name or ctx.steps.instance.name
  local bnd
  bnd, msg, code = binding(ctx, inv, entity)
  if not bnd then return nil, msg, code end
  if type(bnd.credentials) ~= "table" then
    return nil, "binding '" .. tostring(bnd.name) .. "' (" .. tostring(bnd.id) .. ") has no credentials", "API"
  end
  ctx.result.binding_id = bnd.id
  ctx.result.binding_name = bnd.name or ctx.steps.binding.name
  return bnd.credentials
end

return M
