-- calm.ops.fleet_inventory: reads and judges a fleet inventory before any
-- request is sent.
--
--   local inv = fleet_inventory.load(path)   -- {tenants = {...}, defaults = {...}}
--                                            -- | nil, message, "INPUT"
--   local rows = fleet_inventory.parse_csv(text, label)  -- | nil, message
--   local mine = fleet_inventory.shard(tenants, k, n)
--
-- JSON: {"defaults": {...}, "tenants": [{...}, ...]}; CSV: a header row of
-- field names, one tenant a row. Field names are the long option names with
-- "_" for "-". Path fields are made relative to the inventory's directory.
local cli = require "calm.lib.cli"
local fs = require "calm.fs"
local json = require "calm.lib.json"
local util = require "calm.key.util"
local M = {}

-- Every field an inventory may hold, and its kind: "path" (made relative to
-- the inventory file), "flag" (true/false), "string" (checked by the command's
-- option rules later), "duration" (seconds: 90, 90s, 10m, 1h, 7d), "days" (a
-- whole number >= 0, written as a number or as digits).
M.FIELDS = {
  name = "string", sm_key = "path", cis_key = "path", cis_key2 = "path", subaccount = "string",
  provisioned = "string", scenario = "string", instance_name = "string",
  binding_name = "string", runtime = "string", cf_api = "string", cf_space = "string",
  credential_type = "string", cacert = "path", verify = "flag", no_verify = "flag", out = "path",
  update_instance = "string", x509_validity = "string",
  -- --command verify: fail (exit 6) a key whose certificate ends within this many days
  warn_days = "days",
  key = "path", delete_old = "flag", timeout = "duration",
  -- --command rotate: rotate's --yes, --if-older-than, --if-expires-within and --dry-run
  yes = "flag", if_older_than = "duration", if_expires_within = "duration", dry_run = "flag",
  -- --format k8s-secret: the Secret's name (default: the tenant's) and namespace
  secret_name = "string", namespace = "string",
  -- the tenant's policy: a policy.lua file, or a directory holding one
  -- (calm.policy.load); without it, the override directories' policy.lua
  policy = "path",
  -- what `calmbind discover` writes for the reader; fleet passes them to no command
  region = "string", missing = "string", evidence = "string",
}

local function field_names()
  local names = {}
  for k in pairs(M.FIELDS) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- "unknown field 'x' (did you mean y?)", or the known fields when no name is
-- near; a field spelt as its option (sm-key) is pointed to sm_key.
local function unknown_field(where, name)
  local names = field_names()
  local word = tostring(name)
  local near = M.FIELDS[(word:gsub("%-", "_"):gsub("^_+", ""))] and (word:gsub("%-", "_"):gsub("^_+", ""))
    or cli.suggest(word:lower(), names)
  if near then return string.format("%s: unknown field '%s' (did you mean %s?)", where, word, near) end
  return string.format("%s: unknown field '%s' (known: %s)", where, word, table.concat(names, ", "))
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function resolve(dir, p)
  if p:sub(1, 1) == "/" or dir == "." then return p end
  return dir .. "/" .. p
end

-- ------------------------------------------------------------------ CSV --

