-- calm.lib.input: what a file handed to calmbind is, judged once and the same
-- way in every command (get, plan, check, verify, export).
--
--   local v, msg, code = input.decode(text, "key.json")  -- JSON, BOM and `cf service-key` header tolerated
--   local kind, why = input.kind(v)                       -- "calm" | "sm" | "cis" | "unknown"
--   local t = input.load_key(path, "sm", "--sm-key")      -- the flat key of that kind | nil, msg, "INPUT"
--   local text = input.read(v, "--sm-key")                -- a path, "-" (stdin, once a run) or held JSON
--   local msg = input.refusal(kind, why, "calm", label)   -- the message for a key of the wrong kind
--
-- A file that is not JSON, or a key of the wrong kind (the Cloud ALM key as
-- --sm-key, a Service Manager key given to check), is INPUT (exit 2) with a
-- message that says what the file looks like. Values are never quoted.
local json = require "calm.lib.json"
local fs = require "calm.fs"
local http = require "calm.http"
local url = require "calm.url"

local M = {}

M.NAMES = {
  calm = "the SAP Cloud ALM API key",
  sm = "a Service Manager binding (plan subaccount-admin)",
  cis = "a Cloud Management Service (cis) key",
}

-- What a text that is not JSON looks like (never quoting it).
function M.describe(text)
  local s = text:gsub("^%s+", "")
  if s == "" then return "the file is empty" end
  if s:find("\0", 1, true) then return "it is binary data, not a JSON key" end
  if s:match("^%-%-%-%-%-BEGIN [%u ]*PRIVATE KEY") then return "it looks like a PEM private key, not a JSON key" end
  if s:match("^%-%-%-%-%-BEGIN") then return "it looks like a PEM certificate, not a JSON key" end
  if s:match("^<") then return "it looks like HTML or XML, not a JSON key" end
  if s:match("^Getting key") then
    return "it is `cf service-key` output without the key JSON (did the command fail?)"
  end
  if s:match("^export%s+[%w_]+=") or s:match("^[%u_][%u%d_]*=") then
    return "it looks like shell variable assignments (calmbind export --format env?), not a JSON key"
  end
  if s:match("^[%w_%-]+:%s") then return "it looks like YAML, not a JSON key" end
  if s:match("^[{%[\"]") then return nil end -- JSON that is broken: the decoder says where
  return "it is text that is not JSON"
end

-- Raw `cf service-key` output: "Getting key K for service instance I as U...",
-- a blank line, then the JSON. Returns the JSON part, or the text unchanged.
local function strip_cf_header(text)
  if not text:match("^%s*Getting key [^\n]*\n") then return text end
  local at = text:find("\n%s*[{%[]")
  if not at then return text end
  return text:sub(at + 1)
end

-- input.decode(text, source) -> value | nil, message, "INPUT"
function M.decode(text, source)
  source = source or "key"
  if type(text) ~= "string" then return nil, source .. ": no text", "INPUT" end
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local body = strip_cf_header(text)
  local v, msg = json.decode(body, source)
  if v ~= nil then return v end
  local looks = M.describe(body)
  if looks then return nil, source .. ": not a key: " .. looks, "INPUT" end
  return nil, tostring(msg), "INPUT"
end

local function str(v) return type(v) == "string" and v ~= "" end

local function ci(t, name)
  if type(t) ~= "table" then return nil end
  for k, v in pairs(t) do
    if type(k) == "string" and k:lower() == name then return v end
  end
  return nil
end

local CIS_ENDPOINTS = { "accounts_service_url", "entitlements_service_url", "saas_registry_service_url",
  "provisioning_service_url" }

-- The flat credentials of a binding ({"credentials": {...}}, as BTP, `cf
-- service-key` and the Service Manager API hand them out) or the value itself.
function M.flat(v)
  if type(v) == "table" and type(v.credentials) == "table" and v.uaa == nil and v.clientid == nil then
    return v.credentials
  end
  return v
end

