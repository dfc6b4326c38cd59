-- calm.paths: SAP's three provisioning-date paths for the SAP Cloud ALM API
-- key, shared by `get` and `plan`.
--
--   decision  = paths.decide(provisioned, evidence)      -- pure
--   steps     = paths.plan_steps(decision, inventory, o)  -- pure
--   paths.run(o, "get" | "plan")                          -- the commands
--
-- | provisioned            | deployment                              | monitoring             |
-- |------------------------|-----------------------------------------|------------------------|
-- | on/after 2023-10-16    | find the generated instance + binding   | same                   |
-- | 2023-06-12..2023-10-15 | create/update instance with authorities,| find the generated one |
-- |                        | then a new binding                      |                        |
-- | before 2023-06-12      | entitlement, create with authorities    | same, no authorities   |
--
-- 2023-06-12..14 is documented inconsistently by SAP (12 vs 14 June): in
-- that window we look for generated credentials instead of assuming.
local M = {}

M.AFTER = "after-2023-10-16"
M.MID = "mid-2023"
M.BEFORE = "before-2023-06-12"
M.AFTER_FROM = "2023-10-16"
M.MID_FROM = "2023-06-12"
M.LOOK_TO = "2023-06-14"

M.PATH_TEXT = {
  [M.AFTER] = "provisioned on or after 2023-10-16: instance and credentials were generated",
  [M.MID] = "provisioned 2023-06-12 to 2023-10-15: generated credentials work for monitoring only",
  [M.BEFORE] = "provisioned before 2023-06-12: nothing was generated",
}

M.AUTHORITIES = {
  "$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
  "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui",
}
-- Labels we put on what we create or update: they make the rerun converge
-- (an instance carrying AUTH_LABEL already has the authorities).
M.CREATED_BY = "created_by"
M.TOOL = "calmbind"
M.AUTH_LABEL = "calmbind_authorities"
M.AUTH_VALUE = "imp-cdm-feature"

-- ------------------------------------------------------------- names --

