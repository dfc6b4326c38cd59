#!/usr/bin/env python3
"""make bench (called by bench/run.sh): `calmbind get` on an after-2023-10-16 tenant of the
fake BTP with 50 ms added to every request, against the same documented calls made one
after the other with curl and jq (token, offering, plan, instances, bindings).

Targets (the issue): calmbind's median wall time at most 3 x 50 ms + 30 ms, and at least
twice as fast as the curl + jq sequence. Prints both medians; exits 1 if a target is missed.

    python3 bench/get_bench.py build/calmbind [--runs N] [--latency-ms MS]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fakebtp"))
from harness import FakeBTP  # noqa: E402

# The documented sequence (SAP's "consuming services in other environments" walk-through),
# one call after the other. Secrets stay out of argv: curl reads them from files.
CURL_JQ = r"""
set -eu
d=$1
url=$(jq -r .url "$d/sm-key.json"); sm=$(jq -r .sm_url "$d/sm-key.json")
jq -j .clientid "$d/sm-key.json" > "$d/b.id"; jq -j .clientsecret "$d/sm-key.json" > "$d/b.secret"
tok=$(curl -sf -X POST "$url/oauth/token" -d grant_type=client_credentials \
      --data-urlencode "client_id@$d/b.id" --data-urlencode "client_secret@$d/b.secret" | jq -r .access_token)
printf 'Authorization: Bearer %s\n' "$tok" > "$d/b.hdr"
off=$(curl -sf -G "$sm/v1/service_offerings" -H "@$d/b.hdr" \
      --data-urlencode "fieldQuery=catalog_name eq 'SAPCloudALMAPIs'" | jq -r '.items[0].id')
plan=$(curl -sf -G "$sm/v1/service_plans" -H "@$d/b.hdr" \
      --data-urlencode "fieldQuery=catalog_name eq 'standard' and service_offering_id eq '$off'" | jq -r '.items[0].id')
inst=$(curl -sf -G "$sm/v1/service_instances" -H "@$d/b.hdr" \
      --data-urlencode "fieldQuery=service_plan_id eq '$plan'" | jq -r '.items[0].id')
curl -sf -G "$sm/v1/service_bindings" -H "@$d/b.hdr" \
      --data-urlencode "fieldQuery=service_instance_id eq '$inst'" | jq '.items[0].credentials' > "$d/b.key"
rm -f "$d/b.id" "$d/b.secret" "$d/b.hdr"
test -s "$d/b.key"
"""


def timed(cmd, env=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (cmd[0], p.returncode, p.stderr.decode()[-500:]))
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("calmbind")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--latency-ms", type=int, default=50)
    a = ap.parse_args()
    for tool in ("curl", "jq"):
        if not shutil.which(tool):
            print("get bench: skipped (%s not installed)" % tool)
            return 0
    lat = a.latency_ms / 1000.0
    limit = 3 * lat + 0.030
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    with FakeBTP(preset="after-2023-10-16", latency_ms=a.latency_ms) as fake:
        work = tempfile.mkdtemp(prefix="calmbind-bench-")
        try:
            shutil.copy(fake.sm_key_path, os.path.join(work, "sm-key.json"))
            script = os.path.join(work, "curl_jq.sh")
            with open(script, "w") as f:
                f.write(CURL_JQ)
            cmd = [a.calmbind, "get", "--sm-key", fake.sm_key_path, "--provisioned", "2024-03-05"]
            # warm-up (page cache, fake's first connections), then measure
            _, key_out = timed(cmd, env)
            timed(["sh", script, work], env)
            ours = [timed(cmd, env)[0] for _ in range(a.runs)]
            theirs = [timed(["sh", script, work], env)[0] for _ in range(a.runs)]
            with open(os.path.join(work, "b.key")) as f:
                same = json.load(f) == json.loads(key_out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    ratio = m_theirs / m_ours if m_ours > 0 else float("inf")
    ok_abs, ok_rel = m_ours <= limit, ratio >= 2.0
    print("get bench: after-2023-10-16 tenant, %d ms added to every request, %d runs each"
          % (a.latency_ms, a.runs))
    print("  calmbind get        median %6.1f ms (min %.1f, max %.1f)  target <= %.0f ms (3 x %d + 30): %s"
          % (m_ours * 1000, min(ours) * 1000, max(ours) * 1000, limit * 1000, a.latency_ms,
             "ok" if ok_abs else "MISSED"))
    print("  curl + jq sequence  median %6.1f ms (min %.1f, max %.1f)  (5 dependent calls)"
          % (m_theirs * 1000, min(theirs) * 1000, max(theirs) * 1000))
    print("  speed-up            %.2fx  target >= 2x: %s" % (ratio, "ok" if ok_rel else "MISSED"))
    print("  same key from both: %s" % ("yes" if same else "NO"))
    return 0 if (ok_abs and ok_rel and same) else 1


if __name__ == "__main__":
    sys.exit(main())
