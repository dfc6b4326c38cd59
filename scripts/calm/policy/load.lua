-- calm.policy.load: the decisions admins change most, one function each, in a
-- layered table (the model is lsyncd's behaviour tables): an admin's file
-- `policy.lua` returns a table of the fields to replace; every other field is
-- inherited from the built-in ones (calm.policy.default). Loading is the
-- command's job, once per run, never a side effect of a require: the command
-- calls load() and hands the policy down (ctx.policy) to calm.model and calm.ops.
--
--   local policy = require "calm.policy.load"
--   local p, msg, code = policy.load()        -- policy.lua of the override directories
--   p, msg, code = policy.load("dir/or/file")  -- a directory holding policy.lua, or a file
--   p = policy.builtin()                       -- the built-in fields only
--   p.file, p.origin.instance_name             -- nil | file; "built in" | file
--   p:instance_name(c)  p:binding_name(c, instance)  p:deployment_binding_name(c, instance)
--   p:authorities(c)    p:labels(c, {instance =, binding =})
--   p:adoptable(c, binding, instance)  p:adopt_rank(c, binding, instance)
--
-- Every hook gets one table: the run's context c = {scenario, runtime,
-- credential_type, tenant} plus the views of what the decision is about
-- (c.instance, c.binding): names, ids, dates, labels, scopes -- never
-- credentials (docs/lua-api.md lists the fields). The methods check what a
-- hook returns; a bad value raises a policy failure naming the file and the
-- field, which protect() turns into nil, msg, "USAGE" (exit 2).
local default = require "calm.policy.default"
local json = require "calm.lib.json"
local fs = require "calm.fs"
local log = require "calm.log"
local M = { default = default }

