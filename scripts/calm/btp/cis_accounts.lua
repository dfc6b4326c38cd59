-- calm.btp.cis_accounts: the global account through a central cis key (Accounts and
-- Entitlements APIs): its tree of directories and subaccounts, the SAP Cloud ALM API
-- entitlement of every subaccount in one read, and the Service Manager admin binding
-- the Accounts API creates in a subaccount.
--
--   local acc = require "calm.btp.cis_accounts"
--   local ga = acc.tree(c)            -- {guid, name, subaccounts = {{guid, name, subdomain,
--                                     --   region, directory = "Customers/ACME", created}, ...}}
--   local ent = acc.calm_entitlements(c)   -- {[subaccount GUID] = "OK" | "PROCESSING" | ...}
--   local key, how = acc.sm_binding(c, guid, {name =, x509_days =, api = "v2"|"v1"|nil})
--
-- c is a calm.btp.cis client. Expected failures: nil, message, code.
local codec = require "calm.codec"
local log = require "calm.log"
local cis = require "calm.btp.cis"
local client = require "calm.btp.client"

local M = {}

-- The binding SAP's v1 API makes (one per subaccount, always this name).
M.V1_NAME = "ServiceManagementAccessBinding"

local function s(v) return type(v) == "string" and v or nil end

-- The subaccounts of a node and of its directories, depth first, each with
-- the path of directory names it sits in.
local function walk(node, path, out, depth)
  if depth > 10 then return end
  for _, sa in ipairs(type(node.subaccounts) == "table" and node.subaccounts or {}) do
    if type(sa) == "table" and s(sa.guid) then
      out[#out + 1] = { guid = sa.guid, name = s(sa.displayName) or "", subdomain = s(sa.subdomain),
        region = s(sa.region), directory = path, state = s(sa.state),
        created = cis.to_date(sa.createdDate) }
    end
  end
  for _, d in ipairs(type(node.children) == "table" and node.children or {}) do
    if type(d) == "table" then
      local name = s(d.displayName) or s(d.guid) or "?"
      walk(d, path == "" and name or (path .. "/" .. name), out, depth + 1)
    end
  end
end

-- GET /accounts/v1/globalAccount?expand=true (scope global-account.read):
-- one request for the whole tree. Returns {guid, name, subaccounts, directories}.
function M.tree(c)
  local j, msg, code = c:get_json("accounts_service_url", "/accounts/v1/globalAccount?expand=true",
    "reading the global account", "tree")
  if not j then return nil, msg, code end
  local out = {}
  walk(j, "", out, 0)
  local dirs = 0
  local function count(n, depth)
    for _, d in ipairs(type(n.children) == "table" and n.children or {}) do
      dirs = dirs + 1
      if depth < 10 then count(d, depth + 1) end
    end
  end
  count(j, 0)
  return { guid = s(j.guid), name = s(j.displayName), subaccounts = out, directories = dirs }
end

-- GET /entitlements/v1/assignments?assignedServiceName=SAPCloudALMAPIs without a
-- subaccount: the global account's assignments of the SAP Cloud ALM API, one row
-- per subaccount. Returns {[guid] = entityState}.
function M.calm_entitlements(c)
  local j, msg, code = c:get_json("entitlements_service_url",
    "/entitlements/v1/assignments?assignedServiceName=" .. codec.url_encode(cis.SERVICE),
    "reading the global account's entitlements", "entitlement_read")
  if not j then return nil, msg, code end
  local out = {}
  for _, svc in ipairs(type(j.assignedServices) == "table" and j.assignedServices or {}) do
    if svc.name == cis.SERVICE then
      for _, p in ipairs(type(svc.servicePlans) == "table" and svc.servicePlans or {}) do
        for _, ai in ipairs(type(p.assignmentInfo) == "table" and p.assignmentInfo or {}) do
          if s(ai.entityId) and (ai.entityType == nil or ai.entityType == "SUBACCOUNT") then
            out[ai.entityId] = s(ai.entityState) or "OK"
          end
        end
      end
    end
  end
  return out
end

-- ------------------------------------------------------ SM admin binding --

