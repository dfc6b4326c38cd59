local t = ...
local cisplan = require "calm.btp.cisplan"
local T = {}

-- a calm.btp.cis client stand-in: plan from the key, token scopes, token claims
local function client(plan, scope, claims)
  return { plan = plan, option = "--cis-key", path = "cis.json",
    session = { cached = { scope = scope }, claims = function() return claims or {} end } }
end

function T.plan_of_key()
  t.eq(cisplan.plan_of_key { uaa = { xsappname = "cis-central!b14" } }, "central")
  t.eq(cisplan.plan_of_key { uaa = { clientid = "sb-x!b1|cis-local!b4" } }, "local")
  t.eq(cisplan.plan_of_key { ["sap.cloud.service"] = "com.sap.core.commercial.service.local", uaa = {} }, "local")
  t.eq(cisplan.plan_of_key { uaa = { xsappname = "other!b1" } }, nil)
end

function T.roles_follow_the_scopes()
  local c = client(nil, "cis-central!b14.global-account.subaccount.read "
    .. "cis-central!b14.global-account.entitlement.subaccount.update uaa.resource")
  local l = client(nil, "cis-local!b4.subaccount.application.subscription.read")
  local roles, notes = cisplan.roles({ c, l }, nil)
  t.eq(roles.subaccount, c)
  t.eq(roles.entitlement, c)
  t.eq(roles.subscription, l)
  t.eq(#notes, 0)
end

function T.missing_scope_is_named()
  local c = client("central", "cis-central!b14.global-account.subaccount.read")
  local roles, notes = cisplan.roles({ c }, nil)
  t.eq(roles.entitlement, nil)
  local text = {}
  for _, n in ipairs(notes) do text[n.role] = n.text end
  t.find(text.entitlement, "global-account.entitlement.subaccount.update")
  t.find(text.subscription, "subaccount.application.subscription.read")
end

-- a token that shows no cis scopes (opaque, a replayed stand-in, another
-- client's token): the plan the key names decides
function T.no_cis_scopes_falls_back_to_the_key()
  local c = client("central", "sb-x!b1|service-manager!b1.subaccount.read uaa.resource")
  local roles = cisplan.roles({ c }, nil)
  t.eq(roles.entitlement, c)
  t.eq(roles.subaccount, c)
  t.eq(roles.subscription, nil)
end

function T.local_key_of_another_subaccount()
  local l = client("local", "cis-local!b4.subaccount.application.subscription.read",
    { ext_attr = { subaccountid = "11111111-1111-4111-8111-111111111111" } })
  local msg = t.fails("USAGE", cisplan.roles, { l }, "22222222-2222-4222-8222-222222222222")
  t.find(msg, "11111111-1111-4111-8111-111111111111")
end

return T
