-- calm.run.exec_cf: the Cloud Foundry runtime of get and plan (legacy tenants
-- whose instance lives in a CF space). Same rules as Service Manager:
-- the key is the best evidence (a key whose token already carries both
-- imp-cdm-feature-* scopes is adopted: no PATCH, no new key); an instance
-- calmbind did not create is updated only when --update-instance names it;
-- the xsappname an update must keep is read from a key, never guessed.
--
--   creds | steps (plan) | nil, msg, code = exec_cf.run(ctx, mode, say, action)
local paths = require "calm.paths"
local M = {}

local function getenv(name)
  local ok, v = pcall(function() return os.getenv(name) end)
  if ok and v ~= "" then return v end
  return nil
end

-- A CF resource's metadata label.
local function label(it, k)
  local md = type(it.metadata) == "table" and it.metadata or {}
  local l = type(md.labels) == "table" and md.labels or {}
  return l[k]
end

-- Every key of the given instances with its credentials and its token's
-- scopes (calm.probe), read concurrently. Returns {[instance guid] = {key...}}
-- where key = {guid, name, created_at, creds, probe}.
local function gather_keys(c, instances, cacert)
  local task = require "calm.task"
  local probe = require "calm.probe"
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

-- The xsappname an update must keep: the part of a key's uaa.xsappname
-- before "!b". Returns xsappname, where | nil, msg, code.
local function xsappname_of(inst, keys)
  for _, k in ipairs(keys) do
    local uaa = type(k.creds) == "table" and type(k.creds.uaa) == "table" and k.creds.uaa or nil
    local x = uaa and uaa.xsappname
    if type(x) == "string" and x ~= "" then
      return x:match("^(.-)!b") or x, "from service key '" .. tostring(k.name) .. "'"
    end
  end
  return nil, string.format("instance '%s' (%s) needs the imp-cdm-feature-* authorities, and an update must keep "
    .. "its xsappname, which only a service key shows (uaa.xsappname)%s: create a key for it (cf create-service-key "
    .. "'%s' any-name), then rerun", tostring(inst.name), tostring(inst.guid),
    #keys == 0 and " and it has none" or " and none of its keys does", tostring(inst.name)), "MANUAL"
end

local function policy_context(ctx)
  return { scenario = ctx.opts.scenario, runtime = "cf", credential_type = "binding-secret" }
end

-- The key that already fits Deployment, within --instance-name/--binding-name
-- and what calm.policy.adoptable accepts; calm.policy.adopt_rank first.
local function scoped_key(ctx, all, keys_by)
  local policy = require "calm.policy"
  local opts, c = ctx.opts, policy_context(ctx)
  local best_i, best_k, best_rank
  for _, inst in ipairs(all) do
    if not opts["instance-name"] or inst.name == opts["instance-name"] then
      for _, k in ipairs(keys_by[inst.guid] or {}) do
        k.ours = label(k, paths.CREATED_BY) == paths.TOOL
        if k.probe and k.probe.deployment and not paths.is_system_binding_name(k.name)
            and (not opts["binding-name"] or k.name == opts["binding-name"]) and policy.adoptable(k, inst, c) then
          local rank = policy.adopt_rank(k, inst, c)
          if not best_rank or rank < best_rank then best_i, best_k, best_rank = inst, k, rank end
        end
      end
    end
  end
  return best_i, best_k
end

-- Pure decision over what was read: steps = {instance = {...}, binding = {...},
-- usage = text?, manual = text?}.
local function decide(ctx, all, keys_by, plan)
  local opts = ctx.opts
  local deployment = opts.scenario ~= "monitoring"
  local need_auth = deployment and ctx.decision and ctx.decision.path ~= paths.AFTER
  local name = opts["instance-name"] or paths.default_instance_name(opts.scenario, "cf")
  local steps = { runtime = "cf", space = opts["cf-space"], plan = plan.guid, warnings = {} }
  if deployment then
    local si, sk = scoped_key(ctx, all, keys_by)
    if si then
      steps.instance = { op = "adopt", id = si.guid, name = si.name, raw = si,
        why = "its service key '" .. tostring(sk.name) .. "' already has a token with both imp-cdm-feature-* scopes" }
      steps.binding = { op = "adopt", id = sk.guid, name = sk.name, key = sk,
        why = "its token already carries both imp-cdm-feature-* scopes (checked before any change)" }
      return steps
    end
    need_auth = true
  end
  local inst
  for _, i in ipairs(all) do if i.name == name then inst = i end end
  if not inst and not opts["instance-name"] and #all > 1 then
    local names = {}
    for _, i in ipairs(all) do names[#names + 1] = "'" .. tostring(i.name) .. "'" end
    table.sort(names)
    steps.usage = string.format("the space holds %d SAPCloudALMAPIs instances (%s): name the one to use "
      .. "with --instance-name N", #all, table.concat(names, ", "))
    return steps
  elseif not inst and not opts["instance-name"] then
    inst = all[1]
  end
  local det = function(n) -- the key name that says "made after the authorities were added"
    return need_auth and paths.deployment_binding_name(n, "binding-secret")
      or paths.default_binding_name(n, "binding-secret", opts.scenario)
  end
  local kname = opts["binding-name"] or det(inst and inst.name or name)
  local k
  for _, x in ipairs(inst and keys_by[inst.guid] or {}) do if x.name == kname then k = x end end
  if not inst then
    local ok, msg = paths.check_instance_name(name)
    if not ok then steps.usage = msg .. " (to create an instance)"; return steps end
    steps.instance = { op = "create", name = name, why = "no SAPCloudALMAPIs instance "
        .. (opts["instance-name"] and ("named '" .. name .. "' ") or "") .. "in the space"
        .. (deployment and "; with the two imp-cdm-feature-* authorities (xsappname = the instance name)" or ""),
      parameters = paths.instance_parameters(name, { authorities = deployment, runtime = "cf" }) }
  elseif need_auth and k then
    -- a key that fitted would have been adopted above: this one lacks the scopes
    steps.usage = string.format("service key '%s' exists on instance '%s' but its token lacks the "
      .. "imp-cdm-feature-* scopes; name a new key with --binding-name (or leave it out)", kname, inst.name)
    return steps
  elseif not need_auth or label(inst, paths.AUTH_LABEL) == paths.AUTH_VALUE then
    steps.instance = { op = "adopt", id = inst.guid, name = inst.name, raw = inst,
      why = need_auth and ("instance already carries the authorities (label " .. paths.AUTH_LABEL .. ")")
        or "instance exists in the space" }
  else
    M.update_step(steps, ctx, inst, keys_by[inst.guid] or {})
    if steps.usage or steps.manual then return steps end
  end
  if k and steps.instance.op ~= "update" then
    steps.binding = { op = "adopt", id = k.guid, name = kname, key = k, why = "service key exists" }
  else
    steps.binding = { op = "create", name = kname, why = steps.instance.op == "update"
      and "a new service key: only keys created after the update carry the authorities"
      or ("no service key named '" .. kname .. "'") }
  end
  return steps
end

-- The PATCH that adds the authorities: only to an instance calmbind created
-- (label created_by) or the one --update-instance names (with a warning).
function M.update_step(steps, ctx, inst, keys)
  local ours = label(inst, paths.CREATED_BY) == paths.TOOL
  if not ours and ctx.opts["update-instance"] ~= inst.name then
    steps.usage = string.format("instance '%s' (%s) lacks the imp-cdm-feature-* authorities and calmbind did not "
      .. "create it: adding them replaces its xs-security authorities (BTP cannot show the current ones); to update "
      .. "it anyway pass --update-instance %s", tostring(inst.name), tostring(inst.guid), tostring(inst.name))
    return
  end
  local xsapp, where, code = xsappname_of(inst, keys)
  if not xsapp then
    if code == "MANUAL" then steps.manual = where else steps.usage = where end
    return
  end
  steps.instance = { op = "update", id = inst.guid, name = inst.name, xsappname = xsapp, raw = inst,
    why = string.format("%s, scenario deployment: add the two imp-cdm-feature-* authorities to instance "
      .. "'%s', keeping its xsappname %s (%s)", ctx.decision.path, inst.name, xsapp, where),
    parameters = paths.instance_parameters(xsapp, { authorities = true, runtime = "cf" }) }
  if not ours then
    steps.warnings[#steps.warnings + 1] = string.format("updating instance '%s', which calmbind did not create "
      .. "(--update-instance): its xs-security authorities are replaced by the two imp-cdm-feature-* ones; any "
      .. "other authorities it had are dropped, and BTP cannot show them", tostring(inst.name))
  end
end

-- The steps for the run report: no raw resources, no credentials.
local function report_view(steps)
  local function view(st)
    if not st then return nil end
    local v = {}
    for k, x in pairs(st) do if k ~= "raw" and k ~= "key" then v[k] = x end end
    return v
  end
  return { runtime = steps.runtime, space = steps.space, plan = steps.plan, usage = steps.usage,
    manual = steps.manual, instance = view(steps.instance), binding = view(steps.binding) }
end

local function show_plan(ctx, steps, say)
  local json = require "calm.json"
  say("runtime: Cloud Foundry " .. ctx.opts["cf-api"] .. ", space " .. ctx.opts["cf-space"])
  local si = steps.instance
  if si then
    local verb = ({ adopt = "find", create = "would create", update = "would update" })[si.op]
    say(string.format("instance: %s '%s'%s: %s", verb, si.name, si.id and (" (" .. si.id .. ")") or "", si.why))
    if si.parameters then say("  parameters: " .. json.encode(si.parameters)) end
  end
  local sb = steps.binding
  if sb then
    say(string.format("service key: %s '%s'%s: %s", sb.op == "adopt" and "find" or "would create", sb.name,
      sb.id and (" (" .. sb.id .. ")") or "", sb.why))
  end
  if steps.usage then say("get would stop here (exit 2): " .. steps.usage) end
  if steps.manual then say("get would stop here (exit 4): " .. steps.manual) end
end

-- Carries the steps out; returns the key's credentials | nil, msg, code.
local function execute(ctx, c, steps, plan, action)
  local log = require "calm.log"
  local si, sb = steps.instance, steps.binding
  local inst = si.raw
  if si.op == "create" then
    log.info("creating instance '%s' in Cloud Foundry space %s", si.name, steps.space)
    local labels = paths.created_labels(si.parameters["xs-security"].authorities ~= nil,
      { scenario = ctx.opts.scenario, runtime = "cf", credential_type = "binding-secret" })
    local msg, code
    inst, msg, code = c:create_instance(steps.space, plan.guid, si.name, si.parameters, labels)
    if not inst then return nil, msg, code end
  elseif si.op == "update" then
    log.info("updating instance '%s' (%s) in Cloud Foundry: adding the imp-cdm-feature-* authorities", si.name, si.id)
    -- parameters and the label in one PATCH: a rerun knows without the key name
    local job, umsg, ucode = c:mutate("PATCH", "/v3/service_instances/" .. si.id, { parameters = si.parameters,
      metadata = { labels = { [paths.AUTH_LABEL] = paths.AUTH_VALUE } } },
      "updating instance '" .. si.name .. "' in Cloud Foundry")
    if not job then return nil, umsg, ucode end
    action(ctx, { action = "update", resource = "cf-instance", id = si.id, name = si.name })
  else
    action(ctx, { action = "adopt", resource = "cf-instance", id = si.id, name = si.name })
  end
  ctx.result.instance_id, ctx.result.instance_name = inst.guid, inst.name
  local k = sb.key
  if sb.op == "create" then
    log.info("creating service key '%s'", sb.name)
    local msg, code
    -- in Deployment every key calmbind makes is made once the authorities are there
    k, msg, code = c:create_key(inst.guid, sb.name, nil,
      paths.created_labels(ctx.opts.scenario ~= "monitoring", policy_context(ctx)))
    if not k then return nil, msg, code end
    ctx.result.created_binding = true
  else
    ctx.result.probe = k.probe
    action(ctx, { action = "adopt", resource = "cf-key", id = k.guid, name = sb.name })
  end
  ctx.result.binding_id, ctx.result.binding_name = k.guid, sb.name
  if k.creds then return k.creds end
  return c:key_details(k.guid)
end

function M.run(ctx, mode, say, action)
  local cf = require "calm.cf"
  local log = require "calm.log"
  local opts = ctx.opts
  local c, msg, code = cf.connect { api = opts["cf-api"], username = getenv("CF_USERNAME"),
    password = getenv("CF_PASSWORD"), cacert = opts.cacert,
    on_action = function(a) action(ctx, a) end }
  if not c then return nil, msg, code end
  local ok, tmsg, tcode = c.session:token()
  if not ok then return nil, tmsg, tcode end
  local plan
  plan, msg, code = c:find_plan()
  if plan == nil then return nil, msg, code end
  if not plan then
    return nil, "Cloud Foundry: no SAP Cloud ALM API plan 'standard' is visible: the subaccount is not "
      .. "entitled for it.\n  " .. paths.ENTITLEMENT_STEPS, "MANUAL"
  end
  local all
  all, msg, code = c:instances(opts["cf-space"], plan.guid)
  if not all then return nil, msg, code end
  local keys_by
  keys_by, msg, code = gather_keys(c, all, opts.cacert)
  if not keys_by then return nil, msg, code end
  local steps = decide(ctx, all, keys_by, plan)
  ctx.report.steps = report_view(steps)
  for _, w in ipairs(steps.warnings) do log.warn("%s", w) end
  if mode == "plan" then show_plan(ctx, steps, say); return steps end
  if steps.usage then return nil, steps.usage, "USAGE" end
  if steps.manual then return nil, steps.manual, "MANUAL" end
  return execute(ctx, c, steps, plan, action)
end

return M
