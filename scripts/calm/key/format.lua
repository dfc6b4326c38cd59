-- calm.key.format: a key in the shapes its consumers want (json, alm-setup,
-- env, dotenv, vcap, k8s-secret) and written out (0600 and atomically, or to a pipe).
--
--   text | nil, msg, code = format.format(k, "env"); format.output(text, {out =, show_secrets =})
--   format.export(k, {format =, out =, show_secrets =, name =})
--   text = format.result_json(result)   -- check's and verify's --json
local json = require "calm.lib.json"
local log = require "calm.log"
local U = require "calm.key.util"
local k8s = require "calm.key.k8s"
local shown, is_nonempty_string, has_control, is_x509 =
  U.shown, U.is_nonempty_string, U.has_control, U.is_x509
local M = {}

-- Key files are written with a stable key order: these first, the rest sorted.
local ORDER = {
  "endpoints", "Api", "uaa",
  "clientid", "clientsecret", "credential-type", "url", "certurl", "certificate", "key",
  "identityzone", "identityzoneid", "tenantid", "subaccountid", "zoneid", "tenantmode",
  "uaadomain", "xsappname", "serviceInstanceId", "sburl", "apiurl", "verificationkey",
  -- VCAP entry fields
  "label", "provider", "plan", "name", "instance_name", "binding_name", "tags", "credentials",
}
-- key.pretty_json(value) -> text ending in a newline.
function M.pretty_json(v)
  return json.pretty(v, ORDER) .. "\n"
end

-- key.result_json(t) -> the --json text of check and verify (t = {ok, exit,
-- error, problems, warnings, ...}), ending in a newline: messages name
-- fields, not values, and anything registered as a secret is redacted all
-- the same.
function M.result_json(t)
  t.problems, t.warnings = json.array(t.problems), json.array(t.warnings)
  return log.redact(json.pretty(t, { "ok", "exit", "error" })) .. "\n"
end

-- POSIX sh single quoting: everything literal, ' becomes '\''.
local function shq(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
M.shell_quote = shq

local exportable = require("calm.key.check").exportable
local fs = require "calm.fs"

local function fmt_json(k)
  return M.pretty_json(k.data)
end

-- The entry SAP Cloud SDK's @sap-cloud-sdk/connectivity resolves: it turns
-- a binding into a destination by its label, and of the labels it knows only
-- `xsuaa` reads XSUAA's fields at the top of `credentials` (clientid,
-- clientsecret or certificate and key, url, certurl, uaadomain, ...) and
-- takes `apiurl` as the destination's URL. So: the key's uaa part, apiurl the
-- Cloud ALM API (XSUAA's own REST API is of no use to this client; the
-- SAPCloudALMAPIs entry keeps the key as it is), and the key's endpoints.
local function sdk_entry(k, name, opts)
  local creds = {}
  for f, v in pairs(k.uaa) do creds[f] = v end
  creds.apiurl = k.api
  creds.endpoints = U.get_ci(k.data, "endpoints")
  return {
    label = "xsuaa", plan = "standard", name = name .. "-xsuaa",
    instance_name = opts.instance_name, binding_name = opts.binding_name or k.name,
    tags = json.array({ "xsuaa", U.LABEL }), credentials = creds,
  }
end

-- VCAP_SERVICES with two entries of the key: label SAPCloudALMAPIs (the key
-- as it is, for @sap/xsenv and calmbind itself) and label xsuaa (for the
-- Cloud SDK). Their names differ, since xsenv indexes entries by name.
local function fmt_vcap(k, opts)
  local name = opts.name or k.name or "calm-api-key"
  local entry = {
    label = U.LABEL, plan = "standard", name = name,
    instance_name = opts.instance_name, binding_name = opts.binding_name or k.name,
    tags = json.array({}), credentials = k.data,
  }
  return M.pretty_json({ [U.LABEL] = json.array({ entry }), xsuaa = json.array({ sdk_entry(k, name, opts) }) })
end

