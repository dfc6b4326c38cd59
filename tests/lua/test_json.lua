local t = ...
local json = require "calm.json"
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
  t.match(t.fails("BAD_JSON", json.decode, '{"a":1,}', "k.json"), "at character %d+")
end

function T.bom_and_comments_refused()
  t.find(t.fails("BAD_JSON", json.decode, "\239\187\191{}", "k.json"), "byte order mark")
  t.fails("BAD_JSON", json.decode, '{"a":1 // c\n}', "k.json")
end

function T.deep_nesting_refused()
  t.fails("BAD_JSON", json.decode, string.rep("[", 2000) .. string.rep("]", 2000), "x")
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