-- An Accounts API answer -> the Service Manager key calmbind's --sm-key reads
-- (SAP's v2 schema spells the mTLS token URL certUrl; the key files say certurl).
function M.sm_key_of(j)
  if type(j) ~= "table" or not s(j.clientid) or not s(j.sm_url) then return nil end
  local k = { clientid = j.clientid, sm_url = j.sm_url, xsappname = s(j.xsappname) }
  if s(j.certificate) and s(j.key) then
    k.certificate, k.key = j.certificate, j.key
    k.certurl = s(j.certUrl) or s(j.certurl)
    k["credential-type"] = "x509"
    log.secret(j.key)
  else
    k.clientsecret, k.url = s(j.clientsecret), s(j.url)
    if not (k.clientsecret and k.url) then return nil end
    log.secret(k.clientsecret)
  end
  return k
end

local function paths(guid, api, name)
  local g = codec.url_encode(guid)
  if api == "v1" then
    local p = "/accounts/v1/subaccounts/" .. g .. "/serviceManagementBinding"
    return p, p
  end
  local base = "/accounts/v2/subaccounts/" .. g .. "/serviceManagerBindings"
  return base .. "/" .. codec.url_encode(name), base
end

-- The binding by name: key | false (none) | nil, msg, code. A 404 is "none".
local function look(c, guid, api, name)
  local rc, msg, code = c:client("accounts_service_url")
  if not rc then return nil, msg, code end
  local one = paths(guid, api, name)
  local resp
  resp, msg, code = c:send(rc, { method = "GET", path = one, idempotent = true })
  if not resp then return nil, "looking up the Service Manager binding: " .. tostring(msg), code end
  if resp.status == 404 then return false, resp end
  if resp.status ~= 200 then
    return nil, string.format("looking up Service Manager binding %s of subaccount %s: %s", name, guid,
      c:response_text(resp)), client.code_for(resp.status)
  end
  local k = M.sm_key_of(c:body_json(resp))
  if not k then return nil, "the Accounts API's binding " .. name .. " has no usable credentials", "BAD_RESPONSE" end
  return k
end

-- POST (not idempotent: an unknown outcome is looked up by name before any retry).
local function create(c, guid, api, name, x509_days)
  local rc, msg, code = c:client("accounts_service_url")
  if not rc then return nil, msg, code end
  local _, base = paths(guid, api, name)
  local r = { method = "POST", path = base }
  if api == "v2" then
    r.json = { name = name }
    if x509_days then
      r.json.parameters = { ["credential-type"] = "x509",
        x509 = { ["key-length"] = 2048, validity = x509_days, ["validity-type"] = "DAYS" } }
    end
  end
  local resp
  resp, msg, code = c:send(rc, r)
  if not resp then return nil, "creating the Service Manager binding: " .. tostring(msg), code end
  if resp.status ~= 201 and resp.status ~= 200 then return nil, resp end
  local k = M.sm_key_of(c:body_json(resp))
  if not k then return nil, "the Accounts API created binding " .. name .. " but sent no usable credentials", "BAD_RESPONSE" end
  c:_note { action = "create-sm-binding", resource = "sm-binding", id = guid, name = name,
    detail = api .. (x509_days and " x509" or "") }
  return k
end

-- Whether an answer says the route is not there (no cis error object):
-- the API version is not offered, as opposed to "no such binding".
local function no_route(resp)
  if resp.status ~= 404 and resp.status ~= 405 then return false end
  local j = client.body_json(resp, "Cloud Management service")
  return not (type(j) == "table" and type(j.error) == "table" and j.error.code)
end

-- Looks for the binding by name, creates it when there is none (v2; v1 where
-- v2 is not offered, or api = "v1"). o = {name, x509_days, api}.
-- Returns key, "found"|"created", api | nil, msg, code.
function M.sm_binding(c, guid, o)
  local order = o.api and { o.api } or { "v2", "v1" }
  local last
  for _, api in ipairs(order) do
    local name = api == "v1" and M.V1_NAME or o.name
    if api == "v1" and o.x509_days then
      return nil, "the v1 serviceManagementBinding API makes basic credentials only; x509 needs the v2 "
        .. "serviceManagerBindings API", "MANUAL"
    end
    local k, lresp, lcode = look(c, guid, api, name)
    if k then return k, "found", api end
    if k == nil then return nil, lresp, lcode end
    if not no_route(lresp) then
      local made, cresp, ccode = create(c, guid, api, name, o.x509_days)
      if made then return made, "created", api end
      if type(cresp) ~= "table" then return nil, cresp, ccode end
      if cresp.status == 409 then
        -- made meanwhile (another run): read it
        k, lresp, lcode = look(c, guid, api, name)
        if k then return k, "found", api end
        return nil, lresp or ("binding " .. name .. " exists but cannot be read"), lcode or "API"
      end
      if not no_route(cresp) then
        local hint = cresp.status == 403 and " (needs the scope global-account.subaccount.update, "
          .. "which a central-plan cis key has)" or ""
        return nil, string.format("creating Service Manager binding %s in subaccount %s: %s%s", name, guid,
          c:response_text(cresp), hint), client.code_for(cresp.status)
      end
      last = cresp
    else
      last = lresp
    end
  end
  return nil, string.format("the Accounts API offers no Service Manager binding endpoint for subaccount %s "
    .. "(%s answered HTTP %s): create a subaccount-admin Service Manager binding by hand and save it "
    .. "as the key file (see calmbind discover --help)", guid, o.api or "v2 and v1",
    tostring(last and last.status)), "MANUAL"
end

return M
