-- calm.model.discovery: which subaccounts of a global account hold SAP Cloud ALM,
-- and by what evidence; the names and the fleet inventory `discover` writes. No
-- requests: the evidence comes in as data (calm.ops.discover reads it).
--
--   local found = discovery.judge(subaccounts, entitled, subscriptions)
--   -- found.calm = {{sub, evidence = {...}, decided = "entitlement", name = "acme"}, ...}
--   -- found.possible = {...}, found.other = n
--   local doc = discovery.inventory_json(found.calm, {cis_key = "cis.json", sm_key_of = f})
--
-- Evidence, strongest first (SAP's own facts, reference C.3-C.5 of cf-uaa-accounts-api.md):
--   subscription  a SUBSCRIBED SAP Cloud ALM SaaS subscription (needs a local-plan key of
--                 that subaccount: the SaaS Provisioning API answers no central key);
--   entitlement   the SAP Cloud ALM API entitlement (SAPCloudALMAPIs) assigned to it: SAP
--                 assigns it with the tenant since 2023-06-12, only Cloud ALM has it;
--   name          the documented name "SAP Cloud ALM" (the subaccount of global accounts
--                 made since 30 Nov 2023): alone, a tenant older than 2023-06-12 whose
--                 entitlement is still to be assigned.
-- A name that only suggests Cloud ALM ("Cloud ALM Playground"), without evidence, is listed
-- as possible and left out of the inventory; older global accounts name their tenant freely,
-- so such a tenant is found by its entitlement.
local json = require "calm.lib.json"
local M = {}

M.DOCUMENTED_NAME = "SAP Cloud ALM"

local function norm(s)
  return (tostring(s or ""):lower():gsub("%s+", " "):match("^%s*(.-)%s*$"))
end

-- "documented" | "suggests" | nil
function M.name_kind(name)
  local n = norm(name)
  if n == norm(M.DOCUMENTED_NAME) then return "documented" end
  if n:find("cloud alm", 1, true) or n:find("cloudalm", 1, true) or n:find("cloud-alm", 1, true) then
    return "suggests"
  end
  return nil
end

-- One subaccount: verdict "calm" | "possible" | "other", the evidence lines and what decided.
-- entitled: entityState or nil; subscription: {state, name} | false (a local key of
-- this subaccount shows none) | nil (not looked at).
function M.judge_one(sa, entitled, subscription)
  local ev = {}
  local nk = M.name_kind(sa.name)
  if subscription then
    ev[#ev + 1] = string.format("subscription: %s is %s (SaaS Provisioning API)",
      tostring(subscription.name or "SAP Cloud ALM"), tostring(subscription.state))
  elseif subscription == false then
    ev[#ev + 1] = "subscription: none to SAP Cloud ALM (SaaS Provisioning API)"
  end
  if entitled then
    ev[#ev + 1] = string.format("entitlement: SAPCloudALMAPIs/standard assigned (%s)", entitled)
  end
  if nk == "documented" then
    ev[#ev + 1] = "name: '" .. M.DOCUMENTED_NAME .. "', as SAP names it"
  elseif nk == "suggests" then
    ev[#ev + 1] = "name: '" .. tostring(sa.name) .. "' suggests SAP Cloud ALM"
  end
  if subscription and subscription.state == "SUBSCRIBED" then return "calm", ev, "subscription" end
  if subscription == false then return "other", ev, "subscription" end
  if entitled then return "calm", ev, "entitlement" end
  if nk == "documented" then return "calm", ev, "name" end
  if nk == "suggests" or subscription then return "possible", ev, "name" end
  return "other", ev, nil
end

-- A name for the inventory ([A-Za-z0-9._-]+, unique): the subdomain, else the
-- GUID's start; a second one of the same gets the region, then a number.
local function inventory_name(sa, used)
  local base = tostring(sa.subdomain or ""):gsub("[^%w%._%-]", "-")
  if base == "" or base == "." or base == ".." then base = "sa-" .. tostring(sa.guid):sub(1, 8) end
  local name = base
  if used[name] and sa.region then name = base .. "-" .. sa.region end
  local n = 2
  while used[name] do name = base .. "-" .. n; n = n + 1 end
  used[name] = true
  return name
end

-- subaccounts: from calm.btp.cis_accounts.tree; entitled: {[guid] = state};
-- subscriptions: {[guid] = {state, name} | false}. Returns {calm = {...},
-- possible = {...}, other = n}, in the tree's order.
function M.judge(subaccounts, entitled, subscriptions)
  local out = { calm = {}, possible = {}, other = 0 }
  local used = {}
  for _, sa in ipairs(subaccounts) do
    local verdict, ev, decided = M.judge_one(sa, entitled[sa.guid], subscriptions[sa.guid])
    local e = { sub = sa, evidence = ev, decided = decided, entitled = entitled[sa.guid] ~= nil }
    if verdict == "calm" then
      e.name = inventory_name(sa, used)
      out.calm[#out.calm + 1] = e
    elseif verdict == "possible" then
      out.possible[#out.possible + 1] = e
    else
      out.other = out.other + 1
    end
  end
  return out
end

-- What a tenant still lacks before `fleet` can get its key: lines.
function M.missing(e)
  local m = {}
  if not e.sm_key then
    m[#m + 1] = "sm_key (a Service Manager subaccount-admin key: --bootstrap-sm-keys DIR makes it)"
  end
  if not e.entitled then
    m[#m + 1] = "SAPCloudALMAPIs entitlement (fleet's get assigns it with the inventory's cis_key)"
  end
  return m
end

-- ----------------------------------------------------------- inventory --

local function row(e, o)
  local r = { name = e.name, subaccount = e.sub.guid, region = e.sub.region, sm_key = o.sm_key_of(e),
    evidence = e.decided and ("decided by " .. e.decided .. ": " .. table.concat(e.evidence, "; ")) or nil }
  local miss = M.missing(e)
  if #miss > 0 then r.missing = table.concat(miss, "; ") end
  return r
end

local ORDER = { "defaults", "tenants", "name", "subaccount", "region", "sm_key", "cis_key", "missing", "evidence" }

-- The JSON inventory text. o = {cis_key = path or nil, sm_key_of = function(e) -> path|nil}.
function M.inventory_json(calm, o)
  local tenants = {}
  for _, e in ipairs(calm) do tenants[#tenants + 1] = row(e, o) end
  local doc = { tenants = json.array(tenants) }
  if o.cis_key then doc.defaults = { cis_key = o.cis_key } end
  return json.pretty(doc, ORDER) .. "\n"
end

local function csv_field(v)
  v = tostring(v or "")
  if v:find('[,"\r\n]') or v:match("^%s") or v:match("%s$") then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end

M.CSV_FIELDS = { "name", "subaccount", "region", "sm_key", "cis_key", "missing", "evidence" }

-- The CSV inventory text (RFC 4180; calm.ops.fleet_inventory reads it).
function M.inventory_csv(calm, o)
  local lines = { table.concat(M.CSV_FIELDS, ",") }
  for _, e in ipairs(calm) do
    local r = row(e, o)
    r.cis_key = o.cis_key
    local f = {}
    for i, k in ipairs(M.CSV_FIELDS) do f[i] = csv_field(r[k]) end
    lines[#lines + 1] = table.concat(f, ",")
  end
  return table.concat(lines, "\r\n") .. "\r\n"
end

return M