-- RFC 4180: fields separated by ",", optionally in double quotes ("" is a
-- quote inside); CRLF or LF line ends; a UTF-8 BOM is skipped. Unquoted
-- values are trimmed. Returns an array of {line = n, fields = {...}} (blank
-- lines skipped) | nil, message.
function M.parse_csv(text, label)
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local rows, fields, field = {}, {}, {}
  local i, n, line, row_line = 1, #text, 1, 1
  local quoted, had_quotes = false, false
  local function end_field()
    local v = table.concat(field)
    if not had_quotes then v = v:match("^%s*(.-)%s*$") end
    fields[#fields + 1] = v
    field, had_quotes = {}, false
  end
  local function end_row()
    end_field()
    if not (#fields == 1 and fields[1] == "" ) then
      rows[#rows + 1] = { line = row_line, fields = fields }
    end
    fields = {}
  end
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1
        else quoted = false end
      else
        if c == "\n" then line = line + 1 end
        field[#field + 1] = c
      end
    elseif c == '"' then
      if #field > 0 and table.concat(field):match("%S") or had_quotes then
        return nil, string.format("%s line %d: a quote inside an unquoted value (quote the whole value, "
          .. "and double a quote inside it)", label, line)
      end
      field, quoted, had_quotes = {}, true, true
    elseif c == "," then
      end_field()
    elseif c == "\n" or c == "\r" then
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      end_row()
      line = line + 1
      row_line = line
    elseif had_quotes then
      if not c:match("%s") then
        return nil, string.format("%s line %d: text after a closing quote", label, line)
      end
    else
      field[#field + 1] = c
    end
    i = i + 1
  end
  if quoted then return nil, string.format("%s line %d: a quoted value is not closed", label, row_line) end
  if #field > 0 or had_quotes or #fields > 0 then end_row() end
  return rows
end

-- Rows (header first) -> tenants as {field = value} with "" left out.
local function csv_tenants(text, label)
  local rows, msg = M.parse_csv(text, label)
  if not rows then return nil, msg end
  if #rows == 0 then return nil, label .. ": empty: a header row of field names is needed" end
  local header = rows[1].fields
  local seen = {}
  for col, h in ipairs(header) do
    if h == "" then return nil, string.format("%s line 1: column %d has no field name", label, col) end
    if not M.FIELDS[h] then return nil, unknown_field(label .. " line 1", h) end
    if seen[h] then return nil, string.format("%s line 1: field '%s' appears twice", label, h) end
    seen[h] = true
  end
  if not seen.name then return nil, label .. " line 1: no 'name' column: every tenant needs a name" end
  local out = {}
  for r = 2, #rows do
    local row = rows[r]
    if #row.fields ~= #header then
      return nil, string.format("%s line %d: %d values, but the header has %d fields", label, row.line,
        #row.fields, #header)
    end
    local t = { _where = string.format("%s line %d", label, row.line) }
    for col, h in ipairs(header) do
      if row.fields[col] ~= "" then t[h] = row.fields[col] end
    end
    out[#out + 1] = t
  end
  return out
end

-- ----------------------------------------------------------------- JSON --

-- Decoded JSON: objects have string keys only, arrays integer keys only.
local function is_object(v)
  return type(v) == "table" and (next(v) == nil or type(next(v)) == "string")
end

local function is_list(v)
  return type(v) == "table" and (next(v) == nil or type(next(v)) == "number")
end

local function json_tenants(text, label)
  local doc, msg = json.decode(text, label)
  if doc == nil then return nil, msg end
  if not is_object(doc) then
    return nil, label .. ": not an object {\"defaults\": {...}, \"tenants\": [...]}"
  end
  for k in pairs(doc) do
    if k ~= "defaults" and k ~= "tenants" then
      return nil, string.format("%s: unknown member '%s' (only defaults and tenants)", label, tostring(k))
    end
  end
  local defaults = doc.defaults or {}
  if not is_object(defaults) then
    return nil, label .. ": defaults must be an object"
  end
  if defaults.name ~= nil then return nil, label .. ": defaults: 'name' belongs to each tenant" end
  local tenants = doc.tenants
  if not is_list(tenants) then
    return nil, label .. ": tenants must be an array of objects"
  end
  for i, t in ipairs(tenants) do
    if not is_object(t) then
      return nil, string.format("%s: tenants[%d] is not an object", label, i)
    end
    t._where = string.format("%s: tenants[%d]", label, i)
  end
  defaults._where = label .. ": defaults"
  return tenants, nil, defaults
end

-- ------------------------------------------------------------- checking --

local TRUE = { ["true"] = true, yes = true, ["1"] = true, on = true }
local FALSE = { ["false"] = false, no = false, ["0"] = false, off = false }

-- One value by the field's kind; paths made relative to dir.
local function normalise(t, dir)
  local where = t._where
  local out = {}
  for k, v in pairs(t) do
    if k ~= "_where" then
      local kind = M.FIELDS[k]
      if not kind then return nil, unknown_field(where, k) end
      if kind == "flag" then
        if type(v) == "string" then
          local b = TRUE[v:lower()]
          if b == nil then b = FALSE[v:lower()] end
          v = b
        end
        if type(v) ~= "boolean" then return nil, string.format("%s: %s must be true or false", where, k) end
      elseif kind == "days" then
        local n = type(v) == "number" and math.tointeger(v)
          or (type(v) == "string" and v:match("^%d+$") and math.tointeger(tonumber(v)))
        if not n or n < 0 or n > 36500 then
          return nil, string.format("%s: %s must be a whole number of days, 0 to 36500", where, k)
        end
        v = n
      elseif kind == "duration" then
        local n = cli.duration(v)
        if not n or n <= 0 then
          return nil, string.format("%s: %s must be a duration > 0 (%s)", where, k, cli.DURATION_HELP)
        end
        v = n
      else
        if type(v) ~= "string" then return nil, string.format("%s: %s must be a string", where, k) end
        if v:find("%c") then return nil, string.format("%s: %s holds a control character", where, k) end
        if kind == "path" then v = resolve(dir, v) end
      end
      out[k] = v
    end
  end
  return out
end

-- load(path) -> {tenants = {{name=, where=, fields...}}, defaults = {...}}
-- | nil, message, "INPUT". Checks names (present, [A-Za-z0-9._-]+, unique)
-- and fields; the options themselves are judged by the command later.
function M.load(path)
  local text, msg = fs.read(path, 64 * 1024 * 1024)
  if not text then return nil, "cannot read the inventory " .. path .. ": " .. tostring(msg), "INPUT" end
  local label = "inventory " .. path
  local rows, defaults
  local first = text:match("^\239\187\191?%s*(.)") or text:match("^%s*(.)")
  if path:lower():match("%.csv$") or (first ~= "{" and first ~= "[" and not path:lower():match("%.json$")) then
    rows, msg = csv_tenants(text, label)
  else
    rows, msg, defaults = json_tenants(text, label)
  end
  if not rows then return nil, msg, "INPUT" end
  local dir = dirname(path)
  local d = {}
  if defaults then
    d, msg = normalise(defaults, dir)
    if not d then return nil, msg, "INPUT" end
  end
  local tenants, by_name = {}, {}
  for _, row in ipairs(rows) do
    local where = row._where
    local t
    t, msg = normalise(row, dir)
    if not t then return nil, msg, "INPUT" end
    if t.name == nil then return nil, where .. ": no name (every tenant needs one)", "INPUT" end
    if not t.name:match("^[%w%._%-]+$") or t.name == "." or t.name == ".." then
      return nil, string.format("%s: name '%s': only letters, digits, '.', '_' and '-' are allowed", where,
        util.shown(t.name)), "INPUT"
    end
    if by_name[t.name] then
      return nil, string.format("%s: name '%s' is used twice (also at %s)", where, t.name, by_name[t.name]), "INPUT"
    end
    by_name[t.name] = where
    t.where = where
    tenants[#tenants + 1] = t
  end
  if #tenants == 0 then return nil, label .. ": no tenants", "INPUT" end
  return { tenants = tenants, defaults = d, path = path }
end

-- --------------------------------------------------------------- shards --

-- FNV-1a (32 bit) of the name: a tenant's shard depends only on its name and
-- N, so shards stay put when tenants are added, removed or reordered.
local function fnv1a(s)
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return h
end
M.hash = fnv1a

-- "K/N" -> k, n | nil, message, "USAGE".
function M.parse_shard(s)
  local k, n = tostring(s):match("^(%d+)/(%d+)$")
  k, n = tonumber(k), tonumber(n)
  if not k or n < 1 or k < 1 or k > n or n > 100000 then
    return nil, "--shard must be K/N with 1 <= K <= N (got '" .. tostring(s) .. "')", "USAGE"
  end
  return k, n
end

-- The tenants of shard k of n, in inventory order.
function M.shard(tenants, k, n)
  local out = {}
  for _, t in ipairs(tenants) do
    if fnv1a(t.name) % n == k - 1 then out[#out + 1] = t end
  end
  return out
end

return M
