-- calm.ops.rotate: replaces the SAP Cloud ALM API key of one tenant.
--
--   rotate.spec()            -- the options (calm.lib.cli spec)
--   rotate.validate(opts)    -- true | nil, msg, code (before any request)
--   rotate.run(opts [, sink])-- exit status | nil, msg, code; sink.report
--
-- On the instance `get` would adopt: create a new binding (labelled
-- created_by: calmbind), verify its key live, and only then write it. A key
-- that fails verification is never written: its binding is deleted again and
-- the old key file stays as it was (exit 6). The bindings the new key
-- replaces are listed; with --delete-old the older ones calmbind itself made
-- on the same instance for the same credential type are deleted (calm.ops.rotate_rules
-- says which: never SAP's generated key, <SID>_<client>_<sysno> or hand-made ones).
local evidence = require "calm.model.evidence"
local inventory = require "calm.model.inventory"
local names = require "calm.model.names"
local planner = require "calm.model.plan"
local gather = require "calm.ops.gather"
local options = require "calm.ops.options"
local key_format = require "calm.key.format"
local key_parse = require "calm.key.parse"
local key_util = require "calm.key.util"
local key_verify = require "calm.key.verify"
local M = {}

function M.spec()
  local runner = require "calm.ops.runner"
  local s = runner.spec("get")
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
    help = "delete the older bindings calmbind made on the instance (the old key stops working at once)" }
  return s
end

function M.validate(opts)
  local runner = require "calm.ops.runner"
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.runtime = "sm"
  o["binding-name"] = nil
  local ok, msg, code = runner.validate(o, "get")
  if not ok then return nil, msg, code end
  opts.x509_validity = o.x509_validity
  if opts["binding-name"] then
    local paths = require "calm.model.paths"
    ok, msg, code = names.check_binding_name(opts["binding-name"])
    if not ok then return nil, msg, code end
  end
  return true
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
  ctx.report.decision = { path = d.path, reasons = require("calm.lib.json").array(d.reasons or {}) }
  local steps = planner.steps(d, ev.inventory, o)
  if steps.usage then return nil, steps.usage, "USAGE" end
  if steps.manual then return nil, steps.manual, "MANUAL" end
  local si = steps.instance
  if not si or si.op ~= "adopt" or steps.wait_for then
    return nil, string.format("nothing to rotate yet: calmbind get would first %s instance '%s' (%s); "
      .. "run calmbind get, then rotate", si and si.op or "create", tostring(si and si.name), si and si.why or "?"),
      "MANUAL"
  end
  local inst = ev.inventory.by_id[si.id]
  if inst.cf_owned then
    return nil, "instance '" .. tostring(inst.name) .. "' is owned by Cloud Foundry: rotate its service key "
      .. "with the cf CLI (cf create-service-key, then cf delete-service-key)", "MANUAL"
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
    require("calm.log").info("rotate: the new key is %s, as the calmbind key%s it replaces (--credential-type to choose)",
      ctx.opts["credential-type"], kinds["binding-secret"] and "s" or "")
  end
end

-- ------------------------------------------------------------ the key --

local INSTANCE_SECRET = "the instance issues instance secrets: every binding of it shares one secret, so a "
  .. "new binding is no new secret and deleting the old one revokes nothing; rotate on an instance with "
  .. "binding secrets (calmbind get --instance-name NEW creates one), then move the systems to it"

-- Refuses before creating anything when a binding shows instance secrets.
local function check_kind(inst)
  for _, b in ipairs(inst.bindings or {}) do
    if b.credential_type == "instance-secret" and not b.system then
      return nil, "instance '" .. tostring(inst.name) .. "': " .. INSTANCE_SECRET, "MANUAL"
    end
  end
  return true
end

local function new_name(ctx, inst)
  local paths = require "calm.model.paths"
  local codec = require "calm.codec"
  local base = ctx.opts["binding-name"] or names.default_binding_name(inst.name, ctx.opts["credential-type"])
  local name = base .. "-" .. os.date("!%Y%m%d%H%M%S")
  if inventory.find_binding(inst, name) then name = name .. "-" .. codec.random_hex(2) end
  return name
end

local function create(ctx, inst)
  local paths = require "calm.model.paths"
  local log = require "calm.log"
  local c = ctx.sm
  local name = new_name(ctx, inst)
  local json = require "calm.lib.json"
  local labels = { [inventory.CREATED_BY] = json.array { inventory.TOOL } }
  if ctx.opts.scenario ~= "monitoring" then labels[inventory.AUTH_LABEL] = json.array { inventory.AUTH_VALUE } end
  log.info("rotate: creating binding '%s' on instance '%s' (%s)", name, inst.name, inst.id)
  local b, msg, code = c:create_binding { name = name, service_instance_id = inst.id,
    parameters = paths.binding_parameters { credential_type = ctx.opts["credential-type"],
      validity = ctx.opts.x509_validity }, labels = labels }
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
  local log = require "calm.log"
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

