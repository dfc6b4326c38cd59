-- tests/lua/test_discovery.lua: calm.model.discovery (which subaccounts are SAP Cloud
-- ALM's and why; the inventory discover writes) and calm.btp.cis_accounts.sm_key_of.
local t = ...
local d = require "calm.model.discovery"
local acc = require "calm.btp.cis_accounts"
local inventory = require "calm.ops.fleet_inventory"
local T = {}

local function sa(name, guid, subdomain, region)
  return { name = name, guid = guid, subdomain = subdomain, region = region or "eu10", directory = "" }
end

function T.name_kinds()
  t.eq({ d.name_kind("SAP Cloud ALM"), d.name_kind("  sap  cloud alm "), d.name_kind("Cloud ALM - Production"),
    d.name_kind("Development") }, { "documented", "documented", "suggests" })
end

function T.evidence_order_and_verdicts()
  local sub = { state = "SUBSCRIBED", name = "SAP Cloud ALM" }
  t.eq(select(3, d.judge_one(sa("Development", "a"), nil, sub)), "subscription")
  t.eq(d.judge_one(sa("SAP Cloud ALM", "a"), "OK", false), "other")   -- its local key shows none
  t.eq((d.judge_one(sa("Anything", "a"), "OK")), "calm")
  local v, ev, by = d.judge_one(sa("SAP Cloud ALM", "a"), nil)
  t.eq({ v, by }, { "calm", "name" })
  t.match(ev[1], "as SAP names it")
  t.eq(d.judge_one(sa("Cloud ALM Playground", "a"), nil), "possible")
  t.eq(d.judge_one(sa("Development", "a"), nil), "other")
end

function T.names_are_unique_and_valid()
  local found = d.judge({ sa("SAP Cloud ALM", "g1", "acme", "eu10"), sa("SAP Cloud ALM", "g2", "acme", "us10"),
    sa("SAP Cloud ALM", "g3", "acme", "us10"), sa("SAP Cloud ALM", "0123456789ab", nil) }, {}, {})
  local names = {}
  for _, e in ipairs(found.calm) do names[#names + 1] = e.name end
  t.eq(names, { "acme", "acme-us10", "acme-2", "sa-01234567" })
end

-- What discover writes, fleet reads: JSON and CSV, quotes and all.
function T.inventory_round_trips_through_fleet_inventory()
  local fs = require "calm.fs"
  local found = d.judge({ sa("SAP Cloud ALM", "g1", "acme"), sa("Cloud ALM, \"old\"", "g2", "beta") },
    { g2 = "OK" }, {})
  local o = { cis_key = "cis.json", sm_key_of = function(e) return e.name == "acme" and "sm/acme-sm.json" or nil end }
  local dir = os.getenv("TMPDIR") or "/tmp"
  for _, ext in ipairs { "json", "csv" } do
    local path = string.format("%s/calmbind-discovery-%d.%s", dir, math.random(1, 1e9), ext)
    local text = ext == "json" and d.inventory_json(found.calm, o) or d.inventory_csv(found.calm, o)
    assert(fs.write_private(path, text))
    local inv, msg = inventory.load(path)
    fs.remove(path)
    t.ok(inv, msg)
    t.eq(#inv.tenants, 2)
    t.eq(inv.tenants[1].sm_key, dir .. "/sm/acme-sm.json")
    t.match(inv.tenants[1].missing, "SAPCloudALMAPIs entitlement")
    t.match(inv.tenants[2].missing, "^sm_key")
    t.match(inv.tenants[2].evidence, "decided by entitlement")
    t.find(inv.tenants[2].evidence, "Cloud ALM, \"old\"")
  end
end

function T.sm_key_of_accounts_answers()
  t.eq(acc.sm_key_of { clientid = "c", clientsecret = "s", url = "https://u", sm_url = "https://sm", xsappname = "x",
    name = "n", creationDate = "2024-01-01T00:00:00Z" },
    { clientid = "c", clientsecret = "s", url = "https://u", sm_url = "https://sm", xsappname = "x" })
  local k = acc.sm_key_of { clientid = "c", certificate = "C", key = "K", certUrl = "https://cert", sm_url = "https://sm" }
  t.eq({ k.certurl, k["credential-type"], k.clientsecret }, { "https://cert", "x509" })
  t.eq(acc.sm_key_of { clientid = "c", sm_url = "https://sm" }, nil)
end

return T
