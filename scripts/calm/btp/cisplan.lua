-- calm.btp.cisplan: which Cloud Management Service (cis) key does what.
--
-- SAP's service-plan table ("SAP Cloud Management Service - Service Plans"):
-- a `central` key manages the global account (subaccounts, entitlements:
-- global-account.subaccount.read, global-account.entitlement.subaccount.update),
-- a `local` key one subaccount's environments and subscriptions
-- (subaccount.application.subscription.read). No one key does all that
-- calmbind can use, so get and plan take up to two (--cis-key, --cis-key2),
-- each of either plan, and use each for what its token's scopes allow.
--
--   local keys = cisplan.load_keys({{"--cis-key", path}, {"--cis-key2", path2}}, {cacert=, on_action=})
--   -- after the tokens: which key does what, and what cannot be done
--   local roles, notes = cisplan.roles(keys, subaccount)  -- | nil, msg, "USAGE"
--   roles.subaccount, roles.entitlement, roles.subscription -- calm.btp.cis clients or nil
local cis = require "calm.btp.cis"
local input = require "calm.lib.input"
local jwt = require "calm.lib.jwt"
local M = {}

-- The plan a key names (before any request): "central" | "local" | nil.
-- uaa.xsappname cis-central!b14 / cis-local!b4, the client id's suffix
-- (|cis-local!b4), or sap.cloud.service ...service.central / .local.
function M.plan_of_key(t)
  local uaa = type(t) == "table" and type(t.uaa) == "table" and t.uaa or {}
  local names = { uaa.xsappname or false, type(uaa.clientid) == "string" and uaa.clientid:match("|([^|]*)$") }
  for _, v in ipairs(names) do
    local p = type(v) == "string" and v:match("^cis%-(%a+)!b%d+$")
    if p == "central" or p == "local" then return p end
  end
  local svc = type(t) == "table" and t["sap.cloud.service"]
  local p = type(svc) == "string" and svc:match("^com%.sap%.core%.commercial%.service%.(%a+)$")
  if p == "central" or p == "local" then return p end
  return nil
end

-- Reads and builds every given key: array of calm.btp.cis clients with .option,
-- .path and .plan (from the key; nil when it does not say) | nil, msg, code.
-- Two keys naming one plan are a usage error: the second adds nothing.
function M.load_keys(list, o)
  local out, seen = {}, {}
  for _, it in ipairs(list) do
    local option, path = it[1], it[2]
    if path then
      local t, msg, code = input.load_key(path, "cis", option)
      if not t then return nil, msg, code end
      local c
      c, msg, code = cis.from_key(t, { cacert = o.cacert, on_action = o.on_action,
        what = "the cis key (" .. (input.is_held(path) and input.source_name(path)
          or (option .. " " .. input.source_name(path))) .. ")" })
      if not c then return nil, msg, code end
      c.option, c.path, c.plan = option, path, M.plan_of_key(t)
      if c.plan and seen[c.plan] then
        return nil, string.format("%s and %s are both %s-plan cis keys; give one central and one local "
          .. "key (the central key assigns entitlements and reads the subaccount, the local key of the "
          .. "SAP Cloud ALM subaccount reads its subscriptions)", seen[c.plan], option, c.plan), "USAGE"
      end
      if c.plan then seen[c.plan] = option end
      out[#out + 1] = c
    end
  end
  return out
end

-- The cis scopes of a client's current token, by suffix: set
-- {["global-account.read"] = true, ...}; only scopes of a cis-<plan>!b<n>
-- xsappname count (a token without any tells nothing about the plan).
local function scopes_of(c)
  local set = {}
  local info = c.session and c.session.cached
  local list = jwt.scopes(info and info.scope)
  if #list == 0 then
    local claims = c.session and c.session:claims()
    list = jwt.scopes(claims)
  end
  for _, s in ipairs(list) do
    local suffix = s:match("^cis%-[%w%-]+!b%d+%.(.+)$")
    if suffix then set[suffix] = true end
  end
  return set
end

-- A local-plan key must be of the SAP Cloud ALM subaccount: else its
-- subscriptions are another subaccount's. Returns true | nil, msg, "USAGE".
local function check_local_key(c, subaccount)
  local sid, claim = jwt.subaccount(c.session:claims())
  if sid and sid:lower() ~= subaccount:lower() then
    return nil, string.format("%s %s is a cis key of subaccount %s (its token's %s), not of the "
      .. "SAP Cloud ALM subaccount %s: its subscriptions are another subaccount's; give a "
      .. "local-plan key made in the SAP Cloud ALM subaccount", c.option, c.path, sid, claim,
      subaccount), "USAGE"
  end
  return true
end

-- The roles no usable key can take, each a note naming the missing scope.
local function missing_roles(roles)
  local notes = {}
  for _, role in ipairs { "subscription", "subaccount", "entitlement" } do
    if not roles[role] then
      local need = cis.NEEDS[role]
      notes[#notes + 1] = { role = role, text = string.format("%s: no cis key's token has the scope %s "
        .. "(a %s-plan key has it; give one as --cis-key or --cis-key2)", need.what, need.scope, need.plan) }
    end
  end
  return notes
end

-- After the tokens: which client does what. keys: from load_keys, those
-- whose token failed marked .failed. subaccount: the SAP Cloud ALM
-- subaccount GUID (or nil). Returns roles, notes (lines naming what cannot
-- be done and the scope that is missing) | nil, msg, "USAGE" when a
-- local-plan key belongs to another subaccount (its subscriptions are not
-- Cloud ALM's).
function M.roles(keys, subaccount)
  local roles = {}
  local usable = 0
  for _, c in ipairs(keys) do
    if not c.failed then
      usable = usable + 1
      local set = scopes_of(c)
      -- a token that shows no cis scopes (opaque, or a replayed stand-in):
      -- the plan the key names decides
      local by_plan = next(set) == nil
      for role, need in pairs(cis.NEEDS) do
        if not roles[role] and (set[need.scope] or (by_plan and c.plan == need.plan)) then
          if need.plan == "local" and subaccount then
            local ok, msg, code = check_local_key(c, subaccount)
            if not ok then return nil, msg, code end
          end
          roles[role] = c
        end
      end
    end
  end
  if usable == 0 then return roles, {} end
  return roles, missing_roles(roles)
end

return M
