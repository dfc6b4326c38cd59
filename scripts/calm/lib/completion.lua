-- calm.lib.completion: bash and zsh completion generated from the option specs
-- the parser uses (calm.lib.cli's global options and each command's spec, which
-- the command file returns as its second value), so the two cannot drift:
-- an option added to a spec is completed after the next build.
--
--   completion.commands()        -> { {name=, summary=, spec=}, ... }
--   completion.bash() / .zsh()   -> the script text
local cli = require "calm.lib.cli"
local M = {}

-- The stock commands, in the order help lists them (the command-line table
-- of src/cmdline.c). The host's own commands bring their options; a command
-- script's options are in its spec.
local function host_spec(options)
  local spec = { options = {} }
  for _, o in ipairs(options) do spec.options[o.name] = { arg = o.arg, flag = o.flag, help = o.help } end
  return spec
end

M.COMMANDS = {}
for _, c in ipairs(require("calm.cmdline").commands) do
  M.COMMANDS[#M.COMMANDS + 1] = { name = c.name, summary = c.summary, words = c.names_command,
    spec = c.options and not c.names_command and host_spec(c.options) or nil }
end

-- The spec a command file returns as its second value (nil if it has none).
function M.spec_of(name)
  local loader = package.searchers[2]("commands." .. name)
  if type(loader) ~= "function" then return nil end
  local _, spec = loader("commands." .. name)
  return type(spec) == "table" and spec or nil
end

function M.commands()
  local out = {}
  for _, c in ipairs(M.COMMANDS) do
    out[#out + 1] = { name = c.name, summary = c.summary, words = c.words,
      spec = c.spec or M.spec_of(c.name) or { options = {} } }
  end
  return out
end

-- What follows an option or a positional: "file", "dir", a list of choices, or nil.
-- Arguments that name a file: FILE, INVENTORY, and any *FILE (KEYFILE).
local FILE_ARGS = { FILE = true, INVENTORY = true }

local function value_kind(def_arg, choices)
  if choices then return choices end
  if FILE_ARGS[def_arg] or (type(def_arg) == "string" and def_arg:match("FILE$")) then return "file" end
  if def_arg == "DIR" then return "dir" end
  return nil
end

local function positional_kind(spec)
  local p = spec.positionals
  if not (p and p.names and p.names[1]) then return nil end
  return value_kind(p.names[1])
end

local function switches(o)
  local s = { "--" .. o.name }
  if o.def.short then table.insert(s, 1, "-" .. o.def.short) end
  return s
end

-- Appends lines to out.
local function add(out, ...)
  for _, l in ipairs { ... } do out[#out + 1] = l end
end

-- ------------------------------------------------------------------ bash --

local function bash_words(list) return table.concat(list, " ") end

-- Files and directories are completed with filename handling switched on for
-- that one completion (compopt): commands stay words, so `fle<Tab>` is
-- `fleet ` even when a directory fleet/ is there.
local FILES = 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))'
local DIRS = 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))'

