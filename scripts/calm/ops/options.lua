-- calm.ops.options: the options of get and plan, checked before any request.
--
--   spec = options.spec("get" | "plan")        -- for calm.lib.cli.parse
--   ok | nil, msg, code = options.validate(opts, mode)
--   key_table | nil, msg, code = options.load_json_key(opts, "sm-key" | "cis-key")
--   ok | nil, msg, code = options.connect(ctx)  -- ctx.sm, ctx.cis_keys from the key files
--   o = options.plan_options(ctx)              -- for calm.model.evidence and .plan
local policy = require "calm.policy.load"
local evidence = require "calm.model.evidence"
local parameters = require "calm.model.parameters"
local names = require "calm.model.names"
local key_util = require "calm.key.util"
local key_k8s = require "calm.key.k8s"
local cf = require "calm.btp.cf"
local cisplan = require "calm.btp.cisplan"
local cli = require "calm.lib.cli"
local fs = require "calm.fs"
local input = require "calm.lib.input"
local report = require "calm.ops.report"
local sm = require "calm.btp.sm"
local M = {}

local function getenv(name)
  local ok, v = pcall(function() return os.getenv(name) end)
  if ok and v ~= "" then return v end
  return nil
end
M.getenv = getenv

function M.spec(command)
  local get = command == "get"
  local spec = {
    command = command,
    summary = get
      and "Decide the provisioning-date path, find or create the SAP Cloud ALM API instance and binding, export the key."
      or "Same decision as get, read-only: print what get would find, create, update or leave alone, and why.",
    options = {
      ["sm-key"] = { arg = "FILE", env = "CALMBIND_SM_KEY", key_env = true,
        help = "Service Manager binding (plan subaccount-admin); - reads standard input; the variable may "
          .. "hold the key's JSON" },
      ["cis-key"] = { arg = "FILE", env = "CALMBIND_CIS_KEY", key_env = true,
        help = "Cloud Management service (cis) key, plan central (subaccount date, entitlement assignment) "
          .. "or local (subscription date)" },
      ["cis-key2"] = { arg = "FILE", env = "CALMBIND_CIS_KEY2", key_env = true,
        help = "a second cis key, of the other plan" },
      subaccount = { arg = "GUID", help = "the SAP Cloud ALM subaccount (default: the --sm-key's)" },
      provisioned = { arg = "DATE", default = "auto", help = "YYYY-MM-DD, or auto: detect from evidence" },
      scenario = { arg = "S", choices = { "deployment", "monitoring" }, default = "deployment",
        help = "deployment needs the imp-cdm-feature-* authorities" },
      ["instance-name"] = { arg = "N", help = "instance to create or adopt (to create: <= 32 of letters, digits, -, _)" },
      ["update-instance"] = { arg = "N", help = "allow adding the authorities to this instance although calmbind "
        .. "did not create it (replaces its xs-security authorities)" },
      ["binding-name"] = { arg = "N", help = "binding to create or adopt (not <SID>_<client>_<sysno>)" },
      runtime = { arg = "R", choices = { "sm", "cf" }, default = "sm",
        help = "sm (\"Other\" environment) or cf (legacy Cloud Foundry space)" },
      ["cf-api"] = { arg = "URL", help = "Cloud Foundry API endpoint (with --runtime cf)" },
      ["cf-space"] = { arg = "GUID", help = "Cloud Foundry space GUID (with --runtime cf)" },
      ["cf-origin"] = { arg = "ORIGIN", env = "CF_ORIGIN",
        help = "identity provider of the Cloud Foundry user (origin key, as cf login --origin)" },
      ["credential-type"] = { arg = "T", choices = { "binding-secret", "x509" }, default = "binding-secret",
        help = "kind of key to create" },
      ["x509-validity"] = { arg = "N", help = "validity of a new x509 key in days, N or Nd, 1-30 (XSUAA's "
        .. "limit; default 7): rotate the key (calmbind rotate) before it expires" },
      report = { arg = "FILE", help = "write a JSON run report there (no secrets)" },
    },
  }
  if get then
    spec.options.out = { arg = "FILE", help = "write the key there (mode 0600, atomic) instead of stdout" }
    spec.options.format = { arg = "F", choices = key_util.FORMATS,
      default = "json", help = "json (bare key), alm-setup, env (sh), dotenv (docker --env-file, $GITHUB_ENV), vcap "
        .. "(@sap/xsenv, SAP Cloud SDK), k8s-secret (Kubernetes Secret)" }
    spec.options["secret-name"] = key_k8s.OPTIONS["secret-name"]
    spec.options.namespace = key_k8s.OPTIONS.namespace
    spec.options["no-verify"] = { flag = true,
      help = "write the key without checking it live first (token, scopes, zone)" }
    spec.options.verify = { flag = true, help = "the default: verify the key before writing it" }
    spec.options["show-secrets"] = { flag = true, allow_secret_name = true,
      help = "allow printing the key to a terminal" }
  end
  if not get then
    spec.options.json = { flag = true, help = "print the run report (JSON, no secrets) instead of text" }
    spec.options["detailed-exitcode"] = { flag = true,
      help = "exit 7 when get would change something, 0 when it would only read" }
  end
  return spec