-- input.kind(value) -> "calm" | "sm" | "cis" | "unknown", why (the field that tells)
function M.kind(v)
  local t = M.flat(v)
  if type(t) ~= "table" then return "unknown", "not an object" end
  if str(t.sm_url) then return "sm", "it has sm_url" end
  local ep = ci(t, "endpoints")
  if type(ep) == "table" then
    for _, f in ipairs(CIS_ENDPOINTS) do
      if str(ep[f]) then return "cis", "it has endpoints." .. f end
    end
    if str(ci(ep, "api")) then return "calm", "it has endpoints.Api" end
  end
  if str(t["sap.cloud.service"]) and t["sap.cloud.service"]:find("^com%.sap%.core%.commercial%.service") then
    return "cis", "sap.cloud.service is " .. t["sap.cloud.service"]
  end
  local uaa = type(t.uaa) == "table" and t.uaa or {}
  if str(uaa.xsappname) and uaa.xsappname:match("^cis%-%a+!b%d+$") then
    return "cis", "uaa.xsappname is " .. uaa.xsappname
  end
  if str(uaa.clientid) and uaa.clientid:find("|sapcloudalm!b", 1, true) then
    return "calm", "its uaa.clientid belongs to sapcloudalm"
  end
  return "unknown", nil
end

local ADVICE = {
  calm = "check, verify and export take the SAP Cloud ALM API key; get fetches it",
  sm = "--sm-key takes the key of a Service Manager instance of plan subaccount-admin (it has sm_url)",
  cis = "--cis-key takes the key of a Cloud Management Service (cis) instance, plan central or local",
}
local WHERE = { sm = "--sm-key", cis = "--cis-key" }

-- The message for a key of kind `kind` where `want` was expected; nil when
-- it is not of a wrong known kind.
function M.refusal(kind, why, want, label)
  if kind == want or kind == "unknown" or not M.NAMES[kind] then return nil end
  local msg = string.format("%s is %s (%s), not %s: %s", label, M.NAMES[kind], why or "?",
    M.NAMES[want], ADVICE[want])
  if WHERE[kind] then msg = msg .. "; pass it as " .. WHERE[kind] end
  return msg
end

-- --------------------------------------------------------- key sources --
-- A key option's value is a path (any readable file: a FIFO, /dev/fd/N and
-- <(...) too), "-" (standard input, which one option a run may take), or,
-- from an environment variable, the key's JSON itself (what a CI secret
-- holds). The JSON is kept here, under "$VARIABLE", and never put in opts, so
-- no message or report can show it.

local held = {}        -- "$CALMBIND_SM_KEY" -> the key's text
local stdin_by         -- the option that read standard input this run

