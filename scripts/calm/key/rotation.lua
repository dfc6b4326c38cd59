-- calm.key.rotation: what to tell the admin when get made a new key while
-- others exist (calmbind never advises deleting a key it did not create).
local U = require "calm.key.util"
local shown, credential_type = U.shown, U.credential_type
local M = {}

-- key.rotation_hint{created = "new-binding", others = {"old", ...},
--                   credential_type = "binding-secret"} -> text | nil
-- nil unless a binding was created while other keys exist. The text tells
-- the user to replace the key in Landscape Management and /SDF/ALM_SETUP.
-- Only entries with ours = true (bindings calmbind created) are named for
-- deletion afterwards; calmbind never advises deleting a key it did not
-- create (SAP's generated key, hand-made ones): those are listed as kept.
function M.rotation_hint(opts)
  opts = opts or {}
  local others, ours, kept, instance_secret = {}, {}, {}, {}
  for _, o in ipairs(opts.others or {}) do
    -- an entry is a binding name, or {name=, instance=, credential_type=, generated=, ours=}
    local name = type(o) == "table" and o.name or o
    if name ~= opts.created then
      local text = "'" .. shown(name) .. "'"
      if type(o) == "table" and o.instance then text = text .. " (instance '" .. shown(o.instance) .. "')" end
      others[#others + 1] = text
      if type(o) == "table" and o.ours then
        ours[#ours + 1] = text
        if (o.credential_type or opts.credential_type) == "instance-secret" then
          instance_secret[#instance_secret + 1] = "'" .. shown(name) .. "'"
        end
      else
        kept[#kept + 1] = text
      end
    end
  end
  if not opts.created or #others == 0 then return nil end
  local one = #others == 1
  local out = {
    string.format("New binding '%s' created; %s %s. Next:",
      shown(opts.created), one and "another SAP Cloud ALM API key exists:" or "other SAP Cloud ALM API keys exist:",
      table.concat(others, ", ")),
    "  1. upload the new key in Cloud ALM Landscape Management (Settings > SAP Cloud ALM Service Key):"
      .. " it keeps one key per tenant;",
    "  2. paste the new key in /SDF/ALM_SETUP on every managed system and client of the transport track;",
  }
  if #ours > 0 then
    out[#out + 1] = string.format("  3. then the older binding%s %s that calmbind created can go (deleting a binding "
      .. "in BTP does not delete an uploaded copy).", #ours == 1 and "" or "s", table.concat(ours, ", "))
  end
  if #kept > 0 then
    out[#out + 1] = string.format("  Kept as they are: %s: calmbind did not create %s, and other systems or "
      .. "integrations may use %s.", table.concat(kept, ", "), #kept == 1 and "it" or "them",
      #kept == 1 and "it" or "them")
  end
  if #instance_secret > 0 then
    out[#out + 1] = "  Note: " .. table.concat(instance_secret, ", ") .. (#instance_secret == 1 and " is an" or " are")
      .. " instance-secret key" .. (#instance_secret == 1 and "" or "s") .. ": the secret is shared by all keys"
      .. " of its instance, so removing the binding does not revoke it (removing the instance does)."
  end
  return table.concat(out, "\n")
end

return M
