-- calm.lib.cli: command-line parsing for the stock commands and user scripts.
--
--   local opts, pos = cli.parse(args, spec)   -- or nil, message, "USAGE"
--   local main = cli.command(spec, function(opts, pos) ... end) -- parse, --help, body
--
-- spec = {
--   command = "get", summary = "one line",
--   options = {
--     ["sm-key"] = {arg = "FILE", env = "CALMBIND_SM_KEY", key_env = true, help = "...", required = true},
--     verify     = {flag = true, help = "..."},
--     timeout    = {arg = "S", number = true, default = 300},
--     format     = {arg = "F", choices = {"json", "alm-setup"}, default = "json"},
--   },
--   positionals = {min = 0, max = 1, names = {"FILE"}},
-- }
--
-- opts is keyed by the option's long name as written ("sm-key"), so
-- opts["sm-key"]; flags are true or absent (false when an env var says so).
-- key_env: the variable may hold the key's JSON instead of a path; opts then
-- gets "$VARIABLE" and calm.lib.input keeps the text (input.read).
-- Secrets never come from argv: options that look like they carry one are
-- refused before anything else, without echoing their value.
local cmdline = require "calm.cmdline"
local input = require "calm.lib.input"
local M = {}

-- Options every command knows: the global options of the command-line table
-- (src/cmdline.c, which main.c reads too), but those only the host takes
-- before a command (--version). A spec entry of the same name refines them
-- (e.g. gives --timeout a default).
local GLOBAL, GLOBAL_ORDER = {}, {}
for _, o in ipairs(cmdline.globals) do
  if not o.leading then
    GLOBAL[o.name] = { arg = o.seconds and "DURATION" or o.arg, flag = o.flag, short = o.short, help = o.help,
                       duration = o.seconds, min_exclusive = o.seconds and 0 or nil }
    GLOBAL_ORDER[#GLOBAL_ORDER + 1] = o.name
  end
end
M.GLOBAL, M.GLOBAL_ORDER = GLOBAL, GLOBAL_ORDER

local SECRET_MSG = "secrets are not accepted on the command line (argv is visible to other users); "
  .. "put them in a file or the environment"

-- Names that look like they carry a secret value. A spec may still declare
-- such a name (e.g. "password-file") with allow_secret_name = true.
local function looks_secret(name)
  local n = name:lower()
  return n:find("secret", 1, true) or n:find("passw", 1, true) or n:find("token", 1, true)
      or n:find("key-data", 1, true) or n:find("keydata", 1, true) or n == "pwd"
end

local function merged_options(spec)
  local all = {}
  for name, def in pairs(GLOBAL) do all[name] = def end
  for name, def in pairs(spec.options or {}) do
    local base = GLOBAL[name]
    if base then
      local m = {}
      for k, v in pairs(base) do m[k] = v end
      for k, v in pairs(def) do m[k] = v end
      all[name] = m
    else
      all[name] = def
    end
  end
  return all
end

-- cli.suggest(word, candidates) -> the closest candidate a typo could have
-- meant (a prefix of one, or at most 2 edits away, 1 for short words), or nil.
-- The same rule as for a mistyped command (cmdline.c).
function M.suggest(word, candidates)
  return cmdline.suggest(word, candidates)
end

local function see_help(spec)
  return spec.command and ("see calmbind " .. spec.command .. " --help") or "see --help"
end

-- "did you mean --x?" for a near miss, else where to look.
local function hint_for(defs, word, spec)
  local names = {}
  for name in pairs(defs) do names[#names + 1] = name end
  local near = M.suggest(word, names)
  return near and ("did you mean --" .. near .. "?") or see_help(spec)
end

-- Strict decimal number: no hex, inf, nan or exponent surprises.
local function parse_number(s)
  if type(s) ~= "string" then return nil end
  if not (s:match("^[+-]?%d+%.?%d*$") or s:match("^[+-]?%.%d+$")) then return nil end
  return tonumber(s)
end

-- cli.duration(s) -> seconds | nil: 90 (seconds), 90s, 10m, 1h, 7d; the
-- one grammar of every duration (--timeout, --tenant-timeout, an inventory's
-- timeout), shared with the host's --timeout (src/cmdline.c).
function M.duration(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  return cmdline.duration(s)
end
M.DURATION_HELP = "90, 90s, 10m, 1h or 7d"

-- Checks and converts one value; `label` is "--name" or "NAME (env)".
local function convert(def, label, value)
  if def.duration then
    local n = M.duration(value)
    if not n then
      return nil, string.format("%s needs a duration (%s), got '%s'", label, M.DURATION_HELP, value)
    end
    if def.min_exclusive and not (n > def.min_exclusive) then
      return nil, string.format("%s must be longer than %s s", label, def.min_exclusive)
    end
    return n
  end
  if def.number then
    local n = parse_number(value)
    if not n then
      return nil, string.format("%s needs a number, got '%s'", label, value)
    end
    if def.min_exclusive and not (n > def.min_exclusive) then
      return nil, string.format("%s must be greater than %s", label, def.min_exclusive)
    end
    if def.min and n < def.min then
      return nil, string.format("%s must be at least %s", label, def.min)
    end
    if def.max and n > def.max then
      return nil, string.format("%s must be at most %s", label, def.max)
    end
    if def.integer then
      n = math.tointeger(n)
      if not n then return nil, string.format("%s must be a whole number", label) end
    end
    return n
  end
  if def.choices then
    for _, c in ipairs(def.choices) do
      if c == value then return value end
    end
    return nil, string.format("%s must be one of %s (got '%s')", label,
      table.concat(def.choices, ", "), value)
  end
  if value == "" and not def.allow_empty then
    return nil, string.format("%s needs a non-empty value", label)
  end
  return value
end

local function env_flag(value)
  local v = value:lower()
  if v == "1" or v == "true" or v == "yes" or v == "on" then return true end
  if v == "0" or v == "false" or v == "no" or v == "off" or v == "" then return false end
  return nil
end

local function usage_error(spec, msg)
  return nil, msg, "USAGE"
end

-- Which options came from the environment, per opts table (weak: it goes
-- with the table).
local sources = setmetatable({}, { __mode = "k" })

-- cli.label(opts, name) -> how the user gave the option: its environment
-- variable ("CALMBIND_SM_KEY") when the value came from there, else "--name".
-- Messages name the source as given.
function M.label(opts, name)
  local s = sources[opts]
  return s and s[name] or ("--" .. name)
end

-- One option at args[i] (i.e. "--name", "--name=value", "-v"); stores it in
-- opts and returns the index of the last argument it used | nil, msg, code.
local function read_option(args, i, defs, shorts, spec, opts, seen)
  local a = args[i]
  local name, value, has_value
  if a:sub(1, 2) == "--" then
    local body = a:sub(3)
    local eq = body:find("=", 1, true)
    if eq then
      name, value, has_value = body:sub(1, eq - 1), body:sub(eq + 1), true
    else
      name = body
    end
  else
    -- single-dash: only the declared short flags (-v); no bundling
    name = shorts[a:sub(2)]
    if not name then
      if looks_secret(a:sub(2)) then return usage_error(spec, SECRET_MSG) end
      return usage_error(spec, string.format("unknown option %s (%s)", a, hint_for(defs, a:sub(2), spec)))
    end
  end
  local def = defs[name]
  if looks_secret(name) and not (def and def.allow_secret_name) then
    return usage_error(spec, SECRET_MSG)
  end
  if not def then
    return usage_error(spec, string.format("unknown option --%s (%s)", name, hint_for(defs, name, spec)))
  end
  local label = "--" .. name
  if seen[name] then return usage_error(spec, string.format("option %s given twice", label)) end
  seen[name] = true
  if def.flag then
    if has_value then return usage_error(spec, string.format("option %s takes no value", label)) end
    opts[name] = true
    return i
  end
  if not has_value then
    local nxt = args[i + 1]
    -- "--x --y" is a forgotten value, not a value "--y"
    if nxt == nil or (nxt:sub(1, 2) == "--" and #nxt > 2) then
      return usage_error(spec, string.format("option %s needs a value (%s)", label, def.arg or "VALUE"))
    end
    value, i = nxt, i + 1
  end
  local v, msg = convert(def, "option " .. label, value)
  if v == nil then return usage_error(spec, msg) end
  opts[name] = v
  return i
end

-- Options not given take their environment variable, then their default.
local function fill_from_env(opts, defs, spec, env_sourced)
  local getenv = os and os.getenv
  for name, def in pairs(defs) do
    if opts[name] == nil and def.env and getenv then
      local ev = getenv(def.env)
      if ev ~= nil and (ev ~= "" or def.flag) then
        local v, msg
        if def.flag then
          v = env_flag(ev)
          if v == nil then
            msg = string.format("%s (for --%s) must be 1/0, true/false or yes/no", def.env, name)
          end
        elseif def.key_env and input.is_content(ev) then
          -- the variable holds the key itself: kept aside, never in opts
          v = input.hold(def.env, ev)
        else
          v, msg = convert(def, def.env .. " (for --" .. name .. ")", ev)
        end
        if v == nil then return usage_error(spec, msg) end
        opts[name], env_sourced[name] = v, def.env
      end
    end
    if opts[name] == nil and def.default ~= nil then opts[name] = def.default end
  end
  return true
end

-- Required options and the number of positionals.
local function check_counts(opts, pos, defs, spec)
  for name, def in pairs(defs) do
    if def.required and opts[name] == nil then
      return usage_error(spec, string.format("missing --%s %s%s (%s)", name, def.arg or "",
        def.env and (" or " .. def.env) or "", see_help(spec)))
    end
  end
  local p = spec.positionals or { min = 0, max = 0 }
  local names = p.names or {}
  local min, max = p.min or 0, p.max
  if max == nil then max = #names end
  if #pos < min then
    return usage_error(spec, string.format("missing %s (%s)", names[#pos + 1] or "argument", see_help(spec)))
  end
  if max >= 0 and #pos > max then
    local extra = pos[max + 1]
    if extra:sub(1, 1) == "-" then
      return usage_error(spec, string.format("unknown option %s (%s)", extra, see_help(spec)))
    end
    return usage_error(spec, string.format("unexpected argument '%s' (%s)", extra, see_help(spec)))
  end
  return true
end

function M.parse(args, spec)
  spec = spec or {}
  args = args or {}
  local defs = merged_options(spec)
  local shorts = {}
  for name, def in pairs(defs) do
    if def.short then shorts[def.short] = name end
  end
  local opts, pos, seen, env_sourced = {}, {}, {}, {}
  sources[opts] = env_sourced
  local i, only_positionals = 1, false
  while i <= #args do
    local a = args[i]
    if type(a) ~= "string" then
      error("cli.parse: argument " .. i .. " is not a string", 2)
    end
    if only_positionals or a == "-" or a:sub(1, 1) ~= "-" then
      pos[#pos + 1] = a
    elseif a == "--" then
      only_positionals = true
    else
      local last, msg, code = read_option(args, i, defs, shorts, spec, opts, seen)
      if not last then return nil, msg, code end
      i = last
    end
    i = i + 1
  end
  local ok, msg, code = fill_from_env(opts, defs, spec, env_sourced)
  if not ok then return nil, msg, code end
  if opts.help then return opts, pos end
  ok, msg, code = check_counts(opts, pos, defs, spec)
  if not ok then return nil, msg, code end
  return opts, pos
end

-- cli.from_table(values, spec, label) -> opts | nil, message, "USAGE": the
-- options of a command given as a table (fleet builds one per tenant) instead
-- of argv, judged by the same spec and rules as cli.parse: values keyed by the
-- long option name ("sm-key"); a flag is a boolean, any other value a string
-- (a number too for a number option). No environment fallbacks; defaults are
-- filled. label(name) says how the user wrote the option ("sm_key" for an
-- inventory field): messages here and cli.label(opts, name) later use it.
function M.from_table(values, spec, label)
  local defs = merged_options(spec)
  label = label or function(name) return "--" .. name end
  local opts, given = {}, {}
  sources[opts] = given
  local names = {}
  for name in pairs(values) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local def, v = defs[name], values[name]
    local l = label(name)
    if not def then return usage_error(spec, string.format("%s is not an option of %s", l, spec.command or "it")) end
    if def.flag then
      if type(v) ~= "boolean" then return usage_error(spec, l .. " must be true or false") end
    else
      if type(v) == "number" and (def.number or def.duration) then v = tostring(v) end
      if type(v) ~= "string" then return usage_error(spec, l .. " must be a string") end
      local c, msg = convert(def, l, v)
      if c == nil then return usage_error(spec, msg) end
      v = c
    end
    if v ~= false then opts[name] = v end
    if l ~= "--" .. name then given[name] = l end
  end
  for name, def in pairs(defs) do
    if opts[name] == nil and def.default ~= nil then opts[name] = def.default end
  end
  return opts
end

-- cli.set_label(opts, name, label): messages about opts[name] name it so
-- (an option a command sets on the user's behalf, e.g. fleet's --out-dir
-- turned into a tenant's out).
function M.set_label(opts, name, label)
  local s = sources[opts]
  if not s then s = {}; sources[opts] = s end
  s[name] = label
end

-- cli.command(spec, body) -> the main of a command: args parsed by spec,
-- --help printed (exit 0), else body(opts, pos) and what it returns;
-- a usage error is nil, msg, "USAGE".
function M.command(spec, body)
  return function(args)
    local opts, pos, code = M.parse(args, spec)
    if not opts then return nil, pos, code end
    if opts.help then io.write(M.usage(spec)); return 0 end
    return body(opts, pos)
  end
end

-- cli.options(spec) -> every option the parser accepts for spec, globals
-- included, sorted by name: { {name = "sm-key", def = {...}}, ... }. Help,
-- the man page check and shell completion are made from this list.
function M.options(spec)
  local defs = merged_options(spec or {})
  local out = {}
  for name, def in pairs(defs) do out[#out + 1] = { name = name, def = def } end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function option_line(name, def)
  local left = "  " .. (def.short and ("-" .. def.short .. ", ") or "") .. "--" .. name
  if not def.flag then left = left .. " " .. (def.arg or "VALUE") end
  local right = def.help or ""
  local extra = {}
  if def.choices then extra[#extra + 1] = "one of " .. table.concat(def.choices, ", ") end
  if def.default ~= nil and not def.flag then extra[#extra + 1] = "default " .. tostring(def.default) end
  if def.env then extra[#extra + 1] = "env " .. def.env end
  if def.required then extra[#extra + 1] = "required" end
  if #extra > 0 then
    right = right .. (right ~= "" and " " or "") .. "(" .. table.concat(extra, "; ") .. ")"
  end
  if #left < 26 then
    return left .. string.rep(" ", 26 - #left) .. right
  end
  return left .. "\n" .. string.rep(" ", 26) .. right
end

-- Help text: usage line, summary, the command's options (sorted), global options.
function M.usage(spec)
  spec = spec or {}
  local out = {}
  local p = spec.positionals or {}
  local names = p.names or {}
  local posdesc = {}
  for idx, nm in ipairs(names) do
    posdesc[#posdesc + 1] = idx > (p.min or 0) and ("[" .. nm .. "]") or nm
  end
  out[#out + 1] = "usage: calmbind " .. (spec.command or "SCRIPT") .. " [options]"
    .. (#posdesc > 0 and (" " .. table.concat(posdesc, " ")) or "")
  if spec.summary then out[#out + 1] = "" ; out[#out + 1] = spec.summary end
  local defs = merged_options(spec)
  local own = {}
  for _, name in ipairs(sorted_keys(spec.options or {})) do
    if not GLOBAL[name] then own[#own + 1] = option_line(name, defs[name]) end
  end
  if #own > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "options:"
    for _, l in ipairs(own) do out[#out + 1] = l end
  end
  out[#out + 1] = ""
  out[#out + 1] = "global options:"
  for _, name in ipairs(GLOBAL_ORDER) do out[#out + 1] = option_line(name, defs[name]) end
  out[#out + 1] = ""
  out[#out + 1] = "Secrets (client secrets, passwords, tokens) are read from files or the environment, never from arguments."
  return table.concat(out, "\n") .. "\n"
end

return M
