-- calm.model.drift: what exists compared with the run's policy, once the
-- steps are planned (calm.model.plan): the labels the policy gives
-- (policy:labels), the name of calmbind's instance (policy:instance_name),
-- the authorities (policy:authorities against the
-- instance's calmbind_authorities label and the adopted key's token
-- scopes). A difference on what calmbind created (label created_by:
-- calmbind) becomes part of the steps: label changes, an update of the
-- instance with the policy's authorities, and a new key when the adopted
-- key's token lacks one of them (a binding's scopes are fixed when it is
-- made: new authorities reach only bindings created after the update). A
-- difference on anything else is reported and left as it is (the safety
-- rules of docs/design.md). Pure: no requests.
--
--   drift.apply(s, inventory, o)   -- s, o: calm.model.plan's steps and options
--   s.drift = {{resource = "instance" | "binding", id, name, ours, left = bool,
--               changes = {{field, old?, new?, missing?}}}}
--   s.instance.label_changes, s.binding.label_changes = {{key, old?, new?}}
--   s.instance.rename = the name the policy now gives calmbind's instance | nil
--   s.verify_authorities = list | nil   -- the new key's token must carry them
local inventory = require "calm.model.inventory"
local parameters = require "calm.model.parameters"
local names = require "calm.model.names"
local steps = require "calm.model.steps"
local default = require "calm.policy.default"
local binding_steps = require "calm.model.binding_steps"
local M = {}

