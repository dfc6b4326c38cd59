-- calm.run.gather: the evidence get and plan decide from, read-only and
-- concurrent (calm.task): the tokens first, then every read in one round,
-- then a token with every candidate key (calm.probe).
--
--   ev | nil, msg, code = gather.gather(ctx)     -- sets ctx.evidence
--   ok | nil, msg, code = gather.probe_inventory(ctx, inventory)
local paths = require "calm.paths"
local M = {}

-- ------------------------------------------------------- gathering --

-- Runs fns concurrently; returns the packed results.
local function together(fns)
  local task = require "calm.task"
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
  local probe = require "calm.probe"
  local list, cands = {}, {}
  for _, i in ipairs(inv.instances) do
    for _, b in ipairs(i.bindings) do
      if not b.system and b.ready and b.state ~= "failed" and b.state ~= "pending"
          and type(b.raw.credentials) == "table" then
        list[#list + 1] = b
        cands[#cands + 1] = { credentials = b.raw.credentials,
          label = "binding '" .. tostring(b.name) .. "' (instance '" .. tostring(i.name) .. "')" }
      end
    end
  end
  local res, msg, code = probe.keys(cands, { cacert = ctx.opts.cacert })
  if not res then return nil, msg, code end
  for n, b in ipairs(list) do b.probe = res[n] end
  return true
end

-- Round 1: tokens (SM and cis together). Round 2: every read together:
-- offering, plans, instances, bindings, subaccount date, subscription date.
function M.gather(ctx)
  local log = require "calm.log"
  local sm = require "calm.sm"
  local cis = require "calm.cis"
  local opts = ctx.opts
  local ev = { cis_errors = {} }
  ctx.evidence = ev

  -- round 1
  local r1 = {}
  if ctx.sm then r1[#r1 + 1] = function() return ctx.sm.session:token() end end
  if ctx.cis then r1[#r1 + 1] = function() return ctx.cis.session:token() end end
  local res = together(r1)
  local i = 1
  if ctx.sm then
    local tok, msg, code = unpack_result(res[i]); i = i + 1
    if not tok and code == "AUTH" then
      return nil, tostring(msg) .. "; create a new binding of the Service Manager instance (plan "
        .. "subaccount-admin) in the BTP cockpit, download it and pass it with --sm-key", code
    end
    if not tok then return nil, msg, code end
  end
  if ctx.cis then
    local tok, msg, code = unpack_result(res[i])
    if not tok then
      if code == "DEADLINE" then return nil, msg, code end
      ev.cis_errors[#ev.cis_errors + 1] = "no cis token: " .. tostring(msg)
      log.warn("--cis-key: %s", tostring(msg))
      ctx.cis_failed = { msg, code }
    end
  end

  -- round 2
  local want_dates = opts.provisioned == "auto" and ctx.cis and not ctx.cis_failed
  local jobs, names = {}, {}
  local function add(name, fn) jobs[#jobs + 1] = fn; names[#names + 1] = name end
  local c = ctx.sm
  if c then
    add("offerings", function() return c:list("service_offerings", { fieldQuery = sm.eq("catalog_name", c.offering_name) }) end)
    add("plans", function() return c:list("service_plans", { fieldQuery = sm.eq("catalog_name", c.plan_name) }) end)
    add("instances", function() return c:list("service_instances", { attach_last_operations = true }) end)
    add("bindings", function() return c:list("service_bindings", { attach_last_operations = true }) end)
  end
  if want_dates and opts.subaccount then
    add("subaccount", function() return ctx.cis:subaccount(opts.subaccount) end)
  end
  if want_dates then
    add("subscription", function() return ctx.cis:calm_subscription() end)
  end
  local out = {}
  res = together(jobs)
  for k, name in ipairs(names) do
    local v, msg, code = unpack_result(res[k])
    if v == nil then
      if name == "subaccount" or name == "subscription" then
        if code == "DEADLINE" then return nil, msg, code end
        ev.cis_errors[#ev.cis_errors + 1] = tostring(msg)
        log.warn("--cis-key: %s", tostring(msg))
      else
        return nil, msg, code
      end
    else
      out[name] = v
    end
  end
  if want_dates and not opts.subaccount then
    ev.cis_errors[#ev.cis_errors + 1] = "no --subaccount GUID: subaccount creation date not read"
  end
  ev.subaccount = out.subaccount
  ev.subscription = out.subscription

  if c then
    -- join: offering (display-name fallback costs one more round only when
    -- the catalog name finds nothing), plan, then our instances and bindings
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
    ev.inventory = paths.inventory { offering = offering, plan = plan, instances = out.instances, bindings = out.bindings }
    local pok, pmsg, pcode = M.probe_inventory(ctx, ev.inventory)
    if not pok then return nil, pmsg, pcode end
  else
    ev.inventory = { instances = {}, by_id = {}, entitled = nil }
  end
  return ev
end

return M
