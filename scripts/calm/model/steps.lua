-- calm.model.steps: the steps the provisioning paths (calm.model.paths.*) are
-- made of, shared by all three and by both runtimes: the entitlement, the
-- key the decision adopts, an instance taken as it is or given the
-- authorities (the run's policy says which: o.policy), and its binding
-- (which one: calm.model.binding_steps), with the names and labels the
-- policy gives. Pure: no requests.
--
--   s = steps.new()
--   steps.entitlement(s, inventory, o)     -- s.entitlement (and s.manual)
--   steps.adopt_key(s, decision.key)       -- the key that already fits
--   steps.as_it_is(s, decision, inventory, o, {default_instance=, with_authorities=})
--   steps.with_authorities(s, decision, inventory, o)
--   steps.others(s, inventory)             -- the keys a new one may replace
--   steps.check_names(s, o)                -- the name rules, for creating
--     o = calm.model.plan's options; each fills s = {instance, binding, notes,
--     warnings, usage?, manual?, wait_for?} as calm.model.plan documents.
local parameters = require "calm.model.parameters"
local names = require "calm.model.names"
local inventory = require "calm.model.inventory"
local binding_steps = require "calm.model.binding_steps"
local foreign = inventory.foreign
local M = {}

M.ENTITLEMENT_STEPS = table.concat({
  "In the BTP cockpit: open the global account > Entitlements > Entity Assignments,",
  "select the SAP Cloud ALM subaccount, Edit > Add Service Plans, choose \"SAP Cloud ALM API\"",
  "(SAPCloudALMAPIs), tick plan \"standard\", Add, set the quota to 1 if asked, and Save.",
  "Then rerun calmbind get (or pass --cis-key FILE --subaccount GUID to let calmbind assign it).",
}, "\n  ")

function M.new() return { notes = {}, warnings = {} } end

-- What the policy's hooks are told about this run (calm.policy.load.context).
function M.context(o, ctype)
  return { scenario = o.scenario, runtime = o.runtime, credential_type = ctype, tenant = o.tenant }
end