local FIELDS = {}
for k in pairs(default) do FIELDS[#FIELDS + 1] = k end
table.sort(FIELDS)
M.FIELDS = FIELDS

-- --------------------------------------------------------- failures --

local Failure = { __tostring = function(e) return e.msg end }

local function raise(msg)
  error(setmetatable({ msg = msg, code = "USAGE" }, Failure), 0)
end

function M.is_failure(e) return getmetatable(e) == Failure end

-- Runs f(...); a policy failure raised inside comes back as nil, msg, code,
-- any other error is raised again.
function M.protect(f, ...)
  local r = table.pack(pcall(f, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  if M.is_failure(r[2]) then return nil, r[2].msg, r[2].code end
  error(r[2], 0)
end

-- ------------------------------------------------------------ views --

-- Labels as Service Manager has them: key -> array of values (copies).
local function labels_view(l)
  local out = {}
  if type(l) ~= "table" then return out end
  for k, v in pairs(l) do
    local vs = {}
    if type(v) == "table" then
      for i, x in ipairs(v) do vs[i] = tostring(x) end
    else
      vs[1] = tostring(v)
    end
    out[tostring(k)] = vs
  end
  return out
end

-- What a hook sees of an instance (an inventory record, or {name =} for one
-- calmbind is about to create: exists = false).
function M.instance_view(i)
  if type(i) ~= "table" then return nil end
  return { name = i.name, id = i.id, exists = i.id ~= nil, created = i.created, ours = i.ours == true,
    generated = i.generated == true, xsappname = i.xsappname, owner = i.owner_name,
    has_authorities = i.has_authorities == true, labels = labels_view(i.labels) }
end

-- What a hook sees of a binding: its token's scopes (calm.key.probe), not its key.
function M.binding_view(b)
  if type(b) ~= "table" then return nil end
  local p = type(b.probe) == "table" and b.probe or nil
  local scopes
  if p and type(p.scopes) == "table" then
    scopes = {}
    for i, s in ipairs(p.scopes) do scopes[i] = s end
  end
  return { name = b.name, id = b.id, exists = b.id ~= nil, created = b.created, ours = b.ours == true,
    system = b.system == true, credential_type = b.credential_type, labels = labels_view(b.labels),
    probed = p ~= nil and p.token == true, scopes = scopes, deployment = p ~= nil and p.deployment == true,
    refused = p ~= nil and p.refused == true }
end

-- The run's context: only the documented fields, whatever the caller's table holds.
function M.context(o)
  o = o or {}
  return { scenario = o.scenario or "deployment", runtime = o.runtime or "sm",
    credential_type = o.credential_type or "binding-secret", tenant = o.tenant }
end

-- ----------------------------------------------------------- policy --

local Policy = {}
Policy.__index = Policy

-- "FILE: field" for the admin's fields, "the built-in field" otherwise:
-- what a message about a value names.
function Policy:where(field)
  local o = self.origin[field]
  if o == nil or o == "built in" then return "the built-in policy's " .. field end
  return o .. ": " .. field
end

function Policy:fail(field, fmt, ...)
  raise(self:where(field) .. " " .. string.format(fmt, ...))
end

local function shown(v)
  if type(v) == "string" then return "'" .. v .. "'" end
  if v == nil then return "nothing" end
  return "a " .. type(v)
end

-- Calls one hook with a fresh table: the context and the views.
function Policy:call(field, c, views)
  local arg = M.context(c)
  for k, v in pairs(views or {}) do arg[k] = v end
  local ok, r = pcall(self.hooks[field], arg)
  if not ok then
    if M.is_failure(r) then error(r, 0) end
    raise(self:where(field) .. ": " .. tostring(r))
  end
  return r
end

local function name_of(self, field, r)
  if type(r) ~= "string" or r == "" then self:fail(field, "gave %s, not a name", shown(r)) end
  if r:find("%c") then self:fail(field, "gave a name with a control character") end
  if #r > 255 then self:fail(field, "gave a name of %d characters (at most 255)", #r) end
  return r
end

function Policy:instance_name(c)
  return name_of(self, "instance_name", self:call("instance_name", c))
end

-- instance: an inventory record, or {name =} for one about to be created.
function Policy:binding_name(c, instance)
  return name_of(self, "binding_name", self:call("binding_name", c, { instance = M.instance_view(instance) }))
end

function Policy:deployment_binding_name(c, instance)
  return name_of(self, "deployment_binding_name",
    self:call("deployment_binding_name", c, { instance = M.instance_view(instance) }))
end

-- A JSON array of strings (an empty list is sent as []).
function Policy:authorities(c)
  local r = self:call("authorities", c)
  if type(r) ~= "table" then self:fail("authorities", "gave %s, not a list of strings", shown(r)) end
  local n = 0
  for _ in pairs(r) do n = n + 1 end
  if n ~= #r then self:fail("authorities", "gave a table that is not a list (keys other than 1..n)") end
  local out = json.array {}
  for i, a in ipairs(r) do
    if type(a) ~= "string" or a == "" or a:find("[%c%s]") then
      self:fail("authorities", "item %d is %s, not an authority (a string without spaces)", i, shown(a))
    end
    out[i] = a
  end
  return out
end

-- Extra labels, key -> value (strings). views = {instance =, binding =}
-- (inventory records or {name =}).
function Policy:labels(c, views)
  views = views or {}
  local r = self:call("labels", c, { instance = M.instance_view(views.instance),
    binding = M.binding_view(views.binding) })
  if r == nil then return {} end
  if type(r) ~= "table" then self:fail("labels", "gave %s, not a table of key = value", shown(r)) end
  local out = {}
  for k, v in pairs(r) do
    if type(k) ~= "string" or k == "" or k:find("[%c%s]") then
      self:fail("labels", "has the key %s: a label key is a string without spaces", shown(k))
    end
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      self:fail("labels", "'%s' is %s: a label value is a string", k, shown(v))
    end
    v = tostring(v)
    if v == "" or v:find("%c") then self:fail("labels", "'%s' is empty or holds a control character", k) end
    out[k] = v
  end
  return out
end

function Policy:adoptable(c, binding, instance)
  local r = self:call("adoptable", c, { binding = M.binding_view(binding), instance = M.instance_view(instance) })
  return r ~= nil and r ~= false
end

function Policy:adopt_rank(c, binding, instance)
  local r = self:call("adopt_rank", c, { binding = M.binding_view(binding), instance = M.instance_view(instance) })
  if type(r) ~= "number" or r ~= r then self:fail("adopt_rank", "gave %s, not a number", shown(r)) end
  return r
end

-- ---------------------------------------------------------- loading --

local function new(layer, file)
  local p = setmetatable({ hooks = {}, origin = {}, file = file }, Policy)
  for k, f in pairs(default) do p.hooks[k], p.origin[k] = f, "built in" end
  if layer == nil then return p end
  if type(layer) ~= "table" then
    return nil, file .. ": a policy file must return a table of the fields it replaces, not " .. shown(layer), "USAGE"
  end
  for k, f in pairs(layer) do
    if default[k] == nil then
      return nil, string.format("%s: unknown policy field %s (known: %s)", file, shown(k),
        table.concat(FIELDS, ", ")), "USAGE"
    end
    if type(f) ~= "function" then
      return nil, string.format("%s: policy field '%s' must be a function, not a %s", file, k, type(f)), "USAGE"
    end
    p.hooks[k], p.origin[k] = f, file
    log.debug("policy %s: from %s", k, file)
  end
  return p
end

local function getenv(name)
  local ok, v = pcall(os.getenv, name)
  if ok and v ~= "" then return v end
  return nil
end

-- The override directories, in the order the script searcher uses
-- (scripts.c, calm_script_dir): CALMBIND_PATH's entries, then
-- $XDG_CONFIG_HOME/calmbind/scripts or ~/.config/calmbind/scripts.
function M.dirs()
  local out = {}
  for d in (getenv("CALMBIND_PATH") or ""):gmatch("[^:]+") do out[#out + 1] = d end
  local xdg, home = getenv("XDG_CONFIG_HOME"), getenv("HOME")
  if xdg then out[#out + 1] = xdg .. "/calmbind/scripts"
  elseif home then out[#out + 1] = home .. "/.config/calmbind/scripts" end
  return out
end

local function is_dir(p) return fs.exists(p .. "/.") end

-- The file a path names: a directory's policy.lua, or the file itself.
local function file_of(path)
  if is_dir(path) then return (path:gsub("/+$", "")) .. "/policy.lua" end
  return path
end

local function load_file(file)
  local text, msg = fs.read(file, 1024 * 1024)
  if not text then return nil, "policy " .. file .. ": " .. tostring(msg), "USAGE" end
  local chunk, cerr = load(text, "@" .. file, "t")
  if not chunk then return nil, tostring(cerr), "USAGE" end
  local ok, layer = pcall(chunk)
  if not ok then return nil, file .. ": " .. tostring(layer), "USAGE" end
  return new(layer, file)
end

local loaded = {}

-- load() -> the policy of the first override directory holding policy.lua
-- (the built-in one when none does); load(path) -> the policy in path (a
-- file, or a directory's policy.lua; it must exist). Each file is loaded
-- once per process. Returns the policy | nil, msg, "USAGE".
function M.load(path)
  local file
  if path ~= nil then
    if type(path) ~= "string" or path == "" then error("policy.load: path must be a non-empty string", 2) end
    file = file_of(path)
    if not fs.exists(file) then
      return nil, "policy " .. path .. ": " .. (file ~= path and "no policy.lua in that directory" or "no such file"),
        "USAGE"
    end
  else
    for _, d in ipairs(M.dirs()) do
      local f = d .. "/policy.lua"
      if fs.exists(f) then file = f; break end
    end
    if not file then return M.builtin() end
  end
  if not loaded[file] then
    local p, msg, code = load_file(file)
    if not p then return nil, msg, code end
    loaded[file] = p
  end
  return loaded[file]
end

local builtin
function M.builtin()
  builtin = builtin or new(nil)
  return builtin
end

return M
