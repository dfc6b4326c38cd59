local t = ...
local cli = require "calm.lib.cli"
local T = {}

local spec = {
  command = "get",
  summary = "find or create the Cloud ALM API key",
  options = {
    ["sm-key"] = { arg = "FILE", env = "CALMBIND_TEST_SM_KEY_UNSET", help = "Service Manager key" },
    verify = { flag = true, help = "verify the result" },
    timeout = { arg = "S", number = true, default = 300 },
    format = { arg = "F", choices = { "json", "alm-setup", "env", "vcap" }, default = "json" },
    ["password-file"] = { arg = "FILE", allow_secret_name = true, help = "file with the password" },
  },
  positionals = { min = 0, max = 1, names = { "FILE" } },
}

function T.long_options_both_forms()
  local o, p = cli.parse({ "--sm-key", "a.json", "--format=env", "x.json", "--verify" }, spec)
  t.ok(o, p)
  t.eq(o["sm-key"], "a.json")
  t.eq(o.format, "env")
  t.eq(o.verify, true)
  t.eq(p, { "x.json" })
end

function T.defaults_applied()
  local o = assert(cli.parse({}, spec))
  t.eq(o.timeout, 300)
  t.eq(o.format, "json")
  t.eq(o.verify, nil)
  t.eq(o["sm-key"], nil)
end

function T.global_options_without_spec()
  local o = assert(cli.parse({ "-v", "--trace", "--cacert", "ca.pem", "--unsafe", "--timeout=2.5" },
    { command = "check" }))
  t.eq(o.verbose, true)
  t.eq(o.trace, true)
  t.eq(o.cacert, "ca.pem")
  t.eq(o.unsafe, true)
  t.eq(o.timeout, 2.5)
  o = assert(cli.parse({ "--verbose" }, { command = "check" }))
  t.eq(o.verbose, true)
end

function T.help_skips_checks()
  local o = assert(cli.parse({ "--help", "a", "b", "c" }, spec))
  t.eq(o.help, true)
end

function T.unknown_option()
  local msg = t.fails("USAGE", cli.parse, { "--bogus" }, spec)
  t.eq(msg, "unknown option --bogus (see calmbind get --help)")
  t.fails("USAGE", cli.parse, { "-x" }, spec)
end

function T.missing_value()
  local msg = t.fails("USAGE", cli.parse, { "--sm-key" }, spec)
  t.find(msg, "--sm-key")
  t.find(msg, "needs a value")
  msg = t.fails("USAGE", cli.parse, { "--sm-key", "--verify" }, spec)
  t.find(msg, "--sm-key")
end

function T.repeated_option()
  local msg = t.fails("USAGE", cli.parse, { "--format", "env", "--format=json" }, spec)
  t.eq(msg, "option --format given twice")
end

function T.bad_numbers()
  for _, v in ipairs { "abc", "0x10", "inf", "nan", "1e3", "", "0", "-5" } do
    local msg = t.fails("USAGE", cli.parse, { "--timeout=" .. v }, spec)
    t.find(msg, "--timeout", v)
  end
end

function T.bad_choice()
  local msg = t.fails("USAGE", cli.parse, { "--format", "xml" }, spec)
  t.eq(msg, "option --format must be one of json, alm-setup, env, vcap (got 'xml')")
end

function T.flag_with_value_refused()
  t.find(t.fails("USAGE", cli.parse, { "--verify=yes" }, spec), "takes no value")
end

function T.secrets_refused_without_echo()
  for _, a in ipairs { "--client-secret=S3CR3T", "--clientsecret", "--secret", "--password",
                       "--token", "--access-token", "--key-data", "--my-Password-x", "--refresh_token" } do
    local msg = t.fails("USAGE", cli.parse, { a, "S3CR3T" }, spec)
    t.find(msg, "secrets are not accepted on the command line", a)
    t.nofind(msg, "S3CR3T", a)
  end
end

function T.declared_secret_like_file_option_allowed()
  local o = assert(cli.parse({ "--password-file", "pw.txt" }, spec))
  t.eq(o["password-file"], "pw.txt")
end

function T.positionals_bounds()
  t.find(t.fails("USAGE", cli.parse, { "a", "b" }, spec), "unexpected argument 'b'")
  local s2 = { command = "check", positionals = { min = 1, max = 1, names = { "FILE" } } }
  t.eq(t.fails("USAGE", cli.parse, {}, s2), "missing FILE (see calmbind check --help)")
  local _, p = assert(cli.parse({ "--", "--odd-name" }, s2))
  t.eq(p, { "--odd-name" })
  _, p = assert(cli.parse({ "-" }, s2))
  t.eq(p, { "-" })
end

function T.required_option()
  local s = { command = "verify", options = { ["sm-key"] = { arg = "FILE", required = true } } }
  t.find(t.fails("USAGE", cli.parse, {}, s), "missing --sm-key")
end

function T.env_fallback()
  local got, home = pcall(function() return os.getenv("HOME") end)
  if not got or not home then return end -- no environment in this host: nothing to check
  local s = { command = "x", options = { dir = { arg = "DIR", env = "HOME" } } }
  t.eq(assert(cli.parse({}, s)).dir, home)
  t.eq(assert(cli.parse({ "--dir", "/x" }, s)).dir, "/x", "argv wins over env")
end

function T.usage_text()
  local u = cli.usage(spec)
  t.find(u, "usage: calmbind get [options] [FILE]")
  t.find(u, "--sm-key FILE")
  t.find(u, "one of json, alm-setup, env, vcap")
  t.find(u, "-v, --verbose")
  t.find(u, "--timeout S")
  t.find(u, "default 300")
end

function T.suggest()
  local names = { "sm-key", "cis-key", "scenario", "verbose", "json", "out" }
  t.eq(cli.suggest("sm-kye", names), "sm-key", "a swap")
  t.eq(cli.suggest("scenaro", names), "scenario", "a letter missing")
  t.eq(cli.suggest("verb", names), "verbose", "a prefix")
  t.eq(cli.suggest("jsn", names), "json", "one edit in a short word")
  t.eq(cli.suggest("xml", names), nil, "nothing near")
  t.eq(cli.suggest("o", names), nil, "one letter suggests nothing")
end

function T.did_you_mean()
  t.find(t.fails("USAGE", cli.parse, { "--sm-kye", "x" }, spec), "did you mean --sm-key?")
  t.find(t.fails("USAGE", cli.parse, { "-verbose" }, spec), "did you mean --verbose?")
  t.find(t.fails("USAGE", cli.parse, { "--zzzzzz" }, spec), "see calmbind get --help")
end

function T.short_help_and_quiet()
  t.ok(assert(cli.parse({ "-h" }, spec)).help, "-h is --help")
  t.ok(assert(cli.parse({ "-q" }, spec)).quiet, "-q is --quiet")
end

function T.options_lists_globals_and_own()
  local names = {}
  for _, o in ipairs(cli.options(spec)) do names[#names + 1] = o.name end
  t.find(table.concat(names, " "), "cacert")
  t.find(table.concat(names, " "), "sm-key")
  t.find(table.concat(names, " "), "quiet")
end

return T
