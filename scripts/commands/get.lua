-- calmbind get: decide the provisioning-date path (--provisioned DATE or auto),
-- find or create the SAP Cloud ALM API instance and binding, export the key.
-- Exit: 0 done; 1 BTP/API; 2 usage/input; 3 auth; 4 manual step; 5 deadline; 6 verify.
-- Returns the command and its option spec (for help and shell completion).
local runner = require "calm.ops.runner"
return runner.command("get"), runner.spec("get")
