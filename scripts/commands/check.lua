-- calmbind check FILE: offline checks of a service key file (no network).
-- Landscape Management upload rules by default (--for alm-setup: the checks
-- for /SDF/ALM_SETUP, where an x509 key is fine), URL shapes, and a summary
-- of the key without its secrets.
-- Exit: 0 passes, 6 fails a rule, 2 unreadable file, not a key (not JSON, the
-- wrong kind of key) or usage.
local cli = require "calm.lib.cli"
local key_check = require "calm.key.check"
local key_expiry = require "calm.key.expiry"
local key_format = require "calm.key.format"
local key_parse = require "calm.key.parse"
local exit = require "calm.lib.exit"

local spec = {
  command = "check",
  summary = "Offline checks of a service key file: Landscape Management upload rules, URL shapes, what the key is.",
  options = {
    ["for"] = { arg = "TARGET", choices = { "landscape", "alm-setup" }, default = "landscape",
                help = "whose rules: Landscape Management upload, or /SDF/ALM_SETUP" },
    tenant = { arg = "SUBDOMAIN", help = "the identity zone (subaccount subdomain) the key must belong to" },
    json = { flag = true, help = "print the result as JSON (no secrets) instead of text" },
    name = { arg = "N", help = "the VCAP_SERVICES entry to check when there are several" },
    ["warn-days"] = { arg = "N", number = true, integer = true, min = 0, max = 36500, default = 30,
                      help = "fail (exit 6) when an x509 key's certificate ends within N days (0: only once ended)" },
  },
  positionals = { min = 1, max = 1, names = { "FILE" } },
}

-- --json: the result on stdout, machine-readable (no secrets).
local function print_json(t) io.write(key_format.result_json(t)) end

local main = cli.command(spec, function(opts, pos)
  -- an unreadable file, one that is not JSON, or no key at all (or the
  -- wrong kind of key), is bad input: exit 2, as in every command
  local k, msg, code = key_parse.load(pos[1], { name = opts.name })
  if not k then
    if opts.json then print_json { ok = false, exit = exit.status_for(code), error = msg } end
    return nil, msg, code
  end
  local warn_days = opts["warn-days"]
  local landscape = opts["for"] == "landscape"
  local res = key_check.check(k, { for_landscape = landscape, tenant = opts.tenant, warn_days = warn_days })
  if opts.json then
    -- what kind of secret the key holds, under a name the redactor spares
    local s = res.summary
    s.about, s.secret = s.secret, nil
    local e, expiring = s.expiry, s.expiring or false
    s.expiry, s.expiring = nil, nil
    print_json(key_expiry.fields(e, { ok = res.ok, exit = res.ok and 0 or 6,
      rules = landscape and "landscape" or "alm-setup", problems = res.problems, warnings = res.warnings,
      key = s, warn_days = warn_days, expiring = expiring }))
  else
    io.write(key_check.check_text(res, { for_landscape = landscape }))
  end
  return res.ok and 0 or 6
end)

-- the spec too: help, completion and the man page check read it
return main, spec
