-- calm.runner: runs `get` and `plan`: options, evidence gathering (the
-- requests that do not depend on each other go out together), carrying out
-- the steps calm.paths planned, output and the run report.
--
--   runner.command("get" | "plan")  -- the function a command file returns
--   runner.run(opts, mode [, sink]) -- exit status | nil, message, code;
--                                   -- sink.report = the run report (fleet)
--
-- Requests that do not depend on each other go out together (calm.task):
-- the tokens first, then every read in one round.
local paths = require "calm.paths"
local M = {}

local function getenv(name)
  local ok, v = pcall(function() return os.getenv(name) end)
  if ok and v ~= "" then return v end
  return nil
end

function M.spec(command)
  local key = require "calm.key"
  local get = command == "get"
  local spec = {
    command = command,
    summary = get
      and "Decide the provisioning-date path, find or create the SAP Cloud ALM API instance and binding, export the key."
      or "Same decision as get, read-only: print what get would find, create, update or leave alone, and why.",
    options = {
      ["sm-key"] = { arg = "FILE", env = "CALMBIND_SM_KEY",
        help = "Service Manager binding (plan subaccount-admin)" },
      ["cis-key"] = { arg = "FILE", env = "CALMBIND_CIS_KEY",
        help = "Cloud Management service binding: dates for auto detection, entitlement assignment" },
      subaccount = { arg = "GUID", help = "the SAP Cloud ALM subaccount (with --cis-key)" },
      provisioned = { arg = "DATE", default = "auto", help = "YYYY-MM-DD, or auto: detect from evidence" },
      scenario = { arg = "S", choices = { "deployment", "monitoring" }, default = "deployment",
        help = "deployment needs the imp-cdm-feature-* authorities" },
      ["instance-name"] = { arg = "N", help = "instance to create or adopt (to create: <= 32 of letters, digits, -, _)" },
      ["update-instance"] = { arg = "N", help = "allow adding the authorities to this instance although calmbind "
        .. "did not create it (replaces its xs-security authorities)" },
      ["binding-name"] = { arg = "N", help = "binding to create or adopt (not <SID>_<client>_<sysno>)" },
      runtime = { arg = "R", choices = { "sm", "cf" }, default = "sm",
        help = "sm (\"Other\" environment) or cf (legacy Cloud Foundry space)" },
      ["cf-api"] = { arg = "URL", help = "Cloud Foundry API endpoint (with --runtime cf)" },
      ["cf-space"] = { arg = "GUID", help = "Cloud Foundry space GUID (with --runtime cf)" },
      ["credential-type"] = { arg = "T", choices = { "binding-secret", "x509" }, default = "binding-secret",
        help = "kind of key to create" },
      ["x509-validity"] = { arg = "N", help = "validity of a new x509 key: days, or Nd, Nm, Ny (default 7d)" },
      report = { arg = "FILE", help = "write a JSON run report there (no secrets)" },
    },
  }
  if get then
    spec.options.out = { arg = "FILE", help = "write the key there (mode 0600, atomic) instead of stdout" }
    spec.options.format = { arg = "F", choices = key.FORMATS or { "json", "alm-setup", "env", "vcap" },
      default = "json", help = "json (bare key), alm-setup, env, vcap" }
    spec.options["no-verify"] = { flag = true,
      help = "write the key without checking it live first (token, scopes, zone)" }
    spec.options.verify = { flag = true, help = "the default: verify the key before writing it" }
    spec.options["show-secrets"] = { flag = true, allow_secret_name = true,
      help = "allow printing the key to a terminal" }
  end
  if not get then
    spec.options.json = { flag = true, help = "print the run report (JSON, no secrets) instead of text" }
    spec.options["detailed-exitcode"] = { flag = true,
      help = "exit 7 when get would change something, 0 when it would only read" }
  end
  return spec
end

