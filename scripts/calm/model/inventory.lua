-- calm.model.inventory: joins the SAPCloudALMAPIs instances and bindings Service
-- Manager lists and classifies them (who made what, in which state, owned by
-- which platform, and -- once calm.key.probe has run -- whose key carries the
-- Deployment scopes). Pure: no requests.
--
--   inv = inventory.inventory{offering =, plan =, instances =, bindings =}
--   b = inventory.pick_binding(inst, credential_type, policy, c)  -- policy: the run's
local M = {}

-- Labels calmbind puts on what it creates or updates: they make the rerun
-- converge (an instance carrying AUTH_LABEL already has the authorities) and
-- tell what calmbind may change or advise deleting (CREATED_BY).
M.CREATED_BY = "created_by"
M.TOOL = "calmbind"
M.AUTH_LABEL = "calmbind_authorities"
M.AUTH_VALUE = "imp-cdm-feature"

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

local function uaa_of(b)
  local c = type(b.credentials) == "table" and b.credentials or nil
  return c and type(c.uaa) == "table" and c.uaa or nil
end

-- "succeeded" | "failed" | "pending" | "update-failed" | nil. Only a failed
-- create (or ready: false) is a failed resource: a failed update or delete
-- leaves it as it was, usable ("update-failed": deployment updates again).
local function lo_state(it)
  local lo = it.last_operation
  if type(lo) ~= "table" then return nil end
  local s = type(lo.state) == "string" and lo.state:lower() or ""
  if s == "succeeded" then return s end
  if s == "failed" then
    local t = type(lo.type) == "string" and lo.type:lower() or ""
    if t == "create" or it.ready == false then return "failed" end
    return "update-failed"
  end
  return "pending"
end

-- The platform that owns an instance Service Manager cannot manage, by name:
-- "Cloud Foundry", "Kyma" or "platform <id>"; nil for Service Manager's own.
function M.owner_of(i)
  local pid = tostring(i.platform_id or "service-manager")
  if pid == "service-manager" then return nil end
  local c = type(i.context) == "table" and i.context or {}
  local kind = (tostring(c.platform or "") .. " " .. tostring(c.env_type or "") .. " " .. pid):lower()
  if kind:find("kubernetes", 1, true) or kind:find("kyma", 1, true) then return "Kyma" end
  if kind:find("cloudfoundry", 1, true) or pid:match("^cf%-") then return "Cloud Foundry" end
  return "platform " .. pid
end

local function by_created(a, b)
  local ca, cb = a.created_at or "", b.created_at or ""
  if ca ~= cb then return ca < cb end
  return tostring(a.id) < tostring(b.id)
end

-- Joins SM instances and bindings of the Cloud ALM API plan and classifies
-- them. raw = {offering, plan, instances, bindings}. Bindings of other
-- services are dropped here (and with them their secrets).
function M.inventory(raw)
  local inv = { offering = raw.offering, plan = raw.plan, instances = {}, by_id = {}, entitled = raw.plan and true or false }
  if not raw.plan then return inv end
  for _, i in ipairs(raw.instances or {}) do
    if i.service_plan_id == raw.plan.id then
      local inst = {
        id = i.id, name = i.name, created_at = i.created_at, created = day(i.created_at),
        platform_id = i.platform_id or "service-manager", ready = i.ready ~= false,
        usable = i.usable ~= false, labels = i.labels, last_operation = i.last_operation,
        state = lo_state(i), bindings = {}, raw = i,
      }
      -- owned by another platform: Service Manager lists it but cannot
      -- update or bind it
      inst.cf_owned = inst.platform_id ~= "service-manager"
      inst.owner = M.owner_of(i)
      inst.ours = has_label(i, M.CREATED_BY, M.TOOL)
      inst.has_authorities = has_label(i, M.AUTH_LABEL)
      inv.instances[#inv.instances + 1] = inst
      inv.by_id[i.id] = inst
    end
  end
  for _, b in ipairs(raw.bindings or {}) do
    local inst = inv.by_id[b.service_instance_id]
    if inst then
      local uaa = uaa_of(b)
      local bd = {
        id = b.id, name = b.name, created_at = b.created_at, created = day(b.created_at),
        ready = b.ready ~= false, state = lo_state(b), last_operation = b.last_operation,
        credential_type = uaa and uaa["credential-type"] or nil,
        xsappname = uaa and type(uaa.xsappname) == "string" and uaa.xsappname or nil,
        system = M.is_system_binding_name(b.name), labels = b.labels, raw = b,
        ours = has_label(b, M.CREATED_BY, M.TOOL),
      }
      inst.bindings[#inst.bindings + 1] = bd
    end
  end
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

function M.find_instance(inv, name)
  local hit
  for _, i in ipairs(inv.instances) do
    if i.name == name then
      if not hit or (hit.cf_owned and not i.cf_owned) then hit = i end
    end
  end
  return hit
end

-- The instance SAP generated: parameterless (xsappname = GUID), oldest first;
-- without bindings to tell, the oldest usable SM instance not made by us.
function M.generated_instance(inv)
  for _, i in ipairs(inv.instances) do
    if i.generated and not i.cf_owned and i.ready then return i end
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

function M.find_binding(inst, name)
  for _, b in ipairs(inst and inst.bindings or {}) do
    if b.name == name then return b end
  end
  return nil
end

return M