local function bash_value_cases(opts, indent)
  local lines = {}
  for _, o in ipairs(opts) do
    if not o.def.flag then
      local kind = value_kind(o.def.arg, o.def.choices)
      local action
      if type(kind) == "table" then
        action = 'COMPREPLY=($(compgen -W "' .. bash_words(kind) .. '" -- "$cur"))'
      elseif kind == "file" then
        action = FILES
      elseif kind == "dir" then
        action = DIRS
      else
        action = "COMPREPLY=()"
      end
      lines[#lines + 1] = indent .. table.concat(switches(o), "|") .. ") " .. action .. "; return ;;"
    end
  end
  return table.concat(lines, "\n")
end

local function bash_all_switches(opts)
  local w = {}
  for _, o in ipairs(opts) do
    for _, s in ipairs(switches(o)) do w[#w + 1] = s end
  end
  return bash_words(w)
end

-- One command's branch of the case, added to out: its options' values,
-- then its switches or its positional (a file, or the command names for help).
local function bash_command_case(out, c, names)
  local opts = cli.options(c.spec)
  add(out, "  " .. c.name .. ")", '    case $prev in', bash_value_cases(opts, "      "), "    esac")
  local pk = c.words and names or positional_kind(c.spec)
  local positional
  if type(pk) == "table" then
    positional = 'COMPREPLY=($(compgen -W "' .. bash_words(pk) .. '" -- "$cur"))'
  elseif pk == "file" then
    positional = FILES
  end
  add(out, '    if [[ $cur == -* ]]; then',
    '      COMPREPLY=($(compgen -W "' .. bash_all_switches(opts) .. '" -- "$cur"))')
  if positional then add(out, "    else", "      " .. positional) end
  add(out, "    fi ;;")
end

function M.bash()
  local cmds = M.commands()
  local names, valued = {}, {}
  for _, c in ipairs(cmds) do names[#names + 1] = c.name end
  local globals = cli.options({ options = {} })
  for _, o in ipairs(globals) do
    if not o.def.flag then valued[#valued + 1] = table.concat(switches(o), "|") end
  end
  local out = {
    "# bash completion for calmbind. Generated by `calmbind completion bash` from the",
    "# option specs the command-line parser uses; do not edit.",
    "# The user's commands (CALMBIND_PATH, ~/.config/calmbind/scripts), as `calmbind help` lists them.",
    "_calmbind_user_commands() {",
    "  \"$1\" help 2>/dev/null | awk '/^your commands/ { f = 1; next } f && /^  [^ ]/ { print $1 } f && /^$/ { exit }'",
    "}",
    "_calmbind() {",
    '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i',
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    '    case ${COMP_WORDS[i]} in',
    "      " .. table.concat(valued, "|") .. ") ((i++)) ;;",
    "      -*) ;;",
    '      *) cmd=${COMP_WORDS[i]}; break ;;',
    "    esac",
    "  done",
    '  case $cmd in',
    '  "")',
    '    case $prev in',
    bash_value_cases(globals, "      "),
    "    esac",
    '    COMPREPLY=($(compgen -W "' .. bash_words(names) .. " " .. bash_all_switches(globals)
      .. ' $(_calmbind_user_commands "${COMP_WORDS[0]}")" -- "$cur")) ;;',
  }
  for _, c in ipairs(cmds) do bash_command_case(out, c, names) end
  -- a user's command or script: its arguments are most likely files
  add(out, "  *) " .. FILES .. " ;;", "  esac", "}", "complete -F _calmbind calmbind")
  local text = table.concat(out, "\n") .. "\n"
  return (text:gsub("\n\n+", "\n"))
end

-- ------------------------------------------------------------------- zsh --

-- Text inside _arguments' [help] and 'quotes'.
local function zq(s)
  s = tostring(s or ""):gsub("\n.*", "")
  s = s:gsub("[%[%]\\]", "\\%0"):gsub("'", "'\\''")
  return s
end

local function zsh_action(def_arg, choices)
  local kind = value_kind(def_arg, choices)
  if type(kind) == "table" then return "(" .. table.concat(kind, " ") .. ")" end
  if kind == "file" then return "_files" end
  if kind == "dir" then return "_files -/" end
  return " "
end

local function zsh_specs(opts)
  local lines = {}
  for _, o in ipairs(opts) do
    local sw = switches(o)
    local tail = "[" .. zq(o.def.help) .. "]"
    if not o.def.flag then
      tail = tail .. ":" .. zq(o.def.arg or "VALUE") .. ":" .. zsh_action(o.def.arg, o.def.choices)
    end
    if #sw == 2 then
      lines[#lines + 1] = "'(" .. sw[1] .. " " .. sw[2] .. ")'{" .. sw[1] .. "," .. sw[2] .. "}'" .. tail .. "'"
    else
      lines[#lines + 1] = "'" .. sw[1] .. tail .. "'"
    end
  end
  return lines
end

function M.zsh()
  local cmds = M.commands()
  local out = {
    "#compdef calmbind",
    "# zsh completion for calmbind. Generated by `calmbind completion zsh` from the",
    "# option specs the command-line parser uses; do not edit.",
    "_calmbind() {",
    "  local curcontext=$curcontext state line ret=1",
    "  local -a commands",
    "  commands=(",
  }
  for _, c in ipairs(cmds) do out[#out + 1] = "    '" .. c.name .. ":" .. zq(c.summary) .. "'" end
  add(out, "  )", "  local -a mine",
    "  mine=(${(f)\"$($words[1] help 2>/dev/null | awk '/^your commands/ { f = 1; next } "
      .. "f && /^  [^ ]/ { print $1 \":your command\" } f && /^$/ { exit }')\"})",
    "  commands+=($mine)", "  _arguments -C \\")
  for _, l in ipairs(zsh_specs(cli.options({ options = {} }))) do out[#out + 1] = "    " .. l .. " \\" end
  add(out, "    '1:command:->command' '*::argument:->argument' && ret=0", "  case $state in",
    "  command) _describe -t commands 'calmbind command' commands && ret=0 ;;", "  argument)",
    "    case $line[1] in")
  for _, c in ipairs(cmds) do
    add(out, "    " .. c.name .. ")", "      _arguments \\")
    for _, l in ipairs(zsh_specs(cli.options(c.spec))) do out[#out + 1] = "        " .. l .. " \\" end
    local p = c.spec.positionals
    if c.words then
      out[#out + 1] = "        '1:command:(" .. table.concat((function()
        local n = {}
        for _, x in ipairs(cmds) do n[#n + 1] = x.name end
        return n
      end)(), " ") .. ")' \\"
    elseif p and p.names and p.names[1] then
      out[#out + 1] = "        '1:" .. zq(p.names[1]) .. ":" .. zsh_action(p.names[1]) .. "' \\"
    end
    out[#out + 1] = "        && ret=0 ;;"
  end
  add(out, "    *) _files && ret=0 ;;", "    esac ;;", "  esac", "  return ret", "}", '_calmbind "$@"')
  return table.concat(out, "\n") .. "\n"
end

return M
