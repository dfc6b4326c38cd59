-- calm.key.k8s: a key as a Kubernetes Secret manifest, and the names it
-- takes (--secret-name, --namespace).
--
--   text | nil, msg, code = k8s.manifest(k, {secret_name =, namespace =, instance_name =, name =})
--   ok | nil, msg, "USAGE" = k8s.check_name(v, label); k8s.check_namespace(v, label)
--   name = k8s.default_name(binding_name)
--   k8s.OPTIONS: --secret-name and --namespace (calm.lib.cli spec entries)
--   ok | nil, msg, "USAGE" = k8s.check_options(opts)   -- before any request
--   bare, name | nil, why = k8s.from_secret(v)   -- the key in a Secret read back
--
-- The Secret holds what the SAP BTP service operator puts in the Secret of a
-- ServiceBinding: one entry per top-level field of the key (the `endpoints`
-- and `uaa` objects as JSON), the instance's `label`, `plan` and `type`, and
-- a `.metadata` entry that says which entries are credentials and in which
-- format. Mounted as a volume under $SERVICE_BINDING_ROOT/<name>/, @sap/xsenv
-- (and so the SAP Cloud SDK) reads it as a binding of label SAPCloudALMAPIs.
-- JSON, not YAML: kubectl takes it as it is and it cannot be misquoted.
local cli = require "calm.lib.cli"
local codec = require "calm.codec"
local json = require "calm.lib.json"
local U = require "calm.key.util"
local M = {}

-- Kubernetes' own rules: a Secret's name is a DNS-1123 subdomain (RFC 1123
-- labels joined by dots, at most 253 characters), a namespace a DNS-1123
-- label (at most 63); both lowercase letters, digits and '-', starting and
-- ending with a letter or digit.
local function is_label(s, max)
  if #s < 1 or #s > max then return false end
  return s:match("^[a-z0-9]$") ~= nil or s:match("^[a-z0-9][a-z0-9-]*[a-z0-9]$") ~= nil
end

local function is_subdomain(s)
  if #s < 1 or #s > 253 then return false end
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if not is_label(part, 63) then return false end
  end
  return true
end

function M.check_name(v, label)
  if type(v) ~= "string" or not is_subdomain(v) then
    return nil, string.format("%s '%s': a Secret's name must be a DNS-1123 subdomain (lowercase letters, digits, "
      .. "'-' and '.', starting and ending with a letter or digit, at most 253 characters)", label,
      U.shown(tostring(v), 80)), "USAGE"
  end
  return true
end

function M.check_namespace(v, label)
  if type(v) ~= "string" or not is_label(v, 63) then
    return nil, string.format("%s '%s': a namespace must be a DNS-1123 label (lowercase letters, digits and '-', "
      .. "starting and ending with a letter or digit, at most 63 characters)", label, U.shown(tostring(v), 80)), "USAGE"
  end
  return true
end

M.OPTIONS = {
  ["secret-name"] = { arg = "N", allow_secret_name = true, help = "with --format k8s-secret: the Secret's name (a DNS-1123 subdomain; "
    .. "default: the binding's name, lowercase, other characters made '-')" },
  namespace = { arg = "NS", help = "with --format k8s-secret: the Secret's namespace (a DNS-1123 label; "
    .. "default: none, kubectl's current one)" },
}

-- The options' values, judged before any request; naming them as given.
function M.check_options(opts)
  local L = function(name) return cli.label(opts, name) end
  for _, o in ipairs { "secret-name", "namespace" } do
    if opts[o] ~= nil and opts.format ~= "k8s-secret" then
      return nil, L(o) .. " needs " .. L("format") .. " k8s-secret", "USAGE"
    end
  end
  if opts["secret-name"] then
    local ok, msg, code = M.check_name(opts["secret-name"], L("secret-name"))
    if not ok then return nil, msg, code end
  end
  if opts.namespace then return M.check_namespace(opts.namespace, L("namespace")) end
  return true
end

