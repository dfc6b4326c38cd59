-- calm.model.plan: the planner get, plan and rotate share, for the Service
-- Manager and the Cloud Foundry runtime alike: from the decision
-- (calm.model.evidence: the path, and the key to adopt whatever the path
-- says), what exists (calm.model.inventory) and the options, which steps to
-- take -- no requests, no output. Each path is a file of its own
-- (calm.model.paths.after_2023_10, .mid_2023, .before_2023_06) built of
-- calm.model.steps; calm.ops.apply only carries the steps out (over a
-- runtime adapter, calm.ops.runtime_sm or .runtime_cf). Names, labels,
-- authorities and adopt rules come from the run's policy (o.policy, loaded
-- once by the command: calm.policy.load).
--
--   steps = plan.steps(decision, inventory, o)
--     o = {policy, scenario, runtime, credential_type, tenant?, instance_name?, binding_name?,
--          update_instance?, x509_validity?, cis = bool (a central-plan key that
--          works), cis_given = bool (any cis key), subaccount = guid?}
--     steps = {entitlement = {op, why}, instance = {op, id?, name, why, parameters?, labels?},
--              binding = {op, id?, name, why, parameters?, labels?}, notes, warnings,
--              others, manual = text? (exit 4), usage = text? (exit 2), wait_for?,
--              drift = {...}, verify_authorities = list?}  (calm.model.drift: what
--              calmbind created differs from the policy; instance and binding
--              carry label_changes = {{key, old?, new?}} for calm.ops.apply)
--     ops: entitlement "ok" | "assign" | "manual"; instance "adopt" | "create" |
--     "update" | "recreate" | "refuse" | "manual"; binding "adopt" | "create" |
--     "recreate" | "none"
--   plan.read_only(steps) -> true when get would send no mutating request
--   plan.PATHS[decision.path] -> the path's module ({steps = function(inventory, o, decision)})
local evidence = require "calm.model.evidence"
local steps = require "calm.model.steps"
local drift = require "calm.model.drift"
local M = {}

M.PATHS = {
  [evidence.AFTER] = require "calm.model.paths.after_2023_10",
  [evidence.MID] = require "calm.model.paths.mid_2023",
  [evidence.BEFORE] = require "calm.model.paths.before_2023_06",
}

function M.steps(d, inv, o)
  if type(o.policy) ~= "table" then error("plan.steps: o.policy (the run's policy) is missing", 2) end
  local s = steps.new()
  steps.entitlement(s, inv, o)
  -- the key outranks the date (calm.model.evidence): one that already fits
  -- is adopted as it is
  if d.key then
    steps.adopt_key(s, d.key)
    return drift.apply(s, inv, o)
  end
  local p = (M.PATHS[d.path] or M.PATHS[evidence.BEFORE]).steps(inv, o, d)
  s.instance, s.binding, s.wait_for = p.instance, p.binding, p.wait_for
  -- the entitlement's stop comes first: nothing else can happen before it
  s.manual, s.usage = s.manual or p.manual, s.usage or p.usage
  for _, n in ipairs(p.notes) do s.notes[#s.notes + 1] = n end
  for _, w in ipairs(p.warnings) do s.warnings[#s.warnings + 1] = w end
  if s.entitlement.op ~= "ok" and s.instance and s.instance.op ~= "manual" then
    s.instance.after_entitlement = true
  end
  steps.others(s, inv)
  steps.check_names(s, o)
  drift.apply(s, inv, o)
  -- a key made for the policy's authorities must carry them all (checked
  -- before it is written)
  local given = s.instance and s.instance.parameters and s.instance.parameters["xs-security"].authorities
  if given and #given > 0 and s.binding and s.binding.op == "create" and s.binding.with_authorities then
    s.verify_authorities = s.verify_authorities or given
  end
  return s
end

-- True when the steps send no mutating request.
function M.read_only(s)
  if s.manual or s.usage then return true end
  if s.entitlement.op == "assign" then return false end
  if s.instance and s.instance.op ~= "adopt" then return false end
  if s.binding and (s.binding.op ~= "adopt" or s.binding.label_changes) then return false end
  return true
end

return M
