-- calm.ops.exec_cf: the Cloud Foundry runtime of get and plan (legacy tenants
-- whose instance lives in a CF space). What exists in the space becomes the
-- same inventory Service Manager's listing does (calm.model.inventory), keys
-- probed for their scopes (calm.key.probe); calm.model.plan plans from it exactly as
-- for Service Manager; this module only reads the space and carries the
-- steps out through the CF v3 API.
--
--   creds | steps (plan) | nil, msg, code = exec_cf.run(ctx, mode, say, action)
local evidence = require "calm.model.evidence"
local inventory = require "calm.model.inventory"
local planner = require "calm.model.plan"
local model_steps = require "calm.model.steps"
local options = require "calm.ops.options"
local report = require "calm.ops.report"
local exec_sm = require "calm.ops.exec_sm"
local cf = require "calm.btp.cf"
local json = require "calm.lib.json"
local log = require "calm.log"
local probe = require "calm.key.probe"
local task = require "calm.task"
local M = {}

local patch


-- Every key of the given instances with its credentials and its token's
-- scopes (calm.key.probe), read concurrently. Returns {[instance guid] = {key...}}
-- where key = {guid, name, created_at, creds, probe}.
local function gather_keys(c, instances, cacert)
  local fns = {}
  for n, inst in ipairs(instances) do
    fns[n] = function()
      local keys, msg, code = c:keys(inst.guid)
      if not keys then return nil, msg, code end
      table.sort(keys, function(a, b) return tostring(a.created_at) < tostring(b.created_at) end)
      for _, k in ipairs(keys) do
        local creds, dmsg, dcode = c:key_details(k.guid)
        if not creds and (dcode == "DEADLINE" or dcode == "AUTH") then return nil, dmsg, dcode end
        k.creds = creds
        if creds then
          k.probe = probe.one(creds, "service key '" .. tostring(k.name) .. "'", { cacert = cacert })
          if k.probe.code == "DEADLINE" then return nil, k.probe.error, "DEADLINE" end
        end
      end
      return keys
    end
  end
  local out = {}
  for n, r in ipairs(task.all(fns)) do
    if r[1] == nil then
      if r[3] == "FLOW_FAILED" then error(r[2], 0) end
      return nil, r[2], r[3]
    end
    out[instances[n].guid] = r[1]
  end
  return out
end

