-- calm.ops.discover: from one central cis key to the SAP Cloud ALM tenants of a
-- global account, a fleet inventory and (optionally) each tenant's Service Manager
-- admin key.
--
--   local exit = discover.run(opts)    -- opts: the parsed options of `calmbind discover`
--
-- Requests: one token, the expanded global account (the whole tree), the global
-- account's SAP Cloud ALM API assignments (every subaccount in one answer); with
-- --cis-key2 (a local-plan key) its subaccount's subscriptions; with
-- --bootstrap-sm-keys, per tenant without a key file: a look-up of the binding by name
-- and, when there is none, its creation (calm.btp.cis_accounts.sm_binding).
local cis_accounts = require "calm.btp.cis_accounts"
local cisplan = require "calm.btp.cisplan"
local discovery = require "calm.model.discovery"
local fs = require "calm.fs"
local input = require "calm.lib.input"
local json = require "calm.lib.json"
local jwt = require "calm.lib.jwt"
local log = require "calm.log"
local task = require "calm.task"
local M = {}

function M.spec()
  return {
    command = "discover",
    summary = "Find the SAP Cloud ALM subaccounts of a global account (central cis key); "
      .. "write a fleet inventory and their Service Manager keys.",
    options = {
      ["cis-key"] = { arg = "FILE", env = "CALMBIND_CIS_KEY", required = true,
        help = "Cloud Management Service key of plan central for the global account" },
      ["cis-key2"] = { arg = "FILE", help = "a local-plan cis key of one subaccount: its "
        .. "SAP Cloud ALM subscription is evidence too" },
      inventory = { arg = "FILE", help = "write a fleet inventory there (.json or .csv)" },
      ["bootstrap-sm-keys"] = { arg = "DIR", help = "create each tenant's Service Manager admin "
        .. "binding (Accounts API) as DIR/<name>-sm.json, or reuse the file or binding there" },
      ["sm-binding-name"] = { arg = "N", default = "calmbind-sm",
        help = "name of the binding --bootstrap-sm-keys looks for and creates (v2 API)" },
      ["sm-credential-type"] = { arg = "T", choices = { "binding-secret", "x509" }, default = "binding-secret",
        help = "credentials of a created binding (x509: mTLS, v2 API only)" },
      ["x509-validity"] = { arg = "DAYS", number = true, integer = true, min = 1, max = 3650, default = 365,
        help = "validity of an x509 binding's certificate" },
      ["sm-binding-api"] = { arg = "V", choices = { "auto", "v2", "v1" }, default = "auto",
        help = "Accounts API for the binding: v2 serviceManagerBindings, v1 serviceManagementBinding, "
          .. "auto (v2, else v1)" },
      jobs = { arg = "N", number = true, integer = true, min = 1, max = 64, default = 4,
        help = "tenants bootstrapped at once" },
      json = { flag = true, help = "print the result as JSON (no secrets) instead of a table" },
    },
    positionals = { min = 0, max = 0 },
  }
end

local function fail(msg, code) return nil, msg, code end

-- Checks the options before any request: true | nil, msg, code.
local function check(opts)
  local inv = opts.inventory
  if inv then
    if not (inv:lower():match("%.json$") or inv:lower():match("%.csv$")) then
      return fail("--inventory " .. inv .. ": name a .json or .csv file (the format follows the extension)", "USAGE")
    end
    local ok, msg, code = input.check_output("--inventory", inv)
    if not ok then return fail(msg, code) end
    ok, msg, code = input.check_not_input("--inventory", inv,
      { { "--cis-key", opts["cis-key"] }, { "--cis-key2", opts["cis-key2"] } })
    if not ok then return fail(msg, code) end
  end
  local dir = opts["bootstrap-sm-keys"]
  if dir and not fs.exists(dir .. "/.") then
    return fail("--bootstrap-sm-keys " .. dir .. ": " .. (fs.exists(dir) and "not a directory" or "does not exist"),
      "USAGE")
  end
  if opts["sm-credential-type"] == "x509" and opts["sm-binding-api"] == "v1" then
    return fail("--sm-credential-type x509 needs the v2 API: the v1 serviceManagementBinding makes basic "
      .. "credentials only", "USAGE")
  end
  return true
end

-- The central key (and the local one): clients | nil, msg, code.
local function load(opts)
  local keys, msg, code = cisplan.load_keys({ { "--cis-key", opts["cis-key"] }, { "--cis-key2", opts["cis-key2"] } },
    { cacert = opts.cacert })
  if not keys then return nil, msg, code end
  local central, loc = keys[1], keys[2]
  if central.plan == "local" then
    return fail("--cis-key " .. opts["cis-key"] .. " is a local-plan cis key: discover reads the global account "
      .. "and needs a central-plan key (plan central of the Cloud Management Service, made in any subaccount "
      .. "of the global account); pass a local-plan key as --cis-key2", "USAGE")
  end
  if loc and loc.plan == "central" then
    return fail("--cis-key2 " .. opts["cis-key2"] .. " is a central-plan key: --cis-key2 takes a local-plan key "
      .. "of one subaccount (its subscriptions)", "USAGE")
  end
  return central, loc
