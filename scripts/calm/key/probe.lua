-- calm.key.probe: the key is the best evidence. Before anything is changed, get
-- and plan take a token (read-only) with every candidate key and read its
-- scopes: BTP does not return an instance's parameters, SAP does not
-- document the xsappname of the instance it generates, and only the token
-- shows whether a key already fits the Deployment scenario.
--
--   results = probe.keys(candidates, {cacert = FILE})
--     candidates: {{name = "binding", credentials = {...}}, ...}
--     results[i]: {token = bool, deployment = bool, scopes = {...},
--                  refused = bool, error = text?, code = code?,
--                  report = calm.key.verify's report (scenario deployment)}
--   probe.summary(result) -> "token carries both imp-cdm-feature-* scopes" ...
local key_parse = require "calm.key.parse"
local key_util = require "calm.key.util"
local key_verify = require "calm.key.verify"
local task = require "calm.task"
local M = {}

-- One key: a token and its scopes. Never raises for a bad key; the result
-- says what was wrong. A deadline is the caller's business (code DEADLINE).
function M.one(creds, label, opts)
  local k, msg, code = key_parse.from_value(creds, label)
  if not k then return { token = false, error = msg, code = code } end
  local r, vmsg, vcode = key_verify.verify(k, { scenario = "deployment", cacert = opts and opts.cacert })
  if not r then
    return { token = false, refused = vcode == "AUTH", error = vmsg, code = vcode }
  end
  local d = r.deployment or {}
  local both = true
  for _, s in ipairs(key_util.DEPLOYMENT_SCOPES) do both = both and d[s] == true end
  -- a zone mismatch makes the key unusable whatever its scopes say
  local zone_ok = true
  for _, p in ipairs(r.problems) do
    if p:find("zone", 1, true) or p:find("subdomain", 1, true) then zone_ok = false end
  end
  return { token = zone_ok, deployment = both and zone_ok, scopes = r.scopes, report = r,
    error = not zone_ok and r.problems[#r.problems] or nil }
end

-- Every candidate at once (one token request each, concurrently).
function M.keys(candidates, opts)
  if #candidates == 0 then return {} end
  local fns = {}
  for i, c in ipairs(candidates) do
    fns[i] = function() return M.one(c.credentials, c.label or ("binding '" .. tostring(c.name) .. "'"), opts) end
  end
  local res = task.all(fns)
  local out = {}
  for i, r in ipairs(res) do
    if r[1] == nil and r[3] == "FLOW_FAILED" then error(r[2], 0) end
    out[i] = r[1]
    if out[i].code == "DEADLINE" then return nil, out[i].error, "DEADLINE" end
  end
  return out
end

function M.summary(r)
  if not r then return "not checked" end
  if r.deployment then return "its token carries both imp-cdm-feature-* scopes" end
  if r.token then return "its token lacks the imp-cdm-feature-* scopes (works for monitoring only)" end
  if r.refused then return "refused by XSUAA (revoked, or its binding deleted)" end
  return "no token: " .. tostring(r.error)
end

return M
