-- calm.lib.json: strict JSON for data that comes from servers and key files.
--
-- Over lua-cjson 2.1.0, on a private instance (cjson.new()) so the settings
-- here never change what other code gets from require "cjson":
--  * every text passes the I-JSON check of src/ijson.c first (see decode);
--  * NaN, Infinity and hex numbers are refused (decode_invalid_numbers(false));
--  * every JSON null is removed (cjson.null is a truthy userdata, so a null
--    "clientsecret" would otherwise pass an `if key.clientsecret` check);
--  * integral numbers come back as Lua integers (cjson gives floats);
--  * messages name the source and the position, never the input text.
local cjson = require "cjson"
local codec = require "calm.codec"

local M = {}

-- One private instance for both directions.
local C = cjson.new()
C.decode_invalid_numbers(false)
C.encode_invalid_numbers(false)
-- ijson_check refuses deeper text first, with a message naming the limit
local MAX_DEPTH = 1000
C.decode_max_depth(MAX_DEPTH)
C.encode_max_depth(1000)

M.null = cjson.null

-- ---------------------------------------------------------------- decode --

local NULL = cjson.null
local MAX_EXACT = 2 ^ 53

-- Removes nulls, turns integral floats into integers. Objects have string
-- keys only, arrays integer keys only, so the two never mix in one table.
local function clean(v)
  local tv = type(v)
  if tv == "number" then
    if math.type(v) == "float" and v == math.floor(v) and v >= -MAX_EXACT and v <= MAX_EXACT then
      return math.tointeger(v)
    end
    return v
  end
  if tv ~= "table" then return v end
  local n = 0
  for k in pairs(v) do
    if math.type(k) == "integer" and k > n then n = k end
  end
  if n > 0 then
    local out, j = {}, 0
    for i = 1, n do
      local e = v[i]
      if e ~= nil and e ~= NULL then
        j = j + 1
        out[j] = clean(e)
      end
    end
    return out
  end
  local out = {}
  for k, e in pairs(v) do
    if e ~= NULL then out[k] = clean(e) end
  end
  return out
end

local function describe(what)
  if what == nil or what == "" then return "JSON" end
  return "JSON from " .. tostring(what)
end

-- json.decode(text, what) -> value | nil, message, "BAD_JSON", kind
-- Every text first passes codec.ijson_check (src/ijson.c), the one I-JSON
-- check (RFC 7493) in calmbind: UTF-8 only, no surrogates or noncharacters,
-- no duplicate member names, no number beyond a double, at most MAX_DEPTH
-- levels. lua-cjson sees only text that passed. `kind` says what was wrong:
-- "empty", "bom", "truncated", "syntax", "null" (the text is just null), or
-- an I-JSON rule: "utf8", "surrogate", "noncharacter", "duplicate",
-- "number", "depth". A truncated or malformed answer may be a transfer
-- problem; the I-JSON kinds are properties of the text (calm.net.rest does not
-- retry them).
function M.decode(text, what)
  if type(text) ~= "string" then
    return nil, "no " .. describe(what) .. " (got " .. type(text) .. ")", "BAD_JSON", "empty"
  end
  if not text:find("%S") then
    return nil, "empty " .. describe(what), "BAD_JSON", "empty"
  end
  if text:sub(1, 3) == "\239\187\191" then
    return nil, "invalid " .. describe(what) .. ": starts with a byte order mark (save it as UTF-8 without BOM)",
      "BAD_JSON", "bom"
  end
  local ok, why, kind, at = codec.ijson_check(text, MAX_DEPTH)
  if not ok then
    if kind == "truncated" then
      return nil, "truncated " .. describe(what) .. " (ends at byte " .. at .. ")", "BAD_JSON", kind
    end
    return nil, "invalid " .. describe(what) .. ": " .. why .. " at byte " .. at, "BAD_JSON", kind
  end
  local dok, value = pcall(C.decode, text)
  if not dok then
    -- the check above accepts nothing lua-cjson refuses, short of memory;
    -- cjson's own text is not shown (it may quote the input)
    return nil, "invalid " .. describe(what) .. ": the decoder failed", "BAD_JSON", "syntax"
  end
  if value == NULL then
    return nil, describe(what) .. " is null", "BAD_JSON", "null"
  end
  return clean(value)
end

-- ---------------------------------------------------------------- encode --

-- A table marked with json.array encodes as a JSON array even when empty.
local ARRAY_MT = { __name = "calm.json.array" }

function M.array(t)
  t = t or {}
  local mt = getmetatable(t)
  if mt ~= nil and mt ~= ARRAY_MT then
    error("json.array: the table already has a metatable", 2)
  end
  return setmetatable(t, ARRAY_MT)
