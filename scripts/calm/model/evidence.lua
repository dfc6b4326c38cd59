-- calm.model.evidence: what decides the path. The provisioning date (given,
-- or read from the subscription, the subaccount or SAP's generated instance)
-- gives one of SAP's three paths; above every date stands the key itself
-- (calm.key.probe's result on each binding): this module is the one place
-- where the key outranks the date. Pure: no requests.
--
--   d = evidence.decide(provisioned, ev, o)   -- the decision
--   d = evidence.with_keys(d, inventory, o)   -- the same, judged by another
--                                             -- inventory's keys (a CF space)
--   lines = evidence.evidence_lines(ev)       -- {source, what, date?} to show
--     o = {policy, scenario, runtime?, credential_type?, instance_name?, binding_name?, tenant?}
--     (policy: the run's, calm.policy.load: its adoptable and adopt_rank say
--     which keys may be adopted)
--     d = {path, date, source, reasons, warnings, keys_lack_scopes,
--          key = {binding =, instance =} | nil}
--   d.key is the key to adopt as it is (Deployment only): its token already
--   carries both imp-cdm-feature-* scopes, within what --instance-name and
--   --binding-name allow; calm.model.plan adopts it whatever the path says.
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
local inventory = require "calm.model.inventory"
local probe = require "calm.key.probe"
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

-- ------------------------------------------------------------ dates --

-- "YYYY-MM-DD", a real calendar date.
function M.check_date(s, label)
  label = label or "--provisioned"
  local y, m, d = tostring(s):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then
    return nil, label .. " must be YYYY-MM-DD or auto (got '" .. tostring(s) .. "')", "USAGE"
  end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  local mdays = { 31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if m < 1 or m > 12 or d < 1 or d > mdays[m] then
    return nil, label .. " " .. s .. " is not a calendar date", "USAGE"
  end
  if y < 2019 then
    return nil, label .. " " .. s .. " is before SAP Cloud ALM existed", "USAGE"
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

-- ------------------------------------------------------- evidence --

-- evidence = {
--   subaccount = {created=, name=} | nil, subscription = {created=, name=, state=} | nil,
--   cis_errors = {...}, inventory = inv (from calm.model.inventory)
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
        inventory.foreign(inv, i) and (", owned by " .. tostring(i.owner_name) .. " (" .. tostring(i.platform_id) .. ")")
          or "",
        #i.bindings), i.created)
      for _, b in ipairs(i.bindings) do
        add("service-manager", string.format("  binding '%s' created %s%s%s%s", tostring(b.name), tostring(b.created),
          b.credential_type and (", " .. b.credential_type) or "",
          b.system and ", named like <SID>_<client>_<sysno>: made by Cloud ALM for a managed system" or "",
          b.probe and (": " .. probe.summary(b.probe)) or ""),
          b.created)
      end
    end
  end
  return out
end

-- ------------------------------------------------------- decision --

-- The date that decides, and why (why(fmt, ...) adds a reason): --provisioned,
-- else the subscription's, the subaccount's, or the generated instance's
-- creation date. Returns date, source | nil when there is none.
local function pick_date(provisioned, ev, gen, why)
  if provisioned and provisioned ~= "auto" then
    why("--provisioned %s was given", provisioned)
    return provisioned, "--provisioned"
  end
  if ev.subscription and ev.subscription.created then
    why("the SAP Cloud ALM subscription was created on %s (SaaS Provisioning API)", ev.subscription.created)
    if ev.subaccount and ev.subaccount.created then
      why("the subaccount was created on %s (Accounts API)", ev.subaccount.created)
    end
    return ev.subscription.created, "subscription"
  elseif ev.subaccount and ev.subaccount.created then
    why("the subaccount was created on %s (Accounts API); no subscription date was available", ev.subaccount.created)
    return ev.subaccount.created, "subaccount"
  elseif gen then
    why("no --cis-key dates; instance '%s' was generated at provisioning (created without parameters: "
      .. "its xsappname is its GUID) on %s", gen.name, tostring(gen.created))
    return gen.created, "generated-instance"
  end
  return nil
end

-- The path a date gives (d filled in), with what the inventory adds to it.
local function decide_by_date(d, date, source, inv, gen, why)
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

-- No dates at all: what exists is the evidence (d filled in).
local function decide_without_dates(d, inv, why)
  if #inv.instances > 0 then
    local cf = true
    for _, i in ipairs(inv.instances) do if i.owner ~= "cf" then cf = false end end
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

-- provisioned: "auto" or "YYYY-MM-DD". Returns
-- {path, date, source, reasons = {...}}
local function decide_by_dates(provisioned, ev)
  local inv = ev.inventory or { instances = {} }
  local d = { reasons = {} }
  local function why(fmt, ...) d.reasons[#d.reasons + 1] = string.format(fmt, ...) end
  local gen = inventory.generated_instance(inv)
  local date, source = pick_date(provisioned, ev, gen, why)
  if date then return decide_by_date(d, date, source, inv, gen, why) end
  return decide_without_dates(d, inv, why)
end

-- ------------------------------------------------------------ keys --

-- The key that already fits Deployment: a binding whose token (calm.key.probe)
-- carries both imp-cdm-feature-* scopes, of the wanted credential type, on
-- an instance Service Manager can read, within what --instance-name and
-- --binding-name allow, that the policy's adoptable accepts (o.policy).
-- Preference: its adopt_rank (built in: a binding calmbind made), then one
-- whose token carries every authority the policy gives (a key made before
-- the policy added one is drift: calm.model.drift), then the oldest.
-- Returns binding, instance | nil.
function M.deployment_key(inv, o)
  local p = o.policy
  if type(p) ~= "table" then error("evidence.deployment_key: o.policy (the run's policy) is missing", 2) end
  local c = { scenario = "deployment", runtime = o.runtime, credential_type = o.credential_type or "binding-secret",
    tenant = o.tenant }
  local want = p:authorities(c)
  local best, best_inst, best_rank, best_all
  for _, i in ipairs(inv.instances) do
    if not o.instance_name or i.name == o.instance_name then
      for _, b in ipairs(i.bindings) do
        local fits = b.probe and b.probe.deployment and not b.system
          and inventory.usable_binding(b, c.credential_type)
          and (not o.binding_name or b.name == o.binding_name)
          and p:adoptable(c, b, i)
        local rank = fits and p:adopt_rank(c, b, i) or nil
        local all = rank and #(inventory.missing_scopes(b, want) or want) == 0
        if rank and (not best_rank or rank < best_rank or (rank == best_rank and all and not best_all)) then
          best, best_inst, best_rank, best_all = b, i, rank, all
        end
      end
    end
  end
  return best, best_inst
end

-- True when keys were probed and none carries the Deployment scopes: the
-- evidence that what exists serves monitoring only.
function M.keys_lack_scopes(inv)
  local probed = false
  for _, i in ipairs(inv.instances) do
    for _, b in ipairs(i.bindings) do
      if b.probe and b.probe.token then
        probed = true
        if b.probe.deployment then return false end
      end
    end
  end
  return probed
end

-- What the keys of inv say, into d: the key to adopt (within o's names) and
-- whether every probed key lacks the scopes. Deployment only: monitoring
-- needs no scopes.
local function judge_keys(d, inv, o)
  d.key, d.keys_lack_scopes = nil, nil
  if o.scenario == "monitoring" then return d end
  local b, inst = M.deployment_key(inv, { policy = o.policy, tenant = o.tenant, instance_name = o.instance_name,
    binding_name = o.binding_name, runtime = o.runtime, credential_type = o.credential_type })
  if b then
    d.key = { binding = b, instance = inst }
  elseif M.keys_lack_scopes(inv) then
    d.keys_lack_scopes = true
  end
  return d
end

-- The key outranks the dates: a key whose token already carries both
-- imp-cdm-feature-* scopes is adopted for Deployment (d.key), and keys that
-- all lack them mean the authorities are still missing, whatever the date
-- says. An explicit --provisioned that contradicts this gets a warning
-- naming the evidence. Returns {path, date, source, reasons, warnings,
-- keys_lack_scopes, key}.
function M.decide(provisioned, ev, o)
  o = o or {}
  local d = decide_by_dates(provisioned, ev)
  d.warnings = {}
  local inv = ev.inventory or { instances = {} }
  local deployment = o.scenario ~= "monitoring"
  local explicit = provisioned and provisioned ~= "auto"
  -- any fitting key tells the path, whichever --instance-name and
  -- --binding-name ask for
  local key, inst = M.deployment_key(inv, { policy = o.policy, tenant = o.tenant })
  local function why(fmt, ...) d.reasons[#d.reasons + 1] = string.format(fmt, ...) end
  judge_keys(d, inv, o)
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
  elseif d.keys_lack_scopes and d.path == M.AFTER then
    local text = "no existing key's token carries the imp-cdm-feature-* scopes (checked before any change): "
      .. "the authorities are added as on the " .. M.MID .. " path"
    if explicit then
      d.warnings[#d.warnings + 1] = string.format("--provisioned %s says %s, but %s", provisioned, d.path, text)
    else
      why("%s", text)
    end
  end
  return d
end

-- The decision d judged by the keys of another inventory (the Cloud Foundry
-- space, whose keys Service Manager does not list): a copy with its own key
-- and keys_lack_scopes; path, date and reasons stay.
function M.with_keys(d, inv, o)
  local c = {}
  for k, v in pairs(d) do c[k] = v end
  return judge_keys(c, inv, o or {})
end

return M
