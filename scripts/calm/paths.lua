-- calm.paths: SAP's three provisioning-date paths for the SAP Cloud ALM API
-- key, shared by `get` and `plan`.
--
--   decision  = paths.decide(provisioned, evidence)      -- pure
--   steps     = paths.plan_steps(decision, inventory, o)  -- pure
-- Everything here is pure (no requests); calm.runner gathers the evidence,
-- carries the steps out and reports.
--
-- | provisioned            | deployment                              | monitoring             |
-- |------------------------|-----------------------------------------|------------------------|
-- | on/after 2023-10-16    | find the generated instance + binding   | same                   |
-- | 2023-06-12..2023-10-15 | create/update instance with authorities,| find the generated one |
-- |                        | then a new binding                      |                        |
-- | before 2023-06-12      | entitlement, create with authorities    | same, no authorities   |
--
-- 12 and 14 June 2023 are two events, not one date documented twice: tenants
-- requested from 12 June got generated credentials; from 14 June those were
-- also uploaded to Landscape Management automatically.
--
-- Above all dates stands the key itself: a key whose token already carries
-- both imp-cdm-feature-* scopes is adopted for Deployment (calm.probe).
local M = {}

M.AFTER = "after-2023-10-16"
M.MID = "mid-2023"
M.BEFORE = "before-2023-06-12"
M.AFTER_FROM = "2023-10-16"
M.MID_FROM = "2023-06-12"
M.UPLOAD_FROM = "2023-06-14"

M.PATH_TEXT = {
  [M.AFTER] = "provisioned on or after 2023-10-16: instance and credentials were generated",
  [M.MID] = "provisioned 2023-06-12 to 2023-10-15: generated credentials work for monitoring only",
  [M.BEFORE] = "provisioned before 2023-06-12: nothing was generated",
}

M.AUTHORITIES = {
  "$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
  "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui",
}
-- calm.policy is loaded on first use: loading it runs the admin's policy.lua
local function policy() return require "calm.policy" end
-- Labels we put on what we create or update: they make the rerun converge
-- (an instance carrying AUTH_LABEL already has the authorities).
local labels = require "calm.inventory"
M.CREATED_BY, M.TOOL = labels.CREATED_BY, labels.TOOL
M.AUTH_LABEL, M.AUTH_VALUE = labels.AUTH_LABEL, labels.AUTH_VALUE

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

-- A name that refers to an instance that may exist: the strict rules above
-- are for creating one (instances made elsewhere may have '.' or be longer).
function M.check_instance_ref(n, option)
  option = option or "--instance-name"
  if type(n) ~= "string" or n == "" then return nil, option .. " must not be empty", "USAGE" end
  if n:find("[%c]") then return nil, option .. " must not contain control characters", "USAGE" end
  if #n > 255 then return nil, option .. " is longer than 255 characters", "USAGE" end
  return true
end

M.is_system_binding_name = labels.is_system_binding_name

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

-- Date -> path, plus whether the generated credentials reached Landscape
-- Management by themselves (requested on or after 14 June 2023).
function M.region(date)
  if date >= M.AFTER_FROM then return M.AFTER, true end
  if date >= M.MID_FROM then return M.MID, date >= M.UPLOAD_FROM end
  return M.BEFORE, false
end

-- ------------------------------------------------------ inventory --

-- calm.inventory joins and classifies what Service Manager lists; the names
-- stay here for the scripts and tests that know them as calm.paths.*.
local inventory = require "calm.inventory"
M.inventory = inventory.inventory
M.find_instance = inventory.find_instance
M.generated_instance = inventory.generated_instance
M.pick_binding = inventory.pick_binding
M.find_binding = inventory.find_binding
M.has_label = inventory.has_label
local has_label = inventory.has_label
local usable_binding = inventory.usable_binding

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
        i.cf_owned and (", owned by " .. tostring(i.owner) .. " (" .. tostring(i.platform_id) .. ")") or "",
        #i.bindings), i.created)
      for _, b in ipairs(i.bindings) do
        add("service-manager", string.format("  binding '%s' created %s%s%s%s", tostring(b.name), tostring(b.created),
          b.credential_type and (", " .. b.credential_type) or "",
          b.system and ", named like <SID>_<client>_<sysno>: made by Cloud ALM for a managed system" or "",
          b.probe and (": " .. require("calm.probe").summary(b.probe)) or ""),
          b.created)
      end
    end
  end
  return out
