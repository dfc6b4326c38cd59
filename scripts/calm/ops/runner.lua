-- calm.ops.runner: runs `get` and `plan`: options, evidence gathering (the
-- requests that do not depend on each other go out together), carrying out
-- the steps calm.model.plan planned, output and the run report.
--
--   runner.command("get" | "plan")  -- the function a command file returns
--   runner.run(opts, mode [, sink]) -- exit status | nil, message, code;
--                                   -- sink.report = the run report (fleet)
--
-- Requests that do not depend on each other go out together (calm.task):
-- the tokens first, then every read in one round.
local evidence = require "calm.model.evidence"
local planner = require "calm.model.plan"
local options = require "calm.ops.options"
local report = require "calm.ops.report"
local gather = require "calm.ops.gather"
local key_check = require "calm.key.check"
local key_format = require "calm.key.format"
local key_parse = require "calm.key.parse"
local key_rotation = require "calm.key.rotation"
local key_util = require "calm.key.util"
local key_verify = require "calm.key.verify"
local M = {}

-- the parts, for scripts that reuse them
M.spec, M.validate, M.connect = options.spec, options.validate, options.connect
M.gather, M.probe_inventory = gather.gather, gather.probe_inventory


-- ------------------------------------------------------------- run --

-- Where the run's lines go: plan prints them all (kept in lines); get logs
-- the path it took and keeps the evidence and reasons for -v.
local function sayer(mode, lines)
  local log = require "calm.log"
  if mode == "plan" then
    return function(s) lines[#lines + 1] = s end
  end
  return function(s) if s:match("^path: ") then log.info("%s", s) else log.debug("%s", s) end end
end

-- The evidence and the decision (calm.model.evidence), shown and put in the report.
-- Returns the evidence | nil, msg, code.
local function decide(ctx, mode, say)
  local log = require "calm.log"
  local opts = ctx.opts
  local ev, msg, code = gather.gather(ctx)
  if not ev then return nil, msg, code end
  ctx.report.evidence = evidence.evidence_lines(ev)
  ctx.plan_options = options.plan_options(ctx)
  ctx.decision = evidence.decide(opts.provisioned, ev, ctx.plan_options)
  ctx.report.decision = { path = ctx.decision.path, date = ctx.decision.date, source = ctx.decision.source,
    warnings = ctx.decision.warnings, reasons = ctx.decision.reasons }
  say(string.format("calmbind %s: scenario %s, runtime %s", mode, opts.scenario, opts.runtime))
  report.show_evidence(ctx, say)
  report.show_decision(ctx, say)
  for _, w in ipairs(ctx.decision.warnings or {}) do log.warn("%s", w) end
  return ev
end

-- --runtime cf: calm.ops.exec_cf plans and, for get, carries out. Returns
-- what run_inner returns: plan's exit status, or get's credentials.
local function run_cf(ctx, mode, say, lines)
  local action = require("calm.ops.exec_sm").action
  local creds, cmsg, ccode = require("calm.ops.exec_cf").run(ctx, mode, say, action)
  if not creds then return nil, cmsg, ccode end
  if mode == "plan" then
    ctx.plan_text = table.concat(lines, "\n") .. "\n"
    -- plan exits what get would (2, 4), 7 for pending changes on request
    local st = creds
    if st.usage then return 2 end
    if st.manual then return 4 end
    local mutates = (st.instance and st.instance.op ~= "adopt") or (st.binding and st.binding.op ~= "adopt")
    if ctx.opts["detailed-exitcode"] and mutates then return 7 end
    return 0
  end
  ctx.result.credential_source = "cloud-foundry"
  return creds
end

-- The Service Manager steps (calm.model.plan.steps) for the decision, in
-- ctx.steps and the report.
local function plan_sm_steps(ctx, ev)
  local log = require "calm.log"
  ctx.steps = planner.steps(ctx.decision, ev.inventory, ctx.plan_options)
  for _, w in ipairs(ctx.steps.warnings or {}) do log.warn("%s", w) end
  ctx.report.steps = { entitlement = report.step_view(ctx.steps.entitlement), instance = report.step_view(ctx.steps.instance),
    binding = report.step_view(ctx.steps.binding), notes = ctx.steps.notes, manual = ctx.steps.manual,
    usage = ctx.steps.usage,
    read_only = planner.read_only(ctx.steps) }
end

-- plan: what get would do and where it would stop. Returns the exit status.
local function show_plan(ctx, say, lines)
  report.describe_steps(ctx, say, "would")
  if ctx.steps.usage then
    say("get would stop here (exit 2): " .. ctx.steps.usage)
  elseif ctx.steps.manual then
    say("get would stop here (exit 4) until the manual step is done")
  elseif planner.read_only(ctx.steps) then
    say("get would send no mutating request: it only reads and exports the key")
  end
  ctx.plan_text = table.concat(lines, "\n") .. "\n"
  return M.plan_status(ctx)
end

-- get: stops before any change for a usage stop or a manual step, else
-- carries out the steps. Returns the credentials | nil, msg, code.
local function execute_sm(ctx, say)
  local log = require "calm.log"
  report.describe_steps(ctx, say, "will")
  if ctx.steps.usage then
    return nil, ctx.steps.usage, "USAGE"
  end
  if ctx.steps.manual then
    -- the steps are the point of exit 4: shown without -v, the error line last
    for line in tostring(ctx.steps.manual):gmatch("\n([^\n]+)") do log.info("%s", line) end
    return nil, ctx.steps.manual, "MANUAL"
  end
  return require("calm.ops.exec_sm").execute(ctx)
end

-- plan: exit status; get: the credentials. Either | nil, msg, code.
local function run_inner(ctx, mode)
  local lines = {}
  local say = sayer(mode, lines)
  -- clients (key files are read before any request)
  local ok, msg, code = options.connect(ctx)
  if not ok then return nil, msg, code end
  local ev
  ev, msg, code = decide(ctx, mode, say)
  if not ev then return nil, msg, code end
  if ctx.opts.runtime == "cf" then return run_cf(ctx, mode, say, lines) end
  plan_sm_steps(ctx, ev)
  if mode == "plan" then return show_plan(ctx, say, lines) end
  return execute_sm(ctx, say)
end

-- What plan exits: what get would exit where that is known without
-- mutating (2 for a usage stop, 4 for a manual step); with
-- --detailed-exitcode, 7 when get would change something.
function M.plan_status(ctx)
  if ctx.steps.usage then return 2 end
  if ctx.steps.manual then return 4 end
  if ctx.opts["detailed-exitcode"] and not planner.read_only(ctx.steps) then return 7 end
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
  local log = require "calm.log"
  local opts = ctx.opts
  -- a key adopted for its scopes was checked moments ago (calm.key.probe)
  local probed = ctx.result.probe
  local r, msg, code = probed and probed.deployment and opts.scenario ~= "monitoring" and probed.report or nil, nil, nil
  for attempt = 1, r and 0 or ctx.result.created_binding and 3 or 1 do
    r, msg, code = key_verify.verify(k, { scenario = opts.scenario, cacert = opts.cacert })
    if r or code ~= "AUTH" or attempt == 3 or not ctx.result.created_binding then break end
    local ok, wmsg, wcode = require("calm.btp.sm").wait(attempt, "XSUAA to accept the new binding's credentials")
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
  log.debug("%s", key_verify.verify_text(r, k.source))
  if not r.ok then
    return nil, string.format("%s failed verification: %s; nothing was written%s", which_key(ctx),
      table.concat(r.problems, "; "), opts.scenario ~= "monitoring"
        and " (the instance lacks the imp-cdm-feature-* authorities: see calmbind plan)" or ""), "VERIFY"
  end
  log.info("verified: %s works%s (token from %s%s)", which_key(ctx),
    opts.scenario ~= "monitoring" and " for Deployment" or "", tostring(r.token_url), r.mtls and ", mutual TLS" or "")
  return r
end

-- The run report's result: written to --report, and on stdout for plan
-- --json (also when plan failed).
local function finish(ctx, mode, status, err, ecode)
  local log = require "calm.log"
  local opts = ctx.opts
  ctx.report.result = { ok = status == 0 or (mode == "plan" and status == 7), exit = status,
    error = err, code = ecode,
    instance_id = ctx.result.instance_id, instance_name = ctx.result.instance_name,
    binding_id = ctx.result.binding_id, binding_name = ctx.result.binding_name,
    credential_type = ctx.result.credential_type, path = ctx.decision and ctx.decision.path }
  if opts.report then report.write_report(opts.report, ctx.report) end
  if mode == "plan" and opts.json then io.write(log.redact(report.report_text(ctx.report))) end
end

-- run_inner, and on a Lua error still a report behind before it is re-raised.
local function run_guarded(ctx, mode)
  local pok, creds, rmsg, rcode = pcall(run_inner, ctx, mode)
  if not pok then
    if ctx.opts.report then
      ctx.report.result = { ok = false, error = "internal error" }
      report.write_report(ctx.opts.report, ctx.report)
    end
    error(creds, 0)
  end
  return creds, rmsg, rcode
end

-- get's key from the fetched credentials: checked, verified (unless
-- --no-verify), written, and a rotation hint for a binding this run created.
-- Returns 0 | nil, msg, code; the report is finished either way.
local function deliver_key(ctx, creds)
  local log = require "calm.log"
  local exit = require "calm.lib.exit"
  local opts = ctx.opts
  local function fail(msg, code, reported)
    finish(ctx, "get", exit.status_for(code), reported or msg, code)
    return nil, msg, code
  end
  local k, kmsg, kcode = key_parse.from_value(creds, "binding '" .. tostring(ctx.result.binding_name) .. "'")
  if not k then return fail(kmsg, kcode) end
  ctx.result.credential_type = k.uaa and k.uaa["credential-type"] or nil
  if opts["credential-type"] == "x509" and not (k.uaa and key_util.is_x509(k.uaa)) then
    return fail(string.format("binding '%s' holds a %s key, not the x509 key asked for; nothing was written "
      .. "(name another binding with --binding-name, or leave out --credential-type x509)",
      tostring(ctx.result.binding_name), tostring(ctx.result.credential_type or "secret")), "API")
  end
  if key_check.check then
    local cres = key_check.check(k, {})
    if type(cres) == "table" then
      ctx.report.checks[#ctx.report.checks + 1] = { name = "key", ok = cres.ok,
        problems = cres.problems, warnings = cres.warnings }
    end
  end
  if not opts["no-verify"] then
    local r, vmsg, vcode = M.verify_before_write(ctx, k)
    if not r then return fail(vmsg, vcode, log.redact(vmsg)) end
  end
  local wrote, wmsg, wcode = key_format.export(k, { format = opts.format, out = opts.out,
    show_secrets = opts["show-secrets"], name = ctx.result.binding_name,
    binding_name = ctx.result.binding_name, instance_name = ctx.result.instance_name })
  if not wrote then return fail(wmsg, wcode) end
  if opts.out then log.info("key written to %s (mode 0600)", opts.out) end
  if key_rotation.rotation_hint and ctx.steps and ctx.steps.binding and ctx.steps.binding.op == "create" then
    local hint = key_rotation.rotation_hint { created = ctx.result.binding_name, others = ctx.steps.others,
      credential_type = ctx.result.credential_type }
    if hint then log.info("%s", hint) end
  end
  finish(ctx, "get", 0)
  return 0
end

-- opts from cli.parse; mode "get" | "plan". Returns exit status | nil, msg, code.
-- sink (optional table): sink.report is set to the run report (the table
-- --report writes: decision, actions, result), for callers such as fleet.
function M.run(opts, mode, sink)
  local log = require "calm.log"
  local ok, msg, code = M.validate(opts, mode)
  if not ok then return nil, msg, code end
  local ctx = { opts = opts, report = report.new_report(mode, opts), result = {} }
  if sink then sink.report = ctx.report end
  local creds, rmsg, rcode = run_guarded(ctx, mode)
  if creds == nil then
    finish(ctx, mode, require("calm.lib.exit").status_for(rcode), log.redact(tostring(rmsg)), rcode)
    return nil, rmsg, rcode
  end
  if mode == "plan" then
    finish(ctx, mode, creds)
    if not opts.json then io.write(ctx.plan_text or "") end
    return creds
  end
  return deliver_key(ctx, creds)
end

-- The command body shared by get and plan.
function M.command(mode)
  return require("calm.lib.cli").command(M.spec(mode), function(opts) return M.run(opts, mode) end)
end

return M
