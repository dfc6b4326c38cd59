-- calm.lib.exit: the exit statuses of the command-line contract (design.md) and
-- the mapping from failure codes (the third value of `nil, msg, code`) to them.
local M = {}

M.codes = { OK = 0, API = 1, USAGE = 2, AUTH = 3, MANUAL = 4, DEADLINE = 5, VERIFY = 6 }

-- Failure codes with an exit status other than 1.
local by_code = {
  USAGE = 2, INPUT = 2,
  -- calm.lib.json's code; calm.net.rest turns bad server JSON into BAD_RESPONSE, so
  -- BAD_JSON only comes from local input (key files)
  BAD_JSON = 2,
  AUTH = 3,
  MANUAL = 4,
  DEADLINE = 5,
  -- reliability.md: "a deadline or exhausted retry budget is 5" (calm.net.rest
  -- gives up on 429/5xx/unreachable hosts with this code; rerunning is safe)
  RETRY_EXHAUSTED = 5,
  VERIFY = 6,
}

-- Everything else (API, BAD_RESPONSE, curl mnemonics such as COULDNT_CONNECT,
-- TOO_LARGE, unknown or nil codes) is a BTP/API/transport failure: 1.
function M.status_for(code)
  if code == "OK" then return 0 end
  return by_code[code] or 1
end

return M
