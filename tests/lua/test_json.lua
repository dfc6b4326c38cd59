local t = ...
local json = require "calm.lib.json"
local T = {}

function T.decodes_and_removes_nulls()
  local v = assert(json.decode('{"a":null,"b":[1,null,2,null],"c":{"d":null,"e":"x"},"n":43199,"f":1.5}', "test"))
  t.eq(v.a, nil)
  t.eq(v.b, { 1, 2 })
  t.eq(v.c, { e = "x" })
  t.eq(math.type(v.n), "integer")
  t.eq(v.n, 43199)
  t.eq(v.f, 1.5)
  t.eq(t.fails("BAD_JSON", json.decode, "null", "x"), "JSON from x is null")
end

function T.rejects_invalid_numbers()
  for _, s in ipairs { '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":0x10}', '[nan]', '[inf]' } do
    local msg = t.fails("BAD_JSON", json.decode, s, "key.json")
    t.find(msg, "key.json", s)
  end
end

function T.rejects_empty_and_blank()
  t.eq(t.fails("BAD_JSON", json.decode, "", "a.json"), "empty JSON from a.json")
  t.fails("BAD_JSON", json.decode, " \n\t ", "a.json")
  t.fails("BAD_JSON", json.decode, nil, "a.json")
end

function T.truncated_is_named()
  local msg = t.fails("BAD_JSON", json.decode, '{"clientsecret":"abc', "https://h/v1/x")
  t.find(msg, "truncated JSON from https://h/v1/x")
  t.fails("BAD_JSON", json.decode, '[1,2', "x")
end

function T.rejects_trailing_garbage()
  t.fails("BAD_JSON", json.decode, '{"a":1} x', "x")
  t.fails("BAD_JSON", json.decode, '{"a":1}{"b":2}', "x")
  t.fails("BAD_JSON", json.decode, '[1],', "x")
end

function T.never_echoes_input()
  local secret = "S3CR3T-VALUE-0001"
  for _, s in ipairs { '{"clientsecret":' .. secret .. '}', '{"x":"' .. secret .. '"', '{' .. secret .. '}',
                       '{"a":"' .. secret .. '\\q"}' } do
    local msg = t.fails("BAD_JSON", json.decode, s, "key.json")
    t.nofind(msg, secret, s)
    t.find(msg, "key.json")
  end
end

function T.error_position()
  t.match(t.fails("BAD_JSON", json.decode, '{"a":1,}', "k.json"), "expected a member name %(a string%) at byte 8$")
end

function T.bom_and_comments_refused()
  t.find(t.fails("BAD_JSON", json.decode, "\239\187\191{}", "k.json"), "byte order mark")
  t.fails("BAD_JSON", json.decode, '{"a":1 // c\n}', "k.json")
end

function T.deep_nesting_refused()
  t.fails("BAD_JSON", json.decode, string.rep("[", 2000) .. string.rep("]", 2000), "x")
end

-- I-JSON (RFC 7493), checked by codec.ijson_check before cjson decodes
function T.ijson_rules_refused_with_the_reason()
  local cases = {
    { '{"clientsecret":"a","clientsecret":"b"}', "duplicate", "duplicate member 'clientsecret' at byte 21" },
    { '{"a":1,"\\u0061":2}', "duplicate", "duplicate member 'a' at byte 8" },
    { '{"s":"\255\254\192\175\237\160\128"}', "utf8", "invalid UTF-8 at byte 7" },
    { '{"s":"\\ud800"}', "surrogate", "unpaired surrogate escape at byte 7" },
    { '{"s":"\\uffff"}', "noncharacter", "noncharacter at byte 7" },
    { '{"expires_in":1e400}', "number", "number out of range" },
    { '[-1e400]', "number", "number out of range" },
    { string.rep("[", 100000) .. string.rep("]", 100000), "depth", "nested deeper than 1000 levels at byte 1001" },
  }
  for _, c in ipairs(cases) do
    local v, msg, code, kind = json.decode(c[1], "sm-key.json")
    t.eq(v, nil, c[2])
    t.eq(code, "BAD_JSON", c[2])
    t.eq(kind, c[2], c[2])
    t.find(msg, "invalid JSON from sm-key.json: ", c[2])
    t.find(msg, c[3], c[2])
  end
end

function T.kinds_of_ordinary_faults()
  t.eq(select(4, json.decode('{"a":', "x")), "truncated")
  t.eq(select(4, json.decode('{"a":NaN}', "x")), "syntax")
  t.eq(select(4, json.decode("", "x")), "empty")
  t.eq(select(4, json.decode("null", "x")), "null")
