-- calmbind discover --cis-key FILE: the SAP Cloud ALM subaccounts of a global account
-- (a central-plan Cloud Management Service key), with the evidence that decided each;
-- --inventory FILE writes them as a fleet inventory, --bootstrap-sm-keys DIR makes each
-- one's Service Manager admin key (calm.ops.discover).
-- Exit: 0 every tenant found (and, with --bootstrap-sm-keys, with a key); 1 none found,
-- a BTP failure or a tenant without a key; 2 bad input; 3 the key was refused; 4 the
-- Accounts API offers no binding endpoint (make the key by hand).
local cli = require "calm.lib.cli"
local discover = require "calm.ops.discover"

local spec = discover.spec()

return cli.command(spec, function(opts) return discover.run(opts) end), spec
