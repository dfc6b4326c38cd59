-- calm.model.inventory: what exists, as one record type whichever runtime
-- owns it -- the SAPCloudALMAPIs offering and plan, their instances and each
-- instance's bindings (service keys, in Cloud Foundry) -- classified (who made
-- what, in which state, owned by which platform, and -- once calm.ops.gather
-- has probed them -- whose key carries the Deployment scopes). The planner
-- (calm.model.plan) reads these records only. Pure: no requests.
--
--   inv = inventory.from_sm{offering =, plan =, instances =, bindings =}  -- Service Manager's lists
--   inv = inventory.from_cf{plan =, instances =, keys = {[instance guid] = {key...}}}
--         -- a Cloud Foundry space: v3 service instances and their keys (each
--         -- key's credentials in key.credentials, read from its /details)
--   inst = inventory.sm_instance(entity)    -- one record from an SM instance (bindings = {})
--   b = inventory.pick_binding(inst, credential_type, policy, c)  -- policy: the run's
--   list | nil = inventory.authorities_of(inst)  -- what its calmbind_authorities label records
--   list | nil = inventory.missing_scopes(b, authorities)  -- those b's token lacks (nil: not probed)
--
--   inv  = {runtime = "sm" | "cf", offering?, plan?, entitled, instances = {inst...}, by_id}
--   inst = {id, name, owner = "sm" | "cf" | "kyma" | "other", owner_name?, platform_id?,
--           created_at, created, ready, usable, state, last_operation, labels, ours,
--           has_authorities, xsappname?, generated, bindings = {b...}}
--   b    = {id, name, instance_id, created_at, created, ready, state, last_operation, labels,
--           ours, system, credential_type?, xsappname?, credentials? (the key), probe?}
-- labels are key -> {value...} for either runtime; state is "succeeded" |
-- "failed" | "pending" | "update-failed" | nil. An instance is foreign to an
-- inventory (inventory.foreign) when its owner is not the runtime that read
-- it: Service Manager lists Cloud Foundry's and Kyma's instances but cannot
-- update or bind them. owner_name names the owner for messages ("Cloud
-- Foundry", "Kyma", "platform <id>"; nil for Service Manager's own).
local M = {}

-- Labels calmbind puts on what it creates or updates: they make the rerun
-- converge (an instance carrying AUTH_LABEL already has the authorities) and
-- tell what calmbind may change or advise deleting (CREATED_BY).
M.CREATED_BY = "created_by"
M.TOOL = "calmbind"
M.AUTH_LABEL = "calmbind_authorities"
-- AUTH_LABEL's values are the authorities calmbind gave the instance (the
-- policy's list, verbatim), so that plan can tell when the policy changed;
-- the one value AUTH_VALUE is what earlier versions wrote (and what Cloud
-- Foundry's labels can hold: at most 63 characters of [A-Za-z0-9._-]):
-- the two imp-cdm-feature-* authorities, LEGACY_AUTHORITIES.
M.AUTH_VALUE = "imp-cdm-feature"
M.LEGACY_AUTHORITIES = { "$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui" }

M.OWNER_NAME = { cf = "Cloud Foundry", kyma = "Kyma" }

-- The pattern of the credentials Cloud ALM creates itself for managed
-- systems: <SID>_<client>_<sysno>, e.g. S4H_100_00.
function M.is_system_binding_name(n)
  return type(n) == "string" and n:upper():match("^[A-Z][A-Z0-9][A-Z0-9]_%d%d%d_%d%d$") ~= nil
end

local function day(ts) return type(ts) == "string" and ts:match("^(%d%d%d%d%-%d%d%-%d%d)") or nil end

local function has_label(it, key, value)
  local l = type(it.labels) == "table" and it.labels[key]
  if type(l) ~= "table" then return false end
  if value == nil then return true end
  for _, v in ipairs(l) do if v == value then return true end end
  return false
end
M.has_label = has_label

-- "succeeded" | "failed" | "pending" | "update-failed" | nil. Only a failed
-- create (or ready: false) is a failed resource: a failed update or delete
-- leaves it as it was, usable ("update-failed": deployment updates again).
local function lo_state(lo, ready)
  if type(lo) ~= "table" then return nil end
  local s = type(lo.state) == "string" and lo.state:lower() or ""
  if s == "succeeded" then return s end
  if s == "failed" then
    local t = type(lo.type) == "string" and lo.type:lower() or ""
    if t == "create" or ready == false then return "failed" end
    return "update-failed"
  end
  return "pending"
end

-- The owner of an instance Service Manager lists, by its platform:
-- "sm" (Service Manager's own), "kyma", "cf" or "other".
local function sm_owner(i)
  local pid = tostring(i.platform_id or "service-manager")
  if pid == "service-manager" then return "sm" end
  local c = type(i.context) == "table" and i.context or {}
  local kind = (tostring(c.platform or "") .. " " .. tostring(c.env_type or "") .. " " .. pid):lower()
  if kind:find("kubernetes", 1, true) or kind:find("kyma", 1, true) then return "kyma" end
  if kind:find("cloudfoundry", 1, true) or pid:match("^cf%-") then return "cf" end
  return "other"
end

local function by_created(a, b)
  local ca, cb = a.created_at or "", b.created_at or ""
  if ca ~= cb then return ca < cb end
  return tostring(a.id) < tostring(b.id)
end

-- The fields every instance record has, from what its reader found.
local function instance_record(f)
  local inst = { id = f.id, name = f.name, created_at = f.created_at, created = day(f.created_at),
    owner = f.owner, owner_name = M.OWNER_NAME[f.owner], platform_id = f.platform_id,
    ready = f.ready ~= false, usable = f.usable ~= false, labels = f.labels or {},
    last_operation = f.last_operation, state = lo_state(f.last_operation, f.ready), bindings = {} }
  if f.owner == "other" then inst.owner_name = "platform " .. tostring(f.platform_id) end
  inst.ours = has_label(inst, M.CREATED_BY, M.TOOL)
  inst.has_authorities = has_label(inst, M.AUTH_LABEL)
  return inst
end

local function binding_record(f)
  local c = type(f.credentials) == "table" and f.credentials or nil
  local uaa = c and type(c.uaa) == "table" and c.uaa or nil
  local b = { id = f.id, name = f.name, instance_id = f.instance_id, created_at = f.created_at,
    created = day(f.created_at), ready = f.ready ~= false, state = lo_state(f.last_operation, f.ready),
    last_operation = f.last_operation, labels = f.labels or {}, credentials = c,
    credential_type = uaa and uaa["credential-type"] or nil,
    xsappname = uaa and type(uaa.xsappname) == "string" and uaa.xsappname or nil,
    system = M.is_system_binding_name(f.name) }
  b.ours = has_label(b, M.CREATED_BY, M.TOOL)
  return b
end

-- One record from a Service Manager instance entity.
function M.sm_instance(i)
  return instance_record { id = i.id, name = i.name, created_at = i.created_at, owner = sm_owner(i),
    platform_id = i.platform_id or "service-manager", ready = i.ready, usable = i.usable,
    labels = i.labels, last_operation = i.last_operation }
end

-- One record from a Service Manager binding entity.
function M.sm_binding(b)
  return binding_record { id = b.id, name = b.name, instance_id = b.service_instance_id, created_at = b.created_at,
    ready = b.ready, last_operation = b.last_operation, labels = b.labels, credentials = b.credentials }
end

-- Cloud Foundry metadata labels (key -> value) as the record's key -> {value}.
local function cf_labels(it)
  local md = type(it.metadata) == "table" and it.metadata or {}
  local l = {}
  for k, v in pairs(type(md.labels) == "table" and md.labels or {}) do l[k] = { v } end
  return l
end

-- One record from a Cloud Foundry v3 service instance.
function M.cf_instance(i)
  return instance_record { id = i.guid, name = i.name, created_at = i.created_at, owner = "cf",
    labels = cf_labels(i), last_operation = i.last_operation }
end

-- One record from a Cloud Foundry v3 service key (credentials: its /details).
function M.cf_key(k, instance_guid)
  return binding_record { id = k.guid, name = k.name, instance_id = instance_guid, created_at = k.created_at,
    last_operation = k.last_operation, labels = cf_labels(k), credentials = k.credentials }
end

-- Sorts, links and classifies: bindings by creation, the instance's
-- xsappname from its bindings, whether SAP generated it.
local function finish(inv)
  for _, inst in ipairs(inv.instances) do
    table.sort(inst.bindings, by_created)
    -- the xsappname is the part of a binding's uaa.xsappname before "!b"
    for _, b in ipairs(inst.bindings) do
      if b.xsappname then
        inst.xsappname = b.xsappname:match("^(.-)!b") or b.xsappname
        break
      end
    end
    -- an instance created without parameters has its GUID as xsappname:
    -- that is the one SAP generated at provisioning
    inst.generated = inst.xsappname ~= nil and inst.xsappname == inst.id
  end
  table.sort(inv.instances, by_created)
  return inv
end

local function add_instance(inv, inst)
  inv.instances[#inv.instances + 1] = inst
  inv.by_id[inst.id] = inst
end

-- Joins SM instances and bindings of the Cloud ALM API plan and classifies
-- them. raw = {offering, plan, instances, bindings}. Bindings of other
-- services are dropped here (and with them their secrets).
function M.from_sm(raw)
  local inv = { runtime = "sm", offering = raw.offering, plan = raw.plan, instances = {}, by_id = {},
    entitled = raw.plan and true or false }
  if not raw.plan then return inv end
  for _, i in ipairs(raw.instances or {}) do
    if i.service_plan_id == raw.plan.id then add_instance(inv, M.sm_instance(i)) end
  end
  for _, b in ipairs(raw.bindings or {}) do
    local inst = inv.by_id[b.service_instance_id]
    if inst then inst.bindings[#inst.bindings + 1] = M.sm_binding(b) end
  end
  return finish(inv)
end

-- The instances of the plan in a Cloud Foundry space and their keys.
-- raw = {plan = v3 plan, instances = {v3 instance...}, keys = {[guid] = {v3 key...}}}
function M.from_cf(raw)
  local inv = { runtime = "cf", plan = raw.plan, offering = raw.plan and raw.plan.offering or raw.plan,
    instances = {}, by_id = {}, entitled = raw.plan and true or false }
  for _, i in ipairs(raw.instances or {}) do
    local inst = M.cf_instance(i)
    for _, k in ipairs(raw.keys and raw.keys[i.guid] or {}) do inst.bindings[#inst.bindings + 1] = M.cf_key(k, i.guid) end
    add_instance(inv, inst)
  end
  return finish(inv)
end

-- True when the instance belongs to another platform than the runtime
-- that read the inventory: listed, but not to be updated or bound.
function M.foreign(inv, i)
  return i.owner ~= (inv.runtime or "sm")
end

function M.find_instance(inv, name)
  local hit
  for _, i in ipairs(inv.instances) do
    if i.name == name then
      if not hit or (M.foreign(inv, hit) and not M.foreign(inv, i)) then hit = i end
    end
  end
  return hit
end

-- The instance SAP generated: parameterless (xsappname = GUID), oldest first;
-- without bindings to tell, the oldest usable SM instance not made by us.
function M.generated_instance(inv)
  for _, i in ipairs(inv.instances) do
    if i.generated and not M.foreign(inv, i) and i.ready then return i end
  end
  return nil
end

local function usable_binding(b, ctype)
  if not b.ready or b.state == "failed" or b.state == "pending" then return false end
  -- a key XSUAA refused (revoked, binding deleted) is no key to adopt
  if b.probe and b.probe.refused then return false end
  if ctype == "x509" then return b.credential_type == "x509" end
  return b.credential_type == nil or b.credential_type ~= "x509"
end

M.usable_binding = usable_binding

-- The binding to adopt on an instance when no name was asked for: the
-- oldest ready one of the wanted credential type, not one Cloud ALM made
-- for a managed system (<SID>_<client>_<sysno>), that policy:adoptable accepts.
function M.pick_binding(inst, ctype, policy, c)
  for _, b in ipairs(inst.bindings) do
    if not b.system and usable_binding(b, ctype) and policy:adoptable(c, b, inst) then return b end
  end
  return nil
end

-- The authorities calmbind gave an instance, as its AUTH_LABEL records
-- them (a copy) | nil when it carries no such label.
function M.authorities_of(inst)
  local l = type(inst.labels) == "table" and inst.labels[M.AUTH_LABEL]
  if type(l) ~= "table" or #l == 0 then return nil end
  local src = (#l == 1 and l[1] == M.AUTH_VALUE) and M.LEGACY_AUTHORITIES or l
  local out = {}
  for i, a in ipairs(src) do out[i] = a end
  return out
end

-- The scope an authority becomes in a token: $XSMASTERAPPNAME.x is x of
-- the service's master app (calm!b<n>.x); any other is taken as written.
local function scope_of(authority)
  return authority:match("^%$XSMASTERAPPNAME%.(.+)$") or authority
end

local function has_scope(scopes, s)
  for _, x in ipairs(scopes) do
    if x == s or x:sub(-(#s + 1)) == "." .. s then return true end
  end
  return false
end

-- The authorities among want that b's token lacks | nil when its token was
-- not read (calm.key.probe).
function M.missing_scopes(b, want)
  local p = b and b.probe
  if not (p and p.token and type(p.scopes) == "table") then return nil end
  local out = {}
  for _, a in ipairs(want) do
    if not has_scope(p.scopes, scope_of(a)) then out[#out + 1] = a end
  end
  return out
end

function M.binding_by_id(inst, id)
  for _, b in ipairs(inst and inst.bindings or {}) do
    if b.id == id then return b end
  end
  return nil
end

function M.find_binding(inst, name)
  for _, b in ipairs(inst and inst.bindings or {}) do
    if b.name == name then return b end
  end
  return nil
end

return M
