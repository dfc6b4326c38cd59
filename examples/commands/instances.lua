-- calmbind instances: lists the SAP Cloud ALM API instances of the subaccount.
-- An example of a command of your own: put this directory in CALMBIND_PATH
-- (or copy the file to ~/.config/calmbind/scripts/commands/) and run
-- `calmbind instances --sm-key sm-key.json`.
local cli, fs, json, sm = require "calm.lib.cli", require "calm.fs", require "calm.lib.json", require "calm.btp.sm"

return function(args)
  local opts, msg, code = cli.parse(args, { command = "instances",
    options = { ["sm-key"] = { arg = "FILE", env = "CALMBIND_SM_KEY", required = true,
                               help = "Service Manager binding (plan subaccount-admin)" } } })
  if not opts then return nil, msg, code end
  local text, err, ecode = fs.read(opts["sm-key"])
  if not text then return nil, err, ecode end
  local key, jerr = json.decode(text, opts["sm-key"])
  if not key then return nil, jerr, "INPUT" end
  local client, cerr, ccode = sm.from_key(key)
  if not client then return nil, cerr, ccode end
  local offering, plan, pcode = client:offering_and_plan()
  if offering == nil then return nil, plan, pcode end
  if not (offering and plan) then
    return nil, "SAPCloudALMAPIs/standard is not visible in Service Manager: is the subaccount entitled?", "MANUAL"
  end
  local items, lerr, lcode = client:list("service_instances", { fieldQuery = sm.eq("service_plan_id", plan.id) })
  if not items then return nil, lerr, lcode end
  for _, i in ipairs(items) do
    print(string.format("%-32s %s  created %s  %s", i.name, i.id, i.created_at or "?",
      i.platform_id == "service-manager" and "" or "(owned by " .. tostring(i.platform_id) .. ")"))
  end
  return 0
end
