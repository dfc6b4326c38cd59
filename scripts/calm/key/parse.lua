-- calm.key.parse: a key in whatever envelope BTP hands it out (bare key,
-- binding, credentials envelope, VCAP_SERVICES entry or document) or
-- calmbind wrote it in (a Kubernetes Secret, calm.key.k8s).
--
--   k = parse.from_value(value, source [, {name =}]); parse.parse(text, source)
--   text = parse.read(path); k = parse.load(path [, opts])
local log = require "calm.log"
local U = require "calm.key.util"
local input = require "calm.lib.input"
local k8s = require "calm.key.k8s"
local kind_of, shown, get_ci, is_nonempty_string = U.kind_of, U.shown, U.get_ci, U.is_nonempty_string
local M = {}

local function looks_like_key(t)
  return type(t) == "table" and (t.uaa ~= nil or get_ci(t, "endpoints") ~= nil)
end

-- Candidates of a VCAP_SERVICES document: {entry, label} pairs.
local function vcap_entries(doc)
  local found, any_array = {}, false
  for label, list in pairs(doc) do
    if type(list) ~= "table" then return nil end
    any_array = true
    for _, e in ipairs(list) do
      if type(e) == "table" and looks_like_key(e.credentials) then
        found[#found + 1] = { entry = e, label = type(e.label) == "string" and e.label or label }
      end
    end
  end
  if not any_array then return nil end
  return found
end

local function entry_name(e)
  return type(e.name) == "string" and e.name or nil
end

-- Finds the bare key inside what BTP handed out. Returns bare, info | nil, why.
local function unwrap(v, want_name)
  if looks_like_key(v) then return v, { wrapper = "key" } end
  if type(v.credentials) == "table" then
    if not looks_like_key(v.credentials) then
      return nil, "credentials holds no uaa section"
    end
    local wrapper = "credentials"
    if v.service_instance_id ~= nil or v.id ~= nil then wrapper = "binding"
    elseif v.label ~= nil then wrapper = "vcap-entry" end
    return v.credentials, { wrapper = wrapper, name = entry_name(v) }
  elseif v.credentials ~= nil then
    return nil, "credentials must be an object, not " .. kind_of(v.credentials)
  end
  if v.kind == "Secret" and (v.stringData ~= nil or v.data ~= nil) then
    local bare, name = k8s.from_secret(v)
    if not bare then return nil, "Kubernetes Secret: " .. name end
    return bare, { wrapper = "k8s-secret", name = name }
  end
  -- `cf env` shows {"VCAP_SERVICES": {...}}
  local inner = v.VCAP_SERVICES
  if inner == nil and type(v.system_env_json) == "table" then inner = v.system_env_json.VCAP_SERVICES end
  if type(inner) == "table" then v = inner end
  local entries = vcap_entries(v)
  if entries then
    if want_name then
      local picked = {}
      for _, c in ipairs(entries) do
        if entry_name(c.entry) == want_name then picked[#picked + 1] = c end
      end
      entries = picked
      if #entries == 0 then return nil, "VCAP_SERVICES has no entry named '" .. shown(want_name) .. "'" end
    end
    if #entries > 1 then
      local ours = {}
      for _, c in ipairs(entries) do
        if c.label == U.LABEL then ours[#ours + 1] = c end
      end
      if #ours > 0 then entries = ours end
    end
    if #entries == 1 then
      local e = entries[1].entry
      if e.credentials.uaa == nil and e.credentials.clientid ~= nil then
        -- the Cloud SDK's copy (calm.key.format): XSUAA's fields on top, apiurl changed
        return nil, "VCAP_SERVICES entry '" .. shown(entry_name(e) or "?") .. "' (label " .. shown(entries[1].label)
          .. ") holds XSUAA's fields, not the key; read the " .. U.LABEL .. " entry"
      end
      return e.credentials, { wrapper = "vcap", name = entry_name(e) }
    end
    if #entries == 0 then return nil, "VCAP_SERVICES holds no entry with a uaa section" end
    local names = {}
    for _, c in ipairs(entries) do names[#names + 1] = "'" .. shown(entry_name(c.entry) or "?") .. "'" end
    table.sort(names)
    return nil, "VCAP_SERVICES holds " .. #entries .. " service keys (" .. table.concat(names, ", ")
      .. "); name the one you mean (--name)"
  end
  return nil, "not a service key: no uaa section (expected the key, a binding with credentials, "
    .. "a {\"credentials\": ...} envelope or VCAP_SERVICES)"
end


-- Registers every secret value with the log redaction as soon as we see it.
local function register_secrets(uaa)
  if type(uaa) ~= "table" then return end
  for _, f in ipairs(U.SECRET_FIELDS) do
    if is_nonempty_string(uaa[f]) then log.secret(uaa[f]) end
  end
end

-- key.from_value(value, source [, opts]) -> k | nil, message, "INPUT"
-- value is decoded JSON (a bare key, a binding, an envelope or VCAP_SERVICES).
-- opts.name picks a VCAP_SERVICES entry by name.
function M.from_value(v, source, opts)
  opts = opts or {}
  source = source and shown(source, 200) or "key"
  if type(v) ~= "table" or (next(v) ~= nil and #v > 0) then
    return nil, source .. ": not a service key: the JSON is " .. kind_of(v) .. ", not an object", "INPUT"
  end
  local kind, why = input.kind(v)
  local refused = input.refusal(kind, why, "calm", source)
  if refused then return nil, refused, "INPUT" end
  local bare, info = unwrap(v, opts.name)
  if not bare then return nil, source .. ": " .. info, "INPUT" end
  if type(bare.uaa) == "table" then register_secrets(bare.uaa) end
  local endpoints = get_ci(bare, "endpoints")
  local api = type(endpoints) == "table" and get_ci(endpoints, "Api") or nil
  local k = {
    data = bare,
    source = source,
    wrapper = info.wrapper,
    name = info.name,
    uaa = type(bare.uaa) == "table" and bare.uaa or nil,
    api = type(api) == "string" and api or nil,
  }
  return k
end

-- key.parse(text, source [, opts]) -> k | nil, message, "INPUT"
function M.parse(text, source, opts)
  local label = source and shown(source, 200) or "key"
  -- BOM, raw `cf service-key` output, what a file that is not JSON looks like
  local v, msg = input.decode(text, label)
  if v == nil then return nil, msg, "INPUT" end
  return M.from_value(v, label, opts)
end

-- key.read(path) -> text | nil, message, code: a file (a FIFO, /dev/fd/N
-- too) or "-", standard input (calm.lib.input.read: once a run).
function M.read(path)
  local text, msg, code = input.read(path, "FILE")
  if not text then
    -- fs names the file: "cannot read 'k.json': ..."
    return nil, (tostring(msg):gsub("^FILE: ", "")), code
  end
  return text
end

-- key.load(path [, opts]) -> k | nil, message, code
function M.load(path, opts)
  local text, msg, code = M.read(path)
  if not text then return nil, msg, code end
  return M.parse(text, path == "-" and "standard input" or path, opts)
end

return M
