-- calm.ops.apply: carries out the steps calm.model.plan planned, for either
-- runtime, in one order: the entitlement, an operation an earlier run left
-- running, the instance (create, delete and re-create, update in place
-- with its label and name changes, or adopt), the binding (create, delete
-- and re-create, adopt with its label changes), then the key's credentials.
-- It decides nothing a plan did not say; what a platform does is its
-- runtime adapter's (calm.ops.runtime_sm, calm.ops.runtime_cf).
--
--   creds | nil, msg, code = apply.run(ctx, rt, inventory)  -- ctx.steps, planned from inventory;
--                                                  -- fills ctx.result
--   apply.action(ctx, {action =, resource =, id =, name =})  -- into the run report
--   text = apply.value_text(v)                    -- a label's values for messages
--
-- The adapter rt: records are {id, name, credentials?}; each function
-- returns nil, msg, code on failure.
--   rt.RESOURCE = {instance =, binding =}  the report's resource names
--   rt.BINDING                              what the platform calls a binding, for messages
--   rt.place(ctx)                           where instances are, for messages ("" for SM)
--   rt.entitle(ctx) -> plan                 assign the entitlement, wait for the plan
--   rt.wait_running(ctx, step) -> record    wait for an instance's running operation (ready = false: its create failed)
--   rt.create_instance(ctx, step, plan) -> record
--   rt.delete_instance(ctx, step) -> true
--   rt.update_instance(ctx, step, {parameters =, name =}) -> true   with step.label_changes
--   rt.update_binding(ctx, step) -> true    step.label_changes
--   rt.create_binding(ctx, step, instance) -> record
--   rt.delete_binding(ctx, step) -> true
--   rt.wait_binding(ctx, step) -> true      a binding still being created
--   rt.credentials(ctx, binding_id) -> credentials
-- A primitive an adapter lacks is a step that platform's planner never
-- asks of it (runtime_cf: see its header); an adapter without the waits
-- goes on without waiting.
local log = require "calm.log"
local M = {}