-- Verifies and writes; returns the key | nil, msg, code (rolled back).
local function verify_and_write(ctx, b)
  local log = require "calm.log"
  local opts = ctx.opts
  if type(b.credentials) ~= "table" then return roll_back(ctx, b, "the new binding has no credentials", "API") end
  local k, msg, code = key_parse.from_value(b.credentials, "new binding '" .. b.name .. "'")
  if not k then return roll_back(ctx, b, msg, code) end
  if k.uaa and k.uaa["credential-type"] == "instance-secret" then
    return roll_back(ctx, b, INSTANCE_SECRET, "MANUAL")
  end
  if opts["credential-type"] == "x509" and not (k.uaa and key_util.is_x509(k.uaa)) then
    return roll_back(ctx, b, "the new key is a " .. tostring(k.uaa and k.uaa["credential-type"])
      .. " key, not x509: the broker ignored the x509 parameters", "API")
  end
  local r
  r, msg, code = key_verify.verify(k, { scenario = opts.scenario, cacert = opts.cacert })
  if not r then
    if code == "AUTH" then code = "VERIFY" end
    return roll_back(ctx, b, "the new key does not work: " .. tostring(msg), code)
  end
  local json = require "calm.lib.json"
  ctx.report.checks[#ctx.report.checks + 1] = { name = "verify", ok = r.ok, problems = json.array(r.problems),
    scopes = json.array(r.scopes) }
  if not r.ok then
    return roll_back(ctx, b, "the new key failed verification: " .. table.concat(r.problems, "; "), "VERIFY")
  end
  log.info("%s", key_verify.verify_text(r, k.source))
  local ok, wmsg, wcode = key_format.export(k, { format = opts.format, out = opts.out, show_secrets = opts["show-secrets"],
    name = b.name, binding_name = b.name })
  if not ok then return roll_back(ctx, b, wmsg, wcode) end
  return k
end

-- ----------------------------------------------------------------- run --

local function run_inner(ctx)
  local rules = require "calm.ops.rotate_rules"
  local ok, msg, code = require("calm.ops.runner").connect(ctx)
  if not ok then return nil, msg, code end
  local inst, inv
  inst, inv, code = target_instance(ctx)
  msg = inv
  if not inst then return nil, msg, code end
  ctx.result.instance_id, ctx.result.instance_name = inst.id, inst.name
  ok, msg, code = check_kind(inst)
  if not ok then return nil, msg, code end
  keep_kind(ctx, inst)
  local b, bmsg, bcode = create(ctx, inst)
  if not b then return nil, bmsg, bcode end
  ctx.result.binding_id, ctx.result.binding_name = b.id, b.name
  local k
  k, msg, code = verify_and_write(ctx, b)
  if not k then return nil, msg, code end
  ctx.result.credential_type = k.uaa and k.uaa["credential-type"]
  local replaced = rules.classify(inv, inst, b, ctx.opts["credential-type"])
  ctx.report.replaced = replaced
  if ctx.opts["delete-old"] then
    ok, msg, code = rules.delete_old(ctx.sm, replaced)
    if not ok then return nil, msg, code end
  end
  rules.tell(ctx, inst, b, replaced)
  return 0
end

function M.run(opts, sink)
  local ok, msg, code = M.validate(opts)
  if not ok then return nil, msg, code end
  local json = require "calm.lib.json"
  local ctx = { opts = opts, result = {},
    report = { tool = "calmbind", command = "rotate", report_version = 1, actions = {}, checks = {} } }
  if sink then sink.report = ctx.report end
  local status, rmsg, rcode = run_inner(ctx)
  local exit = require "calm.lib.exit"
  local r = ctx.result
  ctx.report.result = { ok = status == 0, exit = status or exit.status_for(rcode),
    error = status == nil and require("calm.log").redact(tostring(rmsg)) or nil, code = rcode,
    instance_id = r.instance_id, instance_name = r.instance_name, binding_id = status and r.binding_id or nil,
    binding_name = status and r.binding_name or nil, credential_type = r.credential_type, out = opts.out }
  if opts.report then
    local rep = ctx.report
    rep.actions, rep.checks = json.array(rep.actions), json.array(rep.checks)
    if rep.replaced then rep.replaced = json.array(rep.replaced) end
    local w, wmsg = require("calm.fs").write_private(opts.report,
      json.pretty(rep, { "tool", "command", "result", "decision", "replaced", "actions", "checks" }) .. "\n")
    if not w then require("calm.log").warn("cannot write the report %s: %s", opts.report, tostring(wmsg)) end
  end
  if status == nil then return nil, rmsg, rcode end
  return status
end

return M