end

-- ------------------------------------------------------- decision --

-- provisioned: "auto" or "YYYY-MM-DD". Returns
-- {path, date, source, reasons = {...}}
local function decide_by_dates(provisioned, ev)
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
    local path, uploaded = M.region(date)
    d.date, d.source = date, source
    why("%s -> %s (%s)", date, path, M.PATH_TEXT[path])
    if path == M.MID and not uploaded then
      why("note: credentials were generated from 2023-06-12, but only for tenants requested from "
        .. "2023-06-14 were they also uploaded to Landscape Management automatically: upload the key there yourself")
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

-- The key outranks the dates: a key whose token already carries both
-- imp-cdm-feature-* scopes is adopted for Deployment (plan_steps), and keys
-- that all lack them mean the authorities are still missing, whatever the
-- date says. An explicit --provisioned that contradicts this gets a warning
-- naming the evidence. o = {scenario = "deployment"|"monitoring"}.
-- Returns {path, date, source, reasons, warnings, keys_lack_scopes}.
function M.decide(provisioned, ev, o)
  local d = decide_by_dates(provisioned, ev)
  d.warnings = {}
  local inv = ev.inventory or { instances = {} }
  local deployment = not o or o.scenario ~= "monitoring"
  local explicit = provisioned and provisioned ~= "auto"
  local key, inst = inventory.deployment_key(inv, {})
  local function why(fmt, ...) d.reasons[#d.reasons + 1] = string.format(fmt, ...) end
  if key then
    local what = string.format("binding '%s' (instance '%s')", tostring(key.name), tostring(inst.name))
    why("%s has a token with both imp-cdm-feature-* scopes (checked before any change)", what)
    if (d.source == "instances" or d.source == "none") and not inst.ours then
      d.path, d.source = M.AFTER, "key-scopes"
      why("an instance calmbind did not create already carries the authorities, as SAP generates it "
        .. "since 2023-10-16 (or an admin added them): %s", M.AFTER)
    elseif explicit and deployment and d.path ~= M.AFTER then
      d.warnings[#d.warnings + 1] = string.format("--provisioned %s says %s, but %s already has a token with both "
        .. "imp-cdm-feature-* scopes: it is adopted; nothing is created or updated", provisioned, d.path, what)
    end
  elseif deployment and inventory.keys_lack_scopes(inv) then
    d.keys_lack_scopes = true
    if d.path == M.AFTER then
      local text = "no existing key's token carries the imp-cdm-feature-* scopes (checked before any change): "
        .. "the authorities are added as on the " .. M.MID .. " path"
      if explicit then
        d.warnings[#d.warnings + 1] = string.format("--provisioned %s says %s, but %s", provisioned, d.path, text)
      else
        why("%s", text)
      end
    end
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
    -- the admin's policy may add authorities next to the two Deployment needs
    xs.authorities = policy().authorities { scenario = "deployment", runtime = o.runtime,
      credential_type = o.credential_type }
  end
  if o.runtime ~= "cf" then
    local types = { "binding-secret" }
    -- existing instance-secret keys must keep working (SAP's migration guide:
    -- allow both first, move consumers, then restrict)
    if o.keep_instance_secret then types[#types + 1] = "instance-secret" end
    if o.credential_type == "x509" then types[#types + 1] = "x509" end
    xs["oauth2-configuration"] = { ["credential-types"] = types }
  end
  return { ["xs-security"] = xs }
end

-- o.validity = {validity = N, ["validity-type"] = "DAYS"|"MONTHS"|"YEARS"}
-- (default 7 DAYS). o.wrapped: the {"xsuaa": {...}} shape some SAP reuse
-- services want instead of the plain one (calm.runner tries both).
function M.binding_parameters(o)
  if o.credential_type == "x509" then
    local v = o.validity or { validity = 7, ["validity-type"] = "DAYS" }
    local p = { ["credential-type"] = "x509",
      x509 = { ["key-length"] = 2048, validity = v.validity, ["validity-type"] = v["validity-type"] } }
    if o.wrapped then return { xsuaa = p } end
    return p
  end
  return nil
end

-- "--x509-validity" values: N (days), Nd, Nm (months) or Ny (years).
function M.parse_validity(s)
  local n, unit = tostring(s):match("^(%d+)([dmyDMY]?)$")
  n = tonumber(n)
  if not n or n < 1 or n > 3650 then
    return nil, "--x509-validity must be a number of days (1-3650), or N followed by d, m or y (got '"
      .. tostring(s) .. "')", "USAGE"
  end
  local t = ({ [""] = "DAYS", d = "DAYS", m = "MONTHS", y = "YEARS" })[unit:lower()]
  return { validity = n, ["validity-type"] = t }
end

-- The labels of what calmbind creates (key -> value): the admin's extra
-- labels (calm.policy), then created_by and, with the authorities,
-- calmbind_authorities, which reruns and the safety rules depend on.
function M.created_labels(authorities, c)
  local l = {}
  for k, v in pairs(policy().labels(c or {}) or {}) do l[tostring(k)] = tostring(v) end
  l[M.CREATED_BY] = M.TOOL
  if authorities then l[M.AUTH_LABEL] = M.AUTH_VALUE end
  return l
end

-- The same in Service Manager's shape (key -> {value}).
function M.sm_labels(authorities, c)
  local l = {}
  for k, v in pairs(M.created_labels(authorities, c)) do l[k] = { v } end
  return l
end

-- Names come from calm.policy (an admin's naming convention replaces them).
function M.default_instance_name(scenario, runtime)
  return policy().instance_name { scenario = scenario or "deployment", runtime = runtime }
end

function M.default_binding_name(instance_name, credential_type, scenario)
  return policy().binding_name(instance_name, { credential_type = credential_type, scenario = scenario })
end

function M.deployment_binding_name(instance_name, credential_type)
  return policy().deployment_binding_name(instance_name, { credential_type = credential_type,
    scenario = "deployment" })
end

-- The binding that carries the Deployment scopes on an instance with the
-- authorities: only one calmbind made (and labelled) after they were there.
-- Candidates: --binding-name, else the default name, else
-- "<instance>-deployment-key" (when the default name is taken by an older
-- key, e.g. one made for monitoring). Returns {op = "adopt"|"create", ...}
-- or nil, usage text.
local function deployment_binding(inst, o, ctype)
  local names = o.binding_name and { o.binding_name }
    or { M.default_binding_name(inst.name, ctype, "deployment"), M.deployment_binding_name(inst.name, ctype) }
  for _, n in ipairs(names) do
    local b = M.find_binding(inst, n)
    if not b then
      return { op = "create", name = n, with_authorities = true,
        why = "a new binding: only bindings created after the authorities were added carry them" }
    end
    if has_label(b, M.AUTH_LABEL) and b.state ~= "failed" and (b.ready or b.state == "pending")
        and usable_binding({ ready = true, credential_type = b.credential_type }, ctype) then
      return { op = "adopt", id = b.id, name = b.name, wait = b.state == "pending",
        why = "the binding an earlier run created after adding the authorities" }
    end
  end
  return nil, string.format("%s'%s': that binding already exists on instance '%s' and was not made by "
    .. "calmbind after the imp-cdm-feature-* authorities were added (or is of another credential type), so "
    .. "its key cannot carry the Deployment scopes; name a new binding with --binding-name",
    o.binding_name and "--binding-name " or "binding ", names[1], tostring(inst.name))
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
  local owner = inst.owner or "another platform"
  local way = owner == "Cloud Foundry"
      and "Rerun with --runtime cf --cf-api URL --cf-space GUID and CF_USERNAME/CF_PASSWORD in the environment"
    or owner == "Kyma"
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
-- The xsappname is kept, never guessed; instance secrets stay allowed.
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
    s.instance = { op = "manual", id = target.id, name = target.name, why = "xsappname unknown" }
    s.manual = s.manual or string.format("instance '%s' (%s) needs the imp-cdm-feature-* authorities, and an "
      .. "update must keep its xsappname, which only a binding shows (uaa.xsappname) and it has none: create a "
      .. "binding for it in the BTP cockpit (any name), then rerun", name, id)
    return
  end
  -- a binding without credential-type is an instance-secret binding
  local keep_instance_secret = false
  for _, b in ipairs(target.bindings) do
    if b.credential_type == nil or b.credential_type == "instance-secret" then keep_instance_secret = true end
  end
  s.instance = { op = "update", id = target.id, name = target.name, xsappname = xsapp,
    why = string.format("%s, scenario deployment: add the two imp-cdm-feature-* authorities to the existing "
      .. "instance '%s', keeping its xsappname %s%s%s", d.path, name, xsapp,
      xsapp == target.id and " (its GUID: it was created without parameters)" or "",
      target.state == "update-failed" and " (an earlier update failed: updating again)" or ""),
    parameters = M.instance_parameters(xsapp, { authorities = true, runtime = o.runtime,
      credential_type = ctype, keep_instance_secret = keep_instance_secret }) }
  if keep_instance_secret then
    s.notes[#s.notes + 1] = string.format("instance '%s' keeps allowing instance-secret keys: its existing keys use them", name)
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

-- A binding of the wanted kind whose token XSUAA refused (calm.probe).
local function refused_binding(inst, ctype)
  for _, b in ipairs(inst.bindings) do
    if not b.system and b.probe and b.probe.refused
        and usable_binding({ ready = true, credential_type = b.credential_type }, ctype) then
      return b
    end
  end
  return nil
end

-- Adopts the key whose token already carries both imp-cdm-feature-* scopes
-- (calm.probe), within --instance-name / --binding-name: no instance update,
-- no new binding. Returns true when it did.
local function adopt_scoped_key(s, inv, o, ctype)
  local b, inst = inventory.deployment_key(inv, { instance_name = o.instance_name,
    binding_name = o.binding_name, credential_type = ctype })
  if not b then return false end
  s.instance = { op = "adopt", id = inst.id, name = inst.name,
    why = "its binding '" .. tostring(b.name) .. "' already has a token with both imp-cdm-feature-* scopes" }
  s.binding = { op = "adopt", id = b.id, name = b.name, scoped = true,
    why = "its token already carries both imp-cdm-feature-* scopes (checked before any change): "
      .. "no instance update, no new binding" }
  s.others = {}
  return true
end

-- o = {scenario, instance_name?, binding_name?, runtime, credential_type,
--      cis = bool, subaccount = guid?}
-- Returns steps = {entitlement = {op, why}, instance = {op, ...},
-- binding = {op, ...}, manual = text?}. ops: "ok" | "assign" | "manual";
-- instance "adopt" | "create" | "update" | "after-entitlement";
-- binding "adopt" | "create" | "later". s.manual (exit 4) or s.usage (exit 2)
-- say why get must stop before any mutation.
function M.plan_steps(d, inv, o)
  local s = { notes = {}, warnings = {} }
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

  -- the key is the best evidence: one that already fits is adopted as it is
  if deployment and adopt_scoped_key(s, inv, o, ctype) then return s end

  -- which instance
  local need_auth = deployment and (d.path ~= M.AFTER or d.keys_lack_scopes == true)
  local auth_on_create = deployment or false
  local named = o.instance_name and M.find_instance(inv, o.instance_name) or nil
  local target, op, why
  if need_auth then
    local name = o.instance_name or M.default_instance_name(o.scenario, o.runtime)
    target = named or M.find_instance(inv, name)
    if not target and not o.instance_name then
      -- one an earlier run gave the authorities (any name): no second instance
      for _, i in ipairs(inv.instances) do
        if i.has_authorities and not i.cf_owned and i.state ~= "failed" then target = i; break end
      end
    end
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
    if not name and d.path == M.BEFORE then name = M.default_instance_name(o.scenario, o.runtime) end
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
      local cname = name or M.default_instance_name(o.scenario, o.runtime)
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
      s.instance = { op = "manual", id = target.id, name = target.name,
        why = "owned by " .. tostring(target.owner) }
      s.manual = s.manual or cf_manual(target)
    elseif target.state == "failed" or (not target.ready and target.state ~= "pending") then
      if target.ours and #target.bindings == 0 then
        s.instance = { op = "recreate", id = target.id, name = target.name,
          why = "instance '" .. tostring(target.name) .. "' is a failed leftover of an earlier calmbind run "
            .. "(ready: false): delete it and create it again",
          parameters = M.instance_parameters(target.name, { authorities = deployment,
            runtime = o.runtime, credential_type = ctype }) }
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
              .. M.AUTH_LABEL .. ")")
            or target.generated and "the instance SAP generated at provisioning"
            or (o.instance_name and "the instance named by --instance-name")
            or "the existing SAPCloudALMAPIs instance" }
      end
    end
  end
  if s.entitlement.op ~= "ok" and s.instance and s.instance.op ~= "manual" then
    s.instance.after_entitlement = true
  end

  -- which binding
  local inst = s.instance
  if inst and (inst.op == "adopt" or inst.op == "update") and target and need_auth then
    -- the instance has (or is about to get) the authorities
    local b, problem = deployment_binding(target, o, ctype)
    if b then
      b.parameters = b.op == "create" and M.binding_parameters({ credential_type = ctype, validity = o.x509_validity }) or nil
      s.binding = b
    else
      s.binding = { op = "none", why = "see below" }
      s.usage = s.usage or problem
    end
  elseif inst and inst.op == "adopt" and target then
    if o.binding_name then
      local b = M.find_binding(target, o.binding_name)
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
          .. "' exists but its create failed: delete it and create it again",
          parameters = M.binding_parameters({ credential_type = ctype, validity = o.x509_validity }) }
      else
        s.binding = { op = "create", name = o.binding_name, why = "no binding named '" .. o.binding_name .. "' exists",
          parameters = M.binding_parameters({ credential_type = ctype, validity = o.x509_validity }) }
      end
    else
      local default = M.default_binding_name(target.name, ctype, o.scenario)
      local b = M.find_binding(target, default)
      if b and b.state == "pending" then
        s.binding = { op = "adopt", id = b.id, name = b.name, wait = true,
          why = "the binding an earlier run created (still being created: wait for it)" }
      elseif b and usable_binding(b, ctype) then
        s.binding = { op = "adopt", id = b.id, name = b.name, why = "the binding an earlier run created" }
      else
        b = M.pick_binding(target, ctype, { scenario = o.scenario, runtime = o.runtime, credential_type = ctype })
        local refused = not b and refused_binding(target, ctype)
        if b then
          s.binding = { op = "adopt", id = b.id, name = b.name,
            why = target.generated and "the credentials SAP generated at provisioning" or "the oldest ready binding" }
        elseif refused then
          -- not silently replaced: verification before writing names it
          s.binding = { op = "adopt", id = refused.id, name = refused.name, refused = true,
            why = "the only key, although XSUAA refused its token (revoked?)" }
        else
          s.binding = { op = "create", name = default, why = ctype == "x509"
              and "the instance has no x509 key (the instance must allow x509 keys)"
              or "the instance has no usable binding",
            parameters = M.binding_parameters({ credential_type = ctype, validity = o.x509_validity }) }
        end
      end
    end
  elseif inst and (inst.op == "create" or inst.op == "update" or inst.op == "recreate") then
    local bname = o.binding_name or M.default_binding_name(inst.name, ctype, o.scenario)
    s.binding = { op = "create", name = bname, with_authorities = deployment or nil,
      why = "a binding of the new instance",
      parameters = M.binding_parameters({ credential_type = ctype, validity = o.x509_validity }) }
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
          s.others[#s.others + 1] = { name = b.name, instance = i.name, credential_type = b.credential_type,
            generated = i.generated or nil, ours = b.ours or nil }
        end
      end
    end
  end
  -- the strict name rules are for creating; an existing instance is adopted
  -- whatever its name
  if s.instance and s.instance.op == "create" then
    local ok, msg = M.check_instance_name(s.instance.name)
    if not ok then s.usage = s.usage or (msg .. " (to create an instance)") end
  end
  return s
end

-- True when the steps send no mutating request.
function M.read_only(s)
  if s.manual or s.usage then return true end
  if s.entitlement.op == "assign" then return false end
  if s.instance and s.instance.op ~= "adopt" then return false end
  if s.binding and s.binding.op ~= "adopt" then return false end
  return true
end

return M
