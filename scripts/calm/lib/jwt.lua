-- calm.lib.jwt: read the claims of an access token (scopes, zone, expiry).
--
-- No signature check: calmbind only reads tokens it has just received over
-- verified TLS from the token endpoint named in the key, to report what
-- that server granted. It never accepts a token from a third party as proof
-- of anything, so the signature would add nothing here; a resource server
-- (Cloud ALM itself) is what checks signatures.
local codec = require "calm.codec"
local json = require "calm.lib.json"

local M = {}

local function part(token, i)
  local n = 0
  for p in (token .. "."):gmatch("([^.]*)%.") do
    n = n + 1
    if n == i then return p end
  end
  return nil
end

-- jwt.decode(token) -> claims | nil, message, "BAD_TOKEN"
-- The message never contains the token.
function M.decode(token)
  if type(token) ~= "string" or token == "" then
    return nil, "no access token to decode", "BAD_TOKEN"
  end
  local _, dots = token:gsub("%.", "")
  if dots ~= 2 then
    return nil, "the access token is not a JWT (expected 3 dot-separated parts, found "
      .. (dots + 1) .. "); is it an opaque token?", "BAD_TOKEN"
  end
  local payload = part(token, 2)
  if payload == "" or payload:find("[^%w%-_=+/]") then
    return nil, "the access token's payload is not base64url", "BAD_TOKEN"
  end
  local raw = codec.b64decode(payload)
  if not raw then
    return nil, "the access token's payload is not base64url", "BAD_TOKEN"
  end
  local claims = json.decode(raw, "the access token's payload")
  if type(claims) ~= "table" or claims[1] ~= nil then
    return nil, "the access token's payload is not a JSON object", "BAD_TOKEN"
  end
  return claims
end

-- jwt.scopes(claims) -> array of scope strings (possibly empty). UAA puts
-- an array in the JWT; token responses use a space-separated string.
function M.scopes(claims)
  local out = {}
  local s = type(claims) == "table" and claims.scope or claims
  if type(s) == "string" then
    for w in s:gmatch("%S+") do out[#out + 1] = w end
  elseif type(s) == "table" then
    for _, w in ipairs(s) do
      if type(w) == "string" then out[#out + 1] = w end
    end
  end
  return out
end

-- jwt.subaccount(claims) -> subaccount GUID, "the claim it came from" | nil.
-- XSUAA tokens carry ext_attr.subaccountid; without it the zone id (zid)
-- is the subaccount's tenant (reference B.6).
function M.subaccount(claims)
  if type(claims) ~= "table" then return nil end
  local ext = type(claims.ext_attr) == "table" and claims.ext_attr or {}
  if type(ext.subaccountid) == "string" and ext.subaccountid ~= "" then
    return ext.subaccountid, "ext_attr.subaccountid"
  end
  if type(claims.zid) == "string" and claims.zid ~= "" then return claims.zid, "zid" end
  return nil
end

return M