end

-- The subscription a local-plan key shows for its own subaccount: {[guid] = sub|false}.
local function subscriptions(loc)
  if not loc then return {} end
  local sub, msg = loc:calm_subscription()
  if sub == nil then
    log.warn("--cis-key2: cannot read subscriptions (%s); deciding by entitlement and name", tostring(msg))
    return {}
  end
  local sid = jwt.subaccount(loc.session:claims())
  if not sid then return {} end
  return { [sid] = sub }
end

-- ------------------------------------------------------------- bootstrap --

local function key_path(dir, e) return dir .. "/" .. e.name .. "-sm.json" end

-- One tenant's SM key: e.sm_key (path), e.sm_how ("kept" | "found" | "created"),
-- or e.sm_error.
local function bootstrap_one(central, e, opts)
  local path = key_path(opts["bootstrap-sm-keys"], e)
  if fs.exists(path) then
    local ok, msg = input.load_key(path, "sm", "key file")
    if not ok then e.sm_error = msg .. " (remove it to have it made again)"; return end
    e.sm_key, e.sm_how = path, "kept"
    return
  end
  local api = opts["sm-binding-api"] ~= "auto" and opts["sm-binding-api"] or nil
  local x509 = opts["sm-credential-type"] == "x509" and opts["x509-validity"] or nil
  local k, how, which = cis_accounts.sm_binding(central, e.sub.guid, { name = opts["sm-binding-name"], x509_days = x509,
    api = api })
  if not k then e.sm_error, e.sm_code = how, which; return end
  local ok, wmsg = fs.write_private(path, json.pretty(k, { "clientid", "clientsecret", "certificate", "key",
    "url", "certurl", "sm_url", "xsappname" }) .. "\n")
  if not ok then e.sm_error = "writing " .. path .. ": " .. tostring(wmsg); return end
  e.sm_key, e.sm_how, e.sm_api = path, how, which
end

