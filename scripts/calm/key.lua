-- calm.key: the SAP Cloud ALM API service key: parse it in whatever envelope
-- BTP hands it out, check it against the Landscape Management upload rules
-- and URL shapes, write it in the formats its consumers want, and verify it
-- live against its token endpoint.
--
--   local k = assert(key.load("key.json"))          -- or key.parse(text, source)
--   local res = key.check(k, {for_landscape = true}) -- {ok, problems, warnings, summary}
--   local text = assert(key.format(k, "env"))
--   assert(key.output(text, {out = path, show_secrets = false}))
--   local report = assert(key.verify(k, {scenario = "deployment"}))
--
-- Rule of the house: no message ever carries the value of a secret field
-- (uaa.clientsecret, uaa.key, uaa.certificate). Messages name fields; values
-- of non-secret fields are shown escaped, on one line.
local json = require "calm.json"
local log = require "calm.log"

local M = {}
--
-- This module gathers the parts: calm.key.parse, .check, .format, .verify,
-- .rotation (and .util, their shared helpers); override one part by
-- dropping calm/key/<part>.lua into CALMBIND_PATH.
local U = require "calm.key.util"
local M = {}

for _, part in ipairs({ "calm.key.parse", "calm.key.check", "calm.key.format", "calm.key.verify",
                        "calm.key.rotation" }) do
  for k, v in pairs(require(part)) do M[k] = v end
end
M.LABEL, M.FORMATS, M.SECRET_FIELDS = U.LABEL, U.FORMATS, U.SECRET_FIELDS
M.DEPLOYMENT_SCOPES = U.DEPLOYMENT_SCOPES
M.shown, M.parse_url, M.is_x509 = U.shown, U.parse_url, U.is_x509
M.token_url, M.root_url = U.token_url, U.root_url

return M
