-- calm.ops.rotate: replaces the SAP Cloud ALM API key of one tenant.
--
--   rotate.spec()            -- the options (calm.lib.cli spec)
--   rotate.validate(opts)    -- true | nil, msg, code (before any request)
--   rotate.run(opts [, sink])-- exit status | nil, msg, code; sink.report; with
--                            -- sink.keep_plan a --dry-run's text in sink.plan_text
--
-- On the instance `get` would adopt: create a new binding (labelled
-- created_by: calmbind), verify its key live, and only then write it. A key
-- that fails verification is never written: its binding is deleted again and
-- the old key file stays as it was (exit 6). With a rule (--if-older-than,
-- --if-expires-within: calm.model.rotation) a key calmbind made recently enough is verified and
-- written instead, and nothing is created: a rerun or a retried job within
-- the window is a no-op. --dry-run tells what a run would create and delete
-- and changes nothing. The other keys are judged by calm.ops.deliver's one
-- may-delete rule (never SAP's generated key, <SID>_<client>_<sysno> or
-- hand-made ones); --delete-old deletes what it lets go, after --yes or a y
-- at the terminal (calm.ops.rotate_old). The key goes through the same
-- delivery as get's (calm.ops.deliver), the report through the same writer
-- (calm.ops.report). The run's policy (calm.policy.load, as for get) names
-- and labels the new binding and decides which instance get would adopt.
local policy = require "calm.policy.load"
local evidence = require "calm.model.evidence"
local inventory = require "calm.model.inventory"
local names = require "calm.model.names"
local parameters = require "calm.model.parameters"
local planner = require "calm.model.plan"
local rotation = require "calm.model.rotation"
local deliver = require "calm.ops.deliver"
local gather = require "calm.ops.gather"
local options = require "calm.ops.options"
local report = require "calm.ops.report"
local rotate_old = require "calm.ops.rotate_old"
local cli = require "calm.lib.cli"
local codec = require "calm.codec"
local json = require "calm.lib.json"
local log = require "calm.log"
local M = {}

function M.spec()
  local s = options.spec("get")
  s.command = "rotate"
  s.summary = "Replace the key: new binding, verified, written; old calmbind-made bindings deleted only with --delete-old."
  s.options.runtime = nil
  s.options["cf-api"], s.options["cf-space"] = nil, nil
  s.options.verify, s.options["no-verify"] = nil, nil -- rotate always verifies
  s.options["update-instance"] = nil                   -- rotate changes no instance
  s.options["instance-name"] = { arg = "N", help = "the instance whose key to replace (default: the one get adopts)" }
  s.options["credential-type"] = { arg = "T", choices = { "binding-secret", "x509" },
    help = "kind of the new key (default: the kind of the calmbind key it replaces; binding-secret if none)" }
  s.options["binding-name"] = { arg = "N", help = "name of the new binding (default <instance>-key-<UTC time>)" }
  s.options["delete-old"] = { flag = true,
    help = "delete the older bindings calmbind made on the instance (the old key stops working at once); "
      .. "asks first on a terminal, needs --yes where there is none" }
  s.options.yes = { flag = true, help = "with --delete-old: delete without asking (a CI job has no terminal to ask on)" }
  s.options["if-older-than"] = { arg = "DURATION", duration = true, min_exclusive = 0,
    help = "rotate only when calmbind's newest key on the instance is this old (90, 90s, 10m, 1h, 7d); a younger "
      .. "one is verified and written instead and nothing is created, so a rerun within the window is a no-op" }
  s.options["if-expires-within"] = { arg = "DURATION", duration = true, min_exclusive = 0,
    help = "rotate only when calmbind's newest key on the instance expires within this time (an x509 key's "
      .. "certificate; 7d, 36h); a secret key does not expire, so it is kept; with --if-older-than either rule rotates" }
  s.options["dry-run"] = { flag = true,
    help = "print what rotate would create and delete (stdout); change nothing, write no key" }
  s.options["detailed-exitcode"] = { flag = true,
    help = "with --dry-run: exit 7 when rotate would change something, 0 when it would not" }
  return s
end

function M.validate(opts)
  -- rotate works on Service Manager only; it checks as get checks
  opts.runtime = "sm"
  if opts["detailed-exitcode"] and not opts["dry-run"] then
    return nil, cli.label(opts, "detailed-exitcode") .. " is for --dry-run (it tells whether rotate would change "
      .. "something)", "USAGE"
  end
  -- a dry run writes no key: where it would go is not its business
  return options.validate(opts, opts["dry-run"] and "plan" or "get")
end

