#!/usr/bin/env python3
"""The core under load (issue 11, point 3), through the built binary: connections
are reused at any task.limit, concurrency stays within the descriptor limit, the
soft RLIMIT_NOFILE is raised to the hard one, and running out of descriptors is
reported as such. Counts, not times: speed is measured by `make bench`."""
import http.server
import os
import resource
import subprocess
import tempfile
import threading
import time

from itest import CALMBIND, Suite

S = Suite("core-scale")
TMP = tempfile.mkdtemp(prefix="calmbind-scale-")
STATS = {"connections": 0, "active": 0, "peak": 0}
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive: a connection serves many requests

    def setup(self):
        with LOCK:
            STATS["connections"] += 1
        super().setup()

    def log_message(self, *a):
        pass

    def do_GET(self):
        with LOCK:
            STATS["active"] += 1
            STATS["peak"] = max(STATS["peak"], STATS["active"])
        time.sleep(0.02)   # keeps requests overlapping, so the limit is what bounds them
        with LOCK:
            STATS["active"] -= 1
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def reset():
    with LOCK:
        STATS.update(connections=0, active=0, peak=0)


def script(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


FLOWS = r'''
local task = require "calm.task"
local http = require "calm.http"
local url, limit, flows, each = ...
local got = task.limit(tonumber(limit))
local ok, bad = 0, {}
local fs = {}
for i = 1, tonumber(flows) do
  fs[i] = task.spawn(function()
    for _ = 1, tonumber(each) do
      local r, msg, code = http.request { url = url }
      if r and r.status == 200 then ok = ok + 1 else bad[#bad + 1] = tostring(code) end
    end
  end)
end
for i = 1, #fs do task.wait(fs[i]) end
print(string.format("limit=%d ok=%d failed=%d %s", got, ok, #bad, bad[1] or ""))
'''

EMFILE = r'''
local http = require "calm.http"
local url = ...
local held = {}
while true do
  local f = io.open("/dev/null")
  if not f then break end
  held[#held + 1] = f
end
local r, msg, code = http.request { url = url }
for _, f in ipairs(held) do f:close() end
print(code)
print(msg)
'''

NOFILE = r'''
local f = assert(io.open("/proc/self/limits"))
for line in f:lines() do
  if line:find("Max open files", 1, true) then print(line) end
end
f:close()
'''


def run_limited(args, nofile=None, timeout=120):
    def pre():
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
    p = subprocess.run([CALMBIND] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, preexec_fn=pre)
    return p.returncode, p.stdout, p.stderr


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/x" % srv.server_address[1]
    flows = script("flows.lua", FLOWS)

    # 1. above the old fixed pool of 64: every connection is reused
    reset()
    rc, out, err = run_limited([flows, url, "150", "300", "3"])
    S.check("task.limit(150): 300 flows x 3 requests all succeed",
            rc == 0 and "limit=150 ok=900 failed=0" in out, out + err[-500:])
    S.check("task.limit(150): at most 150 connections for 900 requests (reused, not one each)",
            STATS["connections"] <= 150, "connections=%d peak=%d" % (STATS["connections"], STATS["peak"]))
    S.check("task.limit(150): the limit is what bounds concurrency",
            STATS["peak"] <= 150, "peak=%d" % STATS["peak"])

    # 2. a low hard limit: the soft one cannot go higher, concurrency is capped to fit
    reset()
    hard = 100
    cap = (hard - 64) // 2
    rc, out, err = run_limited([flows, url, "500", "100", "2"], nofile=(hard, hard))
    S.check("hard RLIMIT_NOFILE 100: task.limit(500) answers the %d transfers that fit" % cap,
            ("limit=%d " % cap) in out, out + err[-500:])
    S.check("hard RLIMIT_NOFILE 100: 100 flows x 2 requests succeed, none runs out of descriptors",
            rc == 0 and "ok=200 failed=0" in out, out + err[-500:])
    S.check("hard RLIMIT_NOFILE 100: no more than the cap in flight at once",
            STATS["peak"] <= cap, "peak=%d" % STATS["peak"])

    # 3. the soft limit is raised to the hard one at start
    rc, out, err = run_limited([script("nofile.lua", NOFILE)], nofile=(256, 4096))
    fields = out.split()
    S.check("soft RLIMIT_NOFILE 256 with hard 4096: calmbind runs with 4096",
            rc == 0 and fields[3:5] == ["4096", "4096"], out + err)

    # 4. running out anyway (descriptors held by something else) says so
    rc, out, err = run_limited([script("emfile.lua", EMFILE), url], nofile=(200, 200))
    lines = out.splitlines()
    S.check("out of descriptors: code TOO_MANY_OPEN_FILES, not COULDNT_CONNECT",
            lines[:1] == ["TOO_MANY_OPEN_FILES"], out + err)
    S.check("out of descriptors: the message says so and names the limit",
            len(lines) > 1 and "out of file descriptors" in lines[1] and "200" in lines[1], out)
    srv.shutdown()
    S.done()


if __name__ == "__main__":
    main()
