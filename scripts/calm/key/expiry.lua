-- calm.key.expiry: when a key stops working, and when its token does.
-- An x509 key ends with its certificate (notAfter, read by libcrypto through
-- calm.x509); a secret key does not expire at all (deleting its binding
-- revokes it), only the tokens it gets do, so no date is made up for it.
--
--   e = expiry.of_key(k [, now])      -- {source = "certificate"|"none", at, expires, days_left, error}
--   t = expiry.of_token(tok, claims [, now])  -- {at, expires, seconds} | nil
--   line = expiry.warning(e, warn_days [, now]) -- the one problem line, or nil
--   text = expiry.key_text(e)          -- what check and verify print after "expires:"
--   text = expiry.short_text(e)        -- the same after "the key" (get's summary)
--   t = expiry.fields(e, into)         -- expires, days_left, expiry_source for --json and reports
--   iso = expiry.iso(epoch); days = expiry.days_left(at [, now])
local json = require "calm.lib.json"
local x509 = require "calm.x509"
local U = require "calm.key.util"
local M = {}

local DAY = 86400

-- Seconds since the epoch as ISO 8601 UTC (2026-12-14T23:50:00Z).
function M.iso(at)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(at))
end

-- Whole days left before at, rounded down (a key with 6.9 days left has 6:
-- the warning must not come a day late); negative once it has passed.
function M.days_left(at, now)
  return math.floor((at - (now or os.time())) / DAY)
end

-- The key's own expiry. An x509 key without a readable certificate has
-- e.error (calm.key.check reports the certificate itself).
function M.of_key(k, now)
  local uaa = k.uaa
  if not (uaa and U.is_x509(uaa)) then return { source = "none" } end
  if type(uaa.certificate) ~= "string" then
    return { source = "certificate", error = "uaa.certificate is missing" }
  end
  local at, msg = x509.not_after(uaa.certificate)
  if not at then return { source = "certificate", error = "uaa.certificate: " .. tostring(msg) } end
  return { source = "certificate", at = at, expires = M.iso(at), days_left = M.days_left(at, now) }
end

-- The token's end: the JWT's exp claim where it has one (what resource
-- servers check), else the answer's expires_in from now.
function M.of_token(tok, claims, now)
  now = now or os.time()
  local at = claims and math.type(claims.exp) and claims.exp or nil
  if not at and tonumber(tok and tok.expires_in) then at = now + tonumber(tok.expires_in) end
  if not at then return nil end
  return { at = at, expires = M.iso(at), seconds = math.floor(at - now) }
end

-- "6 days", "1 day", "less than a day".
local function days_text(d)
  if d < 1 then return "less than a day" end
  return d .. (d == 1 and " day" or " days")
end

-- The problem line of a key that expires within warn_days (or has
-- expired), or nil. warn_days 0 leaves only keys already expired.
function M.warning(e, warn_days, now)
  if not e.at then return nil end
  local left = e.at - (now or os.time())
  if left <= 0 then
    return string.format("the key has expired: uaa.certificate's notAfter %s passed %s ago; "
      .. "rotate it (calmbind rotate)", e.expires, days_text(math.floor(-left / DAY)))
  end
  if left < (warn_days or 0) * DAY then
    return string.format("the key expires in %s (uaa.certificate's notAfter %s), within --warn-days %s: "
      .. "rotate it (calmbind rotate)", days_text(math.floor(left / DAY)), e.expires, tostring(warn_days))
  end
  return nil
end

-- What "expires:" says: the certificate's date and days left, or for a
-- secret key that it does not expire and what does. e: of_key's table, or
-- a result that fields() filled.
function M.key_text(e)
  local err = e.error or e.expiry_error
  if err then return "unknown: " .. err end
  if type(e.expires) == "string" then
    local d = e.days_left
    return string.format("%s (%s; the certificate's notAfter)", e.expires,
      d < 0 and "expired" or (days_text(d) .. " left"))
  end
  return "never: a secret key does not expire (it works until its binding is deleted or its secret "
    .. "replaced); the tokens it gets do"
end

-- The same for a sentence whose subject is the key (get's last line):
-- "expires ... (6 days left, ...)", "does not expire (...)".
function M.short_text(e)
  if e.error then return "expires at a time unknown (" .. e.error .. ")" end
  if type(e.expires) == "string" then
    local d = e.days_left
    return string.format("expire%s %s (%s, the certificate's notAfter)", d < 0 and "d" or "s", e.expires,
      d < 0 and "it has ended" or (days_text(d) .. " left"))
  end
  return "does not expire (a secret key; the tokens it gets do)"
end

-- The machine-readable fields, set in into (a --json result, a report
-- row): expires (ISO 8601 UTC) and days_left, null for a key that does not
-- expire; expiry_source says what ends it ("certificate") or "none".
function M.fields(e, into)
  into = into or {}
  into.expires = e and e.expires or json.null
  into.days_left = e and e.days_left or json.null
  into.expiry_source = e and e.source or json.null
  into.expiry_error = e and e.error or nil
  return into
end

return M
