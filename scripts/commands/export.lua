-- calmbind export FILE --format F [--out FILE] [--show-secrets]: converts a
-- service key (bare, in a binding, a {"credentials": ...} envelope,
-- VCAP_SERVICES or a Kubernetes Secret) to json | alm-setup | env | dotenv |
-- vcap | k8s-secret. --out is written 0600 and atomically; a secret goes to a
-- terminal only with --show-secrets.
-- Exit: 0 written; 2 unreadable or broken key, usage, refused terminal.
local cli = require "calm.lib.cli"
local key_format = require "calm.key.format"
local key_parse = require "calm.key.parse"
local key_util = require "calm.key.util"
local input = require "calm.lib.input"
local key_k8s = require "calm.key.k8s"

local spec = {
  command = "export",
  summary = "Convert a service key file to another format.",
  options = {
    format = { arg = "F", choices = key_util.FORMATS, default = "json",
               help = "json (bare key), alm-setup (/SDF/ALM_SETUP fields), env (sh exports), dotenv (lines for docker --env-file and $GITHUB_ENV), vcap (VCAP_SERVICES for @sap/xsenv and the SAP Cloud SDK), k8s-secret (a Kubernetes Secret manifest)" },
    out = { arg = "FILE", help = "write there (mode 0600, atomic) instead of stdout" },
    ["show-secrets"] = { flag = true, allow_secret_name = true,
                         help = "allow printing the secret to a terminal" },
    name = { arg = "N", help = "VCAP_SERVICES entry to read when there are several; entry name in vcap output" },
    ["secret-name"] = key_k8s.OPTIONS["secret-name"],
    namespace = key_k8s.OPTIONS.namespace,
  },
  positionals = { min = 1, max = 1, names = { "FILE" } },
}

local main = cli.command(spec, function(opts, pos)
  local k, msg, code = key_k8s.check_options(opts)
  if not k then return nil, msg, code end
  k, msg, code = input.check_not_input("--out", opts.out, { { "key", pos[1] } })
  if not k then return nil, msg, code end
  k, msg, code = key_parse.load(pos[1], { name = opts.name })
  if not k then return nil, msg, code end
  local ok
  ok, msg, code = key_format.export(k, { format = opts.format, out = opts.out,
                                  show_secrets = opts["show-secrets"], name = opts.name,
                                  secret_name = opts["secret-name"], namespace = opts.namespace })
  if not ok then return nil, msg, code end
  return 0
end)

-- the spec too: help, completion and the man page check read it
return main, spec