-- (variable, value) pairs in a fixed order; only fields the key has.
local function env_pairs(k)
  local uaa = k.uaa
  local x509 = is_x509(uaa)
  local list = {}
  local function add(name, v) if is_nonempty_string(v) then list[#list + 1] = { name, v } end end
  add("CALM_API_URL", k.api)
  add("CALM_ROOT_URL", U.root_url(k))
  local tenant, region = U.tenant_region(k)
  add("CALM_TENANT", tenant)
  add("CALM_REGION", region)
  add("CALM_TOKEN_URL", U.token_url(k))
  add("CALM_CLIENT_ID", uaa.clientid)
  if x509 then
    add("CALM_CERT_URL", uaa.certurl)
    add("CALM_CLIENT_CERTIFICATE", uaa.certificate)
    add("CALM_CLIENT_KEY", uaa.key)
  else
    add("CALM_CLIENT_SECRET", uaa.clientsecret)
  end
  add("CALM_CREDENTIAL_TYPE", type(uaa["credential-type"]) == "string" and uaa["credential-type"] or (x509 and "x509" or nil))
  add("CALM_UAA_URL", uaa.url)
  add("CALM_IDENTITY_ZONE", uaa.identityzone)
  add("CALM_IDENTITY_ZONE_ID", uaa.identityzoneid)
  add("CALM_TENANT_ID", uaa.tenantid)
  return list
end
M.env_pairs = env_pairs

-- The key's source for a comment line: as it reads ("binding 'x'"), only
-- control characters (a line break would end the comment) made "?".
local function comment_source(k)
  return (tostring(k.source):gsub("%c", "?"))
end

local function fmt_env(k)
  local out = { "# SAP Cloud ALM API key (" .. comment_source(k) .. "); POSIX sh: . this file" }
  for _, p in ipairs(env_pairs(k)) do
    if p[2]:find("\0", 1, true) then
      return nil, k.source .. ": the value for " .. p[1] .. " contains a NUL character, which no shell variable can hold", "INPUT"
    end
    out[#out + 1] = "export " .. p[1] .. "=" .. shq(p[2])
  end
  return table.concat(out, "\n") .. "\n"
end

-- What the Cloud ALM setup guide documents for mTLS in /SDF/ALM_SETUP: from
-- ST-PI 7.40 SP29 the admin chooses Activate and SAP generates and rotates
-- the certificate and its key; the manual fields are those of a secret key.
-- Said first, before the fields of this key.
local X509_ACTIVATE = {
  "# This is an x509 (mutual TLS) key. From ST-PI 7.40 SP29, /SDF/ALM_SETUP sets up mTLS itself:",
  "# choose Activate there and SAP generates and rotates the certificate and its key, so this",
  "# key need not reach the managed system. Older releases: update ST-PI.",
  "",
}

-- KEY=value lines as `docker run --env-file`, GitHub Actions' $GITHUB_ENV
-- and compose's env_file read them: the value is taken literally to the end
-- of the line, no quotes, so a value with a line break or another control
-- character cannot be carried and is refused, naming the variable.
local function fmt_dotenv(k)
  local out = { "# SAP Cloud ALM API key (" .. comment_source(k) .. "); docker --env-file, $GITHUB_ENV" }
  for _, p in ipairs(env_pairs(k)) do
    if p[2]:find("[%c]") then
      local what = p[2]:find("[\r\n]") and "a line break" or "a control character"
      return nil, string.format("%s: the value for %s holds %s, which a KEY=value line (docker --env-file, "
        .. "$GITHUB_ENV) cannot carry; use --format env (sh quoting) or json", k.source, p[1], what), "INPUT"
    end
    out[#out + 1] = p[1] .. "=" .. p[2]
  end
  return table.concat(out, "\n") .. "\n"
end

local X509_SETUP = {
  "",
  "# The guide's manual fields are token endpoint, client ID, client secret, proxy and root URL:",
  "# it documents no field for a certificate or private key, and Landscape Management does not",
  "# accept x509 keys. To enter the fields by hand, use a binding-secret key",
  "# (calmbind get --credential-type binding-secret).",
}

local function fmt_alm_setup(k)
  local uaa = k.uaa
  local x509 = is_x509(uaa)
  local function one_line(field, v)
    if has_control(v) then
      return nil, k.source .. ": " .. field .. " contains a line break or control character and cannot be entered as one field", "INPUT"
    end
    return v
  end
  local lines = {}
  local function add(label, field, v)
    local ok, msg, code = one_line(field, v)
    if not ok then return nil, msg, code end
    lines[#lines + 1] = string.format("%-30s %s", label .. ":", v)
    return true
  end
  local steps = {
    { x509 and "OAuth token endpoint (mTLS)" or "OAuth token endpoint", x509 and "uaa.certurl" or "uaa.url", U.token_url(k) },
    { "Client ID", "uaa.clientid", uaa.clientid },
  }
  if not x509 then steps[#steps + 1] = { "Client secret", "uaa.clientsecret", uaa.clientsecret } end
  steps[#steps + 1] = { "Root URL", "endpoints.Api", U.root_url(k) }
  for _, s in ipairs(steps) do
    local ok, msg, code = add(s[1], s[2], s[3])
    if not ok then return nil, msg, code end
  end
  local head = "# /SDF/ALM_SETUP fields for SAP Cloud ALM"
    .. (is_nonempty_string(uaa.identityzone) and (" (tenant " .. shown(uaa.identityzone) .. ")") or "")
  local out = { head, "" }
  if x509 then
    for _, l in ipairs(X509_ACTIVATE) do out[#out + 1] = l end
  end
  for _, l in ipairs(lines) do out[#out + 1] = l end
  if x509 then
    for _, l in ipairs(X509_SETUP) do out[#out + 1] = l end
  end
  out[#out + 1] = ""
  out[#out + 1] = "# Or paste the whole key (calmbind export FILE --format json) under \"Paste Service Keys\"."
  out[#out + 1] = "# The managed system must reach the root URL and the token endpoint (proxy fields if needed)."
  return table.concat(out, "\n") .. "\n"
end

local FORMATTERS = { json = fmt_json, vcap = fmt_vcap, env = fmt_env, dotenv = fmt_dotenv,
  ["alm-setup"] = fmt_alm_setup, ["k8s-secret"] = k8s.manifest }

-- key.format(k, fmt [, opts]) -> text | nil, message, code
-- fmt: json | alm-setup | env | dotenv | vcap | k8s-secret. opts.name: the VCAP
-- entry name; opts.secret_name, opts.namespace: the Secret's (calm.key.k8s).
-- Refuses ("INPUT") a key that fails the structural checks.
function M.format(k, fmt, opts)
  local f = FORMATTERS[fmt]
  if not f then
    return nil, "unknown format '" .. shown(fmt) .. "' (json, alm-setup, env, dotenv, vcap or k8s-secret)", "USAGE"
  end
  local res, msg, code = exportable(k)
  if not res then return nil, msg, code end
  return f(k, opts or {})
end

-- Maps a calm.fs failure to our codes: a bad --out is the user's to fix.
local USER_FS = { ENOENT = true, EACCES = true, EISDIR = true, ENOTDIR = true, ELOOP = true,
                  NOT_FILE = true, SYMLINK = true, EPERM = true, EROFS = true }

-- key.output(text, opts) -> true | nil, message, code
-- opts.out: a path (written 0600, atomically) or nil/"-" for stdout.
-- opts.show_secrets: allow writing to a terminal. opts.secret = false when
-- the text holds no secret.
function M.output(text, opts)
  opts = opts or {}
  if opts.out and opts.out ~= "-" then
    local ok, msg, code = fs.write_private(opts.out, text)
    if not ok then
      return nil, tostring(msg), USER_FS[code] and "USAGE" or (code or "IO") -- msg names the file
    end
    return true
  end
  if opts.secret ~= false and not opts.show_secrets and fs.isatty("stdout") then
    return nil, "refusing to print the key's secret to a terminal: use --out FILE, "
      .. "pipe the output, or add --show-secrets", "USAGE"
  end
  local kind, mode = fs.stdtype("stdout")
  if opts.secret ~= false and kind == "file" and mode & 63 ~= 0 then -- 077: group or others
    log.warn("standard output is a file others can read (mode %04o): the key's secret "
      .. "is in it now; chmod 600 it, or use --out FILE (written 0600)", mode)
  end
  io.stdout:write(text)
  io.stdout:flush()
  return true
end

-- key.export(k, opts) -> true | nil, message, code: format + output in one
-- call, for `export` and `get --format`. opts: format (default json), out,
-- show_secrets, name; warnings of the structural check go to the log.
function M.export(k, opts)
  opts = opts or {}
  local res, msg, code = exportable(k)
  if not res then return nil, msg, code end
  for _, w in ipairs(res.warnings) do log.warn("%s: %s", k.source, w) end
  local text
  text, msg, code = M.format(k, opts.format or "json", opts)
  if not text then return nil, msg, code end
  return M.output(text, opts)
end

return M