-- The space as an inventory (calm.model.inventory's records, owner "cf"),
-- each key with its probe.
local function cf_inventory(all, keys_by, plan)
  for _, keys in pairs(keys_by) do for _, k in ipairs(keys) do k.credentials = k.creds end end
  local inv = inventory.from_cf { plan = plan, instances = all, keys = keys_by }
  for _, i in ipairs(inv.instances) do
    for _, b in ipairs(i.bindings) do
      for _, k in ipairs(keys_by[i.id] or {}) do if k.guid == b.id then b.probe = k.probe end end
    end
  end
  return inv
end

-- The decision judged by the keys of the space (Service Manager does not
-- list CF keys; calm.model.evidence), then calm.model.plan's steps.
local function plan_steps(ctx, inv)
  local opts = ctx.opts
  local o = options.plan_options(ctx)
  o.runtime, o.credential_type = "cf", "binding-secret"
  local steps = planner.steps(evidence.with_keys(ctx.decision, inv, o), inv, o)
  steps.runtime, steps.space = "cf", opts["cf-space"]
  -- what the CF runtime does not do by itself
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

-- The steps for the run report: no credentials.
local function report_view(steps)
  return { runtime = steps.runtime, space = steps.space, usage = steps.usage, manual = steps.manual,
    instance = steps.instance, binding = steps.binding, notes = steps.notes, drift = steps.drift }
end

local VERB = { adopt = "find", create = "would create", update = "would update", refuse = "leave alone",
  manual = "manual step for", recreate = "would re-create", none = "no" }

local function show_plan(ctx, steps, say)
  say("runtime: Cloud Foundry " .. ctx.opts["cf-api"] .. ", space " .. ctx.opts["cf-space"])
  local si = steps.instance
  if si then
    say(string.format("instance: %s '%s'%s: %s", VERB[si.op] or si.op, si.name, si.id and (" (" .. si.id .. ")") or "",
      si.why))
    if si.parameters then say("  parameters: " .. json.encode(si.parameters)) end
  end
  local sb = steps.binding
  if sb then
    say(string.format("service key: %s '%s'%s: %s", VERB[sb.op] or sb.op, tostring(sb.name),
      sb.id and (" (" .. sb.id .. ")") or "", sb.why))
  end
  report.describe_drift(steps.drift, say, ctx.policy)
  if steps.usage then say("get would stop here (exit 2): " .. steps.usage) end
  if steps.manual then say("get would stop here (exit 4): " .. steps.manual) end
end

-- A PATCH of a v3 service instance with the step's label changes as
-- metadata.labels (a value set, null removes). Returns true | nil, msg, code.
patch = function(ctx, c, path, st, body)
  local labels = {}
  for _, ch in ipairs(st.label_changes or {}) do
    log.info("instance '%s': label %s: %s -> %s", st.name, ch.key, exec_sm.value_text(ch.old),
      exec_sm.value_text(ch.new))
    labels[ch.key] = ch.new == nil and json.null or tostring(type(ch.new) == "table" and ch.new[1] or ch.new)
  end
  if next(labels) then body.metadata = { labels = labels } end
  local job, msg, code = c:mutate("PATCH", "/v3/" .. path .. "/" .. st.id, body,
    "updating " .. tostring(st.name) .. " in Cloud Foundry")
  if not job then return nil, msg, code end
  return true
end

-- Carries the steps out; returns the key's credentials | nil, msg, code.
local function execute(ctx, c, steps, plan, space, action)
  local si, sb = steps.instance, steps.binding
  local inst_guid, inst_name = si.id, si.name
  if si.op == "create" then
    log.info("creating instance '%s' in Cloud Foundry space %s", si.name, space)
    local inst, msg, code = c:create_instance(space, plan.guid, si.name, si.parameters, si.labels)
    if not inst then return nil, msg, code end
    inst_guid, inst_name = inst.guid, inst.name
  elseif si.op == "update" then
    if si.parameters then
      log.info("updating instance '%s' (%s) in Cloud Foundry: %s the authorities %s", si.name, si.id,
        si.drift and "giving it" or "adding", table.concat(si.parameters["xs-security"].authorities, ", "))
    end
    -- parameters, name and labels in one PATCH (CF sets a label's value, so a
    -- changed one needs no second request): a rerun knows without the key name
    local ok, umsg, ucode = patch(ctx, c, "service_instances", si, { parameters = si.parameters, name = si.rename })
    if not ok then return nil, umsg, ucode end
    action(ctx, { action = "update", resource = "cf-instance", id = si.id, name = si.rename or si.name })
    inst_name = si.rename or si.name
  else
    action(ctx, { action = "adopt", resource = "cf-instance", id = si.id, name = si.name })
  end
  ctx.result.instance_id, ctx.result.instance_name = inst_guid, inst_name
  local guid, creds = sb.id, nil
  if sb.op == "create" then
    log.info("creating service key '%s'", sb.name)
    local k, msg, code = c:create_key(inst_guid, sb.name, nil, sb.labels)
    if not k then return nil, msg, code end
    guid = k.guid
    ctx.result.created_binding = true
  else
    local b = ctx.cf_keys[sb.id]
    ctx.result.probe, creds = b and b.probe, b and b.creds
    action(ctx, { action = "adopt", resource = "cf-key", id = sb.id, name = sb.name })
  end
  ctx.result.binding_id, ctx.result.binding_name = guid, sb.name
  if creds then return creds end
  return c:key_details(guid)
end

function M.run(ctx, mode, say, action)
  local opts = ctx.opts
  local login, lmsg, lcode = cf.login_from_env(opts)
  if not login then return nil, lmsg, lcode end
  local c, msg, code = cf.connect { api = opts["cf-api"], login = login, cacert = opts.cacert,
    on_action = function(a) action(ctx, a) end }
  if not c then return nil, msg, code end
  local ok, tmsg, tcode = c.session:token()
  if not ok then return nil, tmsg, tcode end
  local plan
  plan, msg, code = c:find_plan(opts["cf-space"])
  if plan == nil then return nil, msg, code end
  if not plan then
    return nil, "Cloud Foundry: no SAP Cloud ALM API plan 'standard' is visible: the subaccount is not "
      .. "entitled for it.\n  " .. model_steps.ENTITLEMENT_STEPS, "MANUAL"
  end
  local all
  all, msg, code = c:instances(opts["cf-space"], plan.guid)
  if not all then return nil, msg, code end
  local keys_by
  keys_by, msg, code = gather_keys(c, all, opts.cacert)
  if not keys_by then return nil, msg, code end
  ctx.cf_keys = {}
  for _, keys in pairs(keys_by) do for _, k in ipairs(keys) do ctx.cf_keys[k.guid] = k end end
  local steps = plan_steps(ctx, cf_inventory(all, keys_by, plan))
  ctx.report.steps = report_view(steps)
  ctx.verify_authorities = steps.verify_authorities
  for _, w in ipairs(steps.warnings) do log.warn("%s", w) end
  if mode == "plan" then show_plan(ctx, steps, say); return steps end
  if steps.usage then return nil, steps.usage, "USAGE" end
  if steps.manual then return nil, steps.manual, "MANUAL" end
  return execute(ctx, c, steps, plan, opts["cf-space"], action)
end

return M
