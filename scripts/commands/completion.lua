-- calmbind completion bash|zsh: prints the shell completion script, generated
-- from the same option specs the parser uses (calm.lib.completion); listed in
-- help, and `make install` runs it to install the completion files.
local cli = require "calm.lib.cli"
local completion = require "calm.lib.completion"

local spec = {
  command = "completion",
  summary = "Print the bash or zsh completion script (generated from the option specs).",
  options = {},
  positionals = { min = 1, max = 1, names = { "SHELL" } },
}

local function main(args)
  local opts, pos, code = cli.parse(args, spec)
  if not opts then return nil, pos, code end
  if opts.help then io.write(cli.usage(spec)); return 0 end
  if pos[1] == "bash" then io.write(completion.bash()); return 0 end
  if pos[1] == "zsh" then io.write(completion.zsh()); return 0 end
  return nil, "completion: SHELL must be bash or zsh (got '" .. pos[1] .. "')", "USAGE"
end

return main, spec
