#!/usr/bin/env python3
"""Everything that can be checked before a request is: --out's and --report's directories
must take a file (exit 2, no request); a key URL calmbind will not use is exit 2 naming the
key and field; a write that still fails after a change is exit 1, saying what was changed
and that a rerun resumes; a report that cannot be written is an error (exit 1);
`--report -` writes standard output."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from itest import CALMBIND, Suite, run
from harness import FakeBTP

S = Suite("prechecks")
TMP = tempfile.mkdtemp(prefix="prechecks-")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}


def swap_dir_after_first_request(fake, args, victim, method="POST", path="/v1/service_bindings"):
    """Runs calmbind; once the fake has seen `method path` (the checks before the first
    request are long done), replaces the directory `victim` with a plain file, so the
    write at the end fails. Returns (rc, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    env.update(ENV)
    # every token answer takes 0.7 s: the swap lands while the key's own token (its
    # verification, the last request before the write) is on its way
    fake.fault(method="POST", path=r"/oauth/token$", action="delay", delay_ms=700, count=100)
    seen = len(fake.requests())
    p = subprocess.Popen([CALMBIND] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        if any(r["method"] == method and r["path"].startswith(path) for r in fake.requests()[seen:]):
            shutil.rmtree(victim)
            with open(victim, "w") as f:
                f.write("in the way\n")
            break
        time.sleep(0.01)
    out, err = p.communicate(timeout=120)
    fake.clear_faults()
    return p.returncode, out, err


with FakeBTP(preset="after-2023-10-16") as fake:
    sm = fake.sm_key_path

    n = len(fake.requests())
    rc, out, err = run(["get", "--sm-key", sm, "--out", "/proc/k.json"], env=ENV)
    S.check("--out in a directory that takes no file (/proc, even for root): exit 2, no request",
            rc == 2 and "--out /proc/k.json" in err and len(fake.requests()) == n, (rc, err))
    rc, out, err = run(["plan", "--sm-key", sm, "--report", "/proc/r.json"], env=ENV)
    S.check("--report likewise: exit 2 before any request",
            rc == 2 and "--report /proc/r.json" in err and len(fake.requests()) == n, (rc, err))

    # a key URL calmbind will not use: exit 2 naming the key file and the field
    key = json.load(open(sm))
    key["sm_url"] = "http://service-manager.example.com"
    bad = os.path.join(TMP, "http-sm.json")
    json.dump(key, open(bad, "w"))
    rc, out, err = run(["plan", "--sm-key", bad], env=ENV)
    S.check("plain http to a non-loopback host in the key: exit 2 naming the file and field, no request",
            rc == 2 and bad in err and "sm_url" in err and "http.request" not in err
            and len(fake.requests()) == n, (rc, err))

    # --report -: standard output
    k1 = os.path.join(TMP, "k1.json")
    rc, out, err = run(["get", "--sm-key", sm, "--out", k1, "--report", "-"], env=ENV, cwd=TMP)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    S.check("get --out FILE --report -: the report on standard output", rc == 0 and doc and
            doc.get("command") == "get" and not os.path.exists(os.path.join(TMP, "-")), (rc, out[:200], err[-300:]))
    rc, out, err = run(["get", "--sm-key", sm, "--report", "-"], env=ENV)
    S.check("--report - with the key on standard output too: exit 2", rc == 2 and "--out" in err, (rc, err))

    inv = os.path.join(TMP, "inv.json")
    json.dump({"tenants": [{"name": "one", "sm_key": sm}]}, open(inv, "w"))
    rc, out, err = run(["fleet", inv, "--out-dir", os.path.join(TMP, "fleet-out"), "--report", "-"], env=ENV)
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    S.check("fleet --report -: the report alone on standard output, the table on stderr",
            rc == 0 and doc and doc.get("command") == "fleet" and "TENANT" in err, (rc, out[:200], err[-300:]))
    rc, out, err = run(["fleet", inv, "--out-dir", os.path.join(TMP, "fleet-out"), "--report", "/proc/f.json"],
                       env=ENV)
    S.check("fleet --report in a directory that takes no file: exit 2", rc == 2 and "/proc/f.json" in err, (rc, err))

with FakeBTP(preset="mid-2023") as fake:
    sm = fake.sm_key_path
    # the write fails after the instance and binding exist: exit 1, what changed, rerun resumes
    d = os.path.join(TMP, "gone")
    os.makedirs(d)
    rc, out, err = swap_dir_after_first_request(
        fake, ["get", "--sm-key", sm, "--provisioned", "2023-08-01", "--out", os.path.join(d, "k.json")], d)
    S.check("a write that fails after a change: exit 1", rc == 1, (rc, err[-400:]))
    S.check("... one path, named once", err.count(os.path.join(d, "k.json")) == 1, err[-400:])
    S.check("... says what the run changed and that a rerun resumes",
            "created" in err and "binding" in err and "rerun" in err, err[-400:])
    os.remove(d)
    os.makedirs(d)
    rc, out, err = run(["get", "--sm-key", sm, "--provisioned", "2023-08-01", "--out", os.path.join(d, "k.json")],
                       env=ENV)
    S.check("... and the rerun writes the key", rc == 0 and os.path.exists(os.path.join(d, "k.json")),
            (rc, err[-300:]))

    # a report that cannot be written at the end: exit 1 (the key itself is written)
    rd = os.path.join(TMP, "reports")
    os.makedirs(rd)
    k2 = os.path.join(TMP, "k2.json")
    rc, out, err = swap_dir_after_first_request(
        fake, ["get", "--sm-key", sm, "--provisioned", "2023-08-01", "--out", k2, "--report",
               os.path.join(rd, "r.json")], rd, method="POST", path="/oauth/token")
    S.check("a report that cannot be written: exit 1, an error (also under -q), the key written",
            rc == 1 and "report" in err and "error:" in err and os.path.exists(k2), (rc, err[-400:]))

S.done()
