local t = ...
local inv = require "calm.ops.fleet_inventory"
local rules = require "calm.ops.deliver"
local T = {}

local function fields(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.fields end
  return out
end

function T.csv_quotes_commas_line_ends_and_bom()
  local rows = assert(inv.parse_csv('\239\187\191name,sm_key\r\n"a, b",x.json\n"say ""hi""", y \n\n"multi\nline",z\n', "f"))
  t.eq(fields(rows), { { "name", "sm_key" }, { "a, b", "x.json" }, { 'say "hi"', "y" }, { "multi\nline", "z" } })
  t.eq(rows[4].line, 5, "the line a row starts on")
end

function T.csv_without_final_newline_and_empty_cells()
  t.eq(fields(assert(inv.parse_csv("name,scenario\na,", "f"))), { { "name", "scenario" }, { "a", "" } })
end

function T.csv_errors_name_the_line()
  local _, msg = inv.parse_csv('name\n"open\n', "f")
  t.find(msg, "line 2: a quoted value is not closed")
  _, msg = inv.parse_csv('name\nab"c\n', "f")
  t.find(msg, "line 2: a quote inside an unquoted value")
  _, msg = inv.parse_csv('name\n"a"b\n', "f")
  t.find(msg, "line 2: text after a closing quote")
end

function T.shard_is_disjoint_complete_and_by_name()
  local tenants = {}
  for i = 1, 200 do tenants[i] = { name = "tenant-" .. i } end
  for _, n in ipairs { 1, 2, 3, 7 } do
    local seen, total = {}, 0
    for k = 1, n do
      for _, x in ipairs(inv.shard(tenants, k, n)) do
        t.ok(not seen[x.name], x.name .. " in two shards")
        seen[x.name] = k
        total = total + 1
      end
    end
    t.eq(total, #tenants, "every tenant once with N = " .. n)
  end
  -- FNV-1a 32 bit of known strings
  t.eq(inv.hash(""), 2166136261)
  t.eq(inv.hash("a"), 0xe40c292c)
  t.eq(inv.hash("foobar"), 0xbf9cf968)
end

function T.parse_shard_bounds()
  t.eq({ inv.parse_shard("2/4") }, { 2, 4 })
  for _, bad in ipairs { "0/4", "5/4", "1/0", "a/b", "1", "1/2/3", "-1/2" } do
    local k, _, code = inv.parse_shard(bad)
    t.eq({ k, code }, { nil, "USAGE" }, bad)
  end
end

local function binding(o)
  local b = { id = o.id, name = o.name, created_at = o.created_at or "2026-01-01T00:00:00Z", ready = true,
    state = o.state or "succeeded", ours = o.ours, system = o.system, credential_type = o.ctype or "binding-secret" }
  return b
end

function T.rotate_deletes_only_older_calmbind_keys_of_the_same_kind_on_the_instance()
  local mine = { id = "i1", name = "calm-api-deployment", ours = true, bindings = {
    binding { id = "b1", name = "calm-api-deployment-key", ours = true },
    binding { id = "b2", name = "S4H_100_00", ours = true, system = true },
    binding { id = "b3", name = "by-hand" },
    binding { id = "b4", name = "calm-x509", ours = true, ctype = "x509" },
    binding { id = "b5", name = "half-made", ours = true, state = "pending" },
    binding { id = "new", name = "calm-api-deployment-key-2026", ours = true },
  } }
  local gen = { id = "i0", name = "SAPCloudALMAPIs-auto", generated = true, bindings = {
    binding { id = "g1", name = "calm-api-key-auto" } } }
  local other = { id = "i2", name = "calm-old", ours = true, bindings = {
    binding { id = "o1", name = "calm-old-key", ours = true } } }
  local list = rules.classify({ instances = { gen, mine, other } }, mine,
    { id = "new", created_at = "2026-02-01T00:00:00Z" }, "binding-secret")
  local replace = {}
  for _, e in ipairs(list) do replace[e.name] = e.replace end
  t.eq(replace, { ["calm-api-key-auto"] = false, ["calm-api-deployment-key"] = true, S4H_100_00 = false,
    ["by-hand"] = false, ["calm-x509"] = false, ["half-made"] = false, ["calm-old-key"] = false })
end

return T
