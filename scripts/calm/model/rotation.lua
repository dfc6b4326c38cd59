-- calm.model.rotation: whether `rotate` makes a new key now. The rules look
-- at calmbind's newest key on the instance (its age, later its expiry), so
-- that a rerun or a retried CI job within the window creates nothing. No
-- requests.
--
--   d = rotation.decide(inst, opts, now)
--       -- opts: rotate's options (a rule's option holds its value, seconds
--       -- for a duration; opts["credential-type"] the kind of the new key);
--       -- now: seconds since 1970 (UTC). d = {rotate = bool, newest = b | nil,
--       -- age = seconds | nil, rules = {names given}, why = "one line"}
--   b = rotation.newest(inst, credential_type)   -- calmbind's newest usable key of that kind | nil
--   secs = rotation.epoch(ts)       -- "2026-12-07T23:49:56.111305Z" (or +hh:mm) -> seconds | nil
--   text = rotation.age_text(secs)  -- 93784 -> "1d 2h", 600 -> "10m", 45 -> "45s"
--
-- rotation.RULES: name -> {option = the rotate option holding the value,
-- due = function(c, value) -> due (boolean), why (text)} where c = {binding =
-- the newest key, age = its age in seconds | nil, now = seconds}. Without a
-- rule given, rotate always makes a new key (as before the rules); with
-- rules given it makes one when there is no such key yet or when one of them
-- says the key is due (each rule is a reason to rotate: "older than 90d, or
-- expiring within 7d"), else nothing. if-expires-within reads the key's
-- certificate from c.binding.credentials (calm.ops.rotate fetches them
-- when the listing lacks them); a secret key does not expire, so that rule
-- never finds it due.
local key_expiry = require "calm.key.expiry"
local key_parse = require "calm.key.parse"
local M = {}

-- Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
-- (H. Hinnant's days_from_civil): os.time would read the fields as local time.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

function M.epoch(ts)
  if type(ts) ~= "string" then return nil end
  local y, mo, d, h, mi, s, rest = ts:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  rest = rest:gsub("^%.%d+", "")
  local off = 0
  if rest ~= "" and rest ~= "Z" and rest ~= "z" then
    local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off
end

-- The two largest units: what a person reads an age or a window in.
function M.age_text(secs)
  secs = math.max(0, math.floor(secs + 0.5))
  local units = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } }
  for i, u in ipairs(units) do
    if secs >= u[2] or i == #units then
      local n = secs // u[2]
      local text = n .. u[1]
      local nu = units[i + 1]
      -- the next unit only: "1d 2h", never "1d 0h 5m"
      local m = nu and (secs - n * u[2]) // nu[2] or 0
      if m > 0 then text = text .. " " .. m .. nu[1] end
      return text
    end
  end
end

local function kind(ctype) return ctype == "x509" and "x509" or "secret" end

-- calmbind's newest key on the instance that a rotation of this kind would
-- replace: made by calmbind, not a managed system's, ready, of the same kind
-- (calm.ops.deliver's may-delete rule judges the same way).
function M.newest(inst, ctype)
  local best
  for _, b in ipairs(inst.bindings or {}) do
    if b.ours and not b.system and b.ready and b.state ~= "pending" and b.state ~= "failed"
        and kind(b.credential_type) == kind(ctype)
        and (not best or tostring(b.created_at or "") > tostring(best.created_at or "")) then
      best = b
    end
  end
  return best
end

M.RULES = {
  ["if-expires-within"] = {
    option = "if-expires-within",
    due = function(c, value)
      local b = "key '" .. tostring(c.binding.name) .. "'"
      local creds = c.binding.credentials
      local k = type(creds) == "table" and key_parse.from_value(creds, b) or nil
      if not k then return true, b .. " has no credentials to read its end from" end
      local e = key_expiry.of_key(k, c.now)
      if e.source == "none" then return false, b .. " is a secret key: it does not expire" end
      if not e.at then return true, b .. ": " .. tostring(e.error) .. " (when it ends is unknown)" end
      local left = e.at - c.now
      if left <= 0 then return true, string.format("%s has expired (%s)", b, e.expires) end
      if left <= value then
        return true, string.format("%s expires %s, in %s, within %s", b, e.expires, M.age_text(left), M.age_text(value))
      end
      return false, string.format("%s expires %s, in %s, later than %s", b, e.expires, M.age_text(left),
        M.age_text(value))
    end,
  },
  ["if-older-than"] = {
    option = "if-older-than",
    due = function(c, value)
      local b = "key '" .. tostring(c.binding.name) .. "'"
      if not c.age then return true, b .. " has no creation time" end
      if c.age >= value then
        return true, string.format("%s is %s old, older than %s", b, M.age_text(c.age), M.age_text(value))
      end
      return false, string.format("%s is %s old, younger than %s", b, M.age_text(c.age), M.age_text(value))
    end,
  },
}

-- The rules given, in a stable order.
local function given(opts)
  local names = {}
  for name, r in pairs(M.RULES) do
    if opts[r.option] ~= nil then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

function M.decide(inst, opts, now)
  local names = given(opts)
  local d = { rotate = true, rules = names }
  if #names == 0 then return d end
  local b = M.newest(inst, opts["credential-type"])
  d.newest = b
  if not b then
    d.why = "calmbind has made no " .. (kind(opts["credential-type"]) == "x509" and "x509 " or "")
      .. "key on instance '" .. tostring(inst.name) .. "' yet"
    return d
  end
  local created = M.epoch(b.created_at)
  -- a server clock ahead of ours makes a new key look younger than 0 s
  d.age = created and math.max(0, now - created) or nil
  local c = { binding = b, age = d.age, now = now }
  local whys = {}
  for _, name in ipairs(names) do
    local r = M.RULES[name]
    local due, why = r.due(c, opts[r.option])
    if due then
      d.why = why
      return d
    end
    whys[#whys + 1] = why
  end
  d.rotate, d.why = false, table.concat(whys, "; ")
  return d
end

return M