end

function T.ijson_accepts_what_btp_sends()
  local v = assert(json.decode('{"a":{"x":1},"b":{"x":2},"s":"\\u00e9\195\169 \\ud83d\\ude00","n":1.7976931348623157e308,"z":1e-400}', "x"))
  t.eq(v.s, "\195\169\195\169 \240\159\152\128")
  t.eq(v.n, 1.7976931348623157e308)
  t.eq(v.z, 0)
  t.ok(json.decode(string.rep("[", 1000) .. string.rep("]", 1000), "x"), "1000 levels")
end

function T.ijson_messages_never_echo_values()
  local secret = "S3CR3T-VALUE-0002"
  for _, s in ipairs { '{"x":"' .. secret .. '\\255"}', '{"x":"' .. secret .. '","y":1e999}',
                       '{"x":"' .. secret .. '","x":"' .. secret .. '"}' } do
    local msg = select(2, json.decode(s, "k.json"))
    t.ok(msg, s)
    t.nofind(msg, secret, s)
  end
  -- a duplicate's name is shown (names are field names, not values), as
  -- printable ASCII of at most 40 bytes
  local long = string.rep("n", 60)
  local msg = select(2, json.decode('{"' .. long .. '\\n":1,"' .. long .. '\\n":2}', "k.json"))
  t.find(msg, "duplicate member '" .. string.rep("n", 40) .. "...'")
end

function T.global_cjson_untouched()
  local cjson = require "cjson"
  -- the shared module still accepts what it accepted before (its default)
  local ok = pcall(cjson.decode, "[NaN]")
  t.ok(ok, "global cjson settings changed")
end

function T.encode_empty_arrays()
  t.eq(json.encode({ a = json.array() }), '{"a":[]}')
  t.eq(json.encode(json.array({})), "[]")
  t.eq(json.encode({ labels = { x = json.array({ "v" }) } }), '{"labels":{"x":["v"]}}')
  local nested = json.encode({ a = { json.array(), json.array() }, b = {} })
  local back = assert(json.decode(nested, "x"))
  t.eq(back.a, { {}, {} })
  t.find(nested, '"a":[[],[]]')
  t.find(nested, '"b":{}')
end

function T.encode_text_that_looks_like_a_placeholder()
  local s = json.encode({ a = json.array(), b = "calmEmptyArray", c = '"[]"' })
  local back = assert(json.decode(s, "x"))
  t.eq(back.b, "calmEmptyArray")
  t.eq(back.c, '"[]"')
end

function T.encode_raises_on_misuse()
  t.raises(function() json.encode({ f = print }) end, "json.encode")
  t.raises(function() json.encode({ n = 0 / 0 }) end, "json.encode")
  local cyc = {}
  cyc.self = cyc
  t.raises(function() json.encode(cyc) end, "json.encode")
end

function T.pretty_order_and_format()
  local v = { uaa = { url = "https://u", clientid = "id", clientsecret = "s" }, endpoints = { Api = "https://a/x" },
              b = json.array(), c = {}, n = 3, f = 0.5, l = { 1, 2 } }
  local got = json.pretty(v, { "uaa", "clientid", "clientsecret" })
  local want = table.concat({
    '{',
    '  "uaa": {',
    '    "clientid": "id",',
    '    "clientsecret": "s",',
    '    "url": "https://u"',
    '  },',
    '  "b": [],',
    '  "c": {},',
    '  "endpoints": {',
    '    "Api": "https://a/x"',
    '  },',
    '  "f": 0.5,',
    '  "l": [',
    '    1,',
    '    2',
    '  ],',
    '  "n": 3',
    '}' }, "\n")
  t.eq(got, want)
end

function T.pretty_numbers_and_escapes()
  t.eq(json.pretty(3.0), "3")
  t.eq(json.pretty(43199), "43199")
  t.eq(json.pretty(0.1), "0.1")
  local s = 'a"b\\c\n\t\1/é\\/'
  -- like cjson, but "/" stays "/" (cjson writes "\/"); a backslash before it stays escaped
  local want = '"a\\"b\\\\c\\n\\t\\u0001/é\\\\/"'
  t.eq(json.pretty(s), want)
  t.eq(json.pretty({ [s] = true }), "{\n  " .. want .. ": true\n}")
  t.eq(json.decode(json.pretty(s)), s)
end

function T.pretty_round_trips()
  local v = { a = { 1, 2, { b = "x" } }, c = true, d = -2.25 }
  t.eq(assert(json.decode(json.pretty(v), "x")), v)
end

return T