-- A binding's (or tenant's) name made a Secret name: lowercase, every other
-- character '-', no '-' or '.' at either end; "calm-api-key" if nothing is left.
function M.default_name(name)
  local s = tostring(name or ""):lower():gsub("[^a-z0-9.-]", "-")
  local labels = {}
  for part in (s .. "."):gmatch("([^.]*)%.") do
    part = part:gsub("^%-+", ""):sub(1, 63):gsub("%-+$", "")
    if part ~= "" then labels[#labels + 1] = part end
  end
  s = table.concat(labels, "."):sub(1, 253):gsub("[.-]+$", "")
  if not is_subdomain(s) then return "calm-api-key" end
  return s
end

-- Entries the service operator's format reserves beside the key's fields.
local RESERVED = { [".metadata"] = true, label = true, plan = true, type = true, instance_name = true, tags = true }

local ORDER = { "apiVersion", "kind", "metadata", "name", "namespace", "labels", "stringData" }

-- The operator's .metadata entry, on one line in a fixed order:
-- {"metaDataProperties":[{"name":..,"format":..}],"credentialProperties":[..]}
local function metadata_entry(meta, creds)
  local function list(props)
    local out = {}
    for _, p in ipairs(props) do
      out[#out + 1] = '{"name":' .. json.encode(p.name) .. ',"format":' .. json.encode(p.format) .. "}"
    end
    return "[" .. table.concat(out, ",") .. "]"
  end
  return '{"metaDataProperties":' .. list(meta) .. ',"credentialProperties":' .. list(creds) .. "}"
end

local KEY_ORDER = {
  "endpoints", "Api", "uaa",
  "clientid", "clientsecret", "credential-type", "url", "certurl", "certificate", "key",
  "identityzone", "identityzoneid", "tenantid", "subaccountid", "zoneid", "tenantmode",
  "uaadomain", "xsappname", "serviceInstanceId", "sburl", "apiurl", "verificationkey",
}

function M.manifest(k, opts)
  opts = opts or {}
  local name = opts.secret_name or M.default_name(opts.name or k.name)
  local ok, msg, code = M.check_name(name, "--secret-name")
  if not ok then return nil, msg, code end
  if opts.namespace then
    ok, msg, code = M.check_namespace(opts.namespace, "--namespace")
    if not ok then return nil, msg, code end
  end
  local data, creds, meta = {}, {}, {}
  local fields = {}
  for f in pairs(k.data) do fields[#fields + 1] = f end
  table.sort(fields)
  for _, f in ipairs(fields) do
    if RESERVED[f] or not tostring(f):match("^[%w._-]+$") then
      return nil, string.format("%s: the key's field '%s' cannot be an entry of the Secret (%s)", k.source,
        U.shown(f), RESERVED[f] and "the service operator's format uses that name" or
        "a Secret's keys are letters, digits, '-', '_' and '.'"), "INPUT"
    end
    local v = k.data[f]
    if type(v) == "string" then
      data[f], creds[#creds + 1] = v, { name = f, format = "text" }
    else
      data[f], creds[#creds + 1] = json.pretty(v, KEY_ORDER), { name = f, format = "json" }
    end
  end
  data.label, data.type, data.plan = U.LABEL, U.LABEL, "standard"
  for _, f in ipairs { "label", "plan", "type" } do meta[#meta + 1] = { name = f, format = "text" } end
  if type(opts.instance_name) == "string" and opts.instance_name ~= "" then
    data.instance_name = opts.instance_name
    meta[#meta + 1] = { name = "instance_name", format = "text" }
  end
  data[".metadata"] = metadata_entry(meta, creds)
  local doc = {
    apiVersion = "v1", kind = "Secret", type = "Opaque",
    metadata = { name = name, namespace = opts.namespace,
                 labels = { ["app.kubernetes.io/managed-by"] = "calmbind" } },
    stringData = data,
  }
  return json.pretty(doc, ORDER) .. "\n"
end

-- The Secret's entries: stringData as written, data (what `kubectl get
-- secret -o json` shows) base64-decoded. Returns entries | nil, why.
local function secret_entries(v)
  local entries = {}
  for _, part in ipairs { "data", "stringData" } do
    if v[part] ~= nil and type(v[part]) ~= "table" then return nil, part .. " must be an object" end
  end
  for f, text in pairs(v.data or {}) do
    local plain = type(text) == "string" and codec.b64decode(text)
    if not plain then return nil, "data." .. U.shown(f) .. " is not base64" end
    entries[f] = plain
  end
  for f, text in pairs(v.stringData or {}) do
    if type(text) ~= "string" then return nil, "stringData." .. U.shown(f) .. " must be a string" end
    entries[f] = text
  end
  return entries
end

-- k8s.from_secret(v) -> bare key, name | nil, why: a Secret's key fields
-- are those .metadata calls credentials (json ones decoded), else its
-- endpoints and uaa entries as JSON.
function M.from_secret(v)
  local entries, why = secret_entries(v)
  if not entries then return nil, why end
  local props = { { name = "endpoints", format = "json" }, { name = "uaa", format = "json" } }
  if entries[".metadata"] then
    local m, msg = json.decode(entries[".metadata"], "the Secret's .metadata entry")
    if m == nil then return nil, msg end
    if type(m) ~= "table" or type(m.credentialProperties) ~= "table" then
      return nil, "the Secret's .metadata entry has no credentialProperties list"
    end
    props = m.credentialProperties
  end
  local bare = {}
  for _, p in ipairs(props) do
    local text = type(p) == "table" and entries[p.name]
    if text then
      if p.format == "json" then
        local val, msg = json.decode(text, "the Secret's " .. U.shown(p.name) .. " entry")
        if val == nil then return nil, msg end
        bare[p.name] = val
      else
        bare[p.name] = text
      end
    end
  end
  if type(bare.uaa) ~= "table" then return nil, "the Secret holds no uaa entry (an object)" end
  local meta = type(v.metadata) == "table" and v.metadata or {}
  return bare, type(meta.name) == "string" and meta.name or nil
end

return M
