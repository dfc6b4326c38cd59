-- Pure tests of calm.model.drift (what calmbind created against the policy)
-- and of calm.btp.sm.label_patches (label changes as Service Manager takes them).
local t = ...
local drift = require "calm.model.drift"
local evidence = require "calm.model.evidence"
local inventory = require "calm.model.inventory"
local planner = require "calm.model.plan"
local policy = require "calm.policy.load"
local sm = require "calm.btp.sm"
local T = {}

local CDM = { "$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui" }
local EXTRA = "$XSMASTERAPPNAME.calm-api.analytics.read"

-- A policy from hooks, as calm.policy.load builds one from a policy.lua.
local function with(hooks)
  local p = setmetatable({ hooks = {}, origin = {}, file = "test/policy.lua" }, getmetatable(policy.builtin()))
  for k, f in pairs(policy.builtin().hooks) do p.hooks[k], p.origin[k] = f, "built in" end
  for k, f in pairs(hooks) do p.hooks[k], p.origin[k] = f, "test/policy.lua" end
  return p
end

-- calmbind's instance and its key after a stock get (the key probed: both
-- Deployment scopes); labels as the instance's label had them (legacy: the
-- one marker value).
local function stock(auth_values, extra_scopes)
  local scopes = { "calm!b1.imp-cdm-feature-display-ui", "calm!b1.imp-cdm-feature-manage-ui" }
  for _, s in ipairs(extra_scopes or {}) do scopes[#scopes + 1] = s end
  local inv = inventory.from_sm { offering = { id = "off-1" }, plan = { id = "plan-1" },
    instances = { { id = "i-1", name = "calm-api-deployment", service_plan_id = "plan-1", ready = true,
      created_at = "2024-01-01T00:00:00Z",
      labels = { created_by = { "calmbind" }, calmbind_authorities = auth_values } } },
    bindings = { { id = "b-1", name = "calm-api-deployment-key", service_instance_id = "i-1", ready = true,
      created_at = "2024-01-01T00:01:00Z", credentials = { uaa = { xsappname = "calm-api-deployment!b9|calm!b1" } },
      labels = { created_by = { "calmbind" }, calmbind_authorities = auth_values } } } }
  inv.instances[1].bindings[1].probe = { token = true, deployment = true, scopes = scopes }
  return inv
end

local function plan(inv, p, extra)
  local o = { scenario = "deployment", runtime = "sm", credential_type = "binding-secret", policy = p }
  for k, v in pairs(extra or {}) do o[k] = v end
  return planner.steps(evidence.decide("2023-08-01", { inventory = inv }, o), inv, o)
end

function T.legacy_label_is_the_builtin_two()
  t.eq(inventory.authorities_of(stock({ "imp-cdm-feature" }).instances[1]), CDM)
  local s = plan(stock({ "imp-cdm-feature" }), policy.builtin())
  t.eq(s.drift, {})
  t.eq({ s.instance.op, s.binding.op }, { "adopt", "adopt" })
  t.eq(planner.read_only(s), true)
end

function T.added_authority_updates_in_place_and_makes_a_new_key()
  local p = with { authorities = function() return { CDM[1], CDM[2], EXTRA } end }
  local s = plan(stock(CDM), p)
  t.eq(s.instance.op, "update")
  t.eq(s.instance.parameters["xs-security"].authorities, { CDM[1], CDM[2], EXTRA })
  t.eq(s.instance.parameters["xs-security"].xsappname, "calm-api-deployment")
  t.eq(s.instance.label_changes, { { key = "calmbind_authorities", old = CDM, new = { CDM[1], CDM[2], EXTRA } } })
  t.eq({ s.binding.op, s.binding.name }, { "create", "calm-api-deployment-deployment-key" })
  t.eq(s.binding.labels.calmbind_authorities, { CDM[1], CDM[2], EXTRA })
  t.eq(s.verify_authorities, { CDM[1], CDM[2], EXTRA })
  t.eq(s.drift[1].changes[1], { field = "authorities", old = CDM, new = { CDM[1], CDM[2], EXTRA } })
  t.eq(s.drift[2].changes[1], { field = "token scopes", missing = { EXTRA } })
  t.eq(#s.others, 1, "the old key is one the new one replaces")
  t.eq(planner.read_only(s), false)
end

function T.label_recorded_but_key_older_makes_only_a_new_key()
  local p = with { authorities = function() return { CDM[1], CDM[2], EXTRA } end }
  local s = plan(stock({ CDM[1], CDM[2], EXTRA }), p)
  t.eq(s.instance.op, "adopt", "the instance already has them")
  t.eq(s.binding.op, "create")
end

function T.the_key_that_carries_them_all_is_adopted()
  local p = with { authorities = function() return { CDM[1], CDM[2], EXTRA } end }
  local inv = stock({ CDM[1], CDM[2], EXTRA })
  local inst = inv.instances[1]
  inst.bindings[2] = { id = "b-2", name = "calm-api-deployment-deployment-key", ready = true, ours = true,
    created_at = "2024-02-01T00:00:00Z", labels = inst.bindings[1].labels, credential_type = "binding-secret",
    probe = { token = true, deployment = true, scopes = { "calm!b1.imp-cdm-feature-display-ui",
      "calm!b1.imp-cdm-feature-manage-ui", "calm!b1.calm-api.analytics.read" } } }
  local s = plan(inv, p)
  t.eq({ s.instance.op, s.binding.op, s.binding.id }, { "adopt", "adopt", "b-2" })
  t.eq(s.drift, {})
end

function T.labels_of_instance_and_binding()
  local p = with { labels = function() return { owner = "basis", created_by = "someone" } end }
  local inv = stock(CDM)
  inv.instances[1].labels.owner = { "old" }
  local s = plan(inv, p)
  t.eq(s.instance.op, "update")
  t.eq(s.instance.parameters, nil, "labels only: no parameters")
  t.eq(s.instance.label_changes, { { key = "owner", old = { "old" }, new = "basis" } })
  t.eq({ s.binding.op, s.binding.label_changes }, { "adopt", { { key = "owner", new = "basis" } } })
  t.eq(planner.read_only(s), false)
end

function T.not_ours_is_left()
  local p = with { labels = function() return { owner = "basis" } end }
  local inv = stock(CDM)
  inv.instances[1].labels.created_by, inv.instances[1].ours = nil, false
  inv.instances[1].bindings[1].ours = false
  local s = plan(inv, p)
  t.eq({ s.instance.op, s.binding.op, s.binding.label_changes }, { "adopt", "adopt", nil })
  t.eq({ s.drift[1].left, s.drift[2].left }, { true, true })
  t.eq(planner.read_only(s), true)
end

function T.binding_name_option_cannot_be_replaced()
  local p = with { authorities = function() return { CDM[1], CDM[2], EXTRA } end }
  local s = plan(stock(CDM), p, { binding_name = "calm-api-deployment-key" })
  t.find(s.usage, "--binding-name")
end

function T.rename_only_the_scenarios_own_instance()
  local p = with { instance_name = function(c) return "acme-" .. c.scenario end }
  local s = plan(stock(CDM), p)
  t.eq({ s.instance.op, s.instance.rename }, { "update", "acme-deployment" })
  t.eq(s.drift[1].changes[1], { field = "name", old = "calm-api-deployment", new = "acme-deployment" })
  s = plan(stock(CDM), p, { instance_name = "calm-api-deployment" })
  t.eq({ s.instance.op, s.instance.rename }, { "adopt", nil }, "--instance-name names it")
  s = plan(stock(CDM), p, { scenario = "monitoring" })
  t.eq(s.instance.rename, nil, "the Deployment instance is not renamed for Monitoring")
  local inv = stock(CDM)
  inv.instances[2] = { id = "i-2", name = "acme-deployment", bindings = {}, labels = {}, ready = true }
  s = plan(inv, p)
  t.eq(s.instance.rename, nil, "a name another instance has")
  t.find(s.notes[#s.notes], "an instance of that name exists")
  s = plan(stock(CDM), with { instance_name = function() return "acme.x" end })
  t.find(s.usage, "no '.' allowed")
end

function T.label_changes_and_patches()
  t.eq(drift.label_changes({ a = { "1" }, b = { "x" } }, { a = "1", b = "y", c = "z" }),
    { { key = "b", old = { "x" }, new = "y" }, { key = "c", new = "z" } })
  t.eq(sm.label_patches { { key = "b", old = { "x" }, new = "y" }, { key = "c", new = "z" },
    { key = "d", old = { "q" } } },
    { { { op = "remove", key = "b" }, { op = "add", key = "c", values = { "z" } }, { op = "remove", key = "d" } },
      { { op = "add", key = "b", values = { "y" } } } })
  t.eq(sm.label_patches {}, {})
end

return T
