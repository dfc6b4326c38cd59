-- Pure tests of the provisioning-date decision, the name rules, the step
-- planner and the SM/CF/cis helpers (no server: calm.net.rest's http seam).
local t = ...
local evidence = require "calm.model.evidence"
local parameters = require "calm.model.parameters"
local planner = require "calm.model.plan"
local names = require "calm.model.names"
local inventory = require "calm.model.inventory"
local P = require("calm.policy.load").builtin()
local sm = require "calm.btp.sm"
local cf = require "calm.btp.cf"
local cis = require "calm.btp.cis"
local T = {}

-- ------------------------------------------------------------- names --

function T.instance_name_rules()
  t.ok(names.check_instance_name("calm-api_1"))
  t.ok(names.check_instance_name(string.rep("a", 32)), "32 characters")
  t.find(t.fails("USAGE", names.check_instance_name, string.rep("a", 33)), "at most 32")
  t.find(t.fails("USAGE", names.check_instance_name, "calm.api"), "no '.'")
  t.find(t.fails("USAGE", names.check_instance_name, "calm api"), "'_' instead of spaces")
  t.find(t.fails("USAGE", names.check_instance_name, "calm$api"), "letters, digits")
  t.find(t.fails("USAGE", names.check_instance_name, "calm/api"), "letters, digits")
  t.fails("USAGE", names.check_instance_name, "")
  t.fails("USAGE", names.check_instance_name, "caf\195\169")
end

function T.binding_name_rules()
  t.ok(names.check_binding_name("calm-api-key"))
  t.ok(names.check_binding_name("S4H_100_0"), "sysno needs two digits")
  t.ok(names.check_binding_name("S4H-100-00"), "dashes are not the pattern")
  t.ok(names.check_binding_name("S4HX_100_00"), "SID has three characters")
  t.find(t.fails("USAGE", names.check_binding_name, "S4H_100_00"), "<SID>_<client>_<system number>")
  t.fails("USAGE", names.check_binding_name, "ABC_001_99")
  t.fails("USAGE", names.check_binding_name, "s4h_100_00")
  t.fails("USAGE", names.check_binding_name, "")
  t.fails("USAGE", names.check_binding_name, "a\nb")
end

function T.date_rules()
  t.ok(evidence.check_date("2023-06-12"))
  t.ok(evidence.check_date("2024-02-29"))
  t.fails("USAGE", evidence.check_date, "2023-02-29")
  t.fails("USAGE", evidence.check_date, "2023-6-12")
  t.fails("USAGE", evidence.check_date, "12.06.2023")
  t.fails("USAGE", evidence.check_date, "2023-13-01")
end

function T.regions()
  -- the second value: the generated credentials reached Landscape Management by
  -- themselves (requested on or after 14 June 2023)
  t.eq({ evidence.region("2023-10-16") }, { evidence.AFTER, true })
  t.eq({ evidence.region("2025-01-01") }, { evidence.AFTER, true })
  t.eq({ evidence.region("2023-10-15") }, { evidence.MID, true })
  t.eq({ evidence.region("2023-06-15") }, { evidence.MID, true })
  t.eq({ evidence.region("2023-06-14") }, { evidence.MID, true })
  t.eq({ evidence.region("2023-06-13") }, { evidence.MID, false })
  t.eq({ evidence.region("2023-06-12") }, { evidence.MID, false })
  t.eq({ evidence.region("2023-06-11") }, { evidence.BEFORE, false })
end

-- --------------------------------------------------------- inventory --

local OFF = { id = "off-1", catalog_name = "SAPCloudALMAPIs" }
local PLAN = { id = "plan-1", catalog_name = "standard", service_offering_id = "off-1" }

local function gen_inventory(created)
  return inventory.from_sm {
    offering = OFF, plan = PLAN,
    instances = {
      { id = "gen-1", name = "cloud-alm-api", service_plan_id = "plan-1", platform_id = "service-manager",
        ready = true, created_at = created .. "T10:00:00Z" },
      { id = "other", name = "xsuaa-x", service_plan_id = "plan-other", created_at = "2020-01-01T00:00:00Z" },
    },
    bindings = {
      { id = "b-1", name = "generated-key", service_instance_id = "gen-1", ready = true,
        created_at = created .. "T10:01:00Z",
        credentials = { uaa = { xsappname = "gen-1!b12|calm!b1", ["credential-type"] = "binding-secret",
          clientsecret = "x" } } },
      { id = "b-sys", name = "S4H_100_00", service_instance_id = "gen-1", ready = true,
        created_at = "2020-01-01T00:00:00Z",
        credentials = { uaa = { xsappname = "gen-1!b12|calm!b1" } } },
      { id = "b-x", name = "foreign", service_instance_id = "other", credentials = { secret = "s" } },
    },
  }
end

function T.inventory_classifies()
  local inv = gen_inventory("2024-03-05")
  t.eq(#inv.instances, 1, "only SAPCloudALMAPIs instances")
  local i = inv.instances[1]
  t.eq(i.generated, true)
  t.eq(i.xsappname, "gen-1")
  t.eq(#i.bindings, 2, "foreign bindings dropped")
  t.eq(i.bindings[1].system, true, "sorted by creation, system binding flagged")
  t.eq(inventory.pick_binding(i, "binding-secret", P, {}).id, "b-1", "system bindings are not adopted")
end

-- ---------------------------------------------------------- decision --

function T.decide_given_dates()
  local inv = gen_inventory("2024-03-05")
  t.eq(evidence.decide("2024-01-01", { inventory = inv }, { policy = P }).path, evidence.AFTER)
  t.eq(evidence.decide("2023-08-21", { inventory = inv }, { policy = P }).path, evidence.MID)
  t.eq(evidence.decide("2022-11-14", { inventory = inv }, { policy = P }).path, evidence.BEFORE)
end

function T.decide_june_12_and_14_are_two_events()
  local d13 = evidence.decide("2023-06-13", { inventory = gen_inventory("2023-06-13") }, { policy = P })
  t.eq(d13.path, evidence.MID)
  t.find(table.concat(d13.reasons, "\n"), "uploaded to Landscape Management")
  local empty = inventory.from_sm { offering = OFF, plan = PLAN, instances = {}, bindings = {} }
  t.eq(evidence.decide("2023-06-12", { inventory = empty }, { policy = P }).path, evidence.MID)
  local d15 = evidence.decide("2023-06-15", { inventory = empty }, { policy = P })
  t.eq(d15.path, evidence.MID)
  t.eq(table.concat(d15.reasons, "\n"):find("uploaded to Landscape Management", 1, true), nil)
end

function T.decide_auto_prefers_subscription_then_subaccount_then_instance()
  local inv = gen_inventory("2023-08-21")
  local d = evidence.decide("auto", { inventory = inv, subscription = { created = "2024-03-05" },
    subaccount = { created = "2022-01-01" } }, { policy = P })
  t.eq({ d.path, d.source }, { evidence.AFTER, "subscription" })
  d = evidence.decide("auto", { inventory = inv, subaccount = { created = "2022-01-01" } }, { policy = P })
  t.eq({ d.path, d.source }, { evidence.BEFORE, "subaccount" })
  d = evidence.decide("auto", { inventory = inv }, { policy = P })
  t.eq({ d.path, d.source, d.date }, { evidence.MID, "generated-instance", "2023-08-21" })
end

function T.decide_no_evidence()
  local none = inventory.from_sm { offering = nil, plan = nil }
  local d = evidence.decide("auto", { inventory = none }, { policy = P })
  t.eq({ d.path, d.source }, { evidence.BEFORE, "none" })
  t.find(table.concat(d.reasons, " "), "no evidence")
  local visible = inventory.from_sm { offering = OFF, plan = PLAN, instances = {}, bindings = {} }
  d = evidence.decide("auto", { inventory = visible }, { policy = P })
  t.eq({ d.path, d.source }, { evidence.BEFORE, "none" })
end

-- The generated inventory with the generated key probed: scoped = its token
-- carries both imp-cdm-feature-* scopes.
local function probed_inventory(created, scoped)
  local inv = gen_inventory(created)
  for _, b in ipairs(inv.instances[1].bindings) do
    if not b.system then b.probe = { token = true, deployment = scoped, scopes = {} } end
  end
  return inv
end

function T.the_key_outranks_the_date()
  local inv = probed_inventory("2023-08-21", true)
  local o = { scenario = "deployment", runtime = "sm", credential_type = "binding-secret", policy = P }
  -- a mid-2023 date would create an instance with the authorities; the key that
  -- already carries the scopes is adopted instead, with a warning for the date
  local d = evidence.decide("2023-08-21", { inventory = inv }, o)
  t.eq(d.path, evidence.MID)
  t.eq(d.key and d.key.binding.id, "b-1")
  t.find(d.warnings[1], "it is adopted")
  local s = planner.steps(d, inv, o)
  t.eq({ s.instance.op, s.binding.op, s.binding.id, s.binding.scoped }, { "adopt", "adopt", "b-1", true })
  t.eq(planner.read_only(s), true)
  -- within the names asked for only, and for Deployment only
  o.instance_name = "another"
  t.eq(evidence.decide("2023-08-21", { inventory = inv }, o).key, nil)
  d = evidence.decide("2023-08-21", { inventory = inv }, { scenario = "monitoring", policy = P })
  t.eq({ d.key, d.keys_lack_scopes, #d.warnings }, { nil, nil, 0 })
end

function T.keys_without_scopes_add_the_authorities_after_october_2023()
  local inv = probed_inventory("2024-03-05", false)
  local o = { scenario = "deployment", runtime = "sm", policy = P }
  local d = evidence.decide("auto", { inventory = inv }, o)
  t.eq({ d.path, d.keys_lack_scopes, d.key }, { evidence.AFTER, true, nil })
  t.find(table.concat(d.reasons, "\n"), "the authorities are added")
  local s = planner.steps(d, inv, o)
  t.eq(s.instance.op, "create", "an instance of calmbind's own, with the authorities")
  t.ok(s.instance.parameters["xs-security"].authorities)
  -- another inventory's keys (a Cloud Foundry space) judge a copy: the path stays
  local judged = evidence.with_keys(d, probed_inventory("2024-03-05", true), o)
  t.eq({ judged.path, judged.keys_lack_scopes, judged.key.binding.id }, { evidence.AFTER, nil, "b-1" })
  t.eq({ d.keys_lack_scopes, d.key }, { true, nil }, "the decision itself is unchanged")
end

-- -------------------------------------------------------------- steps --

local function steps(path, scenario, inv, extra)
  local o = { scenario = scenario, runtime = "sm", credential_type = "binding-secret", policy = P }
  for k, v in pairs(extra or {}) do o[k] = v end
  return planner.steps({ path = path, reasons = {} }, inv, o)
end

function T.after_path_adopts_generated_both_scenarios()
  for _, sc in ipairs { "deployment", "monitoring" } do
    local s = steps(evidence.AFTER, sc, gen_inventory("2024-03-05"))
    t.eq(s.instance.op, "adopt", sc)
    t.eq(s.binding.op, "adopt", sc)
    t.eq(s.binding.id, "b-1", sc)
    t.eq(planner.read_only(s), true, sc)
  end
end

function T.mid_monitoring_adopts_generated()
  local s = steps(evidence.MID, "monitoring", gen_inventory("2023-08-21"))
  t.eq({ s.instance.op, s.binding.op, s.binding.id }, { "adopt", "adopt", "b-1" })
end

function T.mid_deployment_creates_with_authorities()
  local s = steps(evidence.MID, "deployment", gen_inventory("2023-08-21"))
  t.eq(s.instance.op, "create")
  t.eq(s.instance.name, "calm-api-deployment")
  -- compared as tables: two encodings of the same table may order keys differently
  t.eq(s.instance.parameters, { ["xs-security"] = {
    xsappname = "calm-api-deployment",
    authorities = { "$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui" },
    ["oauth2-configuration"] = { ["credential-types"] = { "binding-secret" } } } })
  t.eq({ s.binding.op, s.binding.name }, { "create", "calm-api-deployment-key" })
end

function T.mid_deployment_updates_only_what_an_option_names()
  local s = steps(evidence.MID, "deployment", gen_inventory("2023-08-21"), { instance_name = "cloud-alm-api" })
  t.eq(s.instance.op, "refuse")
  t.find(s.usage, "--update-instance cloud-alm-api")
  t.eq(planner.read_only(s), true)
end

function T.mid_deployment_update_keeps_guid_xsappname()
  local s = steps(evidence.MID, "deployment", gen_inventory("2023-08-21"),
    { instance_name = "cloud-alm-api", update_instance = "cloud-alm-api" })
  t.eq(s.instance.op, "update")
  t.find(s.warnings[1], "replaced")
  t.eq(s.instance.parameters["xs-security"].xsappname, "gen-1", "the GUID of a parameterless instance")
  t.eq(s.binding.op, "create")
end

function T.mid_deployment_refuses_a_foreign_binding_name()
  -- the generated key predates the authorities: adopting it would give a key
  -- without the Deployment scopes, and a new binding cannot take its name
  local s = steps(evidence.MID, "deployment", gen_inventory("2023-08-21"),
    { instance_name = "cloud-alm-api", update_instance = "cloud-alm-api", binding_name = "generated-key" })
  t.find(s.usage, "--binding-name 'generated-key'")
  t.find(s.usage, "name a new binding")
  t.eq(planner.read_only(s), true)
end

function T.mid_deployment_converges_on_labels()
  local inv = inventory.from_sm { offering = OFF, plan = PLAN,
    instances = { { id = "i-2", name = "calm-api-deployment", service_plan_id = "plan-1", ready = true,
      created_at = "2024-01-01T00:00:00Z",
      labels = { created_by = { "calmbind" }, calmbind_authorities = { "imp-cdm-feature" } } } },
    bindings = { { id = "b-2", name = "calm-api-deployment-key", service_instance_id = "i-2", ready = true,
      created_at = "2024-01-01T00:01:00Z", credentials = { uaa = { xsappname = "calm-api-deployment!b9|calm!b1" } },
      labels = { created_by = { "calmbind" }, calmbind_authorities = { "imp-cdm-feature" } } } } }
  local s = steps(evidence.MID, "deployment", inv)
  t.eq({ s.instance.op, s.binding.op, s.binding.id }, { "adopt", "adopt", "b-2" })
  t.eq(planner.read_only(s), true)
end

function T.before_path_entitlement()
  local none = inventory.from_sm { offering = nil, plan = nil }
  local s = steps(evidence.BEFORE, "deployment", none)
  t.eq(s.entitlement.op, "manual")
  t.find(s.manual, "Entitlements")
  s = steps(evidence.BEFORE, "deployment", none, { cis = true, subaccount = "sa" })
  t.eq(s.entitlement.op, "assign")
  t.eq(s.instance.op, "create")
  t.ok(s.instance.parameters["xs-security"].authorities, "deployment: authorities")
  s = steps(evidence.BEFORE, "monitoring", none, { cis = true, subaccount = "sa" })
  t.eq(s.instance.name, "calm-api-monitoring")
  t.eq(s.instance.parameters["xs-security"].authorities, nil, "monitoring: no authorities")
end

function T.cf_owned_is_manual_unless_runtime_cf()
  local inv = inventory.from_sm { offering = OFF, plan = PLAN,
    instances = { { id = "cf-1", name = "calm-cf", service_plan_id = "plan-1", platform_id = "cf-platform-x",
      ready = true, created_at = "2022-05-10T00:00:00Z" } }, bindings = {} }
  local s = steps(evidence.BEFORE, "monitoring", inv)
  t.eq(s.instance.op, "manual")
  t.find(s.manual, "--runtime cf")
end

function T.x509_parameters()
  t.eq(parameters.binding_parameters { credential_type = "x509" },
    { ["credential-type"] = "x509", x509 = { ["key-length"] = 2048, validity = 7, ["validity-type"] = "DAYS" } })
  t.eq(parameters.instance_parameters("n", { credential_type = "x509" })["xs-security"]["oauth2-configuration"],
    { ["credential-types"] = { "binding-secret", "x509" } })
  -- one rule for both runtimes: an update's descriptor replaces the old one, so the
  -- instance-secret type an old Cloud Foundry key uses must be sent to stay
  t.eq(parameters.instance_parameters("n", { keep_types = { "instance-secret" } })["xs-security"]["oauth2-configuration"],
    { ["credential-types"] = { "binding-secret", "instance-secret" } })
end

-- ---------------------------------------------------------- helpers --

function T.sm_field_query_escaping()
  t.eq(sm.quote("it's"), "'it''s'")
  t.eq(sm.all(sm.eq("name", "a'b"), sm.eq("service_plan_id", "p")), "name eq 'a''b' and service_plan_id eq 'p'")
  t.raises(function() sm.quote("a\nb") end, "newline")
end

function T.sm_errors_object_or_array()
  t.eq(sm.errors_text { error = "BrokerError", description = "boom" }, "BrokerError: boom")
  t.eq(sm.errors_text { { error = "A", description = "one" }, { description = "two" } }, "A: one; two")
  t.eq(sm.errors_text(nil), nil)
end

function T.sm_location_and_states()
  t.eq({ sm.parse_location("/v1/service_instances/abc/operations/op1") },
    { "service_instances", "abc", "op1", "/v1/service_instances/abc/operations/op1" })
  -- an sm_url with a path: the Location under it is relative to it
  t.eq({ sm.parse_location("/t/t0002/v1/service_instances/abc/operations/op1", "http://sm.localhost:8/t/t0002/") },
    { "service_instances", "abc", "op1", "/v1/service_instances/abc/operations/op1" })
  t.eq({ sm.parse_location("http://sm.localhost:8/t/t0002/v1/service_bindings/b", "http://sm.localhost:8/t/t0002") },
    { "service_bindings", "b", nil, "/v1/service_bindings/b" })
  t.eq(sm.parse_location("/t/t0003/v1/service_instances/abc", "http://sm.localhost:8/t/t0002"), nil)
  t.eq(sm.op_state { state = "in progress" }, "pending")
  t.eq(sm.op_state { state = "PENDING" }, "pending")
  t.eq(sm.op_state { state = "something new" }, "pending")
  t.eq(sm.op_state { state = "Succeeded" }, "succeeded")
  t.eq(sm.op_state { state = "failed" }, "failed")
  t.eq(cf.job_state { state = "POLLING" }, "pending")
  t.eq(cf.job_state { state = "COMPLETE" }, "complete")
  t.eq(cf.job_state { state = "FAILED" }, "failed")
end

function T.cis_dates_in_all_forms()
  t.eq(cis.to_date(1686566400000), "2023-06-12")
  t.eq(cis.to_date("1686566400000"), "2023-06-12")
  t.eq(cis.to_date(1697443200), "2023-10-16", "epoch seconds")
  t.eq(cis.to_date("Jun 12, 2023, 9:15:00 AM"), "2023-06-12")
  t.eq(cis.to_date("Oct 16, 2023, 2:00:00\226\128\175PM"), "2023-10-16")
  t.eq(cis.to_date("2023-08-21T10:00:00Z"), "2023-08-21")
  t.eq(cis.to_date("soon"), nil)
end

function T.cis_assign_body_amount_or_enable()
  t.eq(cis.assign_body("sa", "SERVICE").subaccountServicePlans[1].assignmentInfo[1], { subaccountGUID = "sa", amount = 1 })
  t.eq(cis.assign_body("sa", "ELASTIC_SERVICE").subaccountServicePlans[1].assignmentInfo[1], { subaccountGUID = "sa", enable = true })
  t.eq(cis.assign_body("sa", "QUOTA_BASED_APPLICATION").subaccountServicePlans[1].assignmentInfo[1], { subaccountGUID = "sa", amount = 1 })
  t.eq(cis.assign_body("sa", "APPLICATION").subaccountServicePlans[1].assignmentInfo[1], { subaccountGUID = "sa", enable = true })
  t.eq(cis.assign_body("sa").subaccountServicePlans[1].serviceName, "SAPCloudALMAPIs")
end

-- --------------------------------------------- SM client, scripted http --

local function scripted(steps_)
  local rest = require "calm.net.rest"
  local fake = t.fake_http(steps_)
  local saved = rest.http
  rest.http = fake
  local client = rest.client { base_url = "https://sm.example" }
  local c = sm.new { rest = client, poll = { initial = 0.01, factor = 1, max = 0.01 } }
  return c, fake, function() rest.http = saved end
end

function T.sm_create_202_polls_location()
  local c, fake, restore = scripted {
    { status = 202, headers = { Location = "/v1/service_instances/i-9/operations/op-1" }, json = {} },
    { json = { state = "in progress" } },
    { json = { state = "succeeded", resource_id = "i-9" } },
    { json = { id = "i-9", name = "n", ready = true } },
  }
  local e, created = c:create_instance { name = "n", service_plan_id = "p" }
  restore()
  t.eq({ e and e.id, created }, { "i-9", true })
  t.eq(fake.requests[2].url, "https://sm.example/v1/service_instances/i-9/operations/op-1")
end

function T.sm_create_409_looks_up_by_name()
  local c, fake, restore = scripted {
    { status = 409, json = { error = "Conflict", description = "found conflicting /v1/service_instances" } },
    { json = { num_items = 1, items = { { id = "i-1", name = "n", service_plan_id = "p", ready = true } } } },
  }
  local e, created = c:create_instance { name = "n", service_plan_id = "p" }
  restore()
  t.eq({ e and e.id, created }, { "i-1", false })
  t.find(fake.requests[2].url, "fieldQuery=name%20eq%20%27n%27%20and%20service_plan_id%20eq%20%27p%27")
end

function T.sm_failed_create_deletes_leftover()
  local c, fake, restore = scripted {
    { status = 202, headers = { Location = "/v1/service_instances/i-9/operations/op-1" }, json = {} },
    { json = { state = "failed", errors = { { error = "BrokerError", description = "fake broker failure text" } } } },
    { status = 200, json = {} },
  }
  local msg = t.fails("API", c.create_instance, c, { name = "n", service_plan_id = "p" })
  restore()
  t.find(msg, "fake broker failure text")
  t.find(msg, "leftover")
  t.eq({ fake.requests[3].method, fake.requests[3].url }, { "DELETE", "https://sm.example/v1/service_instances/i-9" })
end

function T.sm_paging_follows_token()
  local c, fake, restore = scripted {
    { json = { token = "T1", items = { { id = "a" } } } },
    { json = { items = { { id = "b" } } } },
  }
  local items = c:list("service_instances", {})
  restore()
  t.eq(#items, 2)
  t.find(fake.requests[2].url, "token=T1")
end

return T
