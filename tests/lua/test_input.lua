local t = ...
local input = require "calm.lib.input"
local cli = require "calm.lib.cli"
local T = {}

local SPEC = { command = "x", options = {
  ["sm-key"] = { arg = "FILE", env = "CALMBIND_TEST_SM_KEY", key_env = true },
} }

function T.content_or_path()
  t.ok(input.is_content('{"clientid": "c"}'))
  t.ok(input.is_content('  [1]'))
  t.ok(input.is_content("-----BEGIN PRIVATE KEY-----\nMII\n"))
  t.ok(not input.is_content("keys/sm.json"))
  t.ok(not input.is_content("-"))
end

function T.held_content_is_read_but_never_shown()
  input.reset()
  local v = input.hold("CALMBIND_SM_KEY", '{"clientid": "c", "clientsecret": "S3CRET", "sm_url": "https://sm"}')
  t.eq(v, "$CALMBIND_SM_KEY")
  t.ok(input.is_held(v))
  t.eq(input.source_name(v), "CALMBIND_SM_KEY (the key's JSON)")
  local k, kind = input.load_key(v, "sm", "CALMBIND_SM_KEY")
  t.eq(kind, "sm")
  t.eq(k.clientsecret, "S3CRET")
  local none, msg, code = input.load_key(v, "cis", "CALMBIND_CIS_KEY")
  t.eq(none, nil)
  t.eq(code, "INPUT")
  t.nofind(msg, "S3CRET")
  t.find(msg, "CALMBIND_SM_KEY (the key's JSON)")
  input.reset()
  t.ok(not input.is_held(v))
end

function T.not_json_content_says_what_it_looks_like()
  input.reset()
  local v = input.hold("CALMBIND_SM_KEY", "-----BEGIN PRIVATE KEY-----\nMIIEsecret\n")
  local none, msg, code = input.load_key(v, "sm", "CALMBIND_SM_KEY")
  t.eq({ none, code }, { nil, "INPUT" })
  t.find(msg, "PEM private key")
  t.nofind(msg, "MIIEsecret")
  input.reset()
end

function T.read_takes_fifos_refuses_directories()
  local text, msg, code = input.read("/", "--sm-key")
  t.eq({ text, code }, { nil, "INPUT" })
  t.find(msg, "--sm-key: cannot read '/'")
end

-- cli.parse with a key_env option: the variable's JSON is held, opts gets its name
function T.parse_holds_a_variable_with_the_key()
  input.reset()
  local getenv = os.getenv
  os.getenv = function(n)
    if n == "CALMBIND_TEST_SM_KEY" then return '{"clientid": "c", "sm_url": "https://sm"}' end
    return getenv(n)
  end
  local ok, opts = pcall(cli.parse, {}, SPEC)
  os.getenv = getenv
  t.ok(ok, opts)
  t.eq(opts["sm-key"], "$CALMBIND_TEST_SM_KEY")
  t.eq(cli.label(opts, "sm-key"), "CALMBIND_TEST_SM_KEY")
  t.ok(input.is_held(opts["sm-key"]))
  input.reset()
end

return T
