-- calm.ops.deliver: the one delivery of a key, for get, rotate and fleet:
-- check -> verify -> write, then (the caller's report.finish) the report, and
-- the advice about the other keys.
--
--   k | nil, msg, code = deliver.key(ctx, creds, o)     -- check, verify, write
--   list = deliver.classify(inventory, instance, new_binding, credential_type)
--   e = deliver.judge(i, instance, b, new_binding, credential_type) -- the may-delete rule
--   ok | nil, msg, code = deliver.delete_old(sm_client, list)
--   lines = deliver.next_steps(to_delete, deleted, where [, notes]) -- the rotation advice
--   notes = deliver.secret_notes(list)                  -- about kept instance-secret keys
--   deliver.advise(ctx, list, o)                         -- the others and the advice (stderr)
--
-- The one may-delete rule: a binding may be deleted (by rotate --delete-old,
-- or by the admin on calmbind's advice) only when calmbind made it (label
-- created_by: calmbind) on the instance of the new key, for the same kind of
-- credentials, it is ready, older than the new one, and its name is not
-- <SID>_<client>_<sysno>. SAP's generated key, Cloud ALM's keys for managed
-- systems and whatever calmbind did not create are listed as kept, with why.
local key_check = require "calm.key.check"
local key_expiry = require "calm.key.expiry"
local key_format = require "calm.key.format"
local key_parse = require "calm.key.parse"
local key_util = require "calm.key.util"
local key_verify = require "calm.key.verify"
local report = require "calm.ops.report"
local log = require "calm.log"
local sm = require "calm.btp.sm"
local M = {}

M.INSTANCE_SECRET = "the instance still issues instance secrets: every binding of it shares one secret, so a "
  .. "new binding is no new secret and deleting the old one revokes nothing; rotate on an instance with "
  .. "binding secrets (calmbind get --instance-name NEW creates one), then move the systems to it"

-- --------------------------------------------------------------- the key --

-- An instance-secret key delivered as it is: an old key (XSUAA gives new
-- bindings binding secrets since 19 January 2026) that keeps working while
-- its instance allows instance secrets; how to get one of its own.
function M.old_key_note(ctx)
  local how = ctx.opts.runtime == "cf"
    and "calmbind get --runtime cf --binding-name NEW (or cf create-service-key) makes a key with a binding "
      .. "secret of its own"
    or "calmbind rotate replaces it with a binding-secret key"
  return string.format("binding '%s' holds an old key with an instance secret (made before 19 January 2026): the "
    .. "secret is shared by every instance-secret key of instance '%s', so deleting the binding revokes nothing, and "
    .. "it works while the instance allows instance secrets; %s", tostring(ctx.result.binding_name),
    tostring(ctx.result.instance_name), how)
end

-- The key named for messages: which binding of which instance, and whether
-- this run created it.
local function which_key(ctx)
  local r = ctx.result
  return string.format("the %skey of binding '%s'%s", r.created_binding and "new " or "",
    tostring(r.binding_name), r.instance_name and (" (instance '" .. tostring(r.instance_name) .. "')") or "")
end
M.which_key = which_key

-- check: a key of the kind asked for; the offline rules go in the report.
local function check(ctx, creds, o)
  local opts = ctx.opts
  local k, msg, code = key_parse.from_value(creds, o.what or ("binding '" .. tostring(ctx.result.binding_name) .. "'"))
  if not k then return nil, msg, code end
  local ctype = k.uaa and k.uaa["credential-type"] or nil
  ctx.result.credential_type = ctype
  if o.refuse_instance_secret and ctype == "instance-secret" then return nil, M.INSTANCE_SECRET, "MANUAL" end
  if ctype == "instance-secret" then log.info("%s", M.old_key_note(ctx)) end
  if opts["credential-type"] == "x509" and not (k.uaa and key_util.is_x509(k.uaa)) then
    return nil, string.format("binding '%s' holds a %s key, not the x509 key asked for%s; nothing was written",
      tostring(ctx.result.binding_name), tostring(ctype or "secret"), ctx.result.created_binding
        and " (the broker ignored the x509 parameters)"
        or " (name another binding with --binding-name, or leave out --credential-type x509)"), "API"
  end
  local cres = key_check.check(k, {})
  ctx.report.checks[#ctx.report.checks + 1] = { name = "key", ok = cres.ok,
    problems = cres.problems, warnings = cres.warnings }
  -- when the key ends, for the summary and the report (no request; the
  -- date is not judged here: a key just made is delivered whatever it says)
  ctx.result.expiry = cres.summary.expiry
  return k
end

-- verify: no key is written that does not work: a token from it, its scopes
-- and zone. A binding this run created may take XSUAA a moment to know: a
-- refusal of such a key is retried briefly. o = {refused_code, no_verify_hint =
-- false (no --no-verify to suggest), stale_hint = what to do about an older
-- key that fails}. Returns the verify report | nil, msg, code.
function M.verify(ctx, k, o)
  local opts = ctx.opts
  o = o or {}
  -- a key adopted for its scopes was checked moments ago (calm.key.probe)
  local probed = ctx.result.probe
  local created = ctx.result.created_binding
  local r, msg, code = probed and probed.deployment and opts.scenario ~= "monitoring" and not o.authorities
    and probed.report or nil, nil, nil
  for attempt = 1, r and 0 or created and 3 or 1 do
    r, msg, code = key_verify.verify(k, { scenario = opts.scenario, cacert = opts.cacert, authorities = o.authorities })
    if r or code ~= "AUTH" or attempt == 3 or not created then break end
    local ok, wmsg, wcode = sm.wait(attempt, "XSUAA to accept the new binding's credentials")
    if not ok then return nil, wmsg, wcode end
  end
  if not r then
    if code == "AUTH" then
      return nil, string.format("%s was refused by XSUAA (%s); nothing was written%s", which_key(ctx), tostring(msg),
        created and "" or o.stale_hint or ". It was revoked or its binding deleted: name a new binding with "
          .. "--binding-name N (or --no-verify to write it anyway)"), o.refused_code or "AUTH"
    end
    return nil, string.format("cannot verify %s: %s; nothing was written%s", which_key(ctx), tostring(msg),
      o.no_verify_hint == false and "" or " (--no-verify writes it unchecked)"), code
  end
  ctx.report.checks[#ctx.report.checks + 1] = { name = "verify", ok = r.ok, problems = r.problems,
    warnings = r.warnings, scopes = r.scopes, deployment = r.deployment, zone = r.zone }
  ctx.result.token_expires = r.token_expires
  log.debug("%s", key_verify.verify_text(r, k.source))
  if not r.ok then
    return nil, string.format("%s failed verification: %s; nothing was written%s%s", which_key(ctx),
      table.concat(r.problems, "; "), opts.scenario ~= "monitoring"
        and (o.authorities and string.format(" (the instance lacks some of the authorities %s: see calmbind plan)",
          table.concat(o.authorities, ", "))
          or " (the instance lacks the imp-cdm-feature-* authorities: see calmbind plan)") or "",
      not created and o.stale_hint or ""), "VERIFY"
  end
  log.info("verified: %s works%s (token from %s%s)", which_key(ctx),
    opts.scenario ~= "monitoring" and " for Deployment" or "", tostring(r.token_url), r.mtls and ", mutual TLS" or "")
  return r
end

-- What this run changed in BTP (ctx.report.actions), for a message after a
-- change: "created instance 'x', created binding 'y'" | nil.
function M.changes_text(ctx)
  local VERB = { create = "created", update = "updated", delete = "deleted", ["assign-entitlement"] = "assigned" }
  local list = {}
  for _, a in ipairs(ctx.report and ctx.report.actions or {}) do
    local verb = VERB[a.action]
    if verb then
      list[#list + 1] = string.format("%s %s%s", verb, tostring(a.resource or "entitlement"),
        a.name and (" '" .. tostring(a.name) .. "'") or "")
    end
  end
  return #list > 0 and table.concat(list, ", ") or nil
end

-- key(ctx, creds, o): the credentials of ctx.result's binding checked,
-- verified (unless opts["no-verify"]) and written (--out, 0600, atomic; or
-- stdout). o = {what = source label, refuse_instance_secret = bool,
-- authorities = the instance's authorities its token must carry (list?),
-- refused_code = code of a refused new key, on_fail = function(msg, code)
-- (rotate rolls back there; returns nil, msg, code)}. Returns k | nil, msg, code.
function M.key(ctx, creds, o)
  local opts = ctx.opts
  o = o or {}
  local fail = o.on_fail or function(msg, code) return nil, msg, code end
  local k, msg, code = check(ctx, creds, o)
  if not k then return fail(msg, code) end
  if not opts["no-verify"] then
    local r
    r, msg, code = M.verify(ctx, k, o)
    if not r then return fail(msg, code) end
  end
  local name = ctx.result.binding_name
  local ok
  ok, msg, code = key_format.export(k, { format = opts.format, out = opts.out, show_secrets = opts["show-secrets"],
    name = name, binding_name = name, instance_name = ctx.result.instance_name,
    secret_name = opts["secret-name"], namespace = opts.namespace })
  if not ok then
    -- --out's directory took a file before the first request: a write that
    -- fails now is no usage error, and the user needs to know what exists
    if o.on_fail then return fail(msg, "IO") end
    local changed = M.changes_text(ctx)
    return fail(string.format("the key was fetched%s but not written: %s; %s; rerunning the same command "
      .. "resumes (it adopts what exists)", opts["no-verify"] and "" or " and verified", tostring(msg),
      changed and ("this run " .. changed) or "this run changed nothing in BTP"), "IO")
  end
  -- the summary says when the key stops working, on the line that says where it went
  local ends = ctx.result.expiry and key_expiry.short_text(ctx.result.expiry)
  if opts.out and opts.out ~= "-" then
    log.info("key written to %s (mode 0600)%s", opts.out, ends and ("; it " .. ends) or "")
  elseif ends then
    log.info("the key %s", ends)
  end
  return k
end

-- ------------------------------------------------------------ the others --

local function kind(ctype)
  return ctype == "x509" and "x509" or "secret"
end

-- One binding b of instance i, beside the new binding new_b on inst:
-- {id, name, instance, created_at, credential_type, replace = may delete, why}.
function M.judge(i, inst, b, new_b, ctype)
  local e = { id = b.id, name = b.name, instance = i.name, created_at = b.created_at,
    credential_type = b.credential_type, ours = b.ours or nil, replace = false }
  if i.id ~= inst.id then
    e.why = "on another instance ('" .. tostring(i.name) .. "')" .. (i.generated and not i.ours
      and ", generated by SAP at provisioning" or "")
  elseif b.system then
    e.why = "named like <SID>_<client>_<sysno>: Cloud ALM made it for a managed system"
  elseif not b.ours then
    e.why = i.generated and not i.ours and "generated by SAP at provisioning"
      or "not made by calmbind (no label created_by: calmbind): made by hand or by another tool"
  elseif kind(b.credential_type) ~= kind(ctype) then
    e.why = "a key of another kind (" .. tostring(b.credential_type) .. "): another purpose"
  elseif not b.ready or b.state == "pending" or b.state == "failed" then
    e.why = "not ready (its last operation is " .. tostring(b.state) .. ")"
  elseif tostring(b.created_at or "") > tostring(new_b.created_at or "~") then
    e.why = "newer than the new key"
  else
    e.replace = true
    e.why = "an older key calmbind made on this instance"
  end
  return e
end

-- Every SAP Cloud ALM API binding of the subaccount (inv: calm.model.inventory's)
-- but the new one, judged.
function M.classify(inv, inst, new_b, ctype)
  local out = {}
  for _, i in ipairs(inv.instances or {}) do
    for _, b in ipairs(i.bindings or {}) do
      if b.id ~= new_b.id then out[#out + 1] = M.judge(i, inst, b, new_b, ctype) end
    end
  end
  return out
end

-- Deletes what the rule lets go (replace = true), marking each deleted.
function M.delete_old(c, list)
  for _, e in ipairs(list) do
    if e.replace then
      local ok, msg, code = c:delete("service_bindings", e.id, "deleting the old binding '" .. tostring(e.name) .. "'")
      if not ok then
        return nil, tostring(msg) .. " (the new key is verified and written; rerun rotate --delete-old, or delete "
          .. "the binding in the BTP cockpit)", code
      end
      e.deleted = true
    end
  end
  return true
end

-- The admin's steps once a new key is out: to_delete = old keys the rule
-- lets go, not deleted yet; deleted = old keys deleted; where = where they
-- are listed. The one advice text: rotate, get and fleet --command rotate.
function M.next_steps(to_delete, deleted, where, notes)
  local out = {
    "next steps:",
    "  1. upload the new key in Cloud ALM Landscape Management (Settings > SAP Cloud ALM Service Key): it "
      .. "holds one key per tenant, and deleting a binding in BTP does not delete the uploaded copy;",
    "  2. in /SDF/ALM_SETUP on every managed system and client of the transport track, paste the new key "
      .. "(or its fields: calmbind export --format alm-setup);",
  }
  if to_delete > 0 then
    -- rotate --if-older-than within the window creates no key, so with
    -- --delete-old it deletes exactly these and nothing else
    out[#out + 1] = string.format("  3. then delete the %d old binding%s %s: in the BTP cockpit, or with calmbind "
      .. "rotate --if-older-than DURATION --delete-old, DURATION longer than the new key's age (it then creates no "
      .. "key and deletes exactly these).", to_delete, to_delete == 1 and "" or "s", where)
  end
  if deleted > 0 then
    out[#out + 1] = string.format("note: the %d deleted key%s stopped working at once: systems still using %s fail "
      .. "until steps 1 and 2 are done.", deleted, deleted == 1 and "" or "s", deleted == 1 and "it" or "them")
  end
  for _, n in ipairs(notes or {}) do out[#out + 1] = "note: " .. n end
  return out
end

-- Counts of a judged list: deleted, to delete, kept.
function M.tally(list)
  local deleted, todo, kept = 0, 0, 0
  for _, e in ipairs(list or {}) do
    if e.deleted then deleted = deleted + 1 elseif e.replace then todo = todo + 1 else kept = kept + 1 end
  end
  return deleted, todo, kept
end

-- Instance-secret keys calmbind made that are kept: removing their binding
-- would revoke nothing (the secret is the instance's).
function M.secret_notes(list)
  local names = {}
  for _, e in ipairs(list) do
    if e.ours and e.credential_type == "instance-secret" then names[#names + 1] = "'" .. tostring(e.name) .. "'" end
  end
  if #names == 0 then return {} end
  return { table.concat(names, ", ") .. (#names == 1 and " is an instance-secret key" or " are instance-secret keys")
    .. ": the secret is shared by all keys of its instance, so removing the binding does not revoke it "
    .. "(removing the instance, or instance secrets from its credential-types, does). It is an old key: since "
    .. "19 January 2026 new bindings get a binding secret of their own (calmbind rotate replaces it)." }
end

-- advise(ctx, list, o): what became of the other keys and the admin's next
-- steps, on stderr. o = {head = first line, always = print the steps also
-- when no other key exists}.
function M.advise(ctx, list, o)
  local say = function(s) log.info("%s", s) end
  if #list == 0 and not o.always then return end
  if o.head then say(o.head) end
  if #list > 0 then
    local deleted, todo, kept = M.tally(list)
    local parts = {}
    if deleted > 0 then parts[#parts + 1] = deleted .. " deleted" end
    if todo > 0 then parts[#parts + 1] = todo .. " to delete once the new key is in use" end
    if kept > 0 then parts[#parts + 1] = kept .. " kept" end
    say(string.format("%d other SAP Cloud ALM API key%s of the subaccount (%s):", #list, #list == 1 and "" or "s",
      table.concat(parts, ", ")))
    report.describe_others(list, say)
  end
  local deleted, todo = M.tally(list)
  for _, l in ipairs(M.next_steps(todo, deleted, "listed above as to delete", M.secret_notes(list))) do say(l) end
end

return M
