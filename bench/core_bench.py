#!/usr/bin/env python3
"""make bench: the core under many flows (issue 11, point 3).

1. Sleeping flows: N flows that each sleep five times; the CPU the scheduler spends
   (user + sys of the whole run) should grow linearly with N.
2. HTTPS with task.limit above 64: 2000 flows, 3 GETs each, task.limit(500), against a
   local keep-alive HTTPS server (test CA); the server counts TLS connections. Reused
   connections mean about one handshake per slot, not one per request.

A benchmark, not a test: prints figures; exits 1 only if calmbind fails.
CORE_BENCH_SLEEPERS=16000,32000 picks the sizes of part 1 ("" skips it).

    python3 bench/core_bench.py build/calmbind
"""
import http.server
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "fakebtp"))
import certs  # noqa: E402

CALMBIND = sys.argv[1]
PEAKRSS = os.environ.get("PEAKRSS", os.path.join(os.path.dirname(os.path.abspath(CALMBIND)), "peakrss"))

SLEEPERS = r'''
local task = require "calm.task"
local n = math.tointeger(tonumber((...)))
local flows = {}
for i = 1, n do
  flows[i] = task.spawn(function()
    for _ = 1, 5 do task.sleep(0.05 + (i % 7) * 0.01) end
  end)
end
for i = 1, n do task.wait(flows[i]) end
'''

FETCH = r'''
local task = require "calm.task"
local http = require "calm.http"
local url, ca, flows, each, limit = ...
task.limit(math.tointeger(tonumber(limit)))
local ok, fs = 0, {}
for i = 1, math.tointeger(tonumber(flows)) do
  fs[i] = task.spawn(function()
    for _ = 1, math.tointeger(tonumber(each)) do
      local r = http.request { url = url, cacert = ca }
      if r and r.status == 200 then ok = ok + 1 end
    end
  end)
end
for i = 1, #fs do task.wait(fs[i]) end
if ok ~= #fs * math.tointeger(tonumber(each)) then error("only " .. ok .. " requests succeeded") end
'''

CONNS = [0]
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        with LOCK:
            CONNS[0] += 1
        self.request = self.server.ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def do_GET(self):
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048


def cpu_run(argv, between=None):
    """(wall s, user+sys s, peak RSS KiB) of argv (two runs: timed, then under peakrss)."""
    t = time.perf_counter()
    before = os.times()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = os.times()
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit("calmbind failed: %s" % p.stderr[-500:])
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if between:
        between()
    rss = int(subprocess.run([PEAKRSS] + argv, stdout=subprocess.PIPE, text=True).stdout.split()[1])
    return wall, cpu, rss


def main():
    tmp = tempfile.mkdtemp(prefix="calmbind-core-bench-")
    sleepers = os.path.join(tmp, "sleepers.lua")
    fetch = os.path.join(tmp, "fetch.lua")
    for path, text in ((sleepers, SLEEPERS), (fetch, FETCH)):
        with open(path, "w") as f:
            f.write(text)
    print("core bench: sleeping flows (5 sleeps each)")
    sizes = os.environ.get("CORE_BENCH_SLEEPERS", "16000,32000,64000")
    for n in [int(x) for x in sizes.split(",") if x]:
        wall, cpu, rss = cpu_run([CALMBIND, sleepers, str(n)])
        print("  %6d flows  wall %5.2f s  cpu %5.2f s  peak RSS %6.1f MiB" % (n, wall, cpu, rss / 1024))
    ca = certs.CA(tmp)
    ca.create()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.ctx = ca.server_context()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "https://localhost:%d/x" % srv.server_address[1]
    print("core bench: HTTPS, 2000 flows x 3 GETs, task.limit(500), keep-alive server")
    CONNS[0] = 0
    seen = []
    wall, cpu, rss = cpu_run([CALMBIND, fetch, url, ca.ca_pem, "2000", "3", "500"],
                             lambda: seen.append(CONNS[0]))
    print("  calmbind cpu %5.2f s  wall %5.2f s  peak RSS %6.1f MiB  TLS connections %d "
          "for 6000 requests" % (cpu, wall, rss / 1024, seen[0]))
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
