-- calm.ops.runtime_cf: the Cloud Foundry runtime adapter of calm.ops.apply
-- (the primitives it lists, over the v3 client ctx.cf that calm.ops.gather's
-- cf_space connected): instances and service keys in the --cf-space, their
-- jobs polled to the end by the client.
--
--   creds | nil, msg, code = apply.run(ctx, runtime_cf, inventory)
--   runtime_cf.by_hand(steps)        -- what this runtime leaves to a person
--
-- What it does not do, so that the planner's steps never ask it: assign
-- the entitlement (a plan not visible in the space stops the run before,
-- calm.ops.gather), delete and re-create a failed leftover (by_hand makes
-- that a manual step), change a service key's labels (calm.model.drift
-- tells them only); nor wait for an operation an earlier run left running
-- (calm.ops.apply goes on without: docs/design.md, Known limitations).
local json = require "calm.lib.json"
local M = {}

M.RESOURCE = { instance = "cf-instance", binding = "cf-key" }
M.BINDING = "service key"

function M.place(ctx) return " in Cloud Foundry space " .. tostring(ctx.opts["cf-space"]) end

-- A failed leftover in the space is deleted by a person, then the run is
-- repeated: steps.manual says how (cf delete-service / delete-service-key).
function M.by_hand(steps)
  for _, part in ipairs({ "instance", "binding" }) do
    local st = steps[part]
    if st and st.op == "recreate" and not steps.usage then
      steps.manual = steps.manual or string.format("%s '%s' in the Cloud Foundry space is a failed leftover: delete "
        .. "it (cf delete-service%s '%s'), then rerun", part == "instance" and "instance" or "service key",
        tostring(st.name), part == "instance" and "" or "-key", tostring(st.name))
    end
  end
  return steps
end

function M.create_instance(ctx, si, plan)
  local inst, msg, code = ctx.cf:create_instance(ctx.opts["cf-space"], plan.guid, si.name, si.parameters, si.labels)
  if not inst then return nil, msg, code end
  return { id = inst.guid, name = inst.name }
end

-- One v3 PATCH: parameters, name and the step's label changes as
-- metadata.labels (CF sets a label's value, null removes it: a changed
-- value needs no second request).
function M.update_instance(ctx, si, body)
  local patch = { parameters = body.parameters, name = body.name }
  local labels = {}
  for _, ch in ipairs(si.label_changes or {}) do
    labels[ch.key] = ch.new == nil and json.null or tostring(type(ch.new) == "table" and ch.new[1] or ch.new)
  end
  if next(labels) then patch.metadata = { labels = labels } end
  local job, msg, code = ctx.cf:mutate("PATCH", "/v3/service_instances/" .. si.id, patch,
    "updating instance '" .. tostring(si.name) .. "' in Cloud Foundry")
  if not job then return nil, msg, code end
  -- the v3 client notes creates only; an update is noted here, as Service
  -- Manager's client notes its own
  ctx.cf:_note { action = "update", resource = M.RESOURCE.instance, id = si.id, name = si.rename or si.name }
  return true
end

function M.create_binding(ctx, sb, inst)
  local k, msg, code = ctx.cf:create_key(inst.id, sb.name, nil, sb.labels)
  if not k then return nil, msg, code end
  return { id = k.guid, name = sb.name }
end

-- A service key's credentials: its /details.
function M.credentials(ctx, b)
  return ctx.cf:key_details(b.id)
end

return M