-- Checks every option before any request is sent. mode "get" also checks
-- where the key goes (--out's directory, a terminal without --show-secrets).
function M.validate(opts, mode)
  -- the admin's policy.lua is read now: a mistake in it is bad input, found
  -- before any request
  local pok, perr = pcall(require, "calm.policy")
  if not pok then return nil, "policy: " .. tostring(perr), "USAGE" end
  if opts.provisioned ~= "auto" then
    local ok, msg, code = paths.check_date(opts.provisioned)
    if not ok then return nil, msg, code end
  end
  local upd = opts["update-instance"]
  if upd then
    local ok, msg, code = paths.check_instance_ref(upd, "--update-instance")
    if not ok then return nil, msg, code end
    if opts["instance-name"] and opts["instance-name"] ~= upd then
      return nil, "--update-instance " .. upd .. " and --instance-name " .. opts["instance-name"]
        .. " name different instances; --update-instance alone is enough", "USAGE"
    end
    opts["instance-name"] = upd
  end
  if opts["instance-name"] then
    local ok, msg, code = paths.check_instance_ref(opts["instance-name"])
    if not ok then return nil, msg, code end
  end
  if opts["x509-validity"] then
    if opts["credential-type"] ~= "x509" then
      return nil, "--x509-validity needs --credential-type x509", "USAGE"
    end
    local v, msg, code = paths.parse_validity(opts["x509-validity"])
    if not v then return nil, msg, code end
    opts.x509_validity = v
  end
  if opts.verify and opts["no-verify"] then
    return nil, "--verify and --no-verify contradict each other", "USAGE"
  end
  if opts["binding-name"] then
    local ok, msg, code = paths.check_binding_name(opts["binding-name"])
    if not ok then return nil, msg, code end
  end
  if opts.runtime == "cf" then
    if not opts["cf-api"] then return nil, "--runtime cf needs --cf-api URL", "USAGE" end
    if not opts["cf-space"] then return nil, "--runtime cf needs --cf-space GUID", "USAGE" end
    if not getenv("CF_USERNAME") or not getenv("CF_PASSWORD") then
      return nil, "--runtime cf needs CF_USERNAME and CF_PASSWORD in the environment", "USAGE"
    end
    if opts["credential-type"] == "x509" then
      return nil, "--credential-type x509 is not available with --runtime cf (CF keys are instance secrets)", "USAGE"
    end
  else
    if opts["cf-api"] or opts["cf-space"] then
      return nil, "--cf-api and --cf-space need --runtime cf", "USAGE"
    end
    if not opts["sm-key"] then
      return nil, "missing --sm-key FILE or CALMBIND_SM_KEY (the Service Manager binding, plan subaccount-admin)", "USAGE"
    end
  end
  local input = require "calm.input"
  if opts.subaccount and not input.is_guid(opts.subaccount) then
    return nil, "--subaccount must be a GUID (8-4-4-4-12 hexadecimal digits, as the cockpit shows "
      .. "the subaccount ID)", "USAGE"
  end
  -- what a request needs or leaves behind is checked before the first one
  if opts.cacert then
    local ok, msg, code = input.check_cacert(opts.cacert)
    if not ok then return nil, msg, code end
  end
  local inputs = { { "--sm-key", opts["sm-key"] }, { "--cis-key", opts["cis-key"] },
    { "--cacert", opts.cacert } }
  if opts.report then
    local ok, msg, code = input.check_output("--report", opts.report)
    if ok then ok, msg, code = input.check_not_input("--report", opts.report, inputs) end
    if not ok then return nil, msg, code end
  end
  if mode == "get" then
    -- where the key goes is checked now, not after the instance and binding exist
    local fs = require "calm.fs"
    local out = opts.out
    if out and out ~= "-" then
      local ok, msg, code = input.check_output("--out", out)
      inputs[#inputs + 1] = { "--report", opts.report }
      if ok then ok, msg, code = input.check_not_input("--out", out, inputs) end
      if not ok then return nil, msg, code end
    elseif not opts["show-secrets"] and fs.isatty("stdout") then
      return nil, "refusing to print the key's secret to a terminal: use --out FILE, "
        .. "pipe the output, or add --show-secrets", "USAGE"
    end
  end
  return true
end

-- Reads a key file (calm.input: not JSON, or a key of the wrong kind, is
-- INPUT); a binding envelope {credentials: {...}} is unwrapped.
local function load_json_key(path, what)
  local want = what == "--sm-key" and "sm" or "cis"
  return require("calm.input").load_key(path, want, what)
end

-- ---------------------------------------------------------- report --

local function new_report(command, opts)
  return {
    tool = "calmbind", command = command, report_version = 1,
    options = {
      scenario = opts.scenario, provisioned = opts.provisioned, runtime = opts.runtime,
      instance_name = opts["instance-name"], binding_name = opts["binding-name"],
      credential_type = opts["credential-type"], format = opts.format,
      cis = opts["cis-key"] and true or false, subaccount = opts.subaccount,
      cf_api = opts["cf-api"], cf_space = opts["cf-space"], out = opts.out,
    },
    evidence = {}, decision = nil, steps = nil, actions = {}, checks = {}, result = nil,
  }
end

-- Empty lists must stay JSON arrays in the report.
local function arr(t)
  local json = require "calm.json"
  local c = {}
  for i, v in ipairs(t or {}) do c[i] = v end
  return json.array(c)
end

local function report_text(report)
  local json = require "calm.json"
  report.evidence, report.actions, report.checks = arr(report.evidence), arr(report.actions), arr(report.checks)
  for _, c in ipairs(report.checks) do
    c.problems, c.warnings = arr(c.problems), arr(c.warnings)
  end
  if report.decision then
    report.decision.reasons = arr(report.decision.reasons)
    report.decision.warnings = arr(report.decision.warnings)
  end
  if report.steps and report.steps.notes then report.steps.notes = arr(report.steps.notes) end
  local ok, text = pcall(json.pretty, report, { "tool", "command", "result", "decision", "evidence",
    "steps", "actions", "checks" })
  if not ok then text = json.encode(report) end
  return text .. "\n"
end

local function write_report(path, report)
  local fs = require "calm.fs"
  local w, msg = fs.write_private(path, report_text(report))
  if not w then
    local log = require "calm.log"
    log.warn("cannot write the report %s: %s", path, tostring(msg))
  end
end

-- Keeps a step for the report without its bulky raw parts.
local function step_view(st)
  if not st then return nil end
  local v = {}
  for k, x in pairs(st) do
    if k ~= "raw" then v[k] = x end
  end
  return v
end

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

-- ---------------------------------------------------------- output --

local function show_decision(ctx, say)
  local d = ctx.decision
  say(string.format("path: %s (%s)", d.path, paths.PATH_TEXT[d.path]))
  for _, r in ipairs(d.reasons) do say("  because " .. r) end
end

local function show_evidence(ctx, say)
  local lines = paths.evidence_lines(ctx.evidence)
  if #lines == 0 then return end
  say("evidence:")
  for _, l in ipairs(lines) do say("  " .. l.what) end
end

local function describe_steps(ctx, say, verb)
  local json = require "calm.json"
  local s = ctx.steps
  local e = s.entitlement
  if e.op == "ok" then say("entitlement: ok (" .. e.why .. ")")
  elseif e.op == "assign" then say(verb .. " assign the entitlement SAP Cloud ALM API / standard: " .. e.why)
  else say("entitlement: manual step needed: " .. e.why) end
  local inst = s.instance
  if inst then
    local target = inst.id and (" '" .. tostring(inst.name) .. "' (" .. inst.id .. ")") or (" '" .. tostring(inst.name) .. "'")
    if inst.op == "adopt" then say("instance: find" .. target .. ", leave alone: " .. inst.why)
    elseif inst.op == "create" then say("instance: " .. verb .. " create" .. target .. ": " .. inst.why)
    elseif inst.op == "update" then say("instance: " .. verb .. " update" .. target .. ": " .. inst.why)
    elseif inst.op == "recreate" then say("instance: " .. verb .. " delete and re-create" .. target .. ": " .. inst.why)
    elseif inst.op == "refuse" then say("instance:" .. target .. ": leave alone: " .. tostring(inst.why))
    else say("instance:" .. target .. ": manual step needed: " .. tostring(inst.why)) end
    if inst.parameters then say("  parameters: " .. json.encode(inst.parameters)) end
  end
  local b = s.binding
  if b then
    local target = b.id and (" '" .. tostring(b.name) .. "' (" .. b.id .. ")") or (" '" .. tostring(b.name) .. "'")
    if b.op == "adopt" then say("binding: find" .. target .. ", fetch its key: " .. b.why)
    elseif b.op == "recreate" then say("binding: " .. verb .. " delete and re-create" .. target .. ": " .. b.why)
    else say("binding: " .. verb .. " create" .. target .. " and fetch its key: " .. b.why) end
    if b.parameters then say("  parameters: " .. json.encode(b.parameters)) end
  end
  for _, n in ipairs(s.notes or {}) do say("note: " .. n) end
  if s.manual then say("manual step: " .. s.manual) end
end

-- ------------------------------------------------------- execution --


-- Waits until the offering and plan are visible after an entitlement
-- assignment (Service Manager picks it up with a delay).
local function wait_for_plan(ctx)
  local sm = require "calm.sm"
  local c = ctx.sm
  local delay = 1
  for _ = 1, 60 do
    local o, p, code = c:offering_and_plan()
    if o == nil then return nil, p, code end
    if o and p then return o, p end
    local ok, msg, wcode = sm.wait(delay, "the SAP Cloud ALM API offering to appear in Service Manager after the entitlement")
    if not ok then return nil, msg, wcode end
    delay = math.min(delay * 1.5, 10)
  end
  return nil, "the entitlement was assigned but the SAPCloudALMAPIs offering does not appear in Service Manager", "API"
end

local function action(ctx, a)
  ctx.report.actions[#ctx.report.actions + 1] = a
end

-- The calm.probe result of an inventory binding, if it was probed.
local function probed_binding(inv, instance_id, binding_id)
  for _, x in ipairs(inv.by_id[instance_id] and inv.by_id[instance_id].bindings or {}) do
    if x.id == binding_id then return x.probe end
  end
  return nil
end

-- One binding create, with its credentials.
-- What calm.policy functions are told about this run.
local function policy_context(ctx)
  local o = ctx.opts
  return { scenario = o.scenario, runtime = o.runtime, credential_type = o["credential-type"] }
end

local create_binding

local function bind_once(ctx, b, entity, parameters)
  local c = ctx.sm
  -- a binding made once the instance had the authorities carries the
  -- Deployment scopes; the label lets a rerun tell it from older keys
  local labels = paths.sm_labels(b.with_authorities, policy_context(ctx))
  local e, msg, code = c:create_binding { name = b.name, service_instance_id = entity.id,
    parameters = parameters, labels = labels }
  if not e then return nil, msg, code end
  ctx.result.created_binding = true
  if type(e.credentials) ~= "table" then return c:get("service_bindings", e.id) end
  return e
end

local function credential_type_of(binding)
  local uaa = type(binding.credentials) == "table" and binding.credentials.uaa
  return type(uaa) == "table" and uaa["credential-type"] or nil
end

-- Creates the binding. An x509 key is asked for in the plain shape SAP
-- documents first; a broker that ignores it (the key comes back of another
-- type) gets the {"xsuaa": {...}} shape, after the wrong key -- calmbind's
-- own, made a moment ago -- is deleted. Returns the binding entity.
create_binding = function(ctx, b, entity)
  local log = require "calm.log"
  local want = ctx.opts["credential-type"]
  log.info("creating binding '%s'", b.name)
  local binding, msg, code = bind_once(ctx, b, entity, b.parameters)
  if not binding or want ~= "x509" or credential_type_of(binding) == "x509" then return binding, msg, code end
  local got = tostring(credential_type_of(binding))
  log.warn("binding '%s' came back as a %s key, not x509: the broker ignored the plain x509 parameters; "
    .. "deleting it and asking again with {\"xsuaa\": {...}}", b.name, got)
  local ok, dmsg, dcode = ctx.sm:delete("service_bindings", binding.id, "deleting binding '" .. b.name .. "'")
  if not ok then return nil, dmsg, dcode end
  binding, msg, code = bind_once(ctx, b, entity, paths.binding_parameters { credential_type = "x509",
    validity = ctx.opts.x509_validity, wrapped = true })
  if binding and credential_type_of(binding) ~= "x509" then
    return nil, string.format("binding '%s' came back as a %s key in both documented parameter shapes, not x509: "
      .. "the instance does not issue x509 keys (its oauth2-configuration credential-types must allow x509)",
      b.name, tostring(credential_type_of(binding))), "API"
  end
  return binding, msg, code
end

-- Runs the steps through Service Manager; returns the binding entity
-- (with credentials) | nil, msg, code.
local function execute_sm(ctx)
  local log = require "calm.log"
  local c = ctx.sm
  local s = ctx.steps
  local inv = ctx.evidence.inventory
  local plan = inv.plan

  if s.entitlement.op == "assign" then
    log.info("assigning the entitlement SAP Cloud ALM API / standard to subaccount %s", ctx.opts.subaccount)
    local ok, msg, code = ctx.cis:assign_entitlement(ctx.opts.subaccount)
    if not ok then return nil, msg, code end
    local o, p, pcode = wait_for_plan(ctx)
    if not o then return nil, p, pcode end
    plan = p
  end

  local inst = s.instance
  local entity
  if s.wait_for then
    -- a create (or update) an earlier run left running: wait for it, then go on
    log.info("instance '%s' has an operation running; waiting for it", s.wait_for.name)
    local e, msg, code = c:wait_idle("service_instances", s.wait_for.id,
      "waiting for the running operation of instance '" .. s.wait_for.name .. "'")
    if not e then return nil, msg, code end
    if e.ready == false then
      return nil, string.format("instance '%s' (%s): its create failed while calmbind waited; rerun to clean it up",
        s.wait_for.name, s.wait_for.id), "API"
    end
    inv.by_id[s.wait_for.id].raw = e
  end
  if inst.op == "adopt" then
    entity = inv.by_id[inst.id].raw
    action(ctx, { action = "adopt", resource = "instance", id = inst.id, name = inst.name })
  elseif inst.op == "create" or inst.op == "recreate" then
    if inst.op == "recreate" then
      local ok, msg, code = c:delete("service_instances", inst.id, "deleting the failed instance '" .. inst.name .. "'")
      if not ok then return nil, msg, code end
    end
    local auth = inst.parameters["xs-security"].authorities ~= nil
    log.info("creating instance '%s'", inst.name)
    local e, msg, code = c:create_instance { name = inst.name, service_plan_id = plan.id,
      parameters = inst.parameters, labels = paths.sm_labels(auth, policy_context(ctx)) }
    if not e then return nil, msg, code end
    entity = e
  elseif inst.op == "update" then
    log.info("updating instance '%s' (%s): adding the imp-cdm-feature-* authorities", inst.name, inst.id)
    local e, msg, code = c:update_instance(inst.id, { parameters = inst.parameters,
      labels = { { op = "add", key = paths.AUTH_LABEL, values = { paths.AUTH_VALUE } } } },
      "updating instance '" .. inst.name .. "'")
    if not e then return nil, msg, code end
    entity = inv.by_id[inst.id].raw
  end
  ctx.result.instance_id = entity.id
  ctx.result.instance_name = entity.name or inst.name

  local b = s.binding
  local binding
  if b.op == "adopt" then
    local raw
    if b.wait then
      log.info("binding '%s' is still being created; waiting for it", b.name)
      local ok, msg, code = c:wait_idle("service_bindings", b.id, "waiting for binding '" .. b.name .. "'")
      if not ok then return nil, msg, code end
    else
      for _, x in ipairs(inv.by_id[inst.id] and inv.by_id[inst.id].bindings or {}) do
        if x.id == b.id then raw = x.raw end
      end
    end
    if not raw or type(raw.credentials) ~= "table" then
      local got, msg, code = c:get("service_bindings", b.id)
      if not got then return nil, msg, code end
      raw = got
    end
    binding = raw
    ctx.result.probe = probed_binding(inv, inst.id, b.id)
    action(ctx, { action = "adopt", resource = "binding", id = b.id, name = b.name })
  else
    if b.op == "recreate" then
      local ok, msg, code = c:delete("service_bindings", b.id, "deleting the failed binding '" .. b.name .. "'")
      if not ok then return nil, msg, code end
    end
    local msg, code
    binding, msg, code = create_binding(ctx, b, entity)
    if not binding then return nil, msg, code end
  end
  if type(binding.credentials) ~= "table" then
    return nil, "binding '" .. tostring(binding.name) .. "' (" .. tostring(binding.id) .. ") has no credentials", "API"
  end
  ctx.result.binding_id = binding.id
  ctx.result.binding_name = binding.name or b.name
  return binding.credentials
end

-- ------------------------------------------------------------- run --

local function run_inner(ctx, mode)
  local log = require "calm.log"
  local json = require "calm.json"
  local opts = ctx.opts
  local lines = {}
  local say
  if mode == "plan" then
    say = function(s) lines[#lines + 1] = s end
  else
    -- get shows the path it took; the evidence and reasons are for plan and -v
    say = function(s) if s:match("^path: ") then log.info("%s", s) else log.debug("%s", s) end end
  end

  -- clients (key files are read before any request)
  local sm = require "calm.sm"
  local cis = require "calm.cis"
  local on_action = function(a) action(ctx, a) end
  if opts["sm-key"] then
    local t, msg, code = load_json_key(opts["sm-key"], "--sm-key")
    if not t then return nil, msg, code end
    local c
    c, msg, code = sm.from_key(t, { cacert = opts.cacert, on_action = on_action,
      what = "the Service Manager key (" .. opts["sm-key"] .. ")" })
    if not c then return nil, msg, code end
    ctx.sm = c
  end
  if opts["cis-key"] then
    local t, msg, code = load_json_key(opts["cis-key"], "--cis-key")
    if not t then return nil, msg, code end
    local c
    c, msg, code = cis.from_key(t, { cacert = opts.cacert, on_action = on_action,
      what = "the cis key (" .. opts["cis-key"] .. ")" })
    if not c then return nil, msg, code end
    ctx.cis = c
  end

  local ev, msg, code = M.gather(ctx)
  if not ev then return nil, msg, code end
  ctx.report.evidence = paths.evidence_lines(ev)
  ctx.decision = paths.decide(opts.provisioned, ev, { scenario = opts.scenario })
  ctx.report.decision = { path = ctx.decision.path, date = ctx.decision.date, source = ctx.decision.source,
    warnings = ctx.decision.warnings, reasons = ctx.decision.reasons }
  say(string.format("calmbind %s: scenario %s, runtime %s", mode, opts.scenario, opts.runtime))
  show_evidence(ctx, say)
  show_decision(ctx, say)
  for _, w in ipairs(ctx.decision.warnings or {}) do log.warn("%s", w) end

  if opts.runtime == "cf" then
    local creds, cmsg, ccode = require("calm.run_cf").run(ctx, mode, say, action)
    if mode == "plan" then
      if not creds then return nil, cmsg, ccode end
      ctx.plan_text = table.concat(lines, "\n") .. "\n"
      -- plan exits what get would (2, 4), 7 for pending changes on request
      local st = creds
      if st.usage then return 2 end
      if st.manual then return 4 end
      local mutates = (st.instance and st.instance.op ~= "adopt") or (st.binding and st.binding.op ~= "adopt")
      if opts["detailed-exitcode"] and mutates then return 7 end
      return 0
    end
    if not creds then return nil, cmsg, ccode end
    ctx.result.credential_source = "cloud-foundry"
    return creds
  end

  ctx.steps = paths.plan_steps(ctx.decision, ev.inventory, {
    scenario = opts.scenario, instance_name = opts["instance-name"], binding_name = opts["binding-name"],
    runtime = opts.runtime, credential_type = opts["credential-type"],
    cis = ctx.cis ~= nil and not ctx.cis_failed, subaccount = opts.subaccount,
    update_instance = opts["update-instance"], x509_validity = opts.x509_validity,
  })
  for _, w in ipairs(ctx.steps.warnings or {}) do log.warn("%s", w) end
  ctx.report.steps = { entitlement = step_view(ctx.steps.entitlement), instance = step_view(ctx.steps.instance),
    binding = step_view(ctx.steps.binding), notes = ctx.steps.notes, manual = ctx.steps.manual,
    usage = ctx.steps.usage,
    read_only = paths.read_only(ctx.steps) }

  if mode == "plan" then
    describe_steps(ctx, say, "would")
    if ctx.steps.usage then
      say("get would stop here (exit 2): " .. ctx.steps.usage)
    elseif ctx.steps.manual then
      say("get would stop here (exit 4) until the manual step is done")
    elseif paths.read_only(ctx.steps) then
      say("get would send no mutating request: it only reads and exports the key")
    end
    ctx.plan_text = table.concat(lines, "\n") .. "\n"
    return M.plan_status(ctx)
  end

  describe_steps(ctx, say, "will")
  if ctx.steps.usage then
    return nil, ctx.steps.usage, "USAGE"
  end
  if ctx.steps.manual then
    -- the steps are the point of exit 4: shown without -v, the error line last
    for line in tostring(ctx.steps.manual):gmatch("\n([^\n]+)") do log.info("%s", line) end
    return nil, ctx.steps.manual, "MANUAL"
  end
  return execute_sm(ctx)
end

-- What plan exits: what get would exit where that is known without
-- mutating (2 for a usage stop, 4 for a manual step); with
-- --detailed-exitcode, 7 when get would change something.
function M.plan_status(ctx)
  if ctx.steps.usage then return 2 end
  if ctx.steps.manual then return 4 end
  if ctx.opts["detailed-exitcode"] and not paths.read_only(ctx.steps) then return 7 end
  return 0
end

-- The key named for messages: which binding of which instance, and whether
-- this run created it.
local function which_key(ctx)
  local r = ctx.result
  return string.format("the %skey of binding '%s'%s", r.created_binding and "new " or "",
    tostring(r.binding_name), r.instance_name and (" (instance '" .. tostring(r.instance_name) .. "')") or "")
end

-- get writes no key that does not work: a token from the fetched key, its
-- scopes and zone, before anything is written. A binding this run created
-- may take XSUAA a moment to know: a refusal of such a key is retried
-- briefly. Returns the verify report | nil, message, code.
function M.verify_before_write(ctx, k)
  local key = require "calm.key"
  local log = require "calm.log"
  local opts = ctx.opts
  -- a key adopted for its scopes was checked moments ago (calm.probe)
  local probed = ctx.result.probe
  local r, msg, code = probed and probed.deployment and opts.scenario ~= "monitoring" and probed.report or nil, nil, nil
  for attempt = 1, r and 0 or ctx.result.created_binding and 3 or 1 do
    r, msg, code = key.verify(k, { scenario = opts.scenario, cacert = opts.cacert })
    if r or code ~= "AUTH" or attempt == 3 or not ctx.result.created_binding then break end
    local ok, wmsg, wcode = require("calm.sm").wait(attempt, "XSUAA to accept the new binding's credentials")
    if not ok then return nil, wmsg, wcode end
  end
  if not r then
    if code == "AUTH" then
      return nil, string.format("%s was refused by XSUAA (%s); nothing was written. It was revoked or its "
        .. "binding deleted: name a new binding with --binding-name N (or --no-verify to write it anyway)",
        which_key(ctx), tostring(msg)), "AUTH"
    end
    return nil, string.format("cannot verify %s: %s; nothing was written (--no-verify writes it unchecked)",
      which_key(ctx), tostring(msg)), code
  end
  ctx.report.checks[#ctx.report.checks + 1] = { name = "verify", ok = r.ok, problems = r.problems,
    warnings = r.warnings, scopes = r.scopes, deployment = r.deployment, zone = r.zone }
  log.debug("%s", key.verify_text(r, k.source))
  if not r.ok then
    return nil, string.format("%s failed verification: %s; nothing was written%s", which_key(ctx),
      table.concat(r.problems, "; "), opts.scenario ~= "monitoring"
        and " (the instance lacks the imp-cdm-feature-* authorities: see calmbind plan)" or ""), "VERIFY"
  end
  log.info("verified: %s works%s (token from %s%s)", which_key(ctx),
    opts.scenario ~= "monitoring" and " for Deployment" or "", tostring(r.token_url), r.mtls and ", mutual TLS" or "")
  return r
end

-- opts from cli.parse; mode "get" | "plan". Returns exit status | nil, msg, code.
-- sink (optional table): sink.report is set to the run report (the table
-- --report writes: decision, actions, result), for callers such as fleet.
function M.run(opts, mode, sink)
  local log = require "calm.log"
  local key = require "calm.key"
  local ok, msg, code = M.validate(opts, mode)
  if not ok then return nil, msg, code end
  local ctx = { opts = opts, report = new_report(mode, opts), result = {} }
  if sink then sink.report = ctx.report end
  local pok, creds, rmsg, rcode = pcall(run_inner, ctx, mode)
  if not pok then
    -- a Lua error: still leave a report behind, then re-raise
    if opts.report then
      ctx.report.result = { ok = false, error = "internal error" }
      write_report(opts.report, ctx.report)
    end
    error(creds, 0)
  end
  local function finish(status, err, ecode)
    ctx.report.result = { ok = status == 0 or (mode == "plan" and status == 7), exit = status,
      error = err, code = ecode,
      instance_id = ctx.result.instance_id, instance_name = ctx.result.instance_name,
      binding_id = ctx.result.binding_id, binding_name = ctx.result.binding_name,
      credential_type = ctx.result.credential_type, path = ctx.decision and ctx.decision.path }
    if opts.report then write_report(opts.report, ctx.report) end
    -- plan --json: the report on stdout, also when plan failed
    if mode == "plan" and opts.json then io.write(log.redact(report_text(ctx.report))) end
  end
  local exit = require "calm.exit"
  if creds == nil then
    finish(exit.status_for(rcode), log.redact(tostring(rmsg)), rcode)
    return nil, rmsg, rcode
  end
  if mode == "plan" then
    finish(creds)
    if not opts.json then io.write(ctx.plan_text or "") end
    return creds
  end

  -- the key: checked, written, optionally verified
  local k, kmsg, kcode = key.from_value(creds, "binding '" .. tostring(ctx.result.binding_name) .. "'")
  if not k then finish(exit.status_for(kcode), kmsg, kcode); return nil, kmsg, kcode end
  ctx.result.credential_type = k.uaa and k.uaa["credential-type"] or nil
  if opts["credential-type"] == "x509" and not (k.uaa and key.is_x509(k.uaa)) then
    local msg = string.format("binding '%s' holds a %s key, not the x509 key asked for; nothing was written "
      .. "(name another binding with --binding-name, or leave out --credential-type x509)",
      tostring(ctx.result.binding_name), tostring(ctx.result.credential_type or "secret"))
    finish(1, msg, "API")
    return nil, msg, "API"
  end
  if key.check then
    local cres = key.check(k, {})
    if type(cres) == "table" then
      ctx.report.checks[#ctx.report.checks + 1] = { name = "key", ok = cres.ok,
        problems = cres.problems, warnings = cres.warnings }
    end
  end
  if not opts["no-verify"] then
    local r, vmsg, vcode = M.verify_before_write(ctx, k)
    if not r then finish(exit.status_for(vcode), log.redact(vmsg), vcode); return nil, vmsg, vcode end
  end
  local wrote, wmsg, wcode = key.export(k, { format = opts.format, out = opts.out,
    show_secrets = opts["show-secrets"], name = ctx.result.binding_name,
    binding_name = ctx.result.binding_name, instance_name = ctx.result.instance_name })
  if not wrote then finish(exit.status_for(wcode), wmsg, wcode); return nil, wmsg, wcode end
  if opts.out then log.info("key written to %s (mode 0600)", opts.out) end
  if key.rotation_hint and ctx.steps and ctx.steps.binding and ctx.steps.binding.op == "create" then
    local hint = key.rotation_hint { created = ctx.result.binding_name, others = ctx.steps.others,
      credential_type = ctx.result.credential_type }
    if hint then log.info("%s", hint) end
  end
  finish(0)
  return 0
end

-- The command body shared by get and plan.
function M.command(mode)
  return function(args)
    local cli = require "calm.cli"
    local spec = M.spec(mode)
    local opts, pos, code = cli.parse(args, spec)
    if not opts then return nil, pos, code end
    if opts.help then io.write(cli.usage(spec)); return 0 end
    return M.run(opts, mode)
  end
end

return M
