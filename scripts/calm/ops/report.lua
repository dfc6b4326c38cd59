-- calm.ops.report: what get, plan, rotate and fleet tell: the evidence, the
-- decision and the steps (stderr, or plan's stdout), and the one writer of
-- run reports (--report FILE, plan --json; never secrets).
--
--   report = report.new_report(command, opts)
--   report.finish(ctx, status, err, code [, extra]) -- ctx.report.result from ctx.result
--   ok | nil, msg, "IO" = report.write(path, doc)    -- any report: get, plan, rotate, fleet; "-" stdout
--   text = report.report_text(doc); report.step_view(step)
--   report.show_evidence(ctx, say); report.show_decision(ctx, say)
--   report.describe_steps(ctx, say, "would" | "will"); report.labels_text(labels)
--   report.describe_others(list, say)                -- the other keys and what becomes of each
--   report.describe_drift(list, say, policy)         -- calm.model.drift's differences
local evidence = require "calm.model.evidence"
local exit = require "calm.lib.exit"
local key_expiry = require "calm.key.expiry"
local fs = require "calm.fs"
local json = require "calm.lib.json"
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

-- The result of a run (get, plan, rotate), from what it did (ctx.result):
-- status is the exit status (nil: failed with err, code). extra fields are
-- added as they are.
function M.finish(ctx, status, err, code, extra)
  local r = ctx.result or {}
  local res = { ok = status == 0 or (ctx.report.command == "plan" and status == 7),
    exit = status or exit.status_for(code), error = err, code = code,
    instance_id = r.instance_id, instance_name = r.instance_name,
    binding_id = r.binding_id, binding_name = r.binding_name,
    credential_type = r.credential_type, path = ctx.decision and ctx.decision.path,
    token_expires = r.token_expires }
  -- when the delivered key ends: expires, days_left (null for a secret key)
  if r.expiry then key_expiry.fields(r.expiry, res) end
  for k, v in pairs(extra or {}) do res[k] = v end
  ctx.report.result = res
  return res
end

-- Empty lists must stay JSON arrays in the report.
local function arr(t)
  local c = {}
  for i, v in ipairs(t or {}) do c[i] = v end
  return json.array(c)
end

-- Members in the order a reader looks for them (every kind of report).
local ORDER = { "tool", "command", "fleet_command", "inventory", "shard", "summary", "result", "decision",
  "replaced", "others", "evidence", "steps", "actions", "checks", "tenants" }

-- The lists of a report that must stay JSON arrays when empty.
local function arrays(doc)
  for _, k in ipairs { "evidence", "actions", "checks", "replaced", "others", "tenants" } do
    if doc[k] ~= nil then doc[k] = arr(doc[k]) end
  end
  for _, c in ipairs(doc.checks or {}) do
    c.problems, c.warnings = arr(c.problems), arr(c.warnings)
    if c.scopes then c.scopes = arr(c.scopes) end
  end
  if doc.decision then
    doc.decision.reasons = arr(doc.decision.reasons)
    if doc.decision.warnings then doc.decision.warnings = arr(doc.decision.warnings) end
  end
  if doc.steps and doc.steps.notes then doc.steps.notes = arr(doc.steps.notes) end
  if doc.steps and doc.steps.drift then doc.steps.drift = arr(doc.steps.drift) end
end

function M.report_text(doc)
  arrays(doc)
  local ok, text = pcall(json.pretty, doc, ORDER)
  if not ok then text = json.encode(doc) end
  return text .. "\n"
end

-- Standard output and error by the names a shell user gives them.
local STD = { ["-"] = "stdout", ["/dev/stdout"] = "stdout", ["/dev/fd/1"] = "stdout",
  ["/dev/stderr"] = "stderr", ["/dev/fd/2"] = "stderr" }

-- Whether a --report value names standard output or error (written as is,
-- not checked as a file to create).
function M.is_std(path) return STD[path] ~= nil end

-- The one writer of reports: "-" or /dev/stdout is standard output
-- (/dev/stderr standard error), else a file, 0600, atomic. A report that
-- cannot be written is an error, for the caller to return or tell: a run
-- whose report is missing must not pass in CI. Returns true | nil, msg, "IO".
function M.write(path, doc)
  local text = M.report_text(doc)
  local std = STD[path]
  if std then
    local ok, msg = io[std]:write(text)
    if ok then ok, msg = io[std]:flush() end
    if not ok then return nil, "cannot write the report to standard " .. std:sub(4) .. ": " .. tostring(msg), "IO" end
    return true
  end
  local w, msg = fs.write_private(path, text)
  if not w then return nil, "the report was not written: " .. tostring(msg), "IO" end -- msg names the file
  return true
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

-- Labels (key -> value) as one line, sorted by key: "k=v, k2=v2".
function M.labels_text(labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local v = labels[k]
    keys[i] = k .. "=" .. (type(v) == "table" and table.concat(v, ",") or tostring(v))
  end
  return table.concat(keys, ", ")
end

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

-- The steps of either runtime (calm.model.plan's, carried out by
-- calm.ops.apply): in Cloud Foundry the space takes the entitlement's line
-- (its plan was visible, else the run stopped) and a binding is a service key.
function M.describe_steps(ctx, say, verb)
  local s = ctx.steps
  local e = s.entitlement
  if s.runtime == "cf" then say("runtime: Cloud Foundry " .. tostring(ctx.opts["cf-api"]) .. ", space " .. tostring(s.space))
  elseif e.op == "ok" then say("entitlement: ok (" .. e.why .. ")")
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
    if inst.labels then say("  labels: " .. M.labels_text(inst.labels)) end
  end
  local b = s.binding
  if b then
    local target = b.id and (" '" .. tostring(b.name) .. "' (" .. b.id .. ")") or (" '" .. tostring(b.name) .. "'")
    local word = s.runtime == "cf" and "service key" or "binding"
    if b.op == "adopt" then say(word .. ": find" .. target .. ", fetch its key: " .. b.why)
    elseif b.op == "recreate" then say(word .. ": " .. verb .. " delete and re-create" .. target .. ": " .. b.why)
    elseif b.op == "none" then say(word .. ": none: " .. tostring(b.why))
    else say(word .. ": " .. verb .. " create" .. target .. " and fetch its key: " .. b.why) end
    if b.parameters then say("  parameters: " .. json.encode(b.parameters)) end
    if b.labels then say("  labels: " .. M.labels_text(b.labels)) end
  end
  M.describe_drift(s.drift, say, ctx.policy)
  for _, n in ipairs(s.notes or {}) do say("note: " .. n) end
  if s.manual then say("manual step: " .. s.manual) end
end

-- A drift value for the plan: (none), "v", "v1,v2" or [a, b] (authorities).
local function drift_value(field, v)
  if v == nil then return "(none)" end
  if field == "authorities" then return "[" .. table.concat(v, ", ") .. "]" end
  return '"' .. (type(v) == "table" and table.concat(v, ",") or tostring(v)) .. '"'
end

-- What exists and differs from the policy (calm.model.drift's list), terraform's
-- way: "~ update in-place" and each field old -> new; what calmbind did not
-- create is told as left as it is.
function M.describe_drift(list, say, policy)
  if not list or #list == 0 then return end
  say(string.format("drift: what exists differs from the policy (%s):",
    policy and policy.file or "the built-in policy"))
  for _, e in ipairs(list) do
    local what = string.format("%s '%s' (%s)", e.resource, tostring(e.name), tostring(e.id))
    if e.left then say("  " .. what .. ": " .. (e.left_why or "not calmbind's") .. ": left as it is")
    elseif e.replaced then say("  - " .. what .. ": replaced by a new key (below)")
    else say("  ~ update in-place " .. what) end
    local mark = e.left and "    " or "      ~ "
    for _, ch in ipairs(e.changes) do
      if ch.missing then
        say(mark .. ch.field .. ": lacks " .. table.concat(ch.missing, ", "))
      else
        say(string.format("%s%s: %s -> %s", mark, ch.field, ch.unrecorded and "(not recorded: Cloud Foundry's "
          .. "labels hold one short value; the key's token lacks some)" or drift_value(ch.field, ch.old),
          drift_value(ch.field, ch.new)))
      end
    end
  end
end

-- The other SAP Cloud ALM API keys of the subaccount and what becomes of
-- each (calm.ops.deliver.classify's list): deleted, to delete once the new
-- key is in use, or kept and why. One line each.
function M.describe_others(list, say)
  for _, e in ipairs(list) do
    local state
    if e.deleted then state = "deleted"
    elseif e.replace then state = "to delete once the new key is in use"
    else state = "kept: " .. tostring(e.why) end
    say(string.format("  '%s' (instance '%s'%s): %s", tostring(e.name), tostring(e.instance),
      e.created_at and (", created " .. tostring(e.created_at)) or "", state))
  end
end

return M
