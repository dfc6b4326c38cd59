-- The C modules, driven from Lua through the host itself: calm.task, calm.log,
-- calm.codec and calm.fs (calm.http is driven against real servers in
-- tests/integration/test_host.py).
local t = ...
local task = require "calm.task"
local log = require "calm.log"
local codec = require "calm.codec"
local fs = require "calm.fs"
local http = require "calm.http"
local T = {}

function T.http_reuse_must_be_a_boolean()
  t.raises(function() http.request { url = "http://127.0.0.1:9/", method = "POST", reuse = "yes" } end,
    "'reuse' must be a boolean")
end

function T.task_spawn_wait_returns_every_value()
  local f = task.spawn(function(a, b) return a + b, nil, "third" end, 1, 2)
  local r = table.pack(task.wait(f))
  t.eq({ r.n, r[1], r[2], r[3] }, { 3, 3, nil, "third" })
  t.eq(f:status(), "done")
  t.eq(table.pack(f:wait()).n, 3, "waiting again gives the same results")
end

function T.task_failure_is_returned_not_raised()
  local f = task.spawn(function() error("flow broke") end)
  local ok, msg = task.wait(f)
  t.eq(ok, nil)
  t.find(msg, "flow broke")
  t.find(msg, "stack traceback")
  t.eq(f:status(), "failed")
end

function T.task_all_mixes_functions_and_flows()
  local pre = task.spawn(function() task.sleep(0.02); return "flow" end)
  local r = task.all { function() return "fn", 2 end, pre, function() error("bad") end }
  t.eq({ r[1].n, r[1][1], r[1][2] }, { 2, "fn", 2 })
  t.eq(r[2][1], "flow")
  t.eq({ r[3][1], r[3][3], r[3].n }, { nil, "FLOW_FAILED", 3 })
  t.find(r[3][2], "bad")
  t.raises(function() task.all { 42 } end, "entry 1 must be a function or a flow")
end

function T.task_sleep_runs_flows_concurrently()
  local t0 = task.now()
  local fns = {}
  for i = 1, 20 do fns[i] = function() return task.sleep(0.1) end end
  local r = task.all(fns)
  t.eq(r[20][1], true)
  t.ok(task.now() - t0 < 0.5, "20 sleeps of 0.1 s overlap")
end

function T.task_deadlines_tighten_only()
  local before = task.remaining()
  task.set_deadline(before + 100)
  t.ok(task.remaining() <= before, "a later deadline does not extend the flow")
  local f = task.spawn({ timeout = 0.05, name = "short" }, function()
    local ok, msg, code = task.sleep(5)
    return ok, code, task.remaining() <= 0
  end)
  t.eq(table.pack(task.wait(f)), { n = 3, nil, "DEADLINE", true })
  t.ok(tostring(f):find("short", 1, true), "the flow's name shows in tostring")
end

function T.task_cancel_and_current()
  local f = task.spawn(function() task.sleep(10) end)
  task.sleep(0)
  f:cancel()
  t.eq(table.pack(task.wait(f)), { n = 2, nil, "cancelled" })
  t.eq(tostring(task.current()):match("^flow"), "flow")
  t.raises(function() task.wait(task.current()) end, "cannot wait for itself")
  t.raises(function() task.limit(0) end, "must be 1..65536")
end

function T.task_outside_a_flow_raises()
  local co = coroutine.wrap(function() return pcall(task.sleep, 0) end)
  local ok, err = co()
  t.eq(ok, false)
  t.find(err, "must be called from a flow")
end

function T.log_secret_and_redact()
  local secret = "s3cr3t-value-" .. codec.random_hex(8)
  t.eq(log.secret(secret), secret)
  t.eq(log.redact("the secret is " .. secret .. "!"), "the secret is ***!")
  t.eq(log.redact("x=" .. codec.url_encode(secret) .. "&y=1"), "x=***&y=1")
  t.eq(log.redact('{"clientsecret": "never-registered-1"}'), '{"clientsecret": "***"}')
  t.eq(log.redact("Authorization: Bearer abc.def.ghi"), "Authorization: Bearer ***")
  t.eq(log.secret(nil), nil)
  t.eq(log.redact("short"), "short")
end

function T.log_secret_scopes_follow_flows_and_forget()
  local scope = log.scope()
  local mine, child, outside = "tenant-own-" .. codec.random_hex(8), "tenant-kid-" .. codec.random_hex(8),
    "run-wide-" .. codec.random_hex(8)
  log.secret(outside)
  task.wait(task.spawn({ name = "tenant", secret_scope = scope }, function()
    log.secret(mine)
    log.secret(outside)     -- already run-wide: stays after forget
    task.wait(task.spawn(function() log.secret(child) end))   -- a child flow inherits the scope
  end))
  local line = table.concat({ mine, child, outside }, " ")
  t.eq(log.redact(line), "*** *** ***")
  local running = task.spawn({ secret_scope = scope }, function() task.sleep(0.05) end)
  local n, msg = log.forget(scope)
  t.eq(n, nil)
  t.find(msg, "still running")
  t.eq(log.redact(line), "*** *** ***")
  task.wait(running)
  t.eq(log.forget(scope), 2)
  t.eq(log.redact(line), mine .. " " .. child .. " ***")
  t.eq(log.forget(scope), 0)
  t.raises(function() log.forget(0) end, "not a scope")
  t.raises(function() task.spawn({ secret_scope = -1 }, function() end) end, "secret_scope")
end

function T.log_levels()
  local old = log.set_level("warn")
  t.eq(log.level(), "warn")
  t.eq({ log.enabled("error"), log.enabled("warn"), log.enabled("info") }, { true, true, false })
  log.set_level(old)
  t.eq(log.level(), old)
  t.raises(function() log.set_level("loud") end, "loud")
end

function T.codec_round_trips()
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  local bytes = table.concat(all)
  t.eq(codec.b64decode(codec.b64encode(bytes)), bytes)
  t.eq(codec.b64decode(codec.b64url_encode(bytes)), bytes)
  t.eq(codec.url_decode(codec.url_encode(bytes)), bytes)
  t.eq(codec.form_encode { b = "x y", a = "1&2" }, "a=1%262&b=x+y")
  t.eq(codec.form_decode("a=1%262&b=x+y"), { a = "1&2", b = "x y" })
  t.fails("INVALID", codec.b64decode, "not base64!")
  t.match(codec.uuid(), "^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$")
  t.eq(#codec.random_hex(16), 32)
end

function T.fs_write_private_read_list_remove()
  local dir = os.getenv("TMPDIR") or "/tmp"
  local name = "calmbind-lua-" .. codec.random_hex(6)
  local path = dir .. "/" .. name
  t.eq(fs.write_private(path, "first"), true)
  t.eq(fs.write_private(path, "second"), true)
  t.eq(fs.read(path), "second")
  t.eq(fs.exists(path), true)
  t.eq(fs.same_file(path, path), true)
  t.eq(fs.same_file(path, dir .. "/./" .. name), true)
  t.eq(fs.same_file(path, dir), false)
  t.eq(fs.same_file(path, path .. "-missing"), false)
  local names = fs.list(dir)
  local found = false
  for _, n in ipairs(names) do if n == name then found = true end end
  t.ok(found, "fs.list sees the file")
  t.fails("TOO_LARGE", fs.read, path, 3)
  t.eq(fs.remove(path), true)
  t.fails("ENOENT", fs.read, path)
  t.eq(fs.exists(path), false)
  t.fails("NOT_FILE", fs.read, dir)
end

return T