local function copy(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = v end
  return out
end

-- The policy's labels (key -> value) that what exists lacks or holds with
-- another value. calmbind's own two labels are not the policy's to change.
-- Labels the policy does not give are left alone: calmbind cannot tell one
-- an earlier policy gave from one an admin added.
function M.label_changes(have, want)
  local keys, out = {}, {}
  for k in pairs(want or {}) do
    if k ~= inventory.CREATED_BY and k ~= inventory.AUTH_LABEL then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local h = type(have) == "table" and have[k] or nil
    if type(h) ~= "table" or #h ~= 1 or h[1] ~= want[k] then
      out[#out + 1] = { key = k, old = type(h) == "table" and #h > 0 and copy(h) or nil, new = want[k] }
    end
  end
  return out
end

local function same_set(a, b)
  if #a ~= #b then return false end
  local in_a = {}
  for _, x in ipairs(a) do in_a[x] = true end
  for _, x in ipairs(b) do if not in_a[x] then return false end end
  return true
end

-- A name for the new key: the policy's binding name, else its Deployment
-- binding name, else that with -2, -3, ... (the first free one).
local function free_name(inst, o, c)
  local a, b = o.policy:binding_name(c, inst), o.policy:deployment_binding_name(c, inst)
  if not inventory.find_binding(inst, a) then return a, o.policy:where("binding_name") end
  if not inventory.find_binding(inst, b) then return b, o.policy:where("deployment_binding_name") end
  local n = 2
  while inventory.find_binding(inst, b .. "-" .. n) do n = n + 1 end
  return b .. "-" .. n, o.policy:where("deployment_binding_name")
end

local function list_text(l) return table.concat(l, ", ") end

-- The name the policy now gives the instance calmbind made for this
-- scenario under the built-in name (with the authorities for Deployment,
-- without them for Monitoring: never the other scenario's instance), when
-- no --instance-name names one | nil. An instance an earlier run's
-- --instance-name (or policy) named keeps that name: nothing records who
-- chose it. A name another instance has is told, not taken.
local function new_name(s, inv, inst, o, c)
  if o.instance_name or not inst.ours or (o.scenario ~= "monitoring") ~= (inst.has_authorities == true)
      or inst.name ~= default.instance_name(c) then
    return nil
  end
  local want = o.policy:instance_name(c)
  if want == inst.name then return nil end
  local ok, msg = names.check_instance_name(want, o.policy:where("instance_name"))
  if not ok then
    s.usage = s.usage or (msg .. " (to rename instance '" .. tostring(inst.name) .. "')")
    return nil
  end
  if inventory.find_instance(inv, want) then
    s.notes[#s.notes + 1] = string.format("%s names instance '%s' '%s' now, but an instance of that name exists: "
      .. "it keeps its name", o.policy:where("instance_name"), tostring(inst.name), want)
    return nil
  end
  return want
end

-- The instance in place: its name, the policy's authorities (keeping its
-- xsappname and every credential type its keys use), its labels.
local function update_instance(s, inst, o, ctype, want, have, lch)
  local si = s.instance
  local whys = {}
  if si.rename then
    whys[#whys + 1] = string.format("it is renamed '%s' (%s; its xsappname stays %s)", si.rename,
      o.policy:where("instance_name"), tostring(inst.xsappname or inst.name))
  end
  if want then
    local xsapp = inst.xsappname or inst.name
    si.parameters = parameters.instance_parameters(xsapp, { authorities = want,
      credential_type = ctype, keep_types = steps.kept_types(inst) })
    if have then
      lch[#lch + 1] = { key = inventory.AUTH_LABEL, old = inst.labels[inventory.AUTH_LABEL],
        new = steps.auth_label_value(o, want) }
    end
    whys[#whys + 1] = string.format("its authorities become %s (%s; %s), keeping its xsappname %s",
      list_text(want), o.policy:where("authorities"), have and string.format("its label %s records %s",
        inventory.AUTH_LABEL, list_text(have)) or "its key's token lacks some of them", xsapp)
  end
  if #lch > ((want and have) and 1 or 0) then whys[#whys + 1] = "its labels follow " .. o.policy:where("labels") end
  if si.op == "adopt" then
    si.op, si.drift = "update", true
    si.why = "calmbind created it and the policy changed since: " .. table.concat(whys, "; ")
  end
  local all = si.label_changes or {}
  for _, ch in ipairs(lch) do all[#all + 1] = ch end
  si.label_changes = all
end

-- A new key on the instance (its token gets the authorities the instance
-- has once the steps are done); the key it replaces is then one of the
-- others (calm.model.steps.others: the rotation advice).
local function new_key(s, inst, inv, o, ctype, c, want, old, lacking)
  -- the policy's binding names after the instance's name once renamed
  local named = s.instance.rename and setmetatable({ name = s.instance.rename }, { __index = inst }) or inst
  local name, source = free_name(named, o, c)
  local why = lacking and #lacking > 0
    and string.format("the token of binding '%s' lacks %s, and a binding's scopes are fixed when it is made",
      tostring(old and old.name), list_text(lacking))
    or string.format("binding '%s' was made before the authorities change", tostring(old and old.name))
  s.binding = { op = "create", name = name, source = source, with_authorities = true, drift = true,
    why = "a new key: " .. why, parameters = binding_steps.parameters(o, ctype) }
  s.binding.labels = names.created_labels(o.policy:labels(c, { instance = named, binding = { name = name } }),
    steps.auth_label_value(o, want))
  s.verify_authorities = want
  steps.others(s, inv)
  steps.check_names(s, o)
end

local function entry(list, resource, it, ours, changes, left)
  if #changes == 0 then return nil end
  local e = { resource = resource, id = it.id, name = it.name, ours = ours, left = left, changes = changes }
  list[#list + 1] = e
  return e
end

local function label_fields(lch)
  local out = {}
  for _, ch in ipairs(lch) do out[#out + 1] = { field = "labels." .. ch.key, old = ch.old, new = ch.new } end
  return out
end

-- The binding the steps adopt: its labels, and the policy's authorities in
-- its token. Returns the authorities its token lacks (or nil).
local function binding_drift(s, inst, b, o, c, want)
  local lch = M.label_changes(b.labels, o.policy:labels(c, { instance = inst, binding = b }))
  local changes = label_fields(lch)
  local lacking = want and inventory.missing_scopes(b, want)
  if lacking and #lacking > 0 then
    changes[#changes + 1] = { field = "token scopes", missing = lacking }
  end
  -- a Cloud Foundry service key takes its labels when it is made (no
  -- update of a key is documented): told, not changed
  local cf = o.runtime == "cf"
  local e = entry(s.drift, "binding", b, b.ours, changes, not b.ours or (cf and #lch > 0))
  if e and cf and b.ours and #lch > 0 then e.left_why = "a Cloud Foundry service key keeps the labels it was made with" end
  if e and b.ours and #lch > 0 and not cf then s.binding.label_changes = lch end
  return lacking, e
end

-- s.instance's record when the steps keep it (adopt, or update in place)
-- and the runtime can change it.
local function kept_instance(s, inv)
  local si = s.instance
  if s.usage or s.manual or not si or not si.id or (si.op ~= "adopt" and si.op ~= "update") then return nil end
  local inst = inv.by_id and inv.by_id[si.id]
  if not inst or inventory.foreign(inv, inst) then return nil end
  return inst
end

function M.apply(s, inv, o)
  s.drift = {}
  local inst = kept_instance(s, inv)
  if not inst then return s end
  local ctype = o.credential_type or "binding-secret"
  local c = steps.context(o, ctype)
  local si, sb = s.instance, s.binding
  local b = sb and sb.op == "adopt" and sb.id and inventory.binding_by_id(inst, sb.id) or nil
  local want = o.scenario ~= "monitoring" and o.policy:authorities(c) or nil
  -- the instance: its name and labels; its authorities when calmbind gave it
  -- some (the label records which) and the steps do not give it the policy's anyway
  local rename = new_name(s, inv, inst, o, c)
  local changes = rename and { { field = "name", old = inst.name, new = rename } } or {}
  local lch = M.label_changes(inst.labels, o.policy:labels(c, { instance = inst }))
  for _, ch in ipairs(label_fields(lch)) do changes[#changes + 1] = ch end
  -- Cloud Foundry's labels hold one short value: there the key's token is
  -- the only evidence of the instance's authorities
  local cf = o.runtime == "cf"
  local have = not cf and inventory.authorities_of(inst) or nil
  local short = want and b and inventory.missing_scopes(b, want)
  local auth = want and si.op == "adopt" and (have and not same_set(have, want)
    or cf and inst.has_authorities and short and #short > 0)
  if auth then changes[#changes + 1] = { field = "authorities", old = have, new = want, unrecorded = cf or nil } end
  entry(s.drift, "instance", inst, inst.ours, changes, not inst.ours)
  local lacking, be = nil, nil
  if b then lacking, be = binding_drift(s, inst, b, o, c, want) end
  if not inst.ours then return s end
  si.rename = rename
  if auth or #lch > 0 or rename then update_instance(s, inst, o, ctype, auth and want or nil, have, lch) end
  if auth and sb and sb.op == "create" then
    -- the key the steps create anyway gets the authorities the update gives
    sb.labels[inventory.AUTH_LABEL] = steps.auth_label_value(o, want)
    s.verify_authorities = want
  end
  if b and (auth or (lacking and #lacking > 0)) then
    if o.binding_name then
      s.usage = s.usage or string.format("binding '%s' (--binding-name) %s: a binding's scopes are fixed when it is "
        .. "made, so the key needs a new binding: name a new one with --binding-name", b.name,
        lacking and #lacking > 0 and ("lacks " .. list_text(lacking) .. " in its token")
          or "was made before the authorities change")
      return s
    end
    if be then be.replaced = true end
    new_key(s, inst, inv, o, ctype, c, want, b, lacking)
  end
  return s
end

return M
