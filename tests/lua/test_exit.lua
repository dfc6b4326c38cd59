local t = ...
local exit = require "calm.lib.exit"
local T = {}

function T.codes_match_the_contract()
  t.eq(exit.codes, { OK = 0, API = 1, USAGE = 2, AUTH = 3, MANUAL = 4, DEADLINE = 5, VERIFY = 6 })
end

function T.status_for_classes()
  t.eq(exit.status_for("USAGE"), 2)
  t.eq(exit.status_for("INPUT"), 2)
  t.eq(exit.status_for("BAD_JSON"), 2)
  t.eq(exit.status_for("AUTH"), 3)
  t.eq(exit.status_for("MANUAL"), 4)
  t.eq(exit.status_for("DEADLINE"), 5)
  t.eq(exit.status_for("RETRY_EXHAUSTED"), 5)
  t.eq(exit.status_for("VERIFY"), 6)
end

function T.status_for_everything_else_is_1()
  for _, c in ipairs { "API", "BAD_RESPONSE", "BAD_TOKEN", "COULDNT_CONNECT", "TOO_LARGE", "SOMETHING_NEW" } do
    t.eq(exit.status_for(c), 1, c)
  end
  t.eq(exit.status_for(nil), 1, "nil code")
end

return T