end

-- The names and values get and plan act on: the policy (opts.policy, else
-- the override directories' policy.lua), the date, the instance, binding and
-- x509 options. Returns true | nil, msg, code.
local function check_values(opts)
  local L = function(name) return cli.label(opts, name) end
  -- the policy is read now: a mistake in the file is bad input, found
  -- before any request (calm.policy.load keeps it for the run)
  local p, perr, pcode = policy.load(opts.policy)
  if not p then return nil, perr, pcode end
  if opts.provisioned ~= "auto" then
    local ok, msg, code = evidence.check_date(opts.provisioned, L("provisioned"))
    if not ok then return nil, msg, code end
  end
  local upd = opts["update-instance"]
  if upd then
    local ok, msg, code = names.check_instance_ref(upd, L("update-instance"))
    if not ok then return nil, msg, code end
    if opts["instance-name"] and opts["instance-name"] ~= upd then
      return nil, L("update-instance") .. " " .. upd .. " and " .. L("instance-name") .. " " .. opts["instance-name"]
        .. " name different instances; " .. L("update-instance") .. " alone is enough", "USAGE"
    end
    opts["instance-name"] = upd
  end
  if opts["instance-name"] then
    local ok, msg, code = names.check_instance_ref(opts["instance-name"], L("instance-name"))
    if not ok then return nil, msg, code end
  end
  if opts["x509-validity"] then
    if opts["credential-type"] ~= "x509" then
      return nil, L("x509-validity") .. " needs " .. L("credential-type") .. " x509", "USAGE"
    end
    local v, msg, code = parameters.parse_validity(opts["x509-validity"], L("x509-validity"))
    if not v then return nil, msg, code end
    opts.x509_validity = v
  end
  if opts.format then
    -- plan has no --format: only get's and rotate's options reach here
    local ok, msg, code = key_k8s.check_options(opts)
    if not ok then return nil, msg, code end
  end
  if opts.verify and opts["no-verify"] then
    return nil, L("verify") .. " and " .. L("no-verify") .. " contradict each other", "USAGE"
  end
  if opts["binding-name"] then
    return names.check_binding_name(opts["binding-name"], L("binding-name"))
  end
  return true
end

-- The runtime's own options: --runtime cf needs its endpoint, space and
-- login; sm needs the Service Manager key. Returns true | nil, msg, code.
local function check_runtime(opts)
  local L = function(name) return cli.label(opts, name) end
  if opts.runtime == "cf" then
    if not opts["cf-api"] then return nil, L("runtime") .. " cf needs " .. L("cf-api") .. " URL", "USAGE" end
    if not opts["cf-space"] then return nil, L("runtime") .. " cf needs " .. L("cf-space") .. " GUID", "USAGE" end
    local login, lmsg, lcode = cf.login_from_env(opts)
    if not login then return nil, lmsg, lcode end
    if opts["credential-type"] == "x509" then
      return nil, L("credential-type") .. " x509 is not available with " .. L("runtime")
        .. " cf (calmbind makes CF keys with the broker's default secret only)", "USAGE"
    end
  else
    if opts["cf-api"] or opts["cf-space"] then
      return nil, L("cf-api") .. " and " .. L("cf-space") .. " need " .. L("runtime") .. " cf", "USAGE"
    end
    if not opts["sm-key"] then
      if L("sm-key") ~= "--sm-key" then
        return nil, "no " .. L("sm-key") .. " (the Service Manager binding, plan subaccount-admin)", "USAGE"
      end
      return nil, "missing --sm-key FILE or CALMBIND_SM_KEY (the Service Manager binding, plan subaccount-admin)", "USAGE"
    end
  end
  return true
end

-- What a request needs or leaves behind, checked before the first one: the
-- subaccount GUID, --cacert, --report, and for get where the key goes
-- (--out's directory, a terminal without --show-secrets).
local function check_files(opts, mode)
  local L = function(name) return cli.label(opts, name) end
  if opts.subaccount and not input.is_guid(opts.subaccount) then
    return nil, L("subaccount") .. " must be a GUID (8-4-4-4-12 hexadecimal digits, as the cockpit shows "
      .. "the subaccount ID)", "USAGE"
  end
  if opts.cacert then
    local ok, msg, code = input.check_cacert(opts.cacert, L("cacert"))
    if not ok then return nil, msg, code end
  end
  local inputs = { { L("sm-key"), opts["sm-key"] }, { L("cis-key"), opts["cis-key"] },
    { L("cis-key2"), opts["cis-key2"] }, { L("cacert"), opts.cacert } }
  if opts.report == "-" then
    if mode == "get" and (not opts.out or opts.out == "-") then
      return nil, L("report") .. " - and the key would both go to standard output; write the key with --out FILE",
        "USAGE"
    end
    if opts.json then return nil, L("report") .. " - and --json both print the report; give one", "USAGE" end
  elseif opts.report and not report.is_std(opts.report) then
    local ok, msg, code = input.check_output(L("report"), opts.report)
    if ok then ok, msg, code = input.check_not_input(L("report"), opts.report, inputs) end
    if not ok then return nil, msg, code end
  end
  if mode == "get" then
    -- where the key goes is checked now, not after the instance and binding exist
    local out = opts.out
    if out and out ~= "-" then
      local ok, msg, code = input.check_output(L("out"), out)
      inputs[#inputs + 1] = { L("report"), opts.report }
      if ok then ok, msg, code = input.check_not_input(L("out"), out, inputs) end
      if not ok then return nil, msg, code end
    elseif not opts["show-secrets"] and fs.isatty("stdout") then
      return nil, "refusing to print the key's secret to a terminal: use --out FILE, "
        .. "pipe the output, or add --show-secrets", "USAGE"
    end
  end
  return true
end

-- Checks every option before any request is sent. mode "get" also checks
-- where the key goes (--out's directory, a terminal without --show-secrets).
function M.validate(opts, mode)
  local ok, msg, code = check_values(opts)
  if ok then ok, msg, code = check_runtime(opts) end
  if ok then ok, msg, code = check_files(opts, mode) end
  if not ok then return nil, msg, code end
  return true
end

-- The clients the key options name, each key file read before any request:
-- ctx.sm (--sm-key) and ctx.cis_keys (cis keys of either plan; gather tells
-- which does what, calm.btp.cisplan). Messages name a key as given (CALMBIND_SM_KEY
-- or --sm-key); every request is listed in ctx.report.actions.
-- Returns true | nil, msg, code.
function M.connect(ctx)
  local opts = ctx.opts
  local on_action = function(a) ctx.report.actions[#ctx.report.actions + 1] = a end
  if opts["sm-key"] then
    local t, msg, code = M.load_json_key(opts, "sm-key")
    if not t then return nil, msg, code end
    local c
    c, msg, code = sm.from_key(t, { cacert = opts.cacert, on_action = on_action,
      what = "the Service Manager key (" .. input.source_name(opts["sm-key"]) .. ")" })
    if not c then return nil, msg, code end
    ctx.sm = c
  end
  local label = cli.label
  local keys, msg, code = cisplan.load_keys({ { label(opts, "cis-key"), opts["cis-key"] },
    { label(opts, "cis-key2"), opts["cis-key2"] } }, { cacert = opts.cacert, on_action = on_action })
  if not keys then return nil, msg, code end
  ctx.cis_keys = keys
  return true
end

-- What the decision (calm.model.evidence.decide) and the planner
-- (calm.model.plan.steps) are told about this run: one table for both, so
-- the key the decision adopts is the one the plan's names allow.
function M.plan_options(ctx)
  local opts = ctx.opts
  return {
    policy = ctx.policy, tenant = ctx.tenant,
    scenario = opts.scenario, instance_name = opts["instance-name"], binding_name = opts["binding-name"],
    runtime = opts.runtime, credential_type = opts["credential-type"],
    cis = ctx.cis ~= nil and not ctx.cis_failed, subaccount = opts.subaccount,
    cis_given = opts["cis-key"] ~= nil or opts["cis-key2"] ~= nil,
    update_instance = opts["update-instance"], x509_validity = opts.x509_validity,
  }
end

-- Reads a key file (calm.lib.input: not JSON, or a key of the wrong kind, is
-- INPUT); a binding envelope {credentials: {...}} is unwrapped.
function M.load_json_key(opts, name)
  local label = cli.label(opts, name) -- CALMBIND_SM_KEY or --sm-key, as given
  return input.load_key(opts[name], name == "sm-key" and "sm" or "cis", label)
end

return M