-- The instance get would adopt: the one get's decision and plan adopt, with
-- rotate's --binding-name left out (it names the new binding, not one to
-- adopt). Returns instance, inventory | nil, msg, code.
local function target_instance(ctx)
  local ev, msg, code = gather.gather(ctx)
  if not ev then return nil, msg, code end
  local o = options.plan_options(ctx)
  o.binding_name, o.runtime = nil, "sm"
  local d = evidence.decide(ctx.opts.provisioned, ev, o)
  ctx.report.decision = { path = d.path, reasons = json.array(d.reasons or {}) }
  local steps = planner.steps(d, ev.inventory, o)
  if steps.usage then return nil, steps.usage, "USAGE" end
  local si = steps.instance
  local inst = si and si.id and ev.inventory.by_id[si.id]
  if inst and inst.owner == "cf" then
    -- a new CF key has a binding secret of its own (XSUAA's default since
    -- 19 January 2026), so a new key and deleting the old one is a rotation;
    -- rotate has no --runtime cf, get makes the key
    return nil, "instance '" .. tostring(inst.name) .. "' is owned by Cloud Foundry: make a new service key "
      .. "there (calmbind get --runtime cf --cf-api URL --cf-space GUID --binding-name NEW, or cf create-service-key: "
      .. "it gets a binding secret of its own), move the systems to it, then delete the old key (cf "
      .. "delete-service-key; an old instance-secret key's secret stays valid while the instance allows instance "
      .. "secrets)", "MANUAL"
  end
  if steps.manual then return nil, steps.manual, "MANUAL" end
  if not si or si.op ~= "adopt" or steps.wait_for then
    return nil, string.format("nothing to rotate yet: calmbind get would first %s instance '%s' (%s); "
      .. "run calmbind get, then rotate", si and si.op or "create", tostring(si and si.name), si and si.why or "?"),
      "MANUAL"
  end
  if inventory.foreign(ev.inventory, inst) then
    return nil, "instance '" .. tostring(inst.name) .. "' is owned by " .. tostring(inst.owner_name or inst.owner)
      .. ": rotate its key where it is managed", "MANUAL"
  end
  return inst, ev.inventory
end

-- Without --credential-type the new key is of the kind of the calmbind key
-- it replaces: x509 when calmbind's keys on the instance are all x509.
local function keep_kind(ctx, inst)
  if ctx.opts["credential-type"] then return end
  local kinds = {}
  for _, b in ipairs(inst.bindings or {}) do
    if b.ours and not b.system then kinds[b.credential_type == "x509" and "x509" or "binding-secret"] = true end
  end
  ctx.opts["credential-type"] = kinds.x509 and not kinds["binding-secret"] and "x509" or "binding-secret"
  if kinds.x509 then
    log.info("rotate: the new key is %s, as the calmbind key%s it replaces (--credential-type to choose)",
      ctx.opts["credential-type"], kinds["binding-secret"] and "s" or "")
  end
end

-- ------------------------------------------------------------ the key --

