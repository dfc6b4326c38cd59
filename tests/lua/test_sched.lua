-- calm.task's scheduler structures (src/flowq.c, src/loop.c, src/transfer.c): the ready queue,
-- the timer heap and the per-flow waiter lists. Orders and outcomes only; the
-- cost per event is measured by `make bench` (bench/sched_bench.lua).
local t = ...
local task = require "calm.task"
local T = {}

function T.sleepers_wake_in_due_order_not_spawn_order()
  local order = {}
  local fs = {}
  for _, d in ipairs { 0.06, 0.02, 0.04, 0.01, 0.05, 0.03 } do
    fs[#fs + 1] = task.spawn(function()
      task.sleep(d)
      order[#order + 1] = d
    end)
  end
  for _, f in ipairs(fs) do task.wait(f) end
  t.eq(order, { 0.01, 0.02, 0.03, 0.04, 0.05, 0.06 })
end

function T.ready_flows_run_in_the_order_they_became_ready()
  local order = {}
  local fs = {}
  for i = 1, 5 do
    fs[i] = task.spawn(function() order[#order + 1] = i end)
  end
  for i = 1, 5 do task.wait(fs[i]) end
  t.eq(order, { 1, 2, 3, 4, 5 })
end

function T.many_waiters_on_one_flow_all_get_its_results()
  local target = task.spawn(function() task.sleep(0.01); return "x", 2 end)
  local ws = {}
  for i = 1, 50 do
    ws[i] = task.spawn(function() return task.wait(target) end)
  end
  local all = task.all(ws)
  local good = 0
  for i = 1, 50 do
    if all[i].n == 2 and all[i][1] == "x" and all[i][2] == 2 then good = good + 1 end
  end
  t.eq(good, 50)
end

function T.cancelled_waiter_leaves_the_others_waiting()
  local target = task.spawn(function() task.sleep(0.02); return "done" end)
  local a = task.spawn(function() return task.wait(target) end)
  local b = task.spawn(function() return task.wait(target) end)
  local c = task.spawn(function() return task.wait(target) end)
  task.sleep(0)
  t.eq(b:status(), "waiting")
  b:cancel()
  t.eq(table.pack(task.wait(a)), { n = 1, "done" })
  t.eq(table.pack(task.wait(b)), { n = 2, nil, "cancelled" })
  t.eq(table.pack(task.wait(c)), { n = 1, "done" })
end

function T.cancelled_sleeper_does_not_wake_later()
  local woke = false
  local f = task.spawn(function() task.sleep(0.01); woke = true end)
  task.sleep(0)
  f:cancel()
  task.sleep(0.03)
  t.eq(woke, false)
  t.eq(f:status(), "failed")
end

function T.deadline_of_a_waiter_fires_while_its_target_sleeps()
  local target = task.spawn(function() task.sleep(0.2); return 1 end)
  local w = task.spawn({ timeout = 0.01 }, function() return task.wait(target) end)
  t.eq(table.pack(task.wait(w)), { n = 3, nil, "deadline passed (--timeout)", "DEADLINE" })
  t.eq(table.pack(task.wait(target)), { n = 1, 1 }, "the target is not disturbed")
end

function T.a_flow_sleeping_past_its_deadline_gets_DEADLINE_at_the_deadline()
  local f = task.spawn({ timeout = 0.01 }, function() return task.sleep(30) end)
  t.eq(table.pack(task.wait(f)), { n = 3, nil, "deadline passed (--timeout)", "DEADLINE" })
end

function T.thousands_of_flows_finish_each_once()
  local n, count = 5000, 0
  local fs = {}
  for i = 1, n do
    fs[i] = task.spawn(function()
      task.sleep((i % 3) * 0.001)
      count = count + 1
      return i
    end)
  end
  local sum = 0
  for i = 1, n do sum = sum + task.wait(fs[i]) end
  t.eq(count, n)
  t.eq(sum, n * (n + 1) // 2)
end

function T.limit_returns_the_number_in_effect()
  local was = task.limit(64)
  t.eq(was, 64, "64 transfers fit in any descriptor limit calmbind starts with")
  t.eq(task.limit(2000) <= 2000, true)
  task.limit(64)
end

function T.limit_without_n_keeps_it_and_tells_the_descriptor_cap()
  task.limit(64)
  local now, cap = task.limit()
  t.eq(now, 64, "no argument: the limit stays")
  t.eq(math.type(cap), "integer")
  t.ok(cap >= 64, "the descriptor cap allows at least the default")
  local raised, cap2 = task.limit(65536)
  t.eq(raised, math.min(65536, cap), "a limit above the cap gets the cap")
  t.eq(cap2, cap)
  task.limit(64)
end

return T
