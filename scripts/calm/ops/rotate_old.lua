-- calm.ops.rotate_old: what a rotation does with the other keys of the
-- subaccount (calm.ops.deliver.classify's list, judged by its one
-- may-delete rule): --delete-old with its confirmation, and the one summary.
--
--   ok | nil, msg, code = rotate_old.settle(ctx, list)  -- --delete-old: --yes, a y at the terminal, or nothing
--   lines = rotate_old.lines(list, hint [, dry])       -- one line a key: deleted / kept for now / kept, and why
--         -- dry = {delete = --delete-old given}: what a run would do ("would delete: ...")
--   rotate_old.tell(ctx, list, head [, created])       -- head, the lines, the admin's steps (stderr)
--
-- --delete-old deletes only what the rule lets go, and only when --yes says
-- so or a person answers y at the controlling terminal (calm.fs.ask, as `cf
-- delete-service-key` asks unless -f). Where nobody can answer (no terminal:
-- a CI job, cron; or fleet, whose tenants run at once: ctx.opts.never_ask)
-- nothing is deleted and one line says why: a retried job never deletes keys
-- in use by surprise, and deleting needs the explicit --yes.
local deliver = require "calm.ops.deliver"
local fs = require "calm.fs"
local log = require "calm.log"
local M = {}

local function plural(n, one, many) return n == 1 and one or many end

local function to_delete(list)
  local out = {}
  for _, e in ipairs(list) do
    if e.replace and not e.deleted then out[#out + 1] = e end
  end
  return out
end

local function names_of(list)
  local n = {}
  for i, e in ipairs(list) do n[i] = "'" .. tostring(e.name) .. "'" end
  return table.concat(n, ", ")
end

-- Whether the keys may go: true | false, why (one line), hint (for each
-- key kept for now).
local function confirm(opts, todo)
  local what = string.format("the %d old key%s %s", #todo, plural(#todo, "", "s"), names_of(todo))
  if opts.yes then return true end
  if opts.never_ask then
    return false, string.format("--delete-old without --yes: fleet asks no questions, so %s %s kept (--yes deletes %s)",
      what, plural(#todo, "is", "are"), plural(#todo, "it", "them")), "--yes deletes it"
  end
  local answer, _, code = fs.ask(string.format("delete %s now? %s at once. [y/N] ", what,
    plural(#todo, "It stops working", "They stop working")))
  if code == "NO_TERMINAL" then
    return false, string.format("--delete-old without --yes and no terminal to ask on: nothing deleted, %s %s kept "
      .. "(--yes deletes %s without asking)", what, plural(#todo, "is", "are"), plural(#todo, "it", "them")),
      "--delete-old --yes deletes it"
  end
  if answer and answer:lower():match("^%s*y") then return true end
  return false, string.format("not confirmed%s: nothing deleted, %s %s kept", answer and "" or " (no answer)", what,
    plural(#todo, "is", "are")), "not confirmed"
end

function M.settle(ctx, list)
  local opts = ctx.opts
  ctx.kept_hint = "use --delete-old to delete it"
  if not opts["delete-old"] then return true end
  local todo = to_delete(list)
  if #todo == 0 then return true end
  local go, why, hint = confirm(opts, todo)
  ctx.report.delete_old = { deleted = go, why = why }
  if not go then
    ctx.kept_hint = hint
    log.info("rotate: %s", why)
    return true
  end
  return deliver.delete_old(ctx.sm, list)
end

local function where(e)
  return string.format("'%s' (instance '%s'%s)", tostring(e.name), tostring(e.instance),
    e.created_at and (", created " .. tostring(e.created_at)) or "")
end

-- Deleted first, then kept for now, then kept: the order a reader acts in.
function M.lines(list, hint, dry)
  local groups = { {}, {}, {} }
  for _, e in ipairs(list) do
    if e.deleted or (dry and dry.delete and e.replace) then
      groups[1][#groups[1] + 1] = (dry and "would delete: " or "deleted: ") .. where(e) .. ": " .. tostring(e.why)
    elseif e.replace then
      groups[2][#groups[2] + 1] = string.format("%s: %s: %s (%s)", dry and "would keep for now" or "kept for now",
        where(e), tostring(e.why), hint)
    else
      groups[3][#groups[3] + 1] = (dry and "would keep: " or "kept: ") .. where(e) .. ": " .. tostring(e.why)
    end
  end
  local out = {}
  for _, g in ipairs(groups) do
    for _, l in ipairs(g) do out[#out + 1] = l end
  end
  return out
end

function M.tell(ctx, list, head, created)
  local say = function(s) log.info("%s", s) end
  say(head)
  for _, l in ipairs(M.lines(list, ctx.kept_hint or "use --delete-old to delete it")) do say(l) end
  if not created then return end
  local deleted, todo = deliver.tally(list)
  for _, l in ipairs(deliver.next_steps(todo, deleted, "kept for now", deliver.secret_notes(list))) do say(l) end
end

return M