local function bootstrap(central, calm, opts)
  local next_i = 0
  local function worker()
    while true do
      next_i = next_i + 1
      local e = calm[next_i]
      if not e then return end
      bootstrap_one(central, e, opts)
    end
  end
  local ws = {}
  for i = 1, math.min(opts.jobs, #calm) do ws[i] = worker end
  if #ws > 0 then task.all(ws) end
end

-- The existing DIR/<name>-sm.json of each tenant without bootstrap: pointed at,
-- not made (so a rerun of discover without the option keeps the inventory whole).
local function existing_keys(calm, dir)
  if not dir then return end
  for _, e in ipairs(calm) do
    if not e.sm_key and not e.sm_error and fs.exists(key_path(dir, e)) then
      e.sm_key, e.sm_how = key_path(dir, e), "kept"
    end
  end
end

-- ---------------------------------------------------------------- output --

-- path as seen from the inventory's directory (fleet resolves relative paths there).
local function relative_to(path, inv)
  if not path or path:sub(1, 1) == "/" then return path end
  local dir = inv:match("^(.*)/[^/]*$")
  if not dir or dir == "." or dir == "" then return path end
  if dir:sub(1, 1) == "/" or dir:find("%.%.") then
    local ok, pwd = pcall(os.getenv, "PWD")
    if ok and pwd and pwd:sub(1, 1) == "/" then return pwd .. "/" .. path end
    return path
  end
  local up = {}
  for part in dir:gmatch("[^/]+") do
    if part ~= "." then up[#up + 1] = ".." end
  end
  return table.concat(up, "/") .. "/" .. path
end

local function write_inventory(opts, found)
  local inv = opts.inventory
  local o = { cis_key = relative_to(opts["cis-key"], inv),
    sm_key_of = function(e) return e.sm_key and relative_to(e.sm_key, inv) or nil end }
  local text = inv:lower():match("%.csv$") and discovery.inventory_csv(found.calm, o)
    or discovery.inventory_json(found.calm, o)
  return fs.write_private(inv, text)
end

local function result(ga, found, opts, requests)
  local tenants = {}
  for _, e in ipairs(found.calm) do
    tenants[#tenants + 1] = { name = e.name, subaccount = e.sub.guid, display_name = e.sub.name,
      subdomain = e.sub.subdomain, region = e.sub.region, directory = e.sub.directory,
      decided_by = e.decided, evidence = e.evidence, sm_key = e.sm_key, sm_key_source = e.sm_how,
      sm_error = e.sm_error, missing = discovery.missing(e) }
  end
  local possible = {}
  for _, e in ipairs(found.possible) do
    possible[#possible + 1] = { subaccount = e.sub.guid, display_name = e.sub.name, region = e.sub.region,
      directory = e.sub.directory, evidence = e.evidence }
  end
  return { global_account = { guid = ga.guid, name = ga.name, subaccounts = #ga.subaccounts,
    directories = ga.directories }, tenants = tenants, possible = possible, other = found.other,
    requests = requests, inventory = opts.inventory }
end

local function pad(s, w) s = tostring(s or "-"); return s .. string.rep(" ", math.max(1, w - #s + 1)) end

function M.table_text(r)
  local cols = { { "NAME", "name" }, { "SUBACCOUNT", "subaccount" }, { "REGION", "region" },
    { "DIRECTORY", "directory" }, { "DECIDED BY", "decided_by" }, { "SM KEY", "sm" } }
  local rows = {}
  for _, t in ipairs(r.tenants) do
    local sm = t.sm_key and (t.sm_key .. " (" .. t.sm_key_source .. ")") or (t.sm_error and "FAILED" or "missing")
    rows[#rows + 1] = { name = t.name, subaccount = t.subaccount, region = t.region,
      directory = (t.directory ~= "" and t.directory) or "/", decided_by = t.decided_by, sm = sm }
  end
  local w = {}
  for i, c in ipairs(cols) do
    w[i] = #c[1]
    for _, row in ipairs(rows) do w[i] = math.max(w[i], #tostring(row[c[2]] or "-")) end
  end
  local out = { string.format("global account %s (%s): %d subaccounts in %d directories, %d of SAP Cloud ALM\n",
    tostring(r.global_account.name), tostring(r.global_account.guid), r.global_account.subaccounts,
    r.global_account.directories, #r.tenants) }
  local line = {}
  for i, c in ipairs(cols) do line[i] = i < #cols and pad(c[1], w[i]) or c[1] end
  out[#out + 1] = table.concat(line) .. "\n"
  for _, row in ipairs(rows) do
    line = {}
    for i, c in ipairs(cols) do line[i] = i < #cols and pad(row[c[2]], w[i]) or tostring(row[c[2]] or "-") end
    out[#out + 1] = table.concat(line) .. "\n"
  end
  for _, t in ipairs(r.tenants) do
    out[#out + 1] = string.format("%s: %s\n", t.name, table.concat(t.evidence, "; "))
    if t.sm_error then out[#out + 1] = string.format("%s: no Service Manager key: %s\n", t.name, t.sm_error) end
    for _, m in ipairs(t.missing) do out[#out + 1] = string.format("%s: missing %s\n", t.name, m) end
  end
  for _, p in ipairs(r.possible) do
    out[#out + 1] = string.format("not counted: '%s' (%s, %s): %s; no entitlement or subscription says it "
      .. "is SAP Cloud ALM's (add it to the inventory by hand if it is)\n", tostring(p.display_name),
      p.subaccount, tostring(p.region), table.concat(p.evidence, "; "))
  end
  out[#out + 1] = string.format("%d API requests%s\n", r.requests,
    r.inventory and (", inventory " .. r.inventory) or "")
  return table.concat(out)
end

-- ------------------------------------------------------------------- run --

-- Returns the exit status | nil, msg, code.
function M.run(opts)
  local ok, msg, code = check(opts)
  if not ok then return nil, msg, code end
  local central, loc, lcode = load(opts)
  if not central then return nil, loc, lcode end
  local ga
  ga, msg, code = cis_accounts.tree(central)
  if not ga then return nil, msg, code end
  local entitled
  entitled, msg, code = cis_accounts.calm_entitlements(central)
  if not entitled then return nil, msg, code end
  local found = discovery.judge(ga.subaccounts, entitled, subscriptions(loc))
  if opts["bootstrap-sm-keys"] then
    bootstrap(central, found.calm, opts)
  end
  existing_keys(found.calm, opts["bootstrap-sm-keys"])
  local requests = central.requests + (loc and loc.requests or 0)
  local r = result(ga, found, opts, requests)
  if opts.inventory then
    local w, wmsg = write_inventory(opts, found)
    if not w then return nil, "writing the inventory " .. opts.inventory .. ": " .. tostring(wmsg), "INPUT" end
  end
  if opts.json then
    io.write(json.pretty(r, { "global_account", "tenants", "possible", "name" }) .. "\n")
  else
    io.write(M.table_text(r))
  end
  if #found.calm == 0 then
    log.error("no SAP Cloud ALM subaccount in global account %s", tostring(ga.name))
    return 1
  end
  for _, e in ipairs(found.calm) do
    if opts["bootstrap-sm-keys"] and not e.sm_key then return e.sm_code == "MANUAL" and 4 or 1 end
  end
  return 0
end

return M
