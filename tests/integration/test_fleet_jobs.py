#!/usr/bin/env python3
"""fleet's default --jobs (issue 18, point 7): a plain `calmbind fleet INVENTORY` runs
64 tenants at once, fewer when the descriptor limit allows less than four transfers a
tenant, and says which in its report. Counts, not times: the rule's value under given
descriptor limits, and the requests the fake had in flight at once."""
import json
import os
import resource
import subprocess
import tempfile

from itest import CALMBIND, Suite   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("fleet_jobs")
TMP = tempfile.mkdtemp(prefix="fleet-jobs-")


def fleet(inventory, *args, nofile=None):
    """Runs fleet (with RLIMIT_NOFILE soft = hard = nofile if given); returns
    (exit, stderr, report)."""
    rep = os.path.join(TMP, "report-%d.json" % len(os.listdir(TMP)))
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    proc = subprocess.run([CALMBIND, "fleet", inventory, "--report", rep, "--timeout", "120", "-q"]
                          + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, preexec_fn=limit, timeout=180)
    doc = json.load(open(rep)) if os.path.exists(rep) else {}
    return proc.returncode, proc.stderr, doc


def inventory(fake, name, n=None):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        json.dump({"tenants": [{"name": t.name, "sm_key": t.sm_key_path}
                               for t in fake.tenants[:n]]}, f)
    return path


def out_dir(name):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    return d


with FakeBTP(tenants=40, latency_ms=300) as fake:
    two = inventory(fake, "two.json", 2)
    # the rule: min(64, transfers allowed / 4), the transfers being (limit - 64) / 2
    for nofile, want in ((20000, 64), (1024, 64), (256, 24), (100, 4), (72, 1)):
        rc, err, doc = fleet(two, "--out-dir", out_dir("two-%d" % nofile), nofile=nofile)
        S.eq("descriptor limit %d: --jobs %d by default" % (nofile, want), (rc, doc.get("jobs")), (0, want))
    rc, err, doc = fleet(two, "--out-dir", out_dir("two-given"), "--jobs", "3", nofile=256)
    S.eq("--jobs given: that number, whatever the descriptor limit", (rc, doc.get("jobs")), (0, 3))

    # 40 tenants under a limit of 256 descriptors: 24 at once, so more requests at the fake
    # at once than 8 tenants could make (8 x 4 lists), and at most 24 x 4 of them
    fake.control("DELETE", "/_fake/stats")
    every = inventory(fake, "forty.json")
    rc, err, doc = fleet(every, "--out-dir", out_dir("forty"), nofile=256)
    done = [t for t in doc.get("tenants", []) if t["exit"] == 0]
    S.eq("40 tenants with the default --jobs: all done", (rc, len(done), doc.get("jobs")), (0, 40, 24))
    most = fake.stats()["max_in_flight"]
    # a few over 4 x 24: a handler still finishing its answer while that tenant's next
    # request arrives
    S.check("... more than 32 requests at the fake at once (the old default of 8 tenants' most), "
            "about 4 x 24 at most", 32 < most <= 104, "most in flight: %d" % most)
S.done()