-- Whether an environment value is a key's content rather than a path: JSON
-- starts with { or [; a path has no line break (a PEM or YAML pasted there is
-- content too, and is then told apart as "not a key").
function M.is_content(v)
  return type(v) == "string" and (v:find("^%s*[{%[]") ~= nil or v:find("\n", 1, true) ~= nil)
end

-- input.hold(variable, text) -> "$variable": the value a key option takes
-- when its environment variable holds the key itself.
function M.hold(variable, text)
  local token = "$" .. variable
  held[token] = text
  return token
end

-- Whether a key option's value is held content ("$CALMBIND_SM_KEY").
function M.is_held(v) return held[v] ~= nil end

-- How a source is named in messages: the variable for held content, "standard
-- input" for "-", else the path.
function M.source_name(v)
  if held[v] then return v:sub(2) .. " (the key's JSON)" end
  if v == "-" then return "standard input" end
  return tostring(v)
end

-- For tests: forget held content and who read standard input.
function M.reset()
  held, stdin_by = {}, nil
end

-- input.read(v, option [, max]) -> text | nil, msg, code. option names the
-- option for messages ("--sm-key", "CALMBIND_SM_KEY", "FILE"). A second "-"
-- in one run is USAGE: standard input has been read to its end.
function M.read(v, option, max)
  max = max or 1024 * 1024
  if held[v] then
    if #held[v] > max then return nil, option .. ": the key's JSON is larger than " .. max .. " bytes", "INPUT" end
    return held[v]
  end
  if v == "-" then
    if stdin_by then
      return nil, string.format("%s -: standard input was already read for %s; one option a run can be - "
        .. "(give the other as a file, /dev/fd/N or its environment variable)", option, stdin_by), "USAGE"
    end
    stdin_by = option
    local text, msg = fs.read_stdin(max)
    if not text then return nil, option .. ": " .. tostring(msg), "INPUT" end
    return text
  end
  local text, msg = fs.read_input(v, max)
  if not text then return nil, option .. ": " .. tostring(msg), "INPUT" end -- msg names the file
  return text
end

-- input.load_key(v, want, option) -> flat key table, kind | nil, msg, code
-- want: "sm" or "cis"; option: "--sm-key" or its variable (for messages).
function M.load_key(v, want, option)
  local label = held[v] and M.source_name(v) or (option .. " " .. M.source_name(v))
  local text, msg, code = M.read(v, option)
  if not text then return nil, msg, code end
  local dv, dmsg = M.decode(text, label)
  if dv == nil then return nil, dmsg, "INPUT" end
  local t = M.flat(dv)
  if type(t) ~= "table" or (next(t) ~= nil and #t > 0) then
    return nil, label .. ": not a key: the JSON is not an object", "INPUT"
  end
  local kind, why = M.kind(t)
  local r = M.refusal(kind, why, want, label)
  if r then return nil, r, "INPUT" end
  local ok, umsg = M.check_urls(t, label)
  if not ok then return nil, umsg, "INPUT" end
  return t, kind
end

-- input.check_urls(t, label) -> true | nil, msg: every URL of a key (its
-- fields and those of its objects, e.g. uaa.url, endpoints.Api) is one
-- calm.http would send to; a plain http URL to another host is bad input,
-- found before any request, naming the key and the field.
function M.check_urls(t, label)
  local function walk(v, path, depth)
    if type(v) ~= "table" or depth > 3 then return true end
    local names = {}
    for k in pairs(v) do if type(k) == "string" then names[#names + 1] = k end end
    table.sort(names)
    for _, k in ipairs(names) do
      local x, field = v[k], path and (path .. "." .. k) or k
      local u, bad, code = nil, nil, nil
      if type(x) == "string" then u, bad, code = url.parse(x) end
      if u then
        local ok, why = http.check_url(x)
        if not ok then
          return nil, string.format("%s: %s is %s: %s", label, field, u.origin, why)
        end
      elseif code == "BAD_URL" then
        -- a URL calm.url refuses is not quoted: it may carry a password
        return nil, string.format("%s: %s %s", label, field, bad)
      elseif type(x) == "table" then
        local ok, msg = walk(x, field, depth + 1)
        if not ok then return nil, msg end
      end
    end
    return true
  end
  return walk(t, nil, 1)
end

-- ------------------------------------------------------- option values --

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function M.is_guid(s)
  return type(s) == "string" and s:match(GUID) ~= nil
end

-- --cacert FILE: a readable file with at least one PEM certificate.
-- Returns true | nil, msg, "USAGE".
function M.check_cacert(path, option)
  option = option or "--cacert"
  local text, msg = fs.read(path, 16 * 1024 * 1024)
  if not text then return nil, option .. ": " .. tostring(msg), "USAGE" end
  if not text:find("-----BEGIN CERTIFICATE-----", 1, true) then
    local looks = M.describe(text) or "it is JSON"
    return nil, option .. " " .. path .. ": no PEM certificate (-----BEGIN CERTIFICATE-----) in it; "
      .. looks:gsub(", not a JSON key", ""), "USAGE"
  end
  return true
end

-- --out FILE / --report FILE: a file name in a directory that exists and
-- takes a new file (probed: the atomic write makes one there).
-- Returns true | nil, msg, "USAGE".
function M.check_output(option, path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == "" then dir = "/" end
  dir = dir or "."
  if path:match("/$") or fs.exists(path .. "/.") then
    return nil, option .. " " .. path .. " is a directory; name the file to write", "USAGE"
  end
  if not fs.exists(dir) then
    return nil, option .. " " .. path .. ": the directory " .. dir .. " does not exist", "USAGE"
  end
  if not fs.exists(dir .. "/.") then
    return nil, option .. " " .. path .. ": " .. dir .. " is not a directory", "USAGE"
  end
  local ok, msg = fs.probe_dir(dir)
  if not ok then
    return nil, option .. " " .. path .. ": " .. tostring(msg):gsub("^cannot write in ", "cannot create a file in "),
      "USAGE"
  end
  return true
end

-- --out / --report must not name an input file (the atomic rename would
-- replace it): inputs = {{"--sm-key", path}, ...}. true | nil, msg, "USAGE"
function M.check_not_input(option, path, inputs)
  if not path or path == "-" then return true end
  for _, i in ipairs(inputs) do
    if i[2] and i[2] ~= "-" and not held[i[2]] and fs.same_file(path, i[2]) then
      return nil, string.format("%s %s is the %s file: writing there would replace it; name another file",
        option, path, i[1]), "USAGE"
    end
  end
  return true
end

return M
