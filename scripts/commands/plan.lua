-- calmbind plan: the same decision as get, with read-only requests only:
-- prints what get would find, create, update or leave alone, and why.
-- Returns the command and its option spec (for help and shell completion).
local runner = require "calm.ops.runner"
return runner.command("plan"), runner.spec("plan")
