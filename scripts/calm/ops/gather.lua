-- calm.ops.gather: the evidence get and plan decide from, read-only and
-- concurrent (calm.task): the tokens first, then every read in one round,
-- then a token with every candidate key (calm.key.probe).
--
--   ev | nil, msg, code = gather.gather(ctx)     -- sets ctx.evidence
--   ok | nil, msg, code = gather.probe_inventory(ctx, inventory)
--   inv | nil, msg, code = gather.cf_space(ctx)  -- --runtime cf: sets ctx.cf
local inventory = require "calm.model.inventory"
local model_steps = require "calm.model.steps"
local cf = require "calm.btp.cf"
local cisplan = require "calm.btp.cisplan"
local log = require "calm.log"
local probe = require "calm.key.probe"
local sm = require "calm.btp.sm"
local task = require "calm.task"
local M = {}

-- ------------------------------------------------------- gathering --

-- Runs fns concurrently; returns the packed results.
local function together(fns)
  if #fns == 0 then return {} end
  return task.all(fns)
end

local function unpack_result(r)
  if r[1] == nil and r[3] == "FLOW_FAILED" then error(r[2], 0) end
  return r[1], r[2], r[3]
end

-- The key is the best evidence: a token (read-only) with every candidate
-- key -- each binding of a SAPCloudALMAPIs instance that Service Manager can
-- bind, not one Cloud ALM made for a managed system -- and its scopes, all at
-- once. Sets b.probe on each candidate binding.
function M.probe_inventory(ctx, inv)
  local list, cands = {}, {}
  for _, i in ipairs(inv.instances) do
    for _, b in ipairs(i.bindings) do
      if not b.system and b.ready and b.state ~= "failed" and b.state ~= "pending"
          and type(b.credentials) == "table" then
        list[#list + 1] = b
        cands[#cands + 1] = { credentials = b.credentials,
          label = "binding '" .. tostring(b.name) .. "' (instance '" .. tostring(i.name) .. "')" }
      end
    end
  end
  local res, msg, code = probe.keys(cands, { cacert = ctx.opts.cacert })
  if not res then return nil, msg, code end
  for n, b in ipairs(list) do b.probe = res[n] end
  return true
end

-- --subaccount defaults to the Service Manager key's subaccount (its
-- token's ext_attr.subaccountid, else zid); another GUID would assign the
-- entitlement to one subaccount and wait for the offering in another:
-- exit 2 before any change. Returns true | nil, msg, "USAGE".
local function sm_subaccount(ctx)
  local sid, claim = ctx.sm:token_subaccount()
  if not sid then return true end
  local given = ctx.opts.subaccount
  if given and given:lower() ~= sid:lower() then
    return nil, string.format("--subaccount %s is not the subaccount of the Service Manager key (%s, its "
      .. "token's %s): calmbind works in the subaccount the --sm-key belongs to; leave out --subaccount, "
      .. "or give the Service Manager key of subaccount %s", given, sid, claim, given), "USAGE"
  end
  if not given then
    log.debug("subaccount %s: the Service Manager key's (its token's %s)", sid, claim)
    ctx.opts.subaccount = sid
    if ctx.report and ctx.report.options then ctx.report.options.subaccount = sid end
  end
  return true
end

-- Round 1: the SM token and every cis key's token, together; then the
-- subaccount and which cis key does what (calm.btp.cisplan).
local function tokens(ctx, ev)
  local keys = ctx.cis_keys or {}
  local r1 = {}
  if ctx.sm then r1[#r1 + 1] = function() return ctx.sm.session:token() end end
  for _, k in ipairs(keys) do r1[#r1 + 1] = function() return k.session:token() end end
  local res = together(r1)
  local i = 1
  if ctx.sm then
    local tok, msg, code = unpack_result(res[i]); i = i + 1
    if not tok and code == "AUTH" then
      return nil, tostring(msg) .. "; create a new binding of the Service Manager instance (plan "
        .. "subaccount-admin) in the BTP cockpit, download it and pass it with --sm-key", code
    end
    if not tok then return nil, msg, code end
    local ok, smsg, scode = sm_subaccount(ctx)
    if not ok then return nil, smsg, scode end
  end
  for _, k in ipairs(keys) do
    local tok, msg, code = unpack_result(res[i]); i = i + 1
    if not tok then
      if code == "DEADLINE" then return nil, msg, code end
      ev.cis_errors[#ev.cis_errors + 1] = "no cis token (" .. k.option .. "): " .. tostring(msg)
      log.warn("%s: %s", k.option, tostring(msg))
      k.failed = true
    end
  end
  local roles, notes, ncode = cisplan.roles(keys, ctx.opts.subaccount)
  if not roles then return nil, notes, ncode end
  ctx.cis, ctx.cis_roles = roles.entitlement, roles
  return notes
end

-- The join: offering (display-name fallback costs one more round only when
-- the catalog name finds nothing), plan, then the instances and bindings,
-- each candidate key probed. Returns the inventory | nil, msg, code.
local function join(ctx, c, out)
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
  local inv = inventory.from_sm { offering = offering, plan = plan, instances = out.instances, bindings = out.bindings }
  local pok, pmsg, pcode = M.probe_inventory(ctx, inv)
  if not pok then return nil, pmsg, pcode end
  return inv
end

-- Round 2's reads: the Service Manager lists and, for --provisioned auto,
-- the dates a cis key may read. Returns jobs, names (parallel lists).
local function reads(ctx, want_dates)
  local opts, roles, c = ctx.opts, ctx.cis_roles, ctx.sm
  local jobs, names = {}, {}
  local function add(name, fn) jobs[#jobs + 1] = fn; names[#names + 1] = name end
  if c then
    add("offerings", function() return c:list("service_offerings", { fieldQuery = sm.eq("catalog_name", c.offering_name) }) end)
    add("plans", function() return c:list("service_plans", { fieldQuery = sm.eq("catalog_name", c.plan_name) }) end)
    add("instances", function() return c:list("service_instances", { attach_last_operations = true }) end)
    add("bindings", function() return c:list("service_bindings", { attach_last_operations = true }) end)
  end
  if want_dates and opts.subaccount and roles.subaccount then
    add("subaccount", function() return roles.subaccount:subaccount(opts.subaccount) end)
  end
  if want_dates and roles.subscription then
    add("subscription", function() return roles.subscription:calm_subscription() end)
  end
  return jobs, names
end

-- Round 2: every read together. A date a cis key cannot read is noted in
-- ev.cis_errors (the decision says what is missing); any other failure, or
-- the deadline, ends the run. Returns the results by name | nil, msg, code.
local function read_round(ctx, ev, want_dates)
  local jobs, names = reads(ctx, want_dates)
  local out = {}
  local res = together(jobs)
  for k, name in ipairs(names) do
    local v, msg, code = unpack_result(res[k])
    if v == nil then
      if name == "subaccount" or name == "subscription" then
        if code == "DEADLINE" then return nil, msg, code end
        ev.cis_errors[#ev.cis_errors + 1] = tostring(msg)
        log.warn("%s: %s", ctx.cis_roles[name].option, tostring(msg))
      else
        return nil, msg, code
      end
    else
      out[name] = v
    end
  end
  return out
end

-- Round 1: tokens. Round 2: every read together: offering, plans,
-- instances, bindings, subaccount date, subscription date.
function M.gather(ctx)
  local opts = ctx.opts
  local ev = { cis_errors = {} }
  ctx.evidence = ev
  local notes, nmsg, ncode = tokens(ctx, ev)
  if not notes then return nil, nmsg, ncode end
  local want_dates = opts.provisioned == "auto"
  local out, omsg, ocode = read_round(ctx, ev, want_dates)
  if not out then return nil, omsg, ocode end
  if want_dates and ctx.cis_roles.subaccount and not opts.subaccount then
    ev.cis_errors[#ev.cis_errors + 1] = "no --subaccount GUID: subaccount creation date not read"
  end
  -- what no cis key's scopes allow, named by the scope: the dates when they
  -- were wanted, the entitlement when it is missing (below)
  for _, n in ipairs(notes) do
    if want_dates and n.role ~= "entitlement" then ev.cis_errors[#ev.cis_errors + 1] = n.text end
  end
  ev.subaccount = out.subaccount
  ev.subscription = out.subscription

  if ctx.sm then
    local inv, msg, code = join(ctx, ctx.sm, out)
    if not inv then return nil, msg, code end
    ev.inventory = inv
  else
    ev.inventory = { instances = {}, by_id = {}, entitled = nil }
  end
  for _, n in ipairs(notes) do
    if n.role == "entitlement" and ev.inventory.entitled == false then
      ev.cis_errors[#ev.cis_errors + 1] = n.text
      log.warn("%s", n.text)
    end
  end
  return ev
end

-- ------------------------------------------------- a Cloud Foundry space --

-- Every key of the given instances with its credentials and its token's
-- scopes (calm.key.probe), read concurrently. Returns {[instance guid] = {key...}}
-- where key = {guid, name, created_at, credentials, probe}.
local function cf_keys(c, instances, cacert)
  local fns = {}
  for n, inst in ipairs(instances) do
    fns[n] = function()
      local keys, msg, code = c:keys(inst.guid)
      if not keys then return nil, msg, code end
      table.sort(keys, function(a, b) return tostring(a.created_at) < tostring(b.created_at) end)
      for _, k in ipairs(keys) do
        local creds, dmsg, dcode = c:key_details(k.guid)
        if not creds and (dcode == "DEADLINE" or dcode == "AUTH") then return nil, dmsg, dcode end
        k.credentials = creds
        if creds then
          k.probe = probe.one(creds, "service key '" .. tostring(k.name) .. "'", { cacert = cacert })
          if k.probe.code == "DEADLINE" then return nil, k.probe.error, "DEADLINE" end
        end
      end
      return keys
    end
  end
  local out = {}
  for n, r in ipairs(together(fns)) do
    local keys, msg, code = unpack_result(r)
    if not keys then return nil, msg, code end
    out[instances[n].guid] = keys
  end
  return out
end

-- The space as an inventory (calm.model.inventory's records, owner "cf"),
-- each key with its probe.
local function cf_inventory(all, keys_by, plan)
  local inv = inventory.from_cf { plan = plan, instances = all, keys = keys_by }
  for _, i in ipairs(inv.instances) do
    for _, b in ipairs(i.bindings) do
      for _, k in ipairs(keys_by[i.id] or {}) do if k.guid == b.id then b.probe = k.probe end end
    end
  end
  return inv
end

-- --runtime cf: the login (from the environment), then the plan visible
-- in --cf-space, its instances and every key of them, probed. Sets ctx.cf,
-- the v3 client calm.ops.runtime_cf works through. Returns the space's
-- inventory | nil, msg, code ("MANUAL" when the space sees no plan).
function M.cf_space(ctx)
  local opts = ctx.opts
  local login, lmsg, lcode = cf.login_from_env(opts)
  if not login then return nil, lmsg, lcode end
  local c, msg, code = cf.connect { api = opts["cf-api"], login = login, cacert = opts.cacert,
    on_action = function(a) ctx.report.actions[#ctx.report.actions + 1] = a end }
  if not c then return nil, msg, code end
  local ok, tmsg, tcode = c.session:token()
  if not ok then return nil, tmsg, tcode end
  ctx.cf = c
  local plan
  plan, msg, code = c:find_plan(opts["cf-space"])
  if plan == nil then return nil, msg, code end
  if not plan then
    return nil, "Cloud Foundry: no SAP Cloud ALM API plan 'standard' is visible: the subaccount is not "
      .. "entitled for it.\n  " .. model_steps.ENTITLEMENT_STEPS, "MANUAL"
  end
  local all
  all, msg, code = c:instances(opts["cf-space"], plan.guid)
  if not all then return nil, msg, code end
  local keys_by
  keys_by, msg, code = cf_keys(c, all, opts.cacert)
  if not keys_by then return nil, msg, code end
  return cf_inventory(all, keys_by, plan)
end

return M
