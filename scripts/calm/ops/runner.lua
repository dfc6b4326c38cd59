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
local policy = require "calm.policy.load"
local evidence = require "calm.model.evidence"
local planner = require "calm.model.plan"
local options = require "calm.ops.options"
local report = require "calm.ops.report"
local deliver = require "calm.ops.deliver"
local gather = require "calm.ops.gather"
local cli = require "calm.lib.cli"
local apply = require "calm.ops.apply"
local runtime_cf = require "calm.ops.runtime_cf"
local runtime_sm = require "calm.ops.runtime_sm"
local exit = require "calm.lib.exit"
local log = require "calm.log"
local M = {}

-- the parts, for scripts that reuse them
M.spec, M.validate, M.connect = options.spec, options.validate, options.connect
M.gather, M.probe_inventory = gather.gather, gather.probe_inventory


-- ------------------------------------------------------------- run --

-- Where the run's lines go: plan prints them all (kept in lines); get logs
-- the path it took and keeps the evidence and reasons for -v.
local function sayer(mode, lines)
  if mode == "plan" then
    return function(s) lines[#lines + 1] = s end
  end
  return function(s) if s:match("^path: ") then log.info("%s", s) else log.debug("%s", s) end end
end

-- The evidence and the decision (calm.model.evidence), shown and put in the report.
-- Returns the evidence | nil, msg, code.
local function decide(ctx, mode, say)
  local opts = ctx.opts
  local ev, msg, code = gather.gather(ctx)
  if not ev then return nil, msg, code end
  ctx.inventory = ev.inventory
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

-- The runtime adapters calm.ops.apply carries the steps out through.
local RUNTIMES = { sm = runtime_sm, cf = runtime_cf }

-- The steps (calm.model.plan.steps) for the decision, in ctx.steps and the
-- report; the inventory they were planned from is ctx.applied_inventory.
-- --runtime cf plans from the space (calm.ops.gather.cf_space), the decision
-- judged again by its keys (Service Manager does not list CF keys), and
-- what that runtime leaves to a person is a manual step.
-- Returns true | nil, msg, code.
local function plan_steps(ctx, ev)
  local inv, o, d = ev.inventory, ctx.plan_options, ctx.decision
  local cf = ctx.opts.runtime == "cf"
  if cf then
    local msg, code
    inv, msg, code = gather.cf_space(ctx)
    if not inv then return nil, msg, code end
    o = options.plan_options(ctx)
    o.runtime, o.credential_type = "cf", "binding-secret"
    d = evidence.with_keys(d, inv, o)
  end
  ctx.applied_inventory = inv
  ctx.steps = planner.steps(d, inv, o)
  if cf then
    ctx.steps.runtime, ctx.steps.space = "cf", ctx.opts["cf-space"]
    runtime_cf.by_hand(ctx.steps)
  end
  for _, w in ipairs(ctx.steps.warnings or {}) do log.warn("%s", w) end
  ctx.report.steps = { runtime = ctx.steps.runtime, space = ctx.steps.space,
    entitlement = not cf and report.step_view(ctx.steps.entitlement) or nil,
    instance = report.step_view(ctx.steps.instance),
    binding = report.step_view(ctx.steps.binding), notes = ctx.steps.notes, manual = ctx.steps.manual,
    usage = ctx.steps.usage, drift = ctx.steps.drift,
    read_only = planner.read_only(ctx.steps) }
  return true
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
local function execute(ctx, say)
  report.describe_steps(ctx, say, "will")
  if ctx.steps.usage then
    return nil, ctx.steps.usage, "USAGE"
  end
  if ctx.steps.manual then
    -- the steps are the point of exit 4: shown without -v, the error line last
    for line in tostring(ctx.steps.manual):gmatch("\n([^\n]+)") do log.info("%s", line) end
    return nil, ctx.steps.manual, "MANUAL"
  end
  return apply.run(ctx, RUNTIMES[ctx.opts.runtime], ctx.applied_inventory)
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
  ok, msg, code = plan_steps(ctx, ev)
  if not ok then return nil, msg, code end
  if mode == "plan" then return show_plan(ctx, say, lines) end
  return execute(ctx, say)
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

-- The run report's result: written to --report, and on stdout for plan
-- --json (also when plan failed). Returns true | nil, msg, code when the
-- report could not be written.
local function finish(ctx, mode, status, err, ecode)
  local opts = ctx.opts
  report.finish(ctx, status, err, ecode)
  local ok, msg, code = true, nil, nil
  if opts.report then ok, msg, code = report.write(opts.report, ctx.report) end
  if mode == "plan" and opts.json then io.write(log.redact(report.report_text(ctx.report))) end
  return ok, msg, code
end

-- A run that failed keeps its own exit; a report not written is told too.
local function finish_failed(ctx, mode, msg, code)
  local ok, rmsg = finish(ctx, mode, exit.status_for(code), log.redact(tostring(msg)), code)
  if not ok then log.error("%s", rmsg) end
  return nil, msg, code
end

-- run_inner, and on a Lua error still a report behind before it is re-raised;
-- a bad value from the policy (calm.policy.load) is bad input, as any other.
local function run_guarded(ctx, mode)
  local pok, creds, rmsg, rcode = pcall(run_inner, ctx, mode)
  if not pok and policy.is_failure(creds) then return nil, creds.msg, creds.code end
  if not pok then
    if ctx.opts.report then
      ctx.report.result = { ok = false, error = "internal error" }
      local ok, msg = report.write(ctx.opts.report, ctx.report)
      if not ok then log.error("%s", msg) end
    end
    error(creds, 0)
  end
  return creds, rmsg, rcode
end

-- get's key from the fetched credentials through the one delivery
-- (calm.ops.deliver: check, verify unless --no-verify, write), the report,
-- and for a binding this run created the advice about the other keys.
-- Returns 0 | nil, msg, code; the report is finished either way.
local function deliver_key(ctx, creds)
  local k, msg, code = deliver.key(ctx, creds, { authorities = ctx.steps and ctx.steps.verify_authorities })
  if not k then return finish_failed(ctx, "get", msg, code) end
  local r = ctx.result
  -- the advice names rotate, which works on Service Manager instances only
  if ctx.steps and ctx.steps.runtime ~= "cf" and ctx.steps.binding and ctx.steps.binding.op == "create"
      and ctx.inventory then
    local inst = ctx.inventory.by_id and ctx.inventory.by_id[r.instance_id] or { id = r.instance_id, name = r.instance_name }
    local list = deliver.classify(ctx.inventory, inst, { id = r.binding_id, name = r.binding_name },
      ctx.opts["credential-type"])
    ctx.report.others = list
    deliver.advise(ctx, list, { head = string.format("New binding '%s' created on instance '%s'.",
      tostring(r.binding_name), tostring(r.instance_name)) })
  end
  local rok, rmsg, rcode = finish(ctx, "get", 0)
  if not rok then
    return nil, string.format("%s (the key itself was written%s)", rmsg,
      ctx.opts.out and ctx.opts.out ~= "-" and (" to " .. ctx.opts.out) or ""), rcode
  end
  return 0
end

-- opts from cli.parse; mode "get" | "plan". Returns exit status | nil, msg, code.
-- The run follows one policy: opts.policy (a file or directory: fleet's
-- per-tenant field), else policy.lua of the override directories; it is
-- loaded here, once, and handed down as ctx.policy. opts.tenant names the
-- fleet tenant (the policy's c.tenant).
-- sink (optional table): sink.report is set to the run report (the table
-- --report writes: decision, actions, result), for callers such as fleet;
-- with sink.keep_plan, plan's text goes to sink.plan_text instead of stdout.
function M.run(opts, mode, sink)
  local ok, msg, code = M.validate(opts, mode)
  if not ok then return nil, msg, code end
  local p
  p, msg, code = policy.load(opts.policy)
  if not p then return nil, msg, code end
  local ctx = { opts = opts, policy = p, tenant = opts.tenant, report = report.new_report(mode, opts), result = {} }
  ctx.report.policy = p.file
  if sink then sink.report = ctx.report end
  local creds, rmsg, rcode = run_guarded(ctx, mode)
  if creds == nil then return finish_failed(ctx, mode, rmsg, rcode) end
  if mode == "plan" then
    local rok, fmsg, fcode = finish(ctx, mode, creds)
    -- fleet keeps each tenant's plan to print it whole, not interleaved
    if sink and sink.keep_plan then sink.plan_text = ctx.plan_text
    elseif not opts.json then io.write(ctx.plan_text or "") end
    if not rok then return nil, fmsg, fcode end
    return creds
  end
  return deliver_key(ctx, creds)
end

-- The command body shared by get and plan.
function M.command(mode)
  return cli.command(M.spec(mode), function(opts) return M.run(opts, mode) end)
end

return M
