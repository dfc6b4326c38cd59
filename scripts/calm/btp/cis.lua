-- calm.btp.cis: SAP Cloud Management service (cis): Accounts, Entitlements,
-- SaaS Provisioning. Used for the provisioning-date evidence (subaccount
-- and Cloud ALM subscription creation dates) and to assign the SAP Cloud
-- ALM API entitlement on the oldest tenants.
--
--   local cis = require "calm.btp.cis"
--   local c = cis.from_key(key_table, {cacert=})
--   local sa = c:subaccount(guid)            -- sa.created = "YYYY-MM-DD"
--   local sub = c:calm_subscription()        -- sub.created, or false
--   c:assign_entitlement(guid)               -- PUT + poll until OK
--
-- Plans (SAP's "SAP Cloud Management Service - Service Plans"): a `central`
-- key reads subaccounts and assigns entitlements, a `local` key of the
-- subaccount reads its SaaS subscriptions. calmbind takes up to two keys
-- (--cis-key, --cis-key2), tells their plans apart and uses each for what
-- its token's scopes allow:
-- (calm.btp.cisplan: load_keys, roles).
--

-- Expected failures: nil, message, code.
local codec = require "calm.codec"
local client = require "calm.btp.client"
local poll = require "calm.lib.poll"

local M = {}

M.SERVICE = "SAPCloudALMAPIs"
M.PLAN = "standard"
M.poll_policy = poll.policy

-- What calmbind does with a cis key, the scope it needs and the plan that
-- has it.
M.NEEDS = {
  subaccount = { scope = "global-account.subaccount.read", plan = "central",
    what = "the subaccount's creation date (Accounts API)" },
  entitlement = { scope = "global-account.entitlement.subaccount.update", plan = "central",
    what = "assigning the SAP Cloud ALM API entitlement (Entitlements API)" },
  subscription = { scope = "subaccount.application.subscription.read", plan = "local",
    what = "the SAP Cloud ALM subscription's date (SaaS Provisioning API)" },
}

-- Scopes of the global-account reads (calm.btp.cis_accounts), for 403 hints;
-- not roles of a get run (calm.btp.cisplan.roles reads NEEDS only).
M.GA_NEEDS = {
  tree = { scope = "global-account.read", plan = "central", what = "the global account's tree" },
  entitlement_read = { scope = "global-account.entitlement.read", plan = "central",
    what = "the global account's entitlements" },
}

-- ------------------------------------------------------------- dates --

-- days since 1970-01-01 -> y, m, d (proleptic Gregorian; H. Hinnant's algorithm)
local function civil(days)
  days = days + 719468
  local era = (days >= 0 and days or days - 146096) // 146097
  local doe = days - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8,
  sep = 9, oct = 10, nov = 11, dec = 12 }

local function ymd(y, m, d)
  if not (y and m and d) or m < 1 or m > 12 or d < 1 or d > 31 or y < 1970 or y > 9999 then return nil end
  return string.format("%04d-%02d-%02d", y, m, d)
end

-- A BTP date in any of its forms -> "YYYY-MM-DD" (UTC) | nil:
-- epoch milliseconds (number or digit string; seconds if small),
-- ISO 8601 text, or "Jun 12, 2023, 9:15:00 AM" (U+202F before AM/PM too).
function M.to_date(v)
  if type(v) == "string" and v:match("^%s*%d+%s*$") then v = tonumber(v) end
  if type(v) == "number" then
    if v ~= v or v <= 0 then return nil end
    local secs = v > 1e11 and v / 1000 or v
    local days = math.floor(secs / 86400)
    return ymd(civil(days))
  end
  if type(v) ~= "string" then return nil end
  local y, m, d = v:match("^%s*(%d%d%d%d)%-(%d%d)%-(%d%d)")
  if y then return ymd(tonumber(y), tonumber(m), tonumber(d)) end
  local mon, day, year = v:match("^%s*(%a%a%a)%a*%.?%s+(%d%d?),?%s+(%d%d%d%d)")
  if mon and MONTHS[mon:lower()] then
    return ymd(tonumber(year), MONTHS[mon:lower()], tonumber(day))
  end
  day, mon, year = v:match("^%s*(%d%d?)%s+(%a%a%a)%a*%.?%s+(%d%d%d%d)")
  if mon and MONTHS[mon:lower()] then
    return ymd(tonumber(year), MONTHS[mon:lower()], tonumber(day))
  end
  return nil
end

-- ------------------------------------------------------------ client --

-- {"error":{"code","message","details":[...]}} -> one line
local function error_text(j)
  if not j then return nil end
  local e = j.error
  if type(e) == "table" then
    local t = tostring(e.message or e.code or "")
    if type(e.details) == "table" and e.details[1] and e.details[1].message then
      t = t .. " (" .. tostring(e.details[1].message) .. ")"
    end
    return t
  elseif type(e) == "string" then
    return e .. (j.error_description and (": " .. j.error_description) or "")
  elseif j.description or j.message then
    return tostring(j.description or j.message)
  end
  return nil
end

local C = client.class { api = "Cloud Management service", error_text = error_text }

function M.response_text(resp)
  return C.response_text(C, resp)
end

-- " (needs the scope S of a <plan>-plan key)" for a 403 of a call that needs it
local function scope_hint(status, need)
  if status ~= 403 or not need then return "" end
  local n = M.NEEDS[need] or M.GA_NEEDS[need]
  return string.format(" (needs the scope %s, which a %s-plan cis key has)", n.scope, n.plan)
end

local code_for = client.code_for

-- t: the parsed cis key (endpoints.*, uaa.{clientid, clientsecret, url}).
function M.from_key(t, opts)
  opts = opts or {}
  if type(t) ~= "table" or type(t.endpoints) ~= "table" or type(t.uaa) ~= "table" then
    return nil, "the --cis-key file is not a Cloud Management service (cis) binding: it needs endpoints and uaa", "INPUT"
  end
  local gt = t.grant_type
  if gt ~= nil and gt ~= "client_credentials" and gt ~= "clientCredentials" then
    return nil, "the cis key uses grant_type '" .. tostring(gt) .. "' (a user login); create the cis "
      .. "instance in the \"Other\" environment with parameters {\"grantType\":\"clientCredentials\"} "
      .. "and use a binding of it", "INPUT"
  end
  local session, smsg, scode = client.session_from_key(t.uaa, opts.what or "the cis key",
    "Cloud Management service", opts.cacert)
  if not session then return nil, smsg, scode end
  return client.new(C, { key = t, session = session, cacert = opts.cacert, clients = {} }, opts)
end

-- Test/user-script constructor: {rest_for = function(endpoint_name) -> client}
function M.new(opts)
  return client.new(C, { key = opts.key or { endpoints = {} }, clients = {}, rest_for = opts.rest_for },
    opts)
end

-- rest client for endpoints[<name>]
function C:client(name)
  if self.clients[name] then return self.clients[name] end
  if self.rest_for then
    self.clients[name] = self.rest_for(name)
    return self.clients[name]
  end
  local url = self.key.endpoints[name]
  if type(url) ~= "string" or url == "" then
    return nil, "the cis key has no endpoints." .. name, "INPUT"
  end
  local c = client.rest_client(url, self.session, "Cloud Management (" .. name .. ")", self.cacert)
  self.clients[name] = c
  return c
end

-- 204 No Content (the Entitlements API answers it for "nothing assigned"): empty
function C:get_json(endpoint, path, what, need)
  local c, msg, code = self:client(endpoint)
  if not c then return nil, msg, code end
  local j, jmsg, jcode, resp = self:read_json(c, path, what,
    { empty_204 = true, hint = function(status) return scope_hint(status, need) end })
  if not j then return nil, jmsg, jcode, resp end
  return j
end

-- ---------------------------------------------------------- accounts --

-- {guid, name, created = "YYYY-MM-DD", raw_created} | nil, msg, code
function C:subaccount(guid)
  local j, msg, code = self:get_json("accounts_service_url",
    "/accounts/v1/subaccounts/" .. codec.url_encode(guid), "reading subaccount " .. guid, "subaccount")
  if not j then return nil, msg, code end
  return { guid = j.guid or guid, name = j.displayName, subdomain = j.subdomain,
    created = M.to_date(j.createdDate), raw_created = j.createdDate, state = j.state }
end

-- ------------------------------------------------------------- saas --

local function is_calm_app(a)
  local function has(s, needle)
    return type(s) == "string" and s:lower():find(needle, 1, true) ~= nil
  end
  local names = { a.displayName, a.commercialAppName, a.appName }
  for _, n in ipairs(names) do
    if has(n, "cloud alm") or has(n, "cloudalm") or has(n, "cloud-alm") then
      -- the API service is no SaaS app, but keep it out anyway
      if not has(n, "api") then return true end
    end
  end
  return false
end

-- The SAP Cloud ALM subscription: {app, state, created} | false | nil,msg,code
function C:calm_subscription()
  local j, msg, code = self:get_json("saas_registry_service_url", "/saas-manager/v1/applications",
    "listing SaaS subscriptions", "subscription")
  if not j then return nil, msg, code end
  local best
  for _, a in ipairs(j.applications or j.value or {}) do
    if type(a) == "table" and is_calm_app(a) then
      local s = { app = a.appName, name = a.displayName or a.commercialAppName, state = a.state,
        created = M.to_date(a.createdDate), raw_created = a.createdDate }
      if a.state == "SUBSCRIBED" or not best then best = s end
    end
  end
  return best or false
end

-- ------------------------------------------------------ entitlements --

local function assignments_path(subaccount, service, plan)
  return "/entitlements/v1/assignments?subaccountGUID=" .. codec.url_encode(subaccount)
    .. "&serviceName=" .. codec.url_encode(service) .. "&planName=" .. codec.url_encode(plan)
end

-- Finds the plan entry (category, assignment of the subaccount) in an
-- assignments answer: {category=, state=, message=, assigned=bool}
function M.assignment_state(j, subaccount, service, plan)
  local r = { assigned = false }
  local function scan(list, assigned_list)
    for _, svc in ipairs(type(list) == "table" and list or {}) do
      if svc.name == service then
        for _, p in ipairs(svc.servicePlans or {}) do
          if p.name == plan then
            r.category = r.category or p.category
            r.found = true
            for _, ai in ipairs(p.assignmentInfo or {}) do
              if ai.entityId == subaccount and assigned_list then
                r.assigned = true
                r.state = ai.entityState
                r.message = ai.stateMessage
              end
            end
          end
        end
      end
    end
  end
  scan(j.entitledServices, false)
  scan(j.assignedServices, true)
  return r
end

function C:assignment(subaccount)
  local j, msg, code = self:get_json("entitlements_service_url",
    assignments_path(subaccount, M.SERVICE, M.PLAN), "reading entitlement assignments")
  if not j then return nil, msg, code end
  return M.assignment_state(j, subaccount, M.SERVICE, M.PLAN)
end

-- Plan categories with a numeric quota (the Entitlements API: SERVICE, and
-- QUOTA_BASED_APPLICATION as opposed to APPLICATION); the others
-- (ELASTIC_SERVICE, ELASTIC_LIMITED, APPLICATION, ...) are enabled.
local QUOTA = { SERVICE = true, QUOTA_BASED_APPLICATION = true }

-- The PUT body (amount for quota plans, enable otherwise).
function M.assign_body(subaccount, category)
  local info = { subaccountGUID = subaccount }
  if category == nil or QUOTA[category] then info.amount = 1 else info.enable = true end
  return { subaccountServicePlans = { {
    serviceName = M.SERVICE, servicePlanName = M.PLAN, assignmentInfo = { info },
  } } }
end

-- PUTs the assignment (amount for quota plans, enable otherwise).
-- Returns true | nil, msg, code.
function C:_put_assignment(subaccount, category)
  local c, cmsg, ccode = self:client("entitlements_service_url")
  if not c then return nil, cmsg, ccode end
  local body = M.assign_body(subaccount, category)
  local resp, rmsg, rcode = self:send(c, { method = "PUT", path = "/entitlements/v1/subaccountServicePlans",
    json = body, idempotent = true })
  if not resp then return nil, "assigning the entitlement: " .. tostring(rmsg), rcode end
  if resp.status ~= 202 and resp.status ~= 200 and resp.status ~= 201 and resp.status ~= 204 then
    return nil, "assigning the entitlement SAP Cloud ALM API (" .. M.SERVICE .. "/" .. M.PLAN
      .. ") to subaccount " .. subaccount .. ": " .. self:response_text(resp)
      .. scope_hint(resp.status, "entitlement"), code_for(resp.status)
  end
  self:_note { action = "assign-entitlement", resource = "entitlement",
    id = subaccount, name = M.SERVICE .. "/" .. M.PLAN,
    detail = body.subaccountServicePlans[1].assignmentInfo[1].amount and "amount 1" or "enable" }
  return true
end

-- Assigns SAP Cloud ALM API / standard to the subaccount and waits until
-- the assignment is OK. Returns state table | nil, msg, code.
function C:assign_entitlement(subaccount)
  local a, msg, code = self:assignment(subaccount)
  if not a then return nil, msg, code end
  if a.assigned and a.state == "OK" then return a end
  if not a.assigned or a.state == "PROCESSING_FAILED" then
    local ok, pmsg, pcode = self:_put_assignment(subaccount, a.category)
    if not ok then return nil, pmsg, pcode end
  end
  return poll.until_done { policy = self.poll_policy, progress = "entitlement assignment",
    waiting = "the entitlement assignment",
    check = function()
      local s, smsg, scode = self:assignment(subaccount)
      if not s then return true, nil, smsg, scode end
      if s.assigned and s.state == "OK" then return true, s end
      if s.assigned and s.state == "PROCESSING_FAILED" then
        return true, nil, "assigning the entitlement failed: " .. tostring(s.message or "PROCESSING_FAILED"), "API"
      end
      return false, s.state
    end }
end

return M
