-- calm.ops.report: what get and plan tell: the evidence, the decision and
-- the steps (stderr, or plan's stdout), and the run report (--report FILE,
-- plan --json; never secrets).
--
--   report = report.new_report(command, opts); report.write_report(path, report)
--   text = report.report_text(report); report.step_view(step)
--   report.show_evidence(ctx, say); report.show_decision(ctx, say)
--   report.describe_steps(ctx, say, "would" | "will")
local evidence = require "calm.model.evidence"
local M = {}

-- ---------------------------------------------------------- report --

function M.new_report(command, opts)
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
  local json = require "calm.lib.json"
  local c = {}
  for i, v in ipairs(t or {}) do c[i] = v end
  return json.array(c)
end

function M.report_text(report)
  local json = require "calm.lib.json"
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

function M.write_report(path, report)
  local fs = require "calm.fs"
  local w, msg = fs.write_private(path, M.report_text(report))
  if not w then
    local log = require "calm.log"
    log.warn("cannot write the report %s: %s", path, tostring(msg))
  end
end

-- Keeps a step for the report without its bulky raw parts.
function M.step_view(st)
  if not st then return nil end
  local v = {}
  for k, x in pairs(st) do
    if k ~= "raw" then v[k] = x end
  end
  return v
end

-- ---------------------------------------------------------- output --

function M.show_decision(ctx, say)
  local d = ctx.decision
  say(string.format("path: %s (%s)", d.path, evidence.PATH_TEXT[d.path]))
  for _, r in ipairs(d.reasons) do say("  because " .. r) end
end

function M.show_evidence(ctx, say)
  local lines = evidence.evidence_lines(ctx.evidence)
  if #lines == 0 then return end
  say("evidence:")
  for _, l in ipairs(lines) do say("  " .. l.what) end
end

function M.describe_steps(ctx, say, verb)
  local json = require "calm.lib.json"
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

return M
