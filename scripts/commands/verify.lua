-- calmbind verify FILE: live check of a service key: fetch a token the way
-- its consumers do (uaa.url/oauth/token with the secret, or mutual TLS at
-- uaa.certurl), decode the JWT, report the scopes, check the Deployment
-- scopes (--scenario deployment) and the identity zone.
-- Exit: 0 works; 6 works but fails a check (scopes, zone); 3 credentials
-- refused; 1 token endpoint unreachable; 2 unreadable key or usage; 5 deadline.
local cli = require "calm.cli"
local key = require "calm.key"

local spec = {
  command = "verify",
  summary = "Live check of a service key: token, scopes in the JWT, identity zone.",
  options = {
    scenario = { arg = "S", choices = { "deployment", "monitoring" }, default = "deployment",
                 help = "deployment needs both imp-cdm-feature-* scopes" },
    name = { arg = "N", help = "the VCAP_SERVICES entry to verify when there are several" },
  },
  positionals = { min = 1, max = 1, names = { "FILE" } },
}

return function(args)
  local opts, pos, code = cli.parse(args, spec)
  if not opts then return nil, pos, code end
  if opts.help then io.write(cli.usage(spec)); return 0 end
  local k, msg
  if opts.cacert then
    k, msg, code = require("calm.input").check_cacert(opts.cacert)
    if not k then return nil, msg, code end
  end
  k, msg, code = key.load(pos[1], { name = opts.name })
  if not k then return nil, msg, code end
  local report
  report, msg, code = key.verify(k, { scenario = opts.scenario, cacert = opts.cacert })
  if not report then return nil, msg, code end
  io.write(key.verify_text(report, k.source))
  return report.ok and 0 or 6
end
