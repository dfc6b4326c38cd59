-- calm.key.verify: a live check of a key: a token the way its consumers get
-- one, its scopes (Deployment needs both imp-cdm-feature-* ones) and zone.
--
--   report | nil, msg, code = verify.verify(k, {scenario =, cacert =, authorities = list?, warn_days =})
--     authorities: the instance's authorities the key must carry as scopes
--   text = verify.verify_text(report, source)
local log = require "calm.log"
local U = require "calm.key.util"
local shown, is_nonempty_string, is_x509 = U.shown, U.is_nonempty_string, U.is_x509
local exportable = require("calm.key.check").exportable
local expiry = require "calm.key.expiry"
local jwt = require "calm.lib.jwt"
local oauth = require "calm.net.oauth"
local M = {}

local function has_scope(scopes, suffix)
  for _, s in ipairs(scopes) do
    if type(s) == "string" and (s == suffix or s:sub(-(#suffix + 1)) == "." .. suffix) then return true end
  end
  return false
end

-- key.verify(k, opts) -> report | nil, message, code
-- opts.scenario = "deployment" (default) | "monitoring"; opts.cacert;
-- opts.warn_days: an x509 key whose certificate ends within that many days
-- fails (r.expiring), as does one already ended.
-- Fetches a token the way the key's consumers do (secret at uaa.url, or
-- mutual TLS at uaa.certurl), decodes it and checks scopes and zone.
-- Failures to get a token at all return nil: "AUTH" when the endpoint
-- refuses the credentials (exit 3), "DEADLINE" (5), "INPUT" for a key that
-- cannot be used (2), otherwise the transport's code or "UNREACHABLE"
-- (retries used up), "API"/"BAD_RESPONSE" (odd answers): all exit 1. Otherwise a report
-- {ok, problems, warnings, scopes, token_url, mtls, expires_in, token_expires, expires,
-- days_left, expiry_source, expiring, warn_days, zone, client, scenario} (calm.key.expiry.fields).
-- A token the way the key's consumers get one | nil, message, code.
local function fetch_token(k, opts, token_url)
  local grant, gmsg, gcode = oauth.grant_from_key(k.uaa, "key " .. k.source)
  if not grant then return nil, tostring(gmsg), gcode or "INPUT" end
  if opts.cacert and type(grant) == "table" and grant.cacert == nil then grant.cacert = opts.cacert end
  local tok, tmsg, tcode = oauth.fetch(grant)
  if tok then
    if type(tok.access_token) == "string" then log.secret(tok.access_token) end
    return tok
  end
  -- oauth's messages name the key and the token URL, never the secret
  if tcode == "AUTH" then
    return nil, "credentials refused: " .. tostring(tmsg), "AUTH"
  elseif tcode == "DEADLINE" then
    return nil, "no token from " .. token_url .. " before the deadline", "DEADLINE"
  end
  -- every other failure is "cannot reach" (exit 1), also once calm.net.rest
  -- has used up its retries (RETRY_EXHAUSTED would be 5, the deadline's)
  if tcode == nil or tcode == "RETRY_EXHAUSTED" then tcode = "UNREACHABLE" end
  -- calm.net.oauth's message names the key and the token URL already
  tmsg = tostring(tmsg)
  return nil, "cannot get a token" .. (tmsg:find(token_url, 1, true) and "" or (" from " .. token_url))
    .. ": " .. tmsg, tcode
end

-- The token's scopes, and the Deployment ones among them.
local function check_scopes(r, tok, claims)
  if claims then r.scopes = jwt.scopes(claims) or {} end
  if #r.scopes == 0 and type(tok.scope) == "string" then
    for s in tok.scope:gmatch("%S+") do r.scopes[#r.scopes + 1] = s end
  end
  table.sort(r.scopes)
  r.deployment = {}
  for _, s in ipairs(U.DEPLOYMENT_SCOPES) do
    r.deployment[s] = has_scope(r.scopes, s)
    if not r.deployment[s] and r.scenario == "deployment" then
      r.problem("token scope %s missing: the key works but not for Deployment", s)
    end
  end
  -- the authorities the key was made for ($XSMASTERAPPNAME.x: scope x of
  -- the service's master app); the Deployment ones are told above
  for _, a in ipairs(r.authorities or {}) do
    local s = a:match("^%$XSMASTERAPPNAME%.(.+)$") or a
    local told = r.deployment[s] ~= nil and r.scenario == "deployment"
    if not told and not has_scope(r.scopes, s) then
      r.problem("token scope %s missing: the instance's authority %s did not reach the key", s, a)
    end
  end
end

-- The token's zone and client against the key's.
local function check_zone(r, claims, uaa)
  local ext = type(claims.ext_attr) == "table" and claims.ext_attr or {}
  local zid, zdn = claims.zid, ext.zdn
  r.zone = { id = type(zid) == "string" and zid or nil, subdomain = type(zdn) == "string" and zdn or nil }
  local want_id = is_nonempty_string(uaa.identityzoneid) and uaa.identityzoneid
    or (is_nonempty_string(uaa.tenantid) and uaa.tenantid) or nil
  local checked = false
  if r.zone.id and want_id then
    checked = true
    if r.zone.id ~= want_id then
      r.problem("the token's zone %s is not uaa.%s %s: the key and its token endpoint belong to different tenants",
        shown(r.zone.id), is_nonempty_string(uaa.identityzoneid) and "identityzoneid" or "tenantid", shown(want_id))
    end
  end
  if r.zone.subdomain and is_nonempty_string(uaa.identityzone) then
    checked = true
    if r.zone.subdomain:lower() ~= uaa.identityzone:lower() then
      r.problem("the token's subdomain %s is not uaa.identityzone %s", shown(r.zone.subdomain), shown(uaa.identityzone))
    end
  end
  if not checked then r.warn("the token names no zone the key can be compared with (zid, ext_attr.zdn)") end
  local cid = claims.cid or claims.client_id
  r.client = type(cid) == "string" and cid or nil
  if r.client and is_nonempty_string(uaa.clientid) and r.client ~= uaa.clientid then
    r.warn("the token was issued to client %s, not uaa.clientid", shown(r.client))
  end
end

function M.verify(k, opts)
  opts = opts or {}
  local res, msg, code = exportable(k)
  if not res then return nil, msg, code end
  local token_url = U.token_url(k)
  local e = expiry.of_key(k)
  local tok
  tok, msg, code = fetch_token(k, opts, token_url)
  if not tok then
    -- a certificate past its notAfter is the likely reason the handshake or grant failed
    if e.days_left and e.days_left < 0 then msg = msg .. " (uaa.certificate ended " .. e.expires .. ")" end
    return nil, msg, code
  end
  local r = expiry.fields(e, { ok = true, problems = {}, warnings = {}, scopes = {},
    scenario = opts.scenario or "deployment", token_url = token_url, mtls = is_x509(k.uaa),
    expires_in = tonumber(tok.expires_in), authorities = opts.authorities, warn_days = opts.warn_days })
  r.problem = function(fmt, ...) r.problems[#r.problems + 1] = string.format(fmt, ...); r.ok = false end
  r.warn = function(fmt, ...) r.warnings[#r.warnings + 1] = string.format(fmt, ...) end
  local claims, jmsg = nil, "no access_token in the answer"
  if type(tok.access_token) == "string" then claims, jmsg = jwt.decode(tok.access_token) end
  if not claims then r.problem("the token is not a readable JWT (%s)", tostring(jmsg)) end
  check_scopes(r, tok, claims)
  if claims then check_zone(r, claims, k.uaa) end
  local t = expiry.of_token(tok, claims)
  r.token_expires = t and t.expires or nil
  local line = opts.warn_days and expiry.warning(e, opts.warn_days)
  if line then r.problem("%s", line) end
  r.expiring = line and true or false
  r.problem, r.warn = nil, nil
  return r
end

-- key.verify_text(report, source) -> the human report `verify` prints.
function M.verify_text(r, source)
  local out = {}
  out[#out + 1] = "verify " .. shown(source or "key", 200) .. " (scenario " .. r.scenario .. ")"
  out[#out + 1] = string.format("  %-12s %s%s: token issued%s%s", "token:", shown(r.token_url or "?", 200),
    r.mtls and " (mutual TLS)" or "", r.expires_in and (", expires in " .. math.floor(r.expires_in) .. " s") or "",
    r.token_expires and (" (" .. r.token_expires .. ")") or "")
  out[#out + 1] = string.format("  %-12s %s", "expires:", expiry.key_text(r))
  if r.zone then
    out[#out + 1] = string.format("  %-12s %s%s", "zone:", shown(r.zone.subdomain or "?"),
      r.zone.id and (" (" .. shown(r.zone.id) .. ")") or "")
  end
  if r.client then out[#out + 1] = string.format("  %-12s %s", "client:", shown(r.client)) end
  out[#out + 1] = string.format("  %-12s %s", "scopes:", #r.scopes > 0 and shown(table.concat(r.scopes, " "), 1000) or "(none)")
  local d = {}
  for _, s in ipairs(U.DEPLOYMENT_SCOPES) do
    d[#d + 1] = s .. " " .. ((r.deployment and r.deployment[s]) and "yes" or "no")
  end
  out[#out + 1] = string.format("  %-12s %s", "deployment:", table.concat(d, ", "))
  for _, p in ipairs(r.problems) do out[#out + 1] = "problem: " .. p end
  for _, w in ipairs(r.warnings) do out[#out + 1] = "warning: " .. w end
  if r.scenario == "deployment" and r.deployment and not (r.deployment[U.DEPLOYMENT_SCOPES[1]] and r.deployment[U.DEPLOYMENT_SCOPES[2]]) then
    out[#out + 1] = "hint: the instance lacks the $XSMASTERAPPNAME.imp-cdm-feature-* authorities (tenants of June to "
      .. "October 2023): calmbind get --scenario deployment adds them and creates a new binding"
  end
  if r.ok then
    out[#out + 1] = "result: the key works" .. (r.scenario == "deployment" and " for Deployment" or " (monitoring)")
  else
    out[#out + 1] = string.format("result: verification failed (%d problem%s)", #r.problems, #r.problems == 1 and "" or "s")
  end
  return table.concat(out, "\n") .. "\n"
end

return M
