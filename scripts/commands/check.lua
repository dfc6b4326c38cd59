-- calmbind check FILE: offline checks of a service key file (no network).
-- Landscape Management upload rules by default (--for alm-setup: the checks
-- for /SDF/ALM_SETUP, where an x509 key is fine), URL shapes, and a summary
-- of the key without its secrets.
-- Exit: 0 passes, 6 fails a rule, 2 unreadable file, not a key (not JSON, the
-- wrong kind of key) or usage.
local cli = require "calm.cli"
local key = require "calm.key"

local spec = {
  command = "check",
  summary = "Offline checks of a service key file: Landscape Management upload rules, URL shapes, what the key is.",
  options = {
    ["for"] = { arg = "TARGET", choices = { "landscape", "alm-setup" }, default = "landscape",
                help = "whose rules: Landscape Management upload, or /SDF/ALM_SETUP" },
    tenant = { arg = "SUBDOMAIN", help = "the identity zone (subaccount subdomain) the key must belong to" },
    name = { arg = "N", help = "the VCAP_SERVICES entry to check when there are several" },
  },
  positionals = { min = 1, max = 1, names = { "FILE" } },
}

return function(args)
  local opts, pos, code = cli.parse(args, spec)
  if not opts then return nil, pos, code end
  if opts.help then io.write(cli.usage(spec)); return 0 end
  local path = pos[1]
  local text, msg
  text, msg, code = key.read(path)
  if not text then return nil, msg, code end
  local k
  k, msg, code = key.parse(text, path == "-" and "standard input" or path, { name = opts.name })
  -- a file that is not JSON, or no key at all (or the wrong kind of key), is
  -- bad input: exit 2, as in every command
  if not k then return nil, msg, code end
  local landscape = opts["for"] == "landscape"
  local res = key.check(k, { for_landscape = landscape, tenant = opts.tenant })
  io.write(key.check_text(res, { for_landscape = landscape }))
  return res.ok and 0 or 6
end
