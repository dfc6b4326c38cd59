-- calm.model.binding_steps: which binding of the chosen instance a run
-- adopts, waits for, re-creates or creates (calm.model.steps chose the
-- instance). On an instance with the authorities only a binding calmbind
-- made after they were there will do; on one taken as it is, --binding-name's,
-- an earlier run's, else the oldest one the policy lets adopt. Pure: no
-- requests.
--
--   binding_steps.step(s, target, o, need_auth, ctype, c)  -- fills s.binding (or s.usage)
--   binding_steps.parameters(o, ctype)                      -- a new binding's parameters
--     target = the instance record (calm.model.inventory) or nil when s.instance
--     creates one; c = the hook context (calm.model.steps.context).
local parameters = require "calm.model.parameters"
local inventory = require "calm.model.inventory"
local has_label, usable_binding = inventory.has_label, inventory.usable_binding
local M = {}

function M.parameters(o, ctype)
  return parameters.binding_parameters({ credential_type = ctype, validity = o.x509_validity })
end

-- The binding that carries the Deployment scopes on an instance with the
-- authorities: only one calmbind made (and labelled) after they were there.
-- Candidates: --binding-name, else the default name, else
-- "<instance>-deployment-key" (when the default name is taken by an older
-- key, e.g. one made for monitoring). Returns {op = "adopt"|"create", ...}
-- or nil, usage text.
local function deployment_binding(inst, o, ctype, run)
  local c = {}
  for k, v in pairs(run) do c[k] = v end
  c.scenario = "deployment"
  local candidates = o.binding_name and { o.binding_name }
    or { o.policy:binding_name(c, inst), o.policy:deployment_binding_name(c, inst) }
  local sources = o.binding_name and { "--binding-name" }
    or { o.policy:where("binding_name"), o.policy:where("deployment_binding_name") }
  for k, n in ipairs(candidates) do
    local b = inventory.find_binding(inst, n)
    if not b then
      return { op = "create", name = n, with_authorities = true, source = sources[k],
        why = "a new binding: only bindings created after the authorities were added carry them" }
    end
    if has_label(b, inventory.AUTH_LABEL) and b.state ~= "failed" and (b.ready or b.state == "pending")
        and usable_binding({ ready = true, credential_type = b.credential_type }, ctype) then
      return { op = "adopt", id = b.id, name = b.name, wait = b.state == "pending",
        why = "the binding an earlier run created after adding the authorities" }
    end
  end
  return nil, string.format("%s'%s': that binding already exists on instance '%s' and was not made by "
    .. "calmbind after the imp-cdm-feature-* authorities were added (or is of another credential type), so "
    .. "its key cannot carry the Deployment scopes; name a new binding with --binding-name",
    o.binding_name and "--binding-name " or "binding ", candidates[1], tostring(inst.name))
end

-- A binding of the wanted kind whose token XSUAA refused (calm.key.probe).
local function refused_binding(inst, ctype)
  for _, b in ipairs(inst.bindings) do
    if not b.system and b.probe and b.probe.refused
        and usable_binding({ ready = true, credential_type = b.credential_type }, ctype) then
      return b
    end
  end
  return nil
end

-- The binding --binding-name names on an instance adopted as it is.
local function named_binding_step(s, target, o, ctype)
  local b = inventory.find_binding(target, o.binding_name)
  if b and b.state == "pending" then
    s.binding = { op = "adopt", id = b.id, name = b.name, wait = true,
      why = "the binding named by --binding-name (its create is still running: wait for it)" }
  elseif b and b.ready and b.state ~= "failed" then
    if not usable_binding(b, ctype) then
      s.binding = { op = "none", why = "see below" }
      s.usage = s.usage or string.format("--binding-name '%s' is a %s key, not %s: name another binding",
        b.name, tostring(b.credential_type), ctype)
    else
      s.binding = { op = "adopt", id = b.id, name = b.name, why = "the binding named by --binding-name" }
    end
  elseif b and not b.ours then
    s.binding = { op = "none", why = "see below" }
    s.usage = s.usage or string.format("--binding-name '%s': that binding's create failed and calmbind did not "
      .. "create it, so it leaves it alone: delete it in the BTP cockpit or name another binding", b.name)
  elseif b then
    s.binding = { op = "recreate", id = b.id, name = b.name, why = "binding '" .. b.name
      .. "' exists but its create failed: delete it and create it again", parameters = M.parameters(o, ctype) }
  else
    s.binding = { op = "create", name = o.binding_name, why = "no binding named '" .. o.binding_name .. "' exists",
      parameters = M.parameters(o, ctype) }
  end
end

-- The binding to adopt on an instance adopted as it is: an earlier run's,
-- else the oldest one the policy lets adopt, else a new one.
local function adopt_binding_step(s, target, o, ctype, c)
  local default = o.policy:binding_name(c, target)
  local b = inventory.find_binding(target, default)
  if b and b.state == "pending" then
    s.binding = { op = "adopt", id = b.id, name = b.name, wait = true,
      why = "the binding an earlier run created (still being created: wait for it)" }
    return
  elseif b and usable_binding(b, ctype) then
    s.binding = { op = "adopt", id = b.id, name = b.name, why = "the binding an earlier run created" }
    return
  end
  b = inventory.pick_binding(target, ctype, o.policy, c)
  local refused = not b and refused_binding(target, ctype)
  if b then
    s.binding = { op = "adopt", id = b.id, name = b.name,
      why = target.generated and "the credentials SAP generated at provisioning" or "the oldest ready binding" }
  elseif refused then
    -- not silently replaced: verification before writing names it
    s.binding = { op = "adopt", id = refused.id, name = refused.name, refused = true,
      why = "the only key, although XSUAA refused its token (revoked?)" }
  else
    s.binding = { op = "create", name = default, source = o.policy:where("binding_name"), why = ctype == "x509"
        and "the instance has no x509 key (the instance must allow x509 keys)"
        or "the instance has no usable binding", parameters = M.parameters(o, ctype) }
  end
end

function M.step(s, target, o, need_auth, ctype, c)
  local inst = s.instance
  if inst and (inst.op == "adopt" or inst.op == "update") and target and need_auth then
    -- the instance has (or is about to get) the authorities
    local b, problem = deployment_binding(target, o, ctype, c)
    if b then
      b.parameters = b.op == "create" and M.parameters(o, ctype) or nil
      s.binding = b
    else
      s.binding = { op = "none", why = "see below" }
      s.usage = s.usage or problem
    end
  elseif inst and inst.op == "adopt" and target then
    if o.binding_name then named_binding_step(s, target, o, ctype) else adopt_binding_step(s, target, o, ctype, c) end
  elseif inst and (inst.op == "create" or inst.op == "update" or inst.op == "recreate") then
    s.binding = { op = "create", name = o.binding_name or o.policy:binding_name(c, target or inst),
      source = not o.binding_name and o.policy:where("binding_name") or nil,
      with_authorities = o.scenario ~= "monitoring" or nil, why = "a binding of the new instance",
      parameters = M.parameters(o, ctype) }
  end
end

return M