end

function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == ARRAY_MT
end

local function random_token()
  return "calmEmptyArray" .. codec.random_hex(12)
end

-- Copies value, replacing each empty marked array with the placeholder.
local function substitute(v, token, depth, count)
  if type(v) ~= "table" then return v end
  if depth > 1000 then error("json.encode: nesting deeper than 1000 (a cycle?)", 0) end
  if getmetatable(v) == ARRAY_MT and next(v) == nil then
    count.n = count.n + 1
    return token
  end
  local out = {}
  for k, e in pairs(v) do out[k] = substitute(e, token, depth + 1, count) end
  return out
end

-- json.encode(value) -> compact JSON text; raises on values JSON cannot hold.
function M.encode(value)
  for _ = 1, 5 do
    local token = random_token()
    local count = { n = 0 }
    local copy = substitute(value, token, 0, count)
    local ok, text = pcall(C.encode, copy)
    if not ok then error("json.encode: " .. tostring(text), 2) end
    if count.n == 0 then return text end
    local quoted = '"' .. token .. '"'
    local result, replaced = text:gsub(quoted:gsub("%p", "%%%0"), "[]")
    if replaced == count.n then return result end
    -- the data itself contained the token (astronomically unlikely): retry
  end
  error("json.encode: could not place empty arrays", 2)
end

-- ---------------------------------------------------------------- pretty --

local function is_sequence(t)
  if getmetatable(t) == ARRAY_MT then return true end
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  return n > 0 and n == #t
end

local function number_text(n)
  local i = math.tointeger(n)
  if i and (math.type(n) == "integer" or (n >= -MAX_EXACT and n <= MAX_EXACT)) then
    return string.format("%d", i)
  end
  if n ~= n or n == math.huge or n == -math.huge then
    error("json.pretty: cannot encode NaN or Infinity", 0)
  end
  for prec = 15, 17 do
    local s = string.format("%." .. prec .. "g", n)
    if tonumber(s) == n then return s end
  end
  return string.format("%.17g", n)
end

-- cjson escapes every "/" as "\/", which turns each URL in a key file into
-- noise; "\/" in its output only ever stands for "/", so undo it.
local function string_text(s)
  return (C.encode(s):gsub("\\/", "/"))
end

local function ordered_keys(t, rank)
  local keys = {}
  for k in pairs(t) do
    local tk = type(k)
    if tk ~= "string" and tk ~= "number" then
      error("json.pretty: object key of type " .. tk, 0)
    end
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys, function(a, b)
    local ra, rb = rank[a], rank[b]
    if ra and rb then return ra < rb end
    if ra then return true end
    if rb then return false end
    return a < b
  end)
  return keys
end

local function pretty(v, rank, indent, out, depth)
  local tv = type(v)
  if v == NULL then out[#out + 1] = "null"
  elseif tv == "string" then out[#out + 1] = string_text(v)
  elseif tv == "number" then out[#out + 1] = number_text(v)
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "table" then
    if depth > 1000 then error("json.pretty: nesting deeper than 1000 (a cycle?)", 0) end
    local inner = indent .. "  "
    if is_sequence(v) then
      if #v == 0 then out[#out + 1] = "[]"; return end
      out[#out + 1] = "[\n"
      for i = 1, #v do
        out[#out + 1] = inner
        pretty(v[i], rank, inner, out, depth + 1)
        out[#out + 1] = i < #v and ",\n" or "\n"
      end
      out[#out + 1] = indent .. "]"
    else
      if next(v) == nil then out[#out + 1] = "{}"; return end
      local keys = ordered_keys(v, rank)
      local lookup = {}
      for k, e in pairs(v) do lookup[tostring(k)] = e end
      out[#out + 1] = "{\n"
      for i, k in ipairs(keys) do
        out[#out + 1] = inner .. string_text(k) .. ": "
        pretty(lookup[k], rank, inner, out, depth + 1)
        out[#out + 1] = i < #keys and ",\n" or "\n"
      end
      out[#out + 1] = indent .. "}"
    end
  else
    error("json.pretty: cannot encode a " .. tv, 0)
  end
end

-- json.pretty(value [, order]) -> text (2-space indent, no trailing newline).
-- Keys named in `order` come first, in that order, at every level; the rest
-- follow sorted, so the output is stable from run to run.
function M.pretty(value, order)
  local rank = {}
  for i, k in ipairs(order or {}) do rank[k] = i end
  local out = {}
  local ok, err = pcall(pretty, value, rank, "", out, 0)
  if not ok then error(err, 2) end
  return table.concat(out)
end

return M
