-- calmbind rotate: replace the key: new binding, verified, written; old calmbind-made bindings deleted only with --delete-old.
-- Exit: 0 rotated; 1 BTP/API; 2 usage/input; 3 auth; 4 manual step (nothing
-- to rotate yet: run get first); 5 deadline; 6 the new key failed
-- verification (its binding was deleted again, the old key file kept).
local cli = require "calm.lib.cli"
local rotate = require "calm.ops.rotate"

-- Returns the command and its option spec (for help and shell completion).
return function(args)
  local spec = rotate.spec()
  local opts, pos, code = cli.parse(args, spec)
  if not opts then return nil, pos, code end
  if opts.help then io.write(cli.usage(spec)); return 0 end
  return rotate.run(opts)
end, rotate.spec()