-- The authorities the policy gives an instance, and how the plan names
-- them: the list itself and where it comes from (the built-in policy, or
-- the admin's file and field).
function M.authorities(o, ctype)
  local list = o.policy:authorities(M.context(o, ctype))
  if #list == 0 then return list, "no authorities (" .. o.policy:where("authorities") .. " gives none)" end
  return list, string.format("the %d authorit%s %s (%s)", #list, #list == 1 and "y" or "ies",
    table.concat(list, ", "), o.policy:where("authorities"))
end

-- The credential types an update must keep allowing: SAP: removing one
-- invalidates the bindings of that type, so every type in use stays (a
-- binding without credential-type is an instance-secret binding).
function M.kept_types(target)
  local keep, kept = {}, {}
  for _, b in ipairs(target.bindings) do
    local t = b.credential_type or "instance-secret"
    if (t == "instance-secret" or t == "x509") and not keep[t] then
      keep[t] = true
      kept[#kept + 1] = t
    end
  end
  return kept
end

-- The manual step for an instance another platform owns.
local function owned_manual(inst)
  local owner = inst.owner_name or "another platform"
  local way = inst.owner == "cf"
      and "Rerun with --runtime cf --cf-api URL --cf-space GUID and CF_USERNAME/CF_PASSWORD in the environment"
    or inst.owner == "kyma"
      and "Get its key in the Kyma cluster (a ServiceBinding of the SAP BTP service operator)"
    or "Get its key on that platform"
  return string.format("instance '%s' (%s) is owned by %s (platform %s): Service Manager lists it "
    .. "but cannot update or bind it. %s, or name a new instance in Service Manager with --instance-name N",
    tostring(inst.name), tostring(inst.id), owner, tostring(inst.platform_id), way)
end

-- The update that adds the authorities to an existing instance. An update
-- replaces the instance's xs-security authorities (BTP cannot return the old
-- parameters), which can break other integrations: calmbind updates only an
-- instance it created, or the one --update-instance names, with a warning.
-- The xsappname is kept, never guessed; every credential type a binding
-- uses stays allowed (removing one invalidates those bindings).
local function update_step(s, d, target, o, ctype)
  local name, id = tostring(target.name), tostring(target.id)
  if not target.ours and o.update_instance ~= target.name then
    s.instance = { op = "refuse", id = target.id, name = target.name, why = "not created by calmbind" }
    s.usage = s.usage or string.format("instance '%s' (%s) lacks the imp-cdm-feature-* authorities and calmbind did "
      .. "not create it: adding them replaces its xs-security authorities (BTP cannot show the current ones, e.g. "
      .. "calm-api.* authorities of other SAP integrations); to update it anyway pass --update-instance %s, or "
      .. "leave out --instance-name and calmbind creates an instance of its own", name, id, name)
    return
  end
  local xsapp = target.xsappname or (target.ours and target.name) or nil
  if not xsapp then
    -- no binding shows it: SAP's page on updating the generated instance
    -- (created without parameters) gives its GUID; the broker refuses a
    -- changed xsappname, and the new key's scopes confirm the update
    xsapp = target.id
    s.notes[#s.notes + 1] = string.format("no binding of instance '%s' shows its xsappname: the update uses its "
      .. "GUID, as SAP's page on updating the generated instance says (the broker refuses a changed xsappname; "
      .. "the new key's token scopes confirm the update)", name)
  end
  local kept = M.kept_types(target)
  local list, text = M.authorities(o, ctype)
  s.instance = { op = "update", id = target.id, name = target.name, xsappname = xsapp,
    why = string.format("%s, scenario deployment: add %s to the existing "
      .. "instance '%s', keeping its xsappname %s%s%s", d.path, text, name, xsapp,
      xsapp == target.id and " (its GUID: it was created without parameters)" or "",
      target.usable == false and " (usable: false: calmbind's own update failed and left it unusable; "
        .. "repeating it)" or target.state == "update-failed" and " (an earlier update failed: updating again)" or ""),
    parameters = parameters.instance_parameters(xsapp, { authorities = list,
      credential_type = ctype, keep_types = kept }) }
  if #kept > 0 then
    s.notes[#s.notes + 1] = string.format("instance '%s' keeps allowing %s keys: its existing keys use them "
      .. "(removing a credential type invalidates its bindings)", name, table.concat(kept, " and "))
  end
  if not target.ours then
    local xs = s.instance.parameters["xs-security"]
    s.warnings[#s.warnings + 1] = string.format("updating instance '%s', which calmbind did not create (--update-instance): "
      .. "its xs-security authorities are replaced by %s and its credential-types by %s; any other authorities it had "
      .. "(e.g. calm-api.* of other SAP integrations) are dropped, and BTP cannot show them", name,
      table.concat(xs.authorities, ", "), xs["oauth2-configuration"] and table.concat(
        xs["oauth2-configuration"]["credential-types"], ", ") or "the broker's default")
  end
end

-- Adopts the key calm.model.evidence found (its token already carries both
-- imp-cdm-feature-* scopes): no instance update, no new binding.
function M.adopt_key(s, key)
  local b, inst = key.binding, key.instance
  s.instance = { op = "adopt", id = inst.id, name = inst.name,
    why = "its binding '" .. tostring(b.name) .. "' already has a token with both imp-cdm-feature-* scopes" }
  s.binding = { op = "adopt", id = b.id, name = b.name, scoped = true,
    why = "its token already carries both imp-cdm-feature-* scopes (checked before any change): "
      .. "no instance update, no new binding" }
  s.others = {}
end

function M.entitlement(s, inv, o)
  if inv.plan then
    s.entitlement = { op = "ok", why = "the SAPCloudALMAPIs offering and plan standard are visible in Service Manager" }
  elseif o.cis and o.subaccount then
    s.entitlement = { op = "assign", why = "SAP Cloud ALM API / standard is not entitled to the subaccount: "
      .. "assign it through the Entitlements API (--cis-key)" }
  elseif o.cis then
    s.entitlement = { op = "manual", why = "not entitled, and --subaccount GUID is missing to assign it with --cis-key" }
    s.manual = "SAP Cloud ALM API is not entitled to the subaccount; pass --subaccount GUID with --cis-key, or:\n  "
      .. M.ENTITLEMENT_STEPS
  else
    -- a local-plan cis key reads dates but cannot assign entitlements
    s.entitlement = { op = "manual", why = "SAP Cloud ALM API / standard is not entitled to the subaccount and "
      .. (o.cis_given and "no central-plan cis key was given (a local-plan key cannot assign entitlements)"
        or "no --cis-key was given") }
    s.manual = "SAP Cloud ALM API is not entitled to the subaccount (the SAPCloudALMAPIs offering is not "
      .. "visible in Service Manager)" .. (o.cis_given and "; the cis key given is a local-plan key, which cannot "
        .. "assign entitlements (a central-plan key can)" or "") .. ".\n  " .. M.ENTITLEMENT_STEPS
  end
end

local function first(inv, pred)
  for _, i in ipairs(inv.instances) do if pred(i) then return i end end
  return nil
end

-- The instance to give the authorities: the named or default one, else one
-- an earlier run gave them (any name: no second instance), else one another
-- platform owns (the user's to choose, not a reason for a second one).
local function authorities_target(inv, o, name)
  local t = inventory.find_instance(inv, name)
  if t or o.instance_name then return t end
  return first(inv, function(i) return i.has_authorities and not foreign(inv, i) and i.state ~= "failed" end)
    or first(inv, function(i) return foreign(inv, i) end)
end

-- The instance to adopt as it is: the named one (or the default one where
-- the path creates it), else SAP's generated one, else the oldest ready one.
local function adopt_target(inv, o, name)
  local t = name and inventory.find_instance(inv, name) or nil
  if t or o.instance_name then return t end
  return inventory.generated_instance(inv)
    or first(inv, function(i) return i.ready and not foreign(inv, i) and i.state ~= "failed" end)
    or first(inv, function(i) return foreign(inv, i) end)
end

local function create_step(s, d, inv, o, name, need_auth, rule, ctype)
  local why
  local list, text
  if rule.with_authorities then list, text = M.authorities(o, ctype) end
  if need_auth then
    why = string.format("%s, scenario deployment: a new instance '%s' with %s "
      .. "(xsappname = the instance name)", d.path, name, text)
  elseif rule.default_instance then
    why = string.format("%s: no instance exists; creating '%s'%s", d.path, name,
      rule.with_authorities and (" with " .. text) or " (monitoring: no authorities needed)")
  elseif o.instance_name and inventory.generated_instance(inv) then
    why = string.format("%s: no instance named '%s' exists; creating it as asked (the generated instance '%s' stays "
      .. "as it is; leave out --instance-name to use its key)", d.path, name, inventory.generated_instance(inv).name)
  else
    why = string.format("%s: no instance %s exists (the generated one was deleted?); creating '%s'",
      d.path, o.instance_name and ("named '" .. o.instance_name .. "'") or "of SAPCloudALMAPIs", name)
  end
  s.instance = { op = "create", name = name, why = why,
    parameters = parameters.instance_parameters(name, { authorities = list,
      credential_type = ctype }) }
end

-- Service Manager marks an instance usable: false when the broker said a
-- failed update left it unusable (OSB instance_usable). Only calmbind's own
-- update, which it can repeat, is retried; anything else is the admin's.
local function unusable_manual(target)
  local lo = type(target.last_operation) == "table" and target.last_operation or {}
  local what = type(lo.description) == "string" and lo.description ~= "" and (": " .. lo.description) or ""
  return string.format("instance '%s' (%s) is not usable (usable: false: its last %s failed%s and the service "
    .. "broker marked it unusable); calmbind %s. Steps: in the BTP cockpit open the instance, read its last "
    .. "operation, and update it again with the parameters it needs (or delete and re-create it); then rerun. "
    .. "Or name another instance with --instance-name N", tostring(target.name), tostring(target.id),
    tostring(lo.type or "update"), what, target.ours and "created it, but the failed change was not its own update"
      or "did not create it, so it does not repeat someone else's update")
end

-- What to do with the instance found: wait for, recreate, refuse, update or adopt it.
local function instance_step(s, d, target, o, need_auth, rule, ctype)
  if target.owner ~= (o.runtime or "sm") then
    s.instance = { op = "manual", id = target.id, name = target.name, why = "owned by " .. tostring(target.owner_name) }
    s.manual = s.manual or owned_manual(target)
  elseif target.usable == false and target.ready and target.state ~= "pending"
      and not (target.ours and need_auth and not target.has_authorities) then
    s.instance = { op = "manual", id = target.id, name = target.name, why = "usable: false" }
    s.manual = s.manual or unusable_manual(target)
  elseif target.state == "failed" or (not target.ready and target.state ~= "pending") then
    if target.ours and #target.bindings == 0 then
      s.instance = { op = "recreate", id = target.id, name = target.name,
        why = "instance '" .. tostring(target.name) .. "' is a failed leftover of an earlier calmbind run "
          .. "(ready: false): delete it and create it again",
        parameters = parameters.instance_parameters(target.name, { authorities = rule.with_authorities
          and (M.authorities(o, ctype)) or nil, credential_type = ctype }) }
    else
      s.instance = { op = "manual", id = target.id, name = target.name, why = "not ready" }
      s.manual = s.manual or string.format("instance '%s' (%s) is not ready (its create failed); %s: delete or "
        .. "repair it in the BTP cockpit, or use another --instance-name", tostring(target.name), tostring(target.id),
        target.ours and "it has bindings, so calmbind does not delete it" or "calmbind did not create it, so it is left alone")
    end
  else
    -- an operation still running (a create that outlived an earlier run's
    -- --timeout, say) is waited for, never taken for a failure
    if target.state == "pending" then s.wait_for = { id = target.id, name = target.name } end
    if need_auth and not target.has_authorities then
      update_step(s, d, target, o, ctype)
    else
      s.instance = { op = "adopt", id = target.id, name = target.name,
        why = need_auth and ("instance '" .. target.name .. "' already carries the authorities (label "
            .. inventory.AUTH_LABEL .. ")")
          or target.generated and "the instance SAP generated at provisioning"
          or (o.instance_name and "the instance named by --instance-name")
          or "the existing SAPCloudALMAPIs instance" }
    end
  end
end

-- Every other Cloud ALM API key of the tenant is one Landscape Management
-- or /SDF/ALM_SETUP may hold today (it keeps one key per tenant), whichever
-- instance it belongs to; keys Cloud ALM made for managed systems
-- (<SID>_<client>_<sysno>) are its own business.
function M.others(s, inv)
  s.others = {}
  if not (s.binding and s.binding.op == "create") then return end
  for _, i in ipairs(inv.instances) do
    for _, b in ipairs(i.bindings) do
      if not b.system then
        s.others[#s.others + 1] = { name = b.name, instance = i.name, credential_type = b.credential_type,
          generated = i.generated or nil, ours = b.ours or nil }
      end
    end
  end
end

-- The labels of what the steps create (key -> value): the policy's extra
-- labels next to calmbind's own, decided here so that the executors only
-- send them.
local function label_steps(s, target, o, ctype)
  local si, sb = s.instance, s.binding
  local c = M.context(o, ctype)
  -- the authorities the instance has once the steps are done: what this run
  -- gives it, else what its label records
  local given = si and si.parameters and si.parameters["xs-security"].authorities
  local list = given or (target and inventory.authorities_of(target))
  if si and (si.op == "create" or si.op == "recreate") then
    si.labels = names.created_labels(o.policy:labels(c, { instance = si }), given and M.auth_label_value(o, given))
  elseif si and si.op == "update" and given then
    si.label_changes = { { key = inventory.AUTH_LABEL, new = M.auth_label_value(o, given) } }
  end
  if sb and (sb.op == "create" or sb.op == "recreate") then
    sb.labels = names.created_labels(o.policy:labels(c, { instance = target or si, binding = { name = sb.name } }),
      sb.with_authorities and M.auth_label_value(o, list or inventory.LEGACY_AUTHORITIES) or nil)
  end
end

-- calmbind_authorities' value for a list of authorities: the list itself
-- (Service Manager labels hold several values), the single marker value
-- where labels hold one short value (Cloud Foundry).
function M.auth_label_value(o, list)
  if o.runtime == "cf" then return inventory.AUTH_VALUE end
  return list
end

-- The strict name rules are for creating (an existing instance is adopted
-- whatever its name); a message names where the name came from: the option,
-- or the policy's file and field.
function M.check_names(s, o)
  local si, sb = s.instance, s.binding
  if si and si.op == "create" then
    local ok, msg = names.check_instance_name(si.name, si.source)
    if not ok then s.usage = s.usage or (msg .. " (to create an instance)") end
  end
  if sb and sb.op == "create" and sb.source and sb.source ~= "--binding-name" then
    local ok, msg = names.check_binding_name(sb.name, sb.source)
    if not ok then s.usage = s.usage or msg end
  end
end

-- The instance and its binding: need_auth when the instance must carry the
-- authorities (its binding is then one made after they were there).
local function instance_and_binding(s, d, inv, o, need_auth, rule)
  local ctype = o.credential_type or "binding-secret"
  local name, source = o.instance_name, "--instance-name"
  if not name then name, source = o.policy:instance_name(M.context(o, ctype)), o.policy:where("instance_name") end
  local find = (o.instance_name or need_auth or rule.default_instance) and name or nil
  local target = need_auth and authorities_target(inv, o, find) or (not need_auth and adopt_target(inv, o, find))
  if target then
    instance_step(s, d, target, o, need_auth, rule, ctype)
  else
    create_step(s, d, inv, o, name, need_auth, rule, ctype)
    s.instance.source = source
  end
  binding_steps.step(s, target or nil, o, need_auth, ctype, M.context(o, ctype))
  label_steps(s, target, o, ctype)
  return s
end

-- The instance as it is, and a key of it. rule.default_instance: without
-- --instance-name, the instance the policy names comes first (and is
-- created when nothing exists); rule.with_authorities: an instance created
-- (or re-created) gets the authorities.
function M.as_it_is(s, d, inv, o, rule)
  return instance_and_binding(s, d, inv, o, false, rule)
end

-- An instance with the authorities (found, updated or created) and a
-- binding made after it had them: the Deployment key where none exists yet.
function M.with_authorities(s, d, inv, o)
  return instance_and_binding(s, d, inv, o, true, { with_authorities = true })
end

return M
