local t = ...
local jwt = require "calm.lib.jwt"
local json = require "calm.lib.json"
local codec = require "calm.codec"
local T = {}

local function make(claims)
  return codec.b64url_encode('{"alg":"RS256","typ":"JWT"}') .. "." ..
         codec.b64url_encode(json.encode(claims)) .. ".c2lnbmF0dXJl"
end

function T.decodes_claims()
  local c = assert(jwt.decode(make({ zid = "zone-1", exp = 1706824799, scope = { "a.x", "b.y" },
                                     ext_attr = { zdn = "acme" } })))
  t.eq(c.zid, "zone-1")
  t.eq(c.exp, 1706824799)
  t.eq(c.ext_attr.zdn, "acme")
  t.eq(jwt.scopes(c), { "a.x", "b.y" })
end

function T.scopes_from_string_and_missing()
  t.eq(jwt.scopes({ scope = "a.x  b.y uaa.resource" }), { "a.x", "b.y", "uaa.resource" })
  t.eq(jwt.scopes({}), {})
  t.eq(jwt.scopes(nil), {})
end

function T.rejects_bad_tokens_without_echo()
  local secretish = "opaque-token-value-12345"
  t.nofind(t.fails("BAD_TOKEN", jwt.decode, secretish), secretish)
  t.fails("BAD_TOKEN", jwt.decode, "")
  t.fails("BAD_TOKEN", jwt.decode, nil)
  t.fails("BAD_TOKEN", jwt.decode, "a.b")
  t.fails("BAD_TOKEN", jwt.decode, "a.!!!.c")
  t.fails("BAD_TOKEN", jwt.decode, "a." .. codec.b64url_encode("not json") .. ".c")
  t.fails("BAD_TOKEN", jwt.decode, "a." .. codec.b64url_encode("[1,2]") .. ".c")
end

return T