function M.action(ctx, a)
  ctx.report.actions[#ctx.report.actions + 1] = a
end

-- A label's values for messages: (none), "v" or "v1,v2".
function M.value_text(v)
  if v == nil then return "(none)" end
  return '"' .. (type(v) == "table" and table.concat(v, ",") or tostring(v)) .. '"'
end

-- The inventory's record of an instance or binding, if it lists it.
local function instance_record(inv, id)
  return inv and inv.by_id and inv.by_id[id]
end

local function binding_record(inv, instance_id, id)
  local inst = instance_record(inv, instance_id)
  for _, b in ipairs(inst and inst.bindings or {}) do
    if b.id == id then return b end
  end
  return nil
end

local function tell_label_changes(resource, st)
  for _, ch in ipairs(st.label_changes or {}) do
    log.info("%s '%s': label %s: %s -> %s", resource, st.name, ch.key, M.value_text(ch.old), M.value_text(ch.new))
  end
end

-- The entitlement, when the plan says to assign it. Returns the plan | nil, msg, code.
local function entitle(ctx, rt, plan)
  if not (ctx.steps.entitlement and ctx.steps.entitlement.op == "assign") then return plan end
  log.info("assigning the entitlement SAP Cloud ALM API / standard to subaccount %s", ctx.opts.subaccount)
  return rt.entitle(ctx)
end

-- A create (or update) an earlier run left running: wait for it, then go on.
local function wait_for_running(ctx, rt)
  local w = ctx.steps.wait_for
  if not w or not rt.wait_running then return true end
  log.info("instance '%s' has an operation running; waiting for it", w.name)
  local e, msg, code = rt.wait_running(ctx, w)
  if not e then return nil, msg, code end
  if e.ready == false then
    return nil, string.format("instance '%s' (%s): its create failed while calmbind waited; rerun to clean it up",
      w.name, w.id), "API"
  end
  return true
end

-- An update in place: the authorities (parameters), a new name, label
-- changes. Returns the instance's record (with its name now) | nil, msg, code.
local function update_instance(ctx, rt, inv, inst)
  local rec = instance_record(inv, inst.id) or { id = inst.id, name = inst.name }
  if inst.parameters then
    log.info("updating instance '%s' (%s)%s: %s the authorities %s%s", inst.name, inst.id, rt.place(ctx),
      inst.drift and "giving it" or "adding", table.concat(inst.parameters["xs-security"].authorities, ", "),
      rec.usable == false and " again (usable: false: calmbind's own update failed and left it unusable)" or "")
  end
  if inst.rename then log.info("instance '%s' (%s): renaming it '%s'", inst.name, inst.id, inst.rename) end
  tell_label_changes("instance", inst)
  local ok, msg, code = rt.update_instance(ctx, inst, { parameters = inst.parameters, name = inst.rename })
  if not ok then return nil, msg, code end
  -- the run goes on with what the instance is now called
  if inst.rename then rec.name = inst.rename end
  return rec
end

-- The instance step. Returns the instance's record | nil, msg, code.
local function instance(ctx, rt, inv, plan)
  local inst = ctx.steps.instance
  if inst.op == "adopt" then
    M.action(ctx, { action = "adopt", resource = rt.RESOURCE.instance, id = inst.id, name = inst.name })
    return instance_record(inv, inst.id) or { id = inst.id, name = inst.name }
  elseif inst.op == "create" or inst.op == "recreate" then
    if inst.op == "recreate" then
      local ok, msg, code = rt.delete_instance(ctx, inst)
      if not ok then return nil, msg, code end
    end
    log.info("creating instance '%s'%s", inst.name, rt.place(ctx))
    return rt.create_instance(ctx, inst, plan)
  end
  return update_instance(ctx, rt, inv, inst)
end

-- An existing binding, with its credentials (waited for when still being
-- created; read again when the inventory does not hold them).
local function adopted_binding(ctx, rt, inv, inst_id, b)
  if b.label_changes then
    tell_label_changes(rt.BINDING, b)
    local ok, msg, code = rt.update_binding(ctx, b)
    if not ok then return nil, msg, code end
  end
  local rec = binding_record(inv, inst_id, b.id)
  local wait = b.wait and rt.wait_binding
  if wait then
    log.info("%s '%s' is still being created; waiting for it", rt.BINDING, b.name)
    local ok, msg, code = rt.wait_binding(ctx, b)
    if not ok then return nil, msg, code end
  end
  ctx.result.probe = rec and rec.probe
  M.action(ctx, { action = "adopt", resource = rt.RESOURCE.binding, id = b.id, name = b.name })
  local creds = not wait and rec and type(rec.credentials) == "table" and rec.credentials or nil
  return { id = b.id, name = b.name, credentials = creds }
end

-- The binding step. Returns the binding's record | nil, msg, code.
local function binding(ctx, rt, inv, entity)
  local b = ctx.steps.binding
  if b.op == "adopt" then return adopted_binding(ctx, rt, inv, ctx.steps.instance.id, b) end
  if b.op == "recreate" then
    local ok, msg, code = rt.delete_binding(ctx, b)
    if not ok then return nil, msg, code end
  end
  log.info("creating %s '%s'", rt.BINDING, b.name)
  local rec, msg, code = rt.create_binding(ctx, b, entity)
  if not rec then return nil, msg, code end
  ctx.result.created_binding = true
  return rec
end

-- Runs the steps (ctx.steps, planned from inv) through the adapter; returns the key's
-- credentials | nil, msg, code. ctx.result names the instance and binding.
function M.run(ctx, rt, inv)
  local plan, msg, code = entitle(ctx, rt, inv and inv.plan)
  if not plan then return nil, msg, code end
  local ok, wmsg, wcode = wait_for_running(ctx, rt)
  if not ok then return nil, wmsg, wcode end
  local entity
  entity, msg, code = instance(ctx, rt, inv, plan)
  if not entity then return nil, msg, code end
  ctx.result.instance_id = entity.id
  ctx.result.instance_name = entity.name or ctx.steps.instance.name
  local bnd
  bnd, msg, code = binding(ctx, rt, inv, entity)
  if not bnd then return nil, msg, code end
  ctx.result.binding_id = bnd.id
  ctx.result.binding_name = bnd.name or ctx.steps.binding.name
  if type(bnd.credentials) == "table" then return bnd.credentials end
  return rt.credentials(ctx, bnd)
end

return M