-- Old instance-secret keys: since 19 January 2026 XSUAA gives every new
-- binding a binding secret (or x509), so the new binding replaces them
-- with a key of its own; a broker that still answers with an instance
-- secret is refused by calm.ops.deliver (refuse_instance_secret).
local function tell_instance_secrets(inst)
  local names = {}
  for _, b in ipairs(inst.bindings or {}) do
    if b.credential_type == "instance-secret" and not b.system then names[#names + 1] = "'" .. tostring(b.name) .. "'" end
  end
  if #names == 0 then return end
  log.info("rotate: %s on instance '%s' %s: its secret is shared by every instance-secret key and "
    .. "stays valid while the instance allows instance secrets; since 19 January 2026 new bindings get a binding "
    .. "secret of their own, so the new key replaces %s", table.concat(names, ", "), tostring(inst.name),
    #names == 1 and "is an old instance-secret key" or "are old instance-secret keys", #names == 1 and "it" or "them")
end

-- What the policy's hooks are told about this run.
local function context(ctx)
  return { scenario = ctx.opts.scenario, runtime = "sm", credential_type = ctx.opts["credential-type"],
    tenant = ctx.tenant }
end

local function new_name(ctx, inst)
  local base = ctx.opts["binding-name"] or ctx.policy:binding_name(context(ctx), inst)
  local name = base .. "-" .. os.date("!%Y%m%d%H%M%S")
  if inventory.find_binding(inst, name) then name = name .. "-" .. codec.random_hex(2) end
  return name
end

local function create(ctx, inst)
  local c = ctx.sm
  local name = new_name(ctx, inst)
  -- the labels get gives a binding: the policy's next to calmbind's own
  -- calmbind_authorities: what the instance has, so what the new key carries
  local labels = names.created_labels(ctx.policy:labels(context(ctx), { instance = inst, binding = { name = name } }),
    ctx.opts.scenario ~= "monitoring" and (inventory.authorities_of(inst) or inventory.LEGACY_AUTHORITIES) or nil)
  log.info("rotate: creating binding '%s' on instance '%s' (%s)", name, inst.name, inst.id)
  local b, msg, code = c:create_binding { name = name, service_instance_id = inst.id,
    parameters = parameters.binding_parameters { credential_type = ctx.opts["credential-type"],
      validity = ctx.opts.x509_validity }, labels = names.sm_labels(labels) }
  if not b then return nil, msg, code end
  if type(b.credentials) ~= "table" then
    -- without its credentials the new binding is rolled back by the caller
    local got = c:get("service_bindings", b.id)
    if got then b = got end
  end
  b.name = b.name or name
  return b
end

-- Deletes the new binding after a failed check; the message says what
-- happened to it.
local function roll_back(ctx, b, why, code)
  local ok, msg = ctx.sm:delete("service_bindings", b.id, "deleting the new binding '" .. b.name .. "'")
  local old = ctx.opts.out and ("; " .. ctx.opts.out .. " still holds the old key") or ""
  if ok then
    log.info("rotate: deleted the new binding '%s' again", b.name)
    return nil, why .. "; the new binding '" .. b.name .. "' was deleted again" .. old, code
  end
  return nil, string.format("%s; deleting the new binding failed too (%s): binding '%s' (%s) is left behind, "
    .. "delete it by hand (BTP cockpit, or btp delete services/binding --name %s)%s", why, tostring(msg), b.name,
    tostring(b.id), b.name, old), code
end

-- The new binding's key through the one delivery (check, verify, write);
-- any failure rolls the new binding back. Returns the key | nil, msg, code.
local function deliver_new(ctx, b, inst)
  local fail = function(msg, code) return roll_back(ctx, b, msg, code) end
  if type(b.credentials) ~= "table" then return fail("the new binding has no credentials", "API") end
  -- the authorities calmbind gave the instance reach every key made after them
  return deliver.key(ctx, b.credentials, { what = "new binding '" .. b.name .. "'", refuse_instance_secret = true,
    refused_code = "VERIFY", on_fail = fail,
    authorities = ctx.opts.scenario ~= "monitoring" and inventory.authorities_of(inst) or nil })
end

-- ------------------------------------------------------------- the rules --

-- --if-expires-within reads the newest key's certificate: its credentials,
-- fetched when the listing did not carry them (one GET).
local function newest_credentials(ctx, inst)
  if ctx.opts["if-expires-within"] == nil then return true end
  local b = rotation.newest(inst, ctx.opts["credential-type"])
  if not b or type(b.credentials) == "table" then return true end
  local got, msg, code = ctx.sm:get("service_bindings", b.id)
  if not got then return nil, msg, code end
  b.credentials = got.credentials
  return true
end

-- No rotation due: calmbind's newest key is delivered as get delivers a key
-- (verified, written) and nothing is created; --delete-old still deletes
-- what is older than it, so a retried rotate --delete-old finishes its job.
local function keep_newest(ctx, inst, inv, d)
  local b = d.newest
  local r = ctx.result
  r.binding_id, r.binding_name, r.created_binding = b.id, b.name, false
  local creds = b.credentials
  if type(creds) ~= "table" then
    local got, msg, code = ctx.sm:get("service_bindings", b.id)
    if not got then return nil, msg, code end
    creds = got.credentials
  end
  if type(creds) ~= "table" then return nil, "binding '" .. tostring(b.name) .. "' has no credentials", "API" end
  local k, msg, code = deliver.key(ctx, creds, { what = "binding '" .. tostring(b.name) .. "'", no_verify_hint = false,
    stale_hint = ": rotate without --if-older-than or --if-expires-within makes a new key" })
  if not k then return nil, msg, code end
  local list = deliver.classify(inv, inst, b, ctx.opts["credential-type"])
  ctx.report.replaced = list
  local ok
  ok, msg, code = rotate_old.settle(ctx, list)
  if not ok then return nil, msg, code end
  local where = ctx.opts.out and ctx.opts.out ~= "-" and ctx.opts.out or "standard output"
  rotate_old.tell(ctx, list, string.format("rotate: %s, so nothing was rotated (the key is verified and written to %s)",
    d.why, where))
  return 0
end

-- --dry-run: what a run would create and delete, on stdout (stderr when
-- --report - has it), or for fleet in sink.plan_text. Changes nothing.
local function dry_run(ctx, inst, inv, d)
  local opts = ctx.opts
  local lines = { "rotate --dry-run: no change made, no key written" }
  local ref = d.newest or {}
  if d.rotate then
    local labels = names.created_labels(ctx.policy:labels(context(ctx), { instance = inst, binding = {} }),
      opts.scenario ~= "monitoring")
    lines[#lines + 1] = string.format("would create: binding '%s-<UTC time>' on instance '%s' (%s), a %s key%s",
      ctx.opts["binding-name"] or ctx.policy:binding_name(context(ctx), inst), tostring(inst.name), tostring(inst.id),
      opts["credential-type"], d.why and (": " .. d.why) or "")
    lines[#lines + 1] = "  labels: " .. report.labels_text(labels)
    ref = {}
  else
    lines[#lines + 1] = "would create nothing: " .. d.why
  end
  local list = deliver.classify(inv, inst, ref, opts["credential-type"])
  ctx.report.replaced = list
  for _, l in ipairs(rotate_old.lines(list, "--delete-old would delete it", { delete = opts["delete-old"] })) do
    lines[#lines + 1] = l
  end
  local _, todo = deliver.tally(list)
  local changes = d.rotate or (opts["delete-old"] and todo > 0)
  ctx.report.dry_run = { changes = changes and true or false, rotate = d.rotate, why = d.why }
  local text = table.concat(lines, "\n") .. "\n"
  if ctx.sink and ctx.sink.keep_plan then ctx.sink.plan_text = text
  else (opts.report == "-" and io.stderr or io.stdout):write(text) end
  return changes and opts["detailed-exitcode"] and 7 or 0
end

-- ----------------------------------------------------------------- run --

local function run_inner(ctx)
  local ok, msg, code = options.connect(ctx)
  if not ok then return nil, msg, code end
  local inst, inv
  inst, inv, code = target_instance(ctx)
  msg = inv
  if not inst then return nil, msg, code end
  ctx.result.instance_id, ctx.result.instance_name = inst.id, inst.name
  tell_instance_secrets(inst)
  keep_kind(ctx, inst)
  ok, msg, code = newest_credentials(ctx, inst)
  if not ok then return nil, msg, code end
  local d = rotation.decide(inst, ctx.opts, os.time())
  ctx.report.rotation = { rotate = d.rotate, why = d.why, newest = d.newest and d.newest.name, age = d.age }
  if ctx.opts["dry-run"] then return dry_run(ctx, inst, inv, d) end
  if not d.rotate then return keep_newest(ctx, inst, inv, d) end
  if d.why then log.info("rotate: %s", d.why) end
  local b, bmsg, bcode = create(ctx, inst)
  if not b then return nil, bmsg, bcode end
  ctx.result.binding_id, ctx.result.binding_name, ctx.result.created_binding = b.id, b.name, true
  local k
  k, msg, code = deliver_new(ctx, b, inst)
  if not k then return nil, msg, code end
  local replaced = deliver.classify(inv, inst, b, ctx.opts["credential-type"])
  ctx.report.replaced = replaced
  ok, msg, code = rotate_old.settle(ctx, replaced)
  if not ok then return nil, msg, code end
  local where = ctx.opts.out and ctx.opts.out ~= "-" and ctx.opts.out or "standard output"
  rotate_old.tell(ctx, replaced, string.format("rotate: created key '%s' (binding %s) on instance '%s': verified "
    .. "and written to %s", b.name, b.id, inst.name, where), true)
  return 0
end

function M.run(opts, sink)
  local ok, msg, code = M.validate(opts)
  if not ok then return nil, msg, code end
  local p, pmsg, pcode = policy.load(opts.policy)
  if not p then return nil, pmsg, pcode end
  local ctx = { opts = opts, result = {}, policy = p, tenant = opts.tenant, sink = sink,
    report = { tool = "calmbind", command = "rotate", report_version = 1, actions = {}, checks = {}, policy = p.file } }
  if sink then sink.report = ctx.report end
  local status, rmsg, rcode = policy.protect(run_inner, ctx)
  local r = ctx.result
  report.finish(ctx, status, status == nil and log.redact(tostring(rmsg)) or nil, rcode,
    { out = opts.out, binding_id = status and r.binding_id or nil, binding_name = status and r.binding_name or nil,
      path = ctx.report.decision and ctx.report.decision.path })
  if opts.report then
    local w, wmsg, wcode = report.write(opts.report, ctx.report)
    if not w and status ~= nil then return nil, wmsg, wcode end
    if not w then log.error("%s", wmsg) end
  end
  if status == nil then return nil, rmsg, rcode end
  return status
end

return M
