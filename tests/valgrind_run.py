#!/usr/bin/env python3
"""Runs representative calmbind commands under valgrind memcheck and prints
ok/not ok lines; exits 1 on any error or leak."""
import http.server
import os
import subprocess
import sys
import tempfile
import threading

BIN = os.path.abspath(sys.argv[1])
HERE = os.path.dirname(os.path.abspath(__file__))
VG = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
      "--error-exitcode=99", "--track-fds=no"]
failed = 0
passed = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"items":[1,2,3],"name":"x"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def vg(name, argv, env=None, ok_codes=(0,)):
    global failed, passed
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.run(VG + [BIN] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=e, timeout=600)
    if proc.returncode in ok_codes:
        passed += 1
        print(f"ok - valgrind: {name}")
    else:
        failed += 1
        print(f"not ok - valgrind: {name}: exit {proc.returncode}")
        print("\n".join("#   " + l for l in proc.stderr.splitlines()[-40:]))


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    tmp = tempfile.mkdtemp()
    script = os.path.join(tmp, "flows.lua")
    with open(script, "w") as f:
        f.write(f"""local task, http, json = require "calm.task", require "calm.http", require "calm.lib.json"
local log, fs, codec = require "calm.log", require "calm.fs", require "calm.codec"
log.secret("valgrind-secret-value")
local fns = {{}}
for i = 1, 20 do fns[i] = function()
  local r = assert(http.request{{url = "http://127.0.0.1:{port}/" .. i}})
  return assert(json.decode(r.body, "test")).name
end end
local res = task.all(fns)
assert(res[20][1] == "x")
local slow = task.spawn(function() task.sleep(5) end)
slow:cancel()
local bad = task.spawn(function() error("expected failure") end)
assert(not task.wait(bad))
assert(fs.write_private("{tmp}/out.json", codec.b64encode("valgrind-secret-value")))
log.info("done with valgrind-secret-value")
""")
    vg("flows, HTTP, JSON, cancel, a failing flow, atomic write", [script])
    vg("a script error with traceback", [os.path.join(tmp, "missing.lua")], ok_codes=(2,))
    sys.path.insert(0, os.path.join(HERE, "fakebtp"))
    try:
        from harness import FakeBTP
    except ImportError:
        FakeBTP = None
    if FakeBTP and os.path.exists(os.path.join(HERE, "..", "scripts", "commands", "get.lua")):
        with FakeBTP(preset="mid-2023") as fake:
            out = os.path.join(tmp, "key.json")
            vg("get on the mid-2023 path (create instance, bind)",
               ["get", "--sm-key", fake.sm_key_path, "--out", out, "--timeout", "120"])
            vg("check of the key get wrote", ["check", out])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
