#!/usr/bin/env python3
"""Host benchmark: 200 flows, each one request to a local server that answers
after 100 ms, and `calmbind --version`. Reports the median wall time and the
peak RSS (from wait4) over several runs. A benchmark, not a test: it prints
figures and only fails if calmbind itself fails."""
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CALMBIND = sys.argv[1]
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.1)
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True


PEAKRSS = os.environ.get("PEAKRSS", os.path.join(os.path.dirname(CALMBIND), "peakrss"))


def timed(argv):
    """Runs argv under peakrss; returns (seconds, peak RSS in KiB, exit status)."""
    out = subprocess.run([PEAKRSS] + argv, stdout=subprocess.PIPE, text=True, check=True).stdout
    wall, rss, rc = out.split()
    return float(wall), int(rss), int(rc)


def bench(name, argv):
    walls, rss = [], []
    for _ in range(RUNS):
        wall, peak, rc = timed(argv)
        if rc != 0:
            print(f"{name}: calmbind exited {rc}")
            sys.exit(1)
        walls.append(wall)
        rss.append(peak)
    print(f"{name}: median {statistics.median(walls) * 1000:.1f} ms wall "
          f"(min {min(walls) * 1000:.1f}, max {max(walls) * 1000:.1f}), "
          f"peak RSS {max(rss) / 1024:.1f} MiB over {RUNS} runs")


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    script = os.path.join(tempfile.mkdtemp(), "flows.lua")
    with open(script, "w") as f:
        f.write(f"""local task, http = require "calm.task", require "calm.http"
task.limit(256)
local fns = {{}}
for i = 1, 200 do
  fns[i] = function() return assert(http.request{{url = "http://127.0.0.1:{port}/" .. i}}).status end
end
for i, r in ipairs(task.all(fns)) do assert(r[1] == 200, "flow " .. i .. " failed") end
""")
    bench("200 flows x 1 request (server answers after 100 ms)", [CALMBIND, script])
    bench("calmbind --version", [CALMBIND, "--version"])
    print("(targets from the issue: the 200 flows under 1 s wall and 20 MiB peak RSS)")


if __name__ == "__main__":
    main()
