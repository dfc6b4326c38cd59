-- calmbind verify FILE: live check of a service key: fetch a token the way
-- its consumers do (uaa.url/oauth/token with the secret, or mutual TLS at
-- uaa.certurl), decode the JWT, report the scopes, check the Deployment
-- scopes (--scenario deployment) and the identity zone.
-- Exit: 0 works; 6 works but fails a check (scopes, zone); 3 credentials
-- refused; 1 token endpoint unreachable; 2 unreadable key or usage; 5 deadline.
local cli = require "calm.lib.cli"
local key_format = require "calm.key.format"
local key_parse = require "calm.key.parse"
local key_verify = require "calm.key.verify"
local exit = require "calm.lib.exit"
local input = require "calm.lib.input"

local spec = {
  command = "verify",
  summary = "Live check of a service key: token, scopes in the JWT, identity zone.",
  options = {
    scenario = { arg = "S", choices = { "deployment", "monitoring" }, default = "deployment",
                 help = "deployment needs both imp-cdm-feature-* scopes" },
    json = { flag = true, help = "print the result as JSON (no secrets) instead of text" },
    name = { arg = "N", help = "the VCAP_SERVICES entry to verify when there are several" },
    ["warn-days"] = { arg = "N", number = true, integer = true, min = 0, max = 36500, default = 30,
                      help = "fail (exit 6) when an x509 key's certificate ends within N days (0: only once ended)" },
  },
  positionals = { min = 1, max = 1, names = { "FILE" } },
}

-- --json: the result on stdout, machine-readable (no secrets).
local function print_json(t) io.write(key_format.result_json(t)) end

local main = cli.command(spec, function(opts, pos)
  local k, msg, code, report
  if opts.cacert then
    k, msg, code = input.check_cacert(opts.cacert)
    if not k then return nil, msg, code end
  end
  k, msg, code = key_parse.load(pos[1], { name = opts.name })
  if k then report, msg, code = key_verify.verify(k, { scenario = opts.scenario, cacert = opts.cacert,
    warn_days = opts["warn-days"] }) end
  if not report then
    if opts.json then print_json { ok = false, exit = exit.status_for(code), error = msg } end
    return nil, msg, code
  end
  if opts.json then
    report.exit = report.ok and 0 or 6
    print_json(report)
  else
    io.write(key_verify.verify_text(report, k.source))
  end
  return report.ok and 0 or 6
end)

-- the spec too: help, completion and the man page check read it
return main, spec
