-- tests/lua/run.lua: runs every tests/lua/test_*.lua inside the host.
--
--   build/calmbind tests/lua/run.lua [DIR] [FILTER]
--
-- The test directory is, in this order: CALMBIND_TEST_DIR, a first argument
-- that is a directory holding run.lua, the directory of arg[0] when the host
-- provides it, else tests/lua under the current directory. FILTER (plain
-- text) keeps the tests whose "file: name" contains it.
--
-- Each test file is a chunk that receives the helper t (tests/lua/t.lua) as
-- `...` and returns a table {name = function}. Each test runs in its own flow
-- so that one failure (or a stuck test hitting the deadline) does not stop
-- the others. Output: "ok - lua/<file>: <test>" / "not ok - lua/<file>:
-- <test>: <error>". The script returns 1 if anything failed, else 0.
local fs = require "calm.fs"
local task = require "calm.task"

local args = { ... }

local function getenv(name)
  local ok, v = pcall(function() return os.getenv(name) end)
  if ok then return v end
  return nil
end

local function script_dir()
  local ok, a = pcall(rawget, _G, "arg")
  if ok and type(a) == "table" and type(a[0]) == "string" then
    return a[0]:match("^(.*)/[^/]*$") or "."
  end
  return nil
end

local dir = getenv("CALMBIND_TEST_DIR")
if (dir == nil or dir == "") and args[1] and fs.exists(args[1] .. "/run.lua") then
  dir = table.remove(args, 1)
end
if dir == nil or dir == "" then
  local d = script_dir()
  if d and fs.exists(d .. "/run.lua") then dir = d end
end
if dir == nil or dir == "" then dir = "tests/lua" end
local filter = args[1]

local function load_file(path)
  local src, err = fs.read(path, 4 * 1024 * 1024)
  if not src then return nil, err end
  -- _ENV passed explicitly: the test files share the script's environment
  return load(src, "@" .. path, "t", _ENV)
end

local function first_line(s)
  s = tostring(s)
  return (s:match("^[^\n]*"))
end

local helper_chunk, herr = load_file(dir .. "/t.lua")
if not helper_chunk then
  print("not ok - lua/t.lua: cannot load the test helper: " .. first_line(herr))
  return 1
end
local t = helper_chunk()

local failed, passed = 0, 0
local function report(ok, file, name, err)
  if ok then
    passed = passed + 1
    print("ok - lua/" .. file .. ": " .. name)
  else
    failed = failed + 1
    print("not ok - lua/" .. file .. ": " .. name .. ": " .. first_line(err))
    -- the full traceback goes to stderr for whoever runs VERBOSE=1
    io.stderr:write("# " .. file .. ": " .. name .. ":\n# " .. tostring(err):gsub("\n", "\n# ") .. "\n")
  end
end

-- io may be missing in the sandbox: fall back to plain reporting.
if not pcall(function() return io.stderr end) then
  report = function(ok, file, name, err)
    if ok then
      passed = passed + 1
      print("ok - lua/" .. file .. ": " .. name)
    else
      failed = failed + 1
      print("not ok - lua/" .. file .. ": " .. name .. ": " .. first_line(err))
    end
  end
end

local names = fs.list(dir) or {}
local files = {}
for _, n in ipairs(names) do
  if n:match("^test_.*%.lua$") then files[#files + 1] = n end
end
table.sort(files)

for _, file in ipairs(files) do
  local chunk, err = load_file(dir .. "/" .. file)
  local suite
  if chunk then
    local ok, res = pcall(chunk, t)
    if ok and type(res) == "table" then suite = res
    else err = ok and "the file did not return a table of tests" or res end
  end
  if not suite then
    if not filter or file:find(filter, 1, true) then report(false, file, "load", err) end
  else
    local tests = {}
    for name, fn in pairs(suite) do
      if type(fn) == "function" and (not filter or (file .. ": " .. name):find(filter, 1, true)) then
        tests[#tests + 1] = name
      end
    end
    table.sort(tests)
    for _, name in ipairs(tests) do
      local flow = task.spawn({ name = file .. ":" .. name, timeout = 60 }, function()
        t.reset()
        suite[name](t)
        return true
      end)
      local ok, terr = task.wait(flow)
      report(ok == true, file, name, terr or "the test flow returned no result")
    end
  end
end

if passed + failed == 0 then
  print("not ok - lua: no tests ran (dir " .. dir .. (filter and (", filter " .. filter) or "") .. ")")
  return 1
end
return failed > 0 and 1 or 0
