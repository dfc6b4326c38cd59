-- calm.model.rotation: the rules that make rotate safe to retry (whether
-- calmbind's newest key on the instance is due), without requests.
local t = ...
local rotation = require "calm.model.rotation"
local T = {}

local NOW = rotation.epoch("2026-12-08T12:00:00Z")

local function b(o)
  return { id = o.name, name = o.name, created_at = o.at, ready = o.ready ~= false, state = o.state or "succeeded",
    ours = o.ours ~= false, system = o.system, credential_type = o.ctype or "binding-secret" }
end

local function inst(bindings) return { id = "i1", name = "calm-api-deployment", bindings = bindings } end

function T.epoch_is_utc_whatever_the_local_zone()
  t.eq(rotation.epoch("1970-01-01T00:00:00Z"), 0)
  t.eq(rotation.epoch("2000-03-01T00:00:00.000000Z"), 951868800)   -- after a leap day
  t.eq(rotation.epoch("2026-12-07T23:49:56.111305Z"), 1796687396)
  t.eq(rotation.epoch("2026-12-08T01:49:56+02:00"), 1796687396)
  t.eq(rotation.epoch("2026-12-07 23:49:56"), 1796687396)
  for _, bad in ipairs { "2026-13-01T00:00:00Z", "yesterday", "2026-12-07", "2026-12-07T23:49:56 CET", 42 } do
    t.eq(rotation.epoch(bad), nil, tostring(bad))
  end
end

function T.age_text_two_units_at_most()
  t.eq(rotation.age_text(0), "0s")
  t.eq(rotation.age_text(45), "45s")
  t.eq(rotation.age_text(90), "1m 30s")
  t.eq(rotation.age_text(600), "10m")
  t.eq(rotation.age_text(3600), "1h")
  t.eq(rotation.age_text(93784), "1d 2h")
  t.eq(rotation.age_text(7 * 86400 + 59), "7d")
end

-- no rule given: rotate always makes a new key, as it did before the rules
function T.without_a_rule_always_rotate()
  local d = rotation.decide(inst { b { name = "k", at = "2026-12-08T11:59:00Z" } }, {}, NOW)
  t.eq(d.rotate, true)
  t.eq(d.rules, {})
end

function T.if_older_than_within_and_past_the_window()
  local i = inst { b { name = "old", at = "2026-11-01T00:00:00Z" }, b { name = "new", at = "2026-12-08T09:00:00Z" } }
  local d = rotation.decide(i, { ["if-older-than"] = 7 * 86400 }, NOW)
  t.eq({ d.rotate, d.newest.name, d.age }, { false, "new", 3 * 3600 })
  t.eq(d.why, "key 'new' is 3h old, younger than 7d")
  d = rotation.decide(i, { ["if-older-than"] = 3600 }, NOW)
  t.eq({ d.rotate, d.why }, { true, "key 'new' is 3h old, older than 1h" })
  -- exactly the window's age is due
  d = rotation.decide(i, { ["if-older-than"] = 3 * 3600 }, NOW)
  t.eq(d.rotate, true)
end

-- only a key this rotation would replace counts: calmbind's, of the same
-- kind, ready, not a managed system's
function T.newest_is_calmbinds_own_key_of_the_kind()
  local i = inst {
    b { name = "mine", at = "2026-11-01T00:00:00Z" },
    b { name = "hand", at = "2026-12-08T11:00:00Z", ours = false },
    b { name = "S4H_100_00", at = "2026-12-08T11:00:00Z", system = true },
    b { name = "cert", at = "2026-12-08T11:00:00Z", ctype = "x509" },
    b { name = "pending", at = "2026-12-08T11:00:00Z", state = "pending" },
    b { name = "failed", at = "2026-12-08T11:00:00Z", ready = false, state = "failed" } }
  t.eq(rotation.newest(i, "binding-secret").name, "mine")
  t.eq(rotation.newest(i, "x509").name, "cert")
  local d = rotation.decide(i, { ["if-older-than"] = 86400 }, NOW)
  t.eq({ d.rotate, d.newest.name }, { true, "mine" })
end

function T.no_key_yet_rotates()
  local d = rotation.decide(inst { b { name = "hand", at = "2026-12-08T11:00:00Z", ours = false } },
    { ["if-older-than"] = 86400, ["credential-type"] = "x509" }, NOW)
  t.eq({ d.rotate, d.newest }, { true, nil })
  t.eq(d.why, "calmbind has made no x509 key on instance 'calm-api-deployment' yet")
end

-- a key without a readable creation time is due (rather than kept forever);
-- a server clock ahead of ours gives age 0, not a negative one
function T.unknown_time_is_due_and_skew_is_clamped()
  local d = rotation.decide(inst { b { name = "k", at = "garbage" } }, { ["if-older-than"] = 60 }, NOW)
  t.eq({ d.rotate, d.why }, { true, "key 'k' has no creation time" })
  d = rotation.decide(inst { b { name = "k", at = "2026-12-08T12:05:00Z" } }, { ["if-older-than"] = 60 }, NOW)
  t.eq({ d.rotate, d.age }, { false, 0 })
end

-- the rules are data: one more rule is one more row, and any rule that says
-- the key is due makes rotate rotate
function T.rules_are_a_table_any_due_rule_rotates()
  t.ok(rotation.RULES["if-older-than"].option == "if-older-than")
  rotation.RULES["test-always"] = { option = "test-always", due = function(c, v) return v, "forced for " .. c.binding.name end }
  local ok, err = pcall(function()
    local i = inst { b { name = "k", at = "2026-12-08T11:59:00Z" } }
    local d = rotation.decide(i, { ["if-older-than"] = 86400, ["test-always"] = true }, NOW)
    t.eq({ d.rotate, d.why, d.rules }, { true, "forced for k", { "if-older-than", "test-always" } })
    d = rotation.decide(i, { ["if-older-than"] = 86400, ["test-always"] = false }, NOW)
    t.eq(d.rotate, false)
  end)
  rotation.RULES["test-always"] = nil
  assert(ok, err)
end

return T