-- Instance names: at most 32 characters of letters, digits, '-', '_'; no
-- '.', because the name becomes the xsappname (which allows no '.').
function M.check_instance_name(n)
  if type(n) ~= "string" or n == "" then
    return nil, "--instance-name must not be empty", "USAGE"
  end
  if n:find("%.") then
    return nil, "--instance-name '" .. n .. "': no '.' allowed (the name becomes the xsappname, "
      .. "which allows no '.')", "USAGE"
  end
  if n:find("%s") then
    return nil, "--instance-name: no spaces allowed (use '_' instead of spaces)", "USAGE"
  end
  if not n:match("^[%w_%-]+$") then
    return nil, "--instance-name: only letters, digits, '-' and '_' are allowed", "USAGE"
  end
  if #n > 32 then
    return nil, string.format("--instance-name '%s' is %d characters long; at most 32 are allowed", n, #n), "USAGE"
  end
  return true
end

-- The pattern of the credentials Cloud ALM creates itself for managed
-- systems: <SID>_<client>_<sysno>, e.g. S4H_100_00.
function M.is_system_binding_name(n)
  return type(n) == "string" and n:upper():match("^[A-Z][A-Z0-9][A-Z0-9]_%d%d%d_%d%d$") ~= nil
end

function M.check_binding_name(n)
  if type(n) ~= "string" or n == "" then
    return nil, "--binding-name must not be empty", "USAGE"
  end
  if M.is_system_binding_name(n) then
    return nil, "--binding-name '" .. n .. "' looks like <SID>_<client>_<system number> (e.g. S4H_100_00), "
      .. "the pattern Cloud ALM uses for the credentials it creates itself; choose another name", "USAGE"
  end
  if n:find("[%c]") then
    return nil, "--binding-name must not contain control characters", "USAGE"
  end
  if #n > 255 then return nil, "--binding-name is longer than 255 characters", "USAGE" end
  return true
end

-- "YYYY-MM-DD", a real calendar date.
function M.check_date(s)
  local y, m, d = tostring(s):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then
    return nil, "--provisioned must be YYYY-MM-DD or auto (got '" .. tostring(s) .. "')", "USAGE"
  end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  local mdays = { 31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if m < 1 or m > 12 or d < 1 or d > mdays[m] then
    return nil, "--provisioned " .. s .. " is not a calendar date", "USAGE"
  end
  if y < 2019 then
    return nil, "--provisioned " .. s .. " is before SAP Cloud ALM existed", "USAGE"
  end
  return true
end

-- Date -> path, plus whether it lies in the 12-14 June window.
function M.region(date)
  if date >= M.AFTER_FROM then return M.AFTER, false end
  if date >= M.MID_FROM then return M.MID, date <= M.LOOK_TO end
  return M.BEFORE, false
end

-- ------------------------------------------------------ inventory --

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

local function lo_state(it)
  local lo = it.last_operation
  if type(lo) ~= "table" then return nil end
  local s = type(lo.state) == "string" and lo.state:lower() or ""
  if s == "succeeded" or s == "failed" then return s end
  return "pending"
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
      inst.cf_owned = inst.platform_id ~= "service-manager"
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
  if ctype == "x509" then return b.credential_type == "x509" end
  return b.credential_type == nil or b.credential_type ~= "x509"
end

-- The binding to adopt on an instance when no name was asked for: the
-- oldest ready one of the wanted credential type, not one Cloud ALM made
-- for a managed system (<SID>_<client>_<sysno>).
function M.pick_binding(inst, ctype)
  for _, b in ipairs(inst.bindings) do
    if not b.system and usable_binding(b, ctype) then return b end
  end
  return nil
end

function M.find_binding(inst, name)
  for _, b in ipairs(inst and inst.bindings or {}) do
    if b.name == name then return b end
  end
  return nil
end

-- ------------------------------------------------------- evidence --

-- evidence = {
--   subaccount = {created=, name=} | nil, subscription = {created=, name=, state=} | nil,
--   cis_errors = {...}, inventory = inv (from M.inventory)
-- }
-- Returns a list of {source, what, date?} lines for output and report.
function M.evidence_lines(ev)
  local out = {}
  local function add(source, what, date) out[#out + 1] = { source = source, what = what, date = date } end
  if ev.subscription then
    add("saas", "SAP Cloud ALM subscription '" .. tostring(ev.subscription.name or ev.subscription.app)
      .. "' (" .. tostring(ev.subscription.state) .. ") created " .. tostring(ev.subscription.created),
      ev.subscription.created)
  elseif ev.subscription == false then
    add("saas", "no SAP Cloud ALM subscription listed")
  end
  if ev.subaccount then
    add("accounts", "subaccount " .. tostring(ev.subaccount.name or ev.subaccount.guid) .. " created "
      .. tostring(ev.subaccount.created), ev.subaccount.created)
  end
  for _, e in ipairs(ev.cis_errors or {}) do add("cis", e) end
  local inv = ev.inventory
  if inv then
    if not inv.offering then
      add("service-manager", "the SAPCloudALMAPIs offering is not visible: the subaccount is not entitled to SAP Cloud ALM API")
    elseif not inv.plan then
      add("service-manager", "the SAPCloudALMAPIs offering has no plan 'standard' visible")
    elseif #inv.instances == 0 then
      add("service-manager", "no SAPCloudALMAPIs instance exists")
    end
    for _, i in ipairs(inv.instances or {}) do
      local kind = i.generated and "generated (xsappname = instance GUID)"
        or (i.ours and "created by calmbind")
        or (i.xsappname and ("created with xsappname " .. i.xsappname)) or "origin unknown (no binding to tell)"
      add("service-manager", string.format("instance '%s' (%s) created %s, %s%s, %d binding(s)",
        tostring(i.name), tostring(i.id), tostring(i.created), kind,
        i.cf_owned and (", owned by " .. tostring(i.platform_id)) or "", #i.bindings), i.created)
      for _, b in ipairs(i.bindings) do
        add("service-manager", string.format("  binding '%s' created %s%s%s", tostring(b.name), tostring(b.created),
          b.credential_type and (", " .. b.credential_type) or "",
          b.system and ", named like <SID>_<client>_<sysno>: made by Cloud ALM for a managed system" or ""),
          b.created)
      end
    end
  end
  return out
end

-- ------------------------------------------------------- decision --

-- provisioned: "auto" or "YYYY-MM-DD". Returns
-- {path, date, source, reasons = {...}, looked = bool}
function M.decide(provisioned, ev)
  local inv = ev.inventory or { instances = {} }
  local d = { reasons = {} }
  local function why(fmt, ...) d.reasons[#d.reasons + 1] = string.format(fmt, ...) end
  local gen = M.generated_instance(inv)

  local date, source
  if provisioned and provisioned ~= "auto" then
    date, source = provisioned, "--provisioned"
    why("--provisioned %s was given", provisioned)
  else
    if ev.subscription and ev.subscription.created then
      date, source = ev.subscription.created, "subscription"
      why("the SAP Cloud ALM subscription was created on %s (SaaS Provisioning API)", date)
      if ev.subaccount and ev.subaccount.created then
        why("the subaccount was created on %s (Accounts API)", ev.subaccount.created)
      end
    elseif ev.subaccount and ev.subaccount.created then
      date, source = ev.subaccount.created, "subaccount"
      why("the subaccount was created on %s (Accounts API); no subscription date was available", date)
    elseif gen then
      date, source = gen.created, "generated-instance"
      why("no --cis-key dates; instance '%s' was generated at provisioning (created without parameters: "
        .. "its xsappname is its GUID) on %s", gen.name, tostring(gen.created))
    end
  end

  if date then
    local path, window = M.region(date)
    d.date, d.source = date, source
    if window then
      -- SAP: "Managing Your Service Credentials" says June 14, the
      -- retrieval table June 12. Look at what exists instead.
      d.looked = true
      why("%s lies in 2023-06-12..2023-06-14, which SAP documents inconsistently (12 vs 14 June): looked instead of assuming", date)
      if gen then
        path = M.MID
        why("found generated instance '%s' (%s): credentials were generated, so %s", gen.name, gen.id, M.MID)
      else
        path = M.BEFORE
        why("found no generated instance or credentials, so %s", M.BEFORE)
      end
    else
      why("%s -> %s (%s)", date, path, M.PATH_TEXT[path])
    end
    d.path = path
    if path == M.AFTER and not gen and source ~= "generated-instance" then
      if #inv.instances > 0 then
        why("note: no instance with generated credentials was found; the existing instances are used")
      elseif inv.offering then
        why("note: the generated instance was expected but none exists (deleted?); get creates one")
      end
    end
    return d
  end

  -- no dates at all: what exists is the evidence
  if #inv.instances > 0 then
    local cf = true
    for _, i in ipairs(inv.instances) do if not i.cf_owned then cf = false end end
    d.path, d.source = M.BEFORE, "instances"
    if cf then
      why("no dates; the only SAPCloudALMAPIs instances are owned by Cloud Foundry (%s): created by hand "
        .. "the pre-October-2023 way, so %s", inv.instances[1].platform_id, M.BEFORE)
    else
      why("no dates; SAPCloudALMAPIs instances exist but none was generated at provisioning "
        .. "(created with parameters): created by hand, so %s (adopted by name)", M.BEFORE)
    end
    return d
  end
  d.path, d.source = M.BEFORE, "none"
  if inv.offering == nil and inv.entitled == false then
    why("no evidence: no --cis-key dates, the SAP Cloud ALM API offering is not visible (not entitled) "
      .. "and no instance exists: nothing was generated, so %s", M.BEFORE)
  else
    why("no evidence: no --cis-key dates and no SAPCloudALMAPIs instance or binding exists: "
      .. "nothing to find, so %s (create); pass --provisioned YYYY-MM-DD to decide otherwise", M.BEFORE)
  end
  return d
end

-- ------------------------------------------------------ parameters --

-- The `parameters` object of create/update, built as a table (no shell
-- can eat "$XSMASTERAPPNAME"). runtime "cf" follows SAP's 2023 CF variant
-- (instance secrets: no oauth2-configuration).
function M.instance_parameters(xsappname, o)
  local xs = { xsappname = xsappname }
  if o.authorities then
    xs.authorities = { M.AUTHORITIES[1], M.AUTHORITIES[2] }
  end
  if o.runtime ~= "cf" then
    local types = { "binding-secret" }
    if o.credential_type == "x509" then types[2] = "x509" end
    xs["oauth2-configuration"] = { ["credential-types"] = types }
  end
  return { ["xs-security"] = xs }
end

function M.binding_parameters(o)
  if o.credential_type == "x509" then
    return { ["credential-type"] = "x509",
      x509 = { ["key-length"] = 2048, validity = 7, ["validity-type"] = "DAYS" } }
  end
  return nil
end

function M.default_instance_name(scenario)
  return "calm-api-" .. (scenario or "deployment")
end

function M.default_binding_name(instance_name)
  return tostring(instance_name) .. "-key"
end

-- ------------------------------------------------------------ steps --

local ENTITLEMENT_STEPS = table.concat({
  "In the BTP cockpit: open the global account > Entitlements > Entity Assignments,",
  "select the SAP Cloud ALM subaccount, Edit > Add Service Plans, choose \"SAP Cloud ALM API\"",
  "(SAPCloudALMAPIs), tick plan \"standard\", Add, set the quota to 1 if asked, and Save.",
  "Then rerun calmbind get (or pass --cis-key FILE --subaccount GUID to let calmbind assign it).",
}, "\n  ")
M.ENTITLEMENT_STEPS = ENTITLEMENT_STEPS

local function cf_manual(inst)
  return string.format("instance '%s' (%s) is owned by Cloud Foundry (platform %s): Service Manager lists it "
    .. "but cannot update or bind it. Rerun with --runtime cf --cf-api URL --cf-space GUID and "
    .. "CF_USERNAME/CF_PASSWORD in the environment, or name a new instance in Service Manager with --instance-name N",
    tostring(inst.name), tostring(inst.id), tostring(inst.platform_id))
end

-- o = {scenario, instance_name?, binding_name?, runtime, credential_type,
--      cis = bool, subaccount = guid?}
-- Returns steps = {entitlement = {op, why}, instance = {op, ...},
-- binding = {op, ...}, manual = text?}. ops: "ok" | "assign" | "manual";
-- instance "adopt" | "create" | "update" | "after-entitlement";
-- binding "adopt" | "create" | "later".
function M.plan_steps(d, inv, o)
  local s = { notes = {} }
  local function note(fmt, ...) s.notes[#s.notes + 1] = string.format(fmt, ...) end
  local deployment = o.scenario ~= "monitoring"
  local ctype = o.credential_type or "binding-secret"

  -- entitlement
  if inv.plan then
    s.entitlement = { op = "ok", why = "the SAPCloudALMAPIs offering and plan standard are visible in Service Manager" }
  elseif o.cis and o.subaccount then
    s.entitlement = { op = "assign", why = "SAP Cloud ALM API / standard is not entitled to the subaccount: "
      .. "assign it through the Entitlements API (--cis-key)" }
  elseif o.cis then
    s.entitlement = { op = "manual", why = "not entitled, and --subaccount GUID is missing to assign it with --cis-key" }
    s.manual = "SAP Cloud ALM API is not entitled to the subaccount; pass --subaccount GUID with --cis-key, or:\n  "
      .. ENTITLEMENT_STEPS
  else
    s.entitlement = { op = "manual", why = "SAP Cloud ALM API / standard is not entitled to the subaccount and no --cis-key was given" }
    s.manual = "SAP Cloud ALM API is not entitled to the subaccount (the SAPCloudALMAPIs offering is not "
      .. "visible in Service Manager).\n  " .. ENTITLEMENT_STEPS
  end

  -- which instance
  local need_auth = deployment and d.path ~= M.AFTER
  local auth_on_create = deployment or false
  local named = o.instance_name and M.find_instance(inv, o.instance_name) or nil
  local target, op, why
  if need_auth then
    local name = o.instance_name or M.default_instance_name(o.scenario)
    target = named or M.find_instance(inv, name)
    if not target and not o.instance_name then
      -- look before creating: an instance made the Cloud Foundry way is
      -- the user's to choose (--runtime cf), not a reason for a second one
      for _, i in ipairs(inv.instances) do
        if i.cf_owned then target = i; break end
      end
    end
    if not target then
      op, why = "create", string.format("%s, scenario deployment: a new instance '%s' with the two "
        .. "imp-cdm-feature-* authorities (xsappname = the instance name)", d.path, name)
      s.instance = { op = op, name = name, why = why,
        parameters = M.instance_parameters(name, { authorities = true, runtime = o.runtime, credential_type = ctype }) }
    end
  else
    local name = o.instance_name
    if not name and d.path == M.BEFORE then name = M.default_instance_name(o.scenario) end
    target = named or (name and M.find_instance(inv, name)) or nil
    if not target and not o.instance_name then
      target = M.generated_instance(inv)
      if not target then
        for _, i in ipairs(inv.instances) do
          if i.ready and not i.cf_owned and i.state ~= "failed" then target = i; break end
        end
      end
      if not target then
        for _, i in ipairs(inv.instances) do
          if i.cf_owned then target = i; break end
        end
      end
    end
    if not target then
      local cname = name or M.default_instance_name(o.scenario)
      local with_auth = auth_on_create
      op = "create"
      why = (d.path == M.BEFORE) and string.format("%s: no instance exists; creating '%s'%s", d.path, cname,
          with_auth and " with the two imp-cdm-feature-* authorities" or " (monitoring: no authorities needed)")
        or (o.instance_name and M.generated_instance(inv)) and string.format(
          "%s: no instance named '%s' exists; creating it as asked (the generated instance '%s' stays "
          .. "as it is; leave out --instance-name to use its key)", d.path, cname, M.generated_instance(inv).name)
        or string.format("%s: no instance %s exists (the generated one was deleted?); creating '%s'",
          d.path, o.instance_name and ("named '" .. o.instance_name .. "'") or "of SAPCloudALMAPIs", cname)
      s.instance = { op = op, name = cname, why = why,
        parameters = M.instance_parameters(cname, { authorities = with_auth, runtime = o.runtime, credential_type = ctype }) }
    end
  end

  if target then
    if target.cf_owned and o.runtime ~= "cf" then
      s.instance = { op = "manual", id = target.id, name = target.name, why = "owned by Cloud Foundry" }
      s.manual = s.manual or cf_manual(target)
    elseif target.state == "failed" or not target.ready then
      if target.ours then
        s.instance = { op = "recreate", id = target.id, name = target.name,
          why = "instance '" .. tostring(target.name) .. "' is a failed leftover of an earlier calmbind run "
            .. "(ready: false): delete it and create it again",
          parameters = M.instance_parameters(target.name, { authorities = deployment,
            runtime = o.runtime, credential_type = ctype }) }
      else
        s.instance = { op = "manual", id = target.id, name = target.name, why = "not ready" }
        s.manual = s.manual or string.format("instance '%s' (%s) is not ready (last operation %s); it was not "
          .. "created by calmbind, so it is left alone: delete or repair it in the BTP cockpit, or use another --instance-name",
          tostring(target.name), tostring(target.id), tostring(target.state))
      end
    elseif need_auth then
      local bname = o.binding_name or M.default_binding_name(target.name)
      local existing = M.find_binding(target, bname)
      if target.has_authorities then
        s.instance = { op = "adopt", id = target.id, name = target.name,
          why = "instance '" .. target.name .. "' already carries the authorities (label " .. M.AUTH_LABEL .. ")" }
      elseif existing and existing.ready then
        s.instance = { op = "adopt", id = target.id, name = target.name,
          why = "binding '" .. bname .. "' exists on instance '" .. target.name .. "': nothing to update (an earlier run did it)" }
      else
        local xsapp = target.xsappname or (target.ours and target.name) or target.id
        s.instance = { op = "update", id = target.id, name = target.name, xsappname = xsapp,
          why = string.format("%s, scenario deployment: add the two imp-cdm-feature-* authorities to the existing "
            .. "instance '%s', keeping its xsappname %s%s", d.path, target.name, xsapp,
            xsapp == target.id and " (its GUID: it was created without parameters)" or ""),
          parameters = M.instance_parameters(xsapp, { authorities = true, runtime = o.runtime, credential_type = ctype }) }
      end
    else
      s.instance = { op = "adopt", id = target.id, name = target.name,
        why = target.generated and "the instance SAP generated at provisioning"
          or (o.instance_name and "the instance named by --instance-name")
          or "the existing SAPCloudALMAPIs instance" }
    end
  end
  if s.entitlement.op ~= "ok" and s.instance and s.instance.op ~= "manual" then
    s.instance.after_entitlement = true
  end

  -- which binding
  local inst = s.instance
  if inst and (inst.op == "adopt") and target then
    if o.binding_name then
      local b = M.find_binding(target, o.binding_name)
      if b and b.ready and b.state ~= "failed" then
        s.binding = { op = "adopt", id = b.id, name = b.name, why = "the binding named by --binding-name" }
        if b.credential_type and ctype ~= b.credential_type and not (ctype == "binding-secret" and b.credential_type == "instance-secret") then
          note("binding '%s' has credential type %s, not %s", b.name, b.credential_type, ctype)
        end
      elseif b then
        s.binding = { op = "recreate", id = b.id, name = b.name, why = "binding '" .. b.name
          .. "' exists but is not ready (" .. tostring(b.state) .. "): delete it and create it again",
          parameters = M.binding_parameters({ credential_type = ctype }) }
      else
        s.binding = { op = "create", name = o.binding_name, why = "no binding named '" .. o.binding_name .. "' exists",
          parameters = M.binding_parameters({ credential_type = ctype }) }
      end
    else
      local default = M.default_binding_name(target.name)
      local b = M.find_binding(target, default)
      if b and b.ready and b.state ~= "failed" then
        s.binding = { op = "adopt", id = b.id, name = b.name, why = "the binding an earlier run created" }
      elseif need_auth then
        s.binding = { op = "create", name = default,
          why = "a new binding: only bindings created after the authorities were added carry them",
          parameters = M.binding_parameters({ credential_type = ctype }) }
      else
        b = M.pick_binding(target, ctype)
        if b then
          s.binding = { op = "adopt", id = b.id, name = b.name,
            why = target.generated and "the credentials SAP generated at provisioning" or "the oldest ready binding" }
        else
          s.binding = { op = "create", name = default, why = "the instance has no usable binding",
            parameters = M.binding_parameters({ credential_type = ctype }) }
        end
      end
    end
  elseif inst and (inst.op == "create" or inst.op == "update" or inst.op == "recreate") then
    local bname = o.binding_name or M.default_binding_name(inst.name)
    s.binding = { op = "create", name = bname, why = inst.op == "update"
        and "a new binding: existing bindings do not get the new authorities"
        or "a binding of the new instance",
      parameters = M.binding_parameters({ credential_type = ctype }) }
  end
  -- Every other Cloud ALM API key of the tenant is one Landscape Management
  -- or /SDF/ALM_SETUP may hold today (it keeps one key per tenant), whichever
  -- instance it belongs to; keys Cloud ALM made for managed systems
  -- (<SID>_<client>_<sysno>) are its own business.
  s.others = {}
  if s.binding and s.binding.op == "create" then
    for _, i in ipairs(inv.instances) do
      for _, b in ipairs(i.bindings) do
        if not b.system then
          s.others[#s.others + 1] = { name = b.name, instance = i.name, credential_type = b.credential_type }
        end
      end
    end
  end
  return s
end

-- True when the steps send no mutating request.
function M.read_only(s)
  if s.manual then return true end
  if s.entitlement.op == "assign" then return false end
  if s.instance and s.instance.op ~= "adopt" then return false end
  if s.binding and s.binding.op ~= "adopt" then return false end
  return true
end

-- ================================================================ runner --
-- Everything below does I/O: it is what `calmbind get` and `calmbind plan`
-- run. Requests that do not depend on each other go out together
-- (calm.task): the tokens first, then every read in one round.

local function getenv(name)
  local ok, v = pcall(function() return os.getenv(name) end)
  if ok and v ~= "" then return v end
  return nil
end

function M.spec(command)
  local key = require "calm.key"
  local get = command == "get"
  local spec = {
    command = command,
    summary = get
      and "Decide the provisioning-date path, find or create the SAP Cloud ALM API instance and binding, export the key."
      or "Same decision as get, read-only: print what get would find, create, update or leave alone, and why.",
    options = {
      ["sm-key"] = { arg = "FILE", env = "CALMBIND_SM_KEY",
        help = "Service Manager binding (plan subaccount-admin)" },
      ["cis-key"] = { arg = "FILE", env = "CALMBIND_CIS_KEY",
        help = "Cloud Management service binding: dates for auto detection, entitlement assignment" },
      subaccount = { arg = "GUID", help = "the SAP Cloud ALM subaccount (with --cis-key)" },
      provisioned = { arg = "DATE", default = "auto", help = "YYYY-MM-DD, or auto: detect from evidence" },
      scenario = { arg = "S", choices = { "deployment", "monitoring" }, default = "deployment",
        help = "deployment needs the imp-cdm-feature-* authorities" },
      ["instance-name"] = { arg = "N", help = "instance to create or adopt (<= 32 of letters, digits, -, _)" },
      ["binding-name"] = { arg = "N", help = "binding to create or adopt (not <SID>_<client>_<sysno>)" },
      runtime = { arg = "R", choices = { "sm", "cf" }, default = "sm",
        help = "sm (\"Other\" environment) or cf (legacy Cloud Foundry space)" },
      ["cf-api"] = { arg = "URL", help = "Cloud Foundry API endpoint (with --runtime cf)" },
      ["cf-space"] = { arg = "GUID", help = "Cloud Foundry space GUID (with --runtime cf)" },
      ["credential-type"] = { arg = "T", choices = { "binding-secret", "x509" }, default = "binding-secret",
        help = "kind of key to create" },
      report = { arg = "FILE", help = "write a JSON run report there (no secrets)" },
    },
  }
  if get then
    spec.options.out = { arg = "FILE", help = "write the key there (mode 0600, atomic) instead of stdout" }
    spec.options.format = { arg = "F", choices = key.FORMATS or { "json", "alm-setup", "env", "vcap" },
      default = "json", help = "json (bare key), alm-setup, env, vcap" }
    spec.options.verify = { flag = true, help = "verify the key afterwards (token, scopes, zone)" }
    spec.options["show-secrets"] = { flag = true, allow_secret_name = true,
      help = "allow printing the key to a terminal" }
  end
  return spec
end

-- Checks every option before any request is sent.
function M.validate(opts)
  if opts.provisioned ~= "auto" then
    local ok, msg, code = M.check_date(opts.provisioned)
    if not ok then return nil, msg, code end
  end
  if opts["instance-name"] then
    local ok, msg, code = M.check_instance_name(opts["instance-name"])
    if not ok then return nil, msg, code end
  end
  if opts["binding-name"] then
    local ok, msg, code = M.check_binding_name(opts["binding-name"])
    if not ok then return nil, msg, code end
  end
  if opts.runtime == "cf" then
    if not opts["cf-api"] then return nil, "--runtime cf needs --cf-api URL", "USAGE" end
    if not opts["cf-space"] then return nil, "--runtime cf needs --cf-space GUID", "USAGE" end
    if not getenv("CF_USERNAME") or not getenv("CF_PASSWORD") then
      return nil, "--runtime cf needs CF_USERNAME and CF_PASSWORD in the environment", "USAGE"
    end
    if opts["credential-type"] == "x509" then
      return nil, "--credential-type x509 is not available with --runtime cf (CF keys are instance secrets)", "USAGE"
    end
  else
    if opts["cf-api"] or opts["cf-space"] then
      return nil, "--cf-api and --cf-space need --runtime cf", "USAGE"
    end
    if not opts["sm-key"] then
      return nil, "missing --sm-key FILE or CALMBIND_SM_KEY (the Service Manager binding, plan subaccount-admin)", "USAGE"
    end
  end
  if opts.subaccount and not opts.subaccount:match("^[%w%-]+$") then
    return nil, "--subaccount must be a GUID", "USAGE"
  end
  return true
end

-- Reads a key file as JSON; a binding envelope {credentials: {...}} is unwrapped.
local function load_json_key(path, what)
  local fs = require "calm.fs"
  local json = require "calm.json"
  local text, msg = fs.read(path, 1024 * 1024)
  if not text then return nil, "cannot read " .. what .. " " .. path .. ": " .. tostring(msg), "INPUT" end
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local t, jmsg = json.decode(text, path)
  if type(t) ~= "table" then return nil, jmsg or (path .. ": not a JSON object"), "INPUT" end
  if type(t.credentials) == "table" and not t.clientid and not t.uaa then t = t.credentials end
  return t
end

-- ---------------------------------------------------------- report --

local function new_report(command, opts)
  return {
    tool = "calmbind", command = command, report_version = 1,
    options = {
      scenario = opts.scenario, provisioned = opts.provisioned, runtime = opts.runtime,
      instance_name = opts["instance-name"], binding_name = opts["binding-name"],
      credential_type = opts["credential-type"], format = opts.format,
      cis = opts["cis-key"] and true or false, subaccount = opts.subaccount,
      cf_api = opts["cf-api"], cf_space = opts["cf-space"], out = opts.out,
    },
    evidence = {}, decision = nil, steps = nil, actions = {}, checks = {}, result = nil,
  }
end

-- Empty lists must stay JSON arrays in the report.
local function arr(t)
  local json = require "calm.json"
  local c = {}
  for i, v in ipairs(t or {}) do c[i] = v end
  return json.array(c)
end

local function write_report(path, report)
  local fs = require "calm.fs"
  local json = require "calm.json"
  report.evidence, report.actions, report.checks = arr(report.evidence), arr(report.actions), arr(report.checks)
  for _, c in ipairs(report.checks) do
    c.problems, c.warnings = arr(c.problems), arr(c.warnings)
  end
  if report.decision then report.decision.reasons = arr(report.decision.reasons) end
  if report.steps and report.steps.notes then report.steps.notes = arr(report.steps.notes) end
  local ok, text = pcall(json.pretty, report, { "tool", "command", "result", "decision", "evidence",
    "steps", "actions", "checks" })
  if not ok then text = json.encode(report) end
  local w, msg = fs.write_private(path, text .. "\n")
  if not w then
    local log = require "calm.log"
    log.warn("cannot write the report %s: %s", path, tostring(msg))
  end
end

-- Keeps a step for the report without its bulky raw parts.
local function step_view(st)
  if not st then return nil end
  local v = {}
  for k, x in pairs(st) do
    if k ~= "raw" then v[k] = x end
  end
  return v
end

-- ------------------------------------------------------- gathering --

-- Runs fns concurrently; returns the packed results.
local function together(fns)
  local task = require "calm.task"
  if #fns == 0 then return {} end
  return task.all(fns)
end

local function unpack_result(r)
  if r[1] == nil and r[3] == "FLOW_FAILED" then error(r[2], 0) end
  return r[1], r[2], r[3]
end

-- Round 1: tokens (SM and cis together). Round 2: every read together:
-- offering, plans, instances, bindings, subaccount date, subscription date.
function M.gather(ctx)
  local log = require "calm.log"
  local sm = require "calm.sm"
  local cis = require "calm.cis"
  local opts = ctx.opts
  local ev = { cis_errors = {} }
  ctx.evidence = ev

  -- round 1
  local r1 = {}
  if ctx.sm then r1[#r1 + 1] = function() return ctx.sm.session:token() end end
  if ctx.cis then r1[#r1 + 1] = function() return ctx.cis.session:token() end end
  local res = together(r1)
  local i = 1
  if ctx.sm then
    local tok, msg, code = unpack_result(res[i]); i = i + 1
    if not tok then return nil, msg, code end
  end
  if ctx.cis then
    local tok, msg, code = unpack_result(res[i])
    if not tok then
      if code == "DEADLINE" then return nil, msg, code end
      ev.cis_errors[#ev.cis_errors + 1] = "no cis token: " .. tostring(msg)
      log.warn("--cis-key: %s", tostring(msg))
      ctx.cis_failed = { msg, code }
    end
  end

  -- round 2
  local want_dates = opts.provisioned == "auto" and ctx.cis and not ctx.cis_failed
  local jobs, names = {}, {}
  local function add(name, fn) jobs[#jobs + 1] = fn; names[#names + 1] = name end
  local c = ctx.sm
  if c then
    add("offerings", function() return c:list("service_offerings", { fieldQuery = sm.eq("catalog_name", c.offering_name) }) end)
    add("plans", function() return c:list("service_plans", { fieldQuery = sm.eq("catalog_name", c.plan_name) }) end)
    add("instances", function() return c:list("service_instances", { attach_last_operations = true }) end)
    add("bindings", function() return c:list("service_bindings", { attach_last_operations = true }) end)
  end
  if want_dates and opts.subaccount then
    add("subaccount", function() return ctx.cis:subaccount(opts.subaccount) end)
  end
  if want_dates then
    add("subscription", function() return ctx.cis:calm_subscription() end)
  end
  local out = {}
  res = together(jobs)
  for k, name in ipairs(names) do
    local v, msg, code = unpack_result(res[k])
    if v == nil then
      if name == "subaccount" or name == "subscription" then
        if code == "DEADLINE" then return nil, msg, code end
        ev.cis_errors[#ev.cis_errors + 1] = tostring(msg)
        log.warn("--cis-key: %s", tostring(msg))
      else
        return nil, msg, code
      end
    else
      out[name] = v
    end
  end
  if want_dates and not opts.subaccount then
    ev.cis_errors[#ev.cis_errors + 1] = "no --subaccount GUID: subaccount creation date not read"
  end
  ev.subaccount = out.subaccount
  ev.subscription = out.subscription

  if c then
    -- join: offering (display-name fallback costs one more round only when
    -- the catalog name finds nothing), plan, then our instances and bindings
    local offering = sm.pick_offering(out.offerings, c.offering_name, c.display_name)
    if not offering then
      local o, msg, code = c:find_offering(out.offerings)
      if o == nil then return nil, msg, code end
      offering = o or nil
    end
    local plan = offering and sm.pick_plan(out.plans, offering.id, c.plan_name) or nil
    if offering and not plan then
      local plans, msg, code = c:list("service_plans", { fieldQuery = sm.eq("service_offering_id", offering.id) })
      if not plans then return nil, msg, code end
      plan = sm.pick_plan(plans, offering.id, c.plan_name)
    end
    ev.inventory = M.inventory { offering = offering, plan = plan, instances = out.instances, bindings = out.bindings }
  else
    ev.inventory = { instances = {}, by_id = {}, entitled = nil }
  end
  return ev
end

-- ---------------------------------------------------------- output --

local function show_decision(ctx, say)
  local d = ctx.decision
  say(string.format("path: %s (%s)", d.path, M.PATH_TEXT[d.path]))
  for _, r in ipairs(d.reasons) do say("  because " .. r) end
end

local function show_evidence(ctx, say)
  local lines = M.evidence_lines(ctx.evidence)
  if #lines == 0 then return end
  say("evidence:")
  for _, l in ipairs(lines) do say("  " .. l.what) end
end

local function describe_steps(ctx, say, verb)
  local json = require "calm.json"
  local s = ctx.steps
  local e = s.entitlement
  if e.op == "ok" then say("entitlement: ok (" .. e.why .. ")")
  elseif e.op == "assign" then say(verb .. " assign the entitlement SAP Cloud ALM API / standard: " .. e.why)
  else say("entitlement: manual step needed: " .. e.why) end
  local inst = s.instance
  if inst then
    local target = inst.id and (" '" .. tostring(inst.name) .. "' (" .. inst.id .. ")") or (" '" .. tostring(inst.name) .. "'")
    if inst.op == "adopt" then say("instance: find" .. target .. ", leave alone: " .. inst.why)
    elseif inst.op == "create" then say("instance: " .. verb .. " create" .. target .. ": " .. inst.why)
    elseif inst.op == "update" then say("instance: " .. verb .. " update" .. target .. ": " .. inst.why)
    elseif inst.op == "recreate" then say("instance: " .. verb .. " delete and re-create" .. target .. ": " .. inst.why)
    else say("instance:" .. target .. ": manual step needed: " .. tostring(inst.why)) end
    if inst.parameters then say("  parameters: " .. json.encode(inst.parameters)) end
  end
  local b = s.binding
  if b then
    local target = b.id and (" '" .. tostring(b.name) .. "' (" .. b.id .. ")") or (" '" .. tostring(b.name) .. "'")
    if b.op == "adopt" then say("binding: find" .. target .. ", fetch its key: " .. b.why)
    elseif b.op == "recreate" then say("binding: " .. verb .. " delete and re-create" .. target .. ": " .. b.why)
    else say("binding: " .. verb .. " create" .. target .. " and fetch its key: " .. b.why) end
    if b.parameters then say("  parameters: " .. json.encode(b.parameters)) end
  end
  for _, n in ipairs(s.notes or {}) do say("note: " .. n) end
  if s.manual then say("manual step: " .. s.manual) end
end

-- ------------------------------------------------------- execution --

local function labels_for_create(authorities)
  local l = { [M.CREATED_BY] = { M.TOOL } }
  if authorities then l[M.AUTH_LABEL] = { M.AUTH_VALUE } end
  return l
end

-- Waits until the offering and plan are visible after an entitlement
-- assignment (Service Manager picks it up with a delay).
local function wait_for_plan(ctx)
  local sm = require "calm.sm"
  local c = ctx.sm
  local delay = 1
  for _ = 1, 60 do
    local o, p, code = c:offering_and_plan()
    if o == nil then return nil, p, code end
    if o and p then return o, p end
    local ok, msg, wcode = sm.wait(delay, "the SAP Cloud ALM API offering to appear in Service Manager after the entitlement")
    if not ok then return nil, msg, wcode end
    delay = math.min(delay * 1.5, 10)
  end
  return nil, "the entitlement was assigned but the SAPCloudALMAPIs offering does not appear in Service Manager", "API"
end

local function action(ctx, a)
  ctx.report.actions[#ctx.report.actions + 1] = a
end

-- Runs the steps through Service Manager; returns the binding entity
-- (with credentials) | nil, msg, code.
local function execute_sm(ctx)
  local log = require "calm.log"
  local c = ctx.sm
  local s = ctx.steps
  local inv = ctx.evidence.inventory
  local plan = inv.plan

  if s.entitlement.op == "assign" then
    log.info("assigning the entitlement SAP Cloud ALM API / standard to subaccount %s", ctx.opts.subaccount)
    local ok, msg, code = ctx.cis:assign_entitlement(ctx.opts.subaccount)
    if not ok then return nil, msg, code end
    local o, p, pcode = wait_for_plan(ctx)
    if not o then return nil, p, pcode end
    plan = p
  end

  local inst = s.instance
  local entity
  if inst.op == "adopt" then
    entity = inv.by_id[inst.id].raw
    action(ctx, { action = "adopt", resource = "instance", id = inst.id, name = inst.name })
  elseif inst.op == "create" or inst.op == "recreate" then
    if inst.op == "recreate" then
      local ok, msg, code = c:delete("service_instances", inst.id, "deleting the failed instance '" .. inst.name .. "'")
      if not ok then return nil, msg, code end
    end
    local auth = inst.parameters["xs-security"].authorities ~= nil
    log.info("creating instance '%s'", inst.name)
    local e, msg, code = c:create_instance { name = inst.name, service_plan_id = plan.id,
      parameters = inst.parameters, labels = labels_for_create(auth) }
    if not e then return nil, msg, code end
    entity = e
  elseif inst.op == "update" then
    log.info("updating instance '%s' (%s): adding the imp-cdm-feature-* authorities", inst.name, inst.id)
    local e, msg, code = c:update_instance(inst.id, { parameters = inst.parameters,
      labels = { { op = "add", key = M.AUTH_LABEL, values = { M.AUTH_VALUE } } } },
      "updating instance '" .. inst.name .. "'")
    if not e then return nil, msg, code end
    entity = inv.by_id[inst.id].raw
  end
  ctx.result.instance_id = entity.id
  ctx.result.instance_name = entity.name or inst.name

  local b = s.binding
  local binding
  if b.op == "adopt" then
    local raw
    for _, x in ipairs(inv.by_id[inst.id] and inv.by_id[inst.id].bindings or {}) do
      if x.id == b.id then raw = x.raw end
    end
    if not raw or type(raw.credentials) ~= "table" then
      local got, msg, code = c:get("service_bindings", b.id)
      if not got then return nil, msg, code end
      raw = got
    end
    binding = raw
    action(ctx, { action = "adopt", resource = "binding", id = b.id, name = b.name })
  else
    if b.op == "recreate" then
      local ok, msg, code = c:delete("service_bindings", b.id, "deleting the failed binding '" .. b.name .. "'")
      if not ok then return nil, msg, code end
    end
    log.info("creating binding '%s'", b.name)
    local e, msg, code = c:create_binding { name = b.name, service_instance_id = entity.id,
      parameters = b.parameters, labels = { [M.CREATED_BY] = { M.TOOL } } }
    if not e then return nil, msg, code end
    binding = e
    if type(binding.credentials) ~= "table" then
      local got, gmsg, gcode = c:get("service_bindings", binding.id)
      if not got then return nil, gmsg, gcode end
      binding = got
    end
  end
  if type(binding.credentials) ~= "table" then
    return nil, "binding '" .. tostring(binding.name) .. "' (" .. tostring(binding.id) .. ") has no credentials", "API"
  end
  ctx.result.binding_id = binding.id
  ctx.result.binding_name = binding.name or b.name
  return binding.credentials
end

-- The Cloud Foundry variant: find or create instance and key in a space.
-- Returns credentials | nil, msg, code.
local function run_cf(ctx, mode, say)
  local cf = require "calm.cf"
  local log = require "calm.log"
  local json = require "calm.json"
  local opts = ctx.opts
  local c, msg, code = cf.connect { api = opts["cf-api"], username = getenv("CF_USERNAME"),
    password = getenv("CF_PASSWORD"), cacert = opts.cacert,
    on_action = function(a) action(ctx, a) end }
  if not c then return nil, msg, code end
  local space = opts["cf-space"]
  local ok, tmsg, tcode = c.session:token()
  if not ok then return nil, tmsg, tcode end
  local plan
  plan, msg, code = c:find_plan()
  if plan == nil then return nil, msg, code end
  if not plan then
    return nil, "Cloud Foundry: no SAP Cloud ALM API plan 'standard' is visible: the subaccount is not "
      .. "entitled for it.\n  " .. M.ENTITLEMENT_STEPS, "MANUAL"
  end
  local deployment = opts.scenario ~= "monitoring"
  local name = opts["instance-name"] or M.default_instance_name(opts.scenario)
  local all
  all, msg, code = c:instances(space, plan.guid)
  if not all then return nil, msg, code end
  local inst
  for _, i in ipairs(all) do if i.name == name then inst = i end end
  if not inst and not opts["instance-name"] then
    table.sort(all, function(a, b) return tostring(a.created_at) < tostring(b.created_at) end)
    inst = all[1]
  end
  local steps = { runtime = "cf", space = space, plan = plan.guid }
  ctx.report.steps = steps
  if inst then
    steps.instance = { op = "adopt", id = inst.guid, name = inst.name, why = "instance exists in the space" }
  else
    steps.instance = { op = "create", name = name, why = "no SAPCloudALMAPIs instance in the space",
      parameters = M.instance_parameters(name, { authorities = deployment, runtime = "cf" }) }
  end
  local kname = opts["binding-name"] or M.default_binding_name(inst and inst.name or name)
  local k
  if inst then
    k, msg, code = c:find_key(inst.guid, kname)
    if k == nil then return nil, msg, code end
  end
  if k then
    steps.binding = { op = "adopt", id = k.guid, name = kname, why = "service key exists" }
  else
    steps.binding = { op = "create", name = kname, why = "no service key named '" .. kname .. "'" }
  end
  if mode == "plan" then
    say("runtime: Cloud Foundry " .. opts["cf-api"] .. ", space " .. space)
    local si = steps.instance
    say(string.format("instance: %s '%s'%s: %s", si.op == "adopt" and "find" or "would create", si.name,
      si.id and (" (" .. si.id .. ")") or "", si.why))
    if si.parameters then say("  parameters: " .. json.encode(si.parameters)) end
    local sb = steps.binding
    say(string.format("service key: %s '%s'%s: %s", sb.op == "adopt" and "find" or "would create", sb.name,
      sb.id and (" (" .. sb.id .. ")") or "", sb.why))
    return true
  end
  if not inst then
    log.info("creating instance '%s' in Cloud Foundry space %s", name, space)
    inst, msg, code = c:create_instance(space, plan.guid, name, steps.instance.parameters)
    if not inst then return nil, msg, code end
  else
    action(ctx, { action = "adopt", resource = "cf-instance", id = inst.guid, name = inst.name })
    if deployment then
      log.info("note: instance '%s' was made in Cloud Foundry by hand; whether its keys carry the "
        .. "imp-cdm-feature-* scopes shows only in a token: add --verify", inst.name)
    end
  end
  ctx.result.instance_id, ctx.result.instance_name = inst.guid, inst.name
  if not k then
    log.info("creating service key '%s'", kname)
    k, msg, code = c:create_key(inst.guid, kname)
    if not k then return nil, msg, code end
  else
    action(ctx, { action = "adopt", resource = "cf-key", id = k.guid, name = kname })
  end
  ctx.result.binding_id, ctx.result.binding_name = k.guid, kname
  return c:key_details(k.guid)
end

-- ------------------------------------------------------------- run --

local function run_inner(ctx, mode)
  local log = require "calm.log"
  local json = require "calm.json"
  local opts = ctx.opts
  local lines = {}
  local say
  if mode == "plan" then
    say = function(s) lines[#lines + 1] = s end
  else
    say = function(s) log.info("%s", s) end
  end

  -- clients (key files are read before any request)
  local sm = require "calm.sm"
  local cis = require "calm.cis"
  local on_action = function(a) action(ctx, a) end
  if opts["sm-key"] then
    local t, msg, code = load_json_key(opts["sm-key"], "--sm-key")
    if not t then return nil, msg, code end
    local c
    c, msg, code = sm.from_key(t, { cacert = opts.cacert, on_action = on_action,
      what = "the Service Manager key (" .. opts["sm-key"] .. ")" })
    if not c then return nil, msg, code end
    ctx.sm = c
  end
  if opts["cis-key"] then
    local t, msg, code = load_json_key(opts["cis-key"], "--cis-key")
    if not t then return nil, msg, code end
    local c
    c, msg, code = cis.from_key(t, { cacert = opts.cacert, on_action = on_action,
      what = "the cis key (" .. opts["cis-key"] .. ")" })
    if not c then return nil, msg, code end
    ctx.cis = c
  end

  local ev, msg, code = M.gather(ctx)
  if not ev then return nil, msg, code end
  ctx.report.evidence = M.evidence_lines(ev)
  ctx.decision = M.decide(opts.provisioned, ev)
  ctx.report.decision = { path = ctx.decision.path, date = ctx.decision.date, source = ctx.decision.source,
    looked = ctx.decision.looked or false, reasons = ctx.decision.reasons }
  say(string.format("calmbind %s: scenario %s, runtime %s", mode, opts.scenario, opts.runtime))
  show_evidence(ctx, say)
  show_decision(ctx, say)

  if opts.runtime == "cf" then
    local creds, cmsg, ccode = run_cf(ctx, mode, say)
    if mode == "plan" then
      if not creds then return nil, cmsg, ccode end
      io.write(table.concat(lines, "\n") .. "\n")
      return 0
    end
    if not creds then return nil, cmsg, ccode end
    ctx.result.credential_source = "cloud-foundry"
    return creds
  end

  ctx.steps = M.plan_steps(ctx.decision, ev.inventory, {
    scenario = opts.scenario, instance_name = opts["instance-name"], binding_name = opts["binding-name"],
    runtime = opts.runtime, credential_type = opts["credential-type"],
    cis = ctx.cis ~= nil and not ctx.cis_failed, subaccount = opts.subaccount,
  })
  ctx.report.steps = { entitlement = step_view(ctx.steps.entitlement), instance = step_view(ctx.steps.instance),
    binding = step_view(ctx.steps.binding), notes = ctx.steps.notes, manual = ctx.steps.manual,
    read_only = M.read_only(ctx.steps) }

  if mode == "plan" then
    describe_steps(ctx, say, "would")
    if ctx.steps.manual then
      say("get would stop here (exit 4) until the manual step is done")
    elseif M.read_only(ctx.steps) then
      say("get would send no mutating request: it only reads and exports the key")
    end
    io.write(table.concat(lines, "\n") .. "\n")
    return 0
  end

  describe_steps(ctx, say, "will")
  if ctx.steps.manual then
    return nil, ctx.steps.manual, "MANUAL"
  end
  return execute_sm(ctx)
end

-- opts from cli.parse; mode "get" | "plan". Returns exit status | nil, msg, code.
function M.run(opts, mode)
  local log = require "calm.log"
  local key = require "calm.key"
  local ok, msg, code = M.validate(opts)
  if not ok then return nil, msg, code end
  local ctx = { opts = opts, report = new_report(mode, opts), result = {} }
  local pok, creds, rmsg, rcode = pcall(run_inner, ctx, mode)
  if not pok then
    -- a Lua error: still leave a report behind, then re-raise
    if opts.report then
      ctx.report.result = { ok = false, error = "internal error" }
      write_report(opts.report, ctx.report)
    end
    error(creds, 0)
  end
  local function finish(status, err, ecode)
    if opts.report then
      ctx.report.result = { ok = status == 0, exit = status, error = err, code = ecode,
        instance_id = ctx.result.instance_id, instance_name = ctx.result.instance_name,
        binding_id = ctx.result.binding_id, binding_name = ctx.result.binding_name,
        credential_type = ctx.result.credential_type, path = ctx.decision and ctx.decision.path }
      write_report(opts.report, ctx.report)
    end
  end
  local exit = require "calm.exit"
  if creds == nil then
    finish(exit.status_for(rcode), log.redact(tostring(rmsg)), rcode)
    return nil, rmsg, rcode
  end
  if mode == "plan" then
    finish(0)
    return 0
  end

  -- the key: checked, written, optionally verified
  local k, kmsg, kcode = key.from_value(creds, "binding '" .. tostring(ctx.result.binding_name) .. "'")
  if not k then finish(exit.status_for(kcode), kmsg, kcode); return nil, kmsg, kcode end
  ctx.result.credential_type = k.uaa and k.uaa["credential-type"] or nil
  if key.check then
    local cres = key.check(k, {})
    if type(cres) == "table" then
      ctx.report.checks[#ctx.report.checks + 1] = { name = "key", ok = cres.ok,
        problems = cres.problems, warnings = cres.warnings }
    end
  end
  local wrote, wmsg, wcode = key.export(k, { format = opts.format, out = opts.out,
    show_secrets = opts["show-secrets"] })
  if not wrote then finish(exit.status_for(wcode), wmsg, wcode); return nil, wmsg, wcode end
  if opts.out then log.info("key written to %s (mode 0600)", opts.out) end
  if key.rotation_hint and ctx.steps and ctx.steps.binding and ctx.steps.binding.op == "create" then
    local hint = key.rotation_hint { created = ctx.result.binding_name, others = ctx.steps.others,
      credential_type = ctx.result.credential_type }
    if hint then log.info("%s", hint) end
  end
  if opts.verify then
    local r, vmsg, vcode = key.verify(k, { scenario = opts.scenario, cacert = opts.cacert })
    if not r then finish(exit.status_for(vcode), vmsg, vcode); return nil, vmsg, vcode end
    ctx.report.checks[#ctx.report.checks + 1] = { name = "verify", ok = r.ok, problems = r.problems,
      warnings = r.warnings, scopes = r.scopes, deployment = r.deployment, zone = r.zone }
    log.info("%s", key.verify_text(r, k.source))
    if not r.ok then
      finish(6, "verification failed", "VERIFY")
      return 6
    end
  end
  finish(0)
  return 0
end

-- The command body shared by get and plan.
function M.command(mode)
  return function(args)
    local cli = require "calm.cli"
    local spec = M.spec(mode)
    local opts, pos, code = cli.parse(args, spec)
    if not opts then return nil, pos, code end
    if opts.help then io.write(cli.usage(spec)); return 0 end
    return M.run(opts, mode)
  end
end

return M
