#!/usr/bin/env python3
"""make bench (called by bench/run.sh): many tenants on the after-2023-10-16 path (issue 11).

A multi-tenant fake BTP (tests/fakebtp, --tenants) adds LATENCY ms to every request.
For TENANTS tenants it times

  * a plain `calmbind fleet INVENTORY` (the default --jobs; one process, every tenant a
    flow), with its peak RSS, beside `--jobs JOBS` and each --jobs of SWEEP (the default
    should be within 1.5x of the best of them);
  * `xargs -P 64 calmbind get` (one process per tenant, 64 at a time);
  * the sequential curl + jq loop admins write today (bench/get_bench.py's five documented
    calls, tenant after tenant), on SEQ_SAMPLE tenants, scaled to TENANTS (every tenant
    costs the same; run the whole loop with --seq-sample 0);

then a plain `calmbind fleet` on BIG tenants (time per tenant against the TENANTS run:
linear growth keeps it about equal; peak RSS). Targets (the issues): the default within
1.5x of the best --jobs; fleet >= 100x faster than the sequential loop, <= 0.7x the xargs
time, peak RSS <= 32 MiB (the default); BIG tenants with time growing linearly and peak
RSS <= 128 MiB. A benchmark, not a test: prints the figures and whether each target is
met; exits 1 only if a run fails. --runs N repeats the TENANTS runs of fleet and xargs
and reports the median time (and the largest peak RSS): the figures are noisy on a
shared machine. fleet raises its transfer limit to 4 x --jobs.

    python3 bench/fleet_bench.py build/calmbind [--tenants 500] [--big 10000] [--jobs 96]
                                 [--sweep 32,64,96,128] [--latency-ms 100] [--seq-sample 20]
                                 [--runs 1]
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
sys.path.insert(0, HERE)
from harness import FakeBTP  # noqa: E402
from get_bench import CURL_JQ  # noqa: E402


def peakrss_run(peakrss, argv, env):
    """(wall s, peak RSS KiB) of argv; raises if it fails."""
    p = subprocess.run([peakrss] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env)
    wall, rss, rc = p.stdout.split()
    if int(rc) != 0:
        raise RuntimeError("%s exited %s: %s" % (" ".join(argv[:3]), rc, p.stderr[-800:]))
    return float(wall), int(rss)


def timed_shell(script, env):
    t = time.perf_counter()
    p = subprocess.run(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, env=env)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError("shell run exited %d: %s" % (p.returncode, p.stderr[-800:]))
    return dt


def inventory(work, tenants, name):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump({"tenants": [{"name": t.name, "sm_key": t.sm_key_path} for t in tenants]}, f)
    return path


def fleet(a, peakrss, env, work, tenants, tag, jobs=None):
    """(wall s, peak RSS KiB, --jobs in effect) of fleet --jobs JOBS (None: the default)."""
    out = os.path.join(work, "out-" + tag)
    os.makedirs(out)
    inv = inventory(work, tenants, "inventory-%s.json" % tag)
    rep = os.path.join(work, "report-%s.json" % tag)
    wall, rss = peakrss_run(peakrss, [a.calmbind, "fleet", inv, "--out-dir", out, "-q", "--report", rep]
                            + (["--jobs", str(jobs)] if jobs else []), env)
    got = len([n for n in os.listdir(out) if n.endswith(".json")])
    if got != len(tenants):
        raise RuntimeError("fleet wrote %d of %d keys" % (got, len(tenants)))
    with open(rep) as f:
        used = json.load(f).get("jobs", jobs)
    return wall, rss, used


def xargs(a, env, work, tenants, run=0):
    out = os.path.join(work, "out-xargs%d" % run)
    os.makedirs(out)
    lst = os.path.join(work, "xargs%d.list" % run)
    with open(lst, "w") as f:
        for t in tenants:
            f.write("%s %s\n" % (t.sm_key_path, os.path.join(out, t.name + ".json")))
    script = ("xargs -P 64 -n 2 sh -c 'exec \"$0\" get -q --sm-key \"$1\" --out \"$2\"' %s < %s"
              % (a.calmbind, lst))
    return timed_shell(script, env)


def sequential(env, work, tenants):
    script = os.path.join(work, "curl_jq.sh")
    with open(script, "w") as f:
        f.write(CURL_JQ)
    lines = ["set -e"]
    for t in tenants:
        d = os.path.join(work, "seq", t.name)
        os.makedirs(d)
        shutil.copy(t.sm_key_path, os.path.join(d, "sm-key.json"))
        lines.append("sh %s %s" % (script, d))
    return timed_shell("\n".join(lines), env)


def verdict(ok):
    return "ok" if ok else "MISSED"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("calmbind")
    ap.add_argument("--tenants", type=int, default=500)
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--jobs", type=int, default=96)
    ap.add_argument("--sweep", default="32,64,96,128",
                    help="--jobs values to time beside the default and --jobs JOBS")
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--seq-sample", type=int, default=20)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    for tool in ("curl", "jq", "xargs"):
        if not shutil.which(tool):
            print("fleet bench: skipped (%s not installed)" % tool)
            return 0
    peakrss = os.environ.get("PEAKRSS", os.path.join(os.path.dirname(os.path.abspath(a.calmbind)),
                                                     "peakrss"))
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    n = a.tenants
    total = max(n, a.big)
    work = tempfile.mkdtemp(prefix="calmbind-fleet-bench-")
    load_before = os.getloadavg()[0]
    try:
        with FakeBTP(tenants=total, latency_ms=a.latency_ms, ready_timeout=60 + total * 0.02) as fake:
            ts = fake.tenants
            sweep = sorted(set([a.jobs] + [int(j) for j in a.sweep.split(",") if j.strip()]))
            f_walls, f_rsss, x_walls = [], [], []
            s_walls, s_rsss = {j: [] for j in sweep}, {j: [] for j in sweep}
            default_jobs = None
            for r in range(max(1, a.runs)):
                # interleaved, so that a change of load hits every --jobs alike
                w, rss, default_jobs = fleet(a, peakrss, env, work, ts[:n], "default%d" % r)
                f_walls.append(w)
                f_rsss.append(rss)
                for j in sweep:
                    w, rss, _ = fleet(a, peakrss, env, work, ts[:n], "j%d-%d" % (j, r), j)
                    s_walls[j].append(w)
                    s_rsss[j].append(rss)
                x_walls.append(xargs(a, env, work, ts[:n], r))
            f_wall, f_rss, x_wall = statistics.median(f_walls), max(f_rsss), statistics.median(x_walls)
            sample = ts[:a.seq_sample] if 0 < a.seq_sample < n else ts[:n]
            s_wall = sequential(env, work, sample) * n / len(sample)
            b_wall = b_rss = None
            if a.big > n:
                b_wall, b_rss, _ = fleet(a, peakrss, env, work, ts[:a.big], "big")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("fleet bench: after-2023-10-16 tenants of the multi-tenant fake, %d ms per request, "
          "plain fleet (--jobs %s by default); %d cores, load average %.1f before, %.1f after"
          % (a.latency_ms, default_jobs, os.cpu_count() or 0, load_before, os.getloadavg()[0]))
    if len(f_walls) > 1:
        print("  %d runs each; fleet %s s, xargs %s s: medians below" % (
            len(f_walls), " ".join("%.2f" % w for w in f_walls), " ".join("%.2f" % w for w in x_walls)))
    print("  %5d tenants  calmbind fleet        %7.2f s  peak RSS %5.1f MiB (target <= 32: %s)"
          % (n, f_wall, f_rss / 1024, verdict(f_rss <= 32 * 1024)))
    medians = {j: statistics.median(w) for j, w in s_walls.items()}
    for j in sweep:
        print("  %5d tenants  fleet --jobs %-4d     %7.2f s  peak RSS %5.1f MiB%s"
              % (n, j, medians[j], max(s_rsss[j]) / 1024, "  (runs %s)" % " ".join(
                  "%.2f" % w for w in s_walls[j]) if len(s_walls[j]) > 1 else ""))
    best = min(medians, key=medians.get)
    print("  default / best (--jobs %d) = %.2f (target <= 1.5: %s)"
          % (best, f_wall / medians[best], verdict(f_wall / medians[best] <= 1.5)))
    print("  %5d tenants  xargs -P 64 get       %7.2f s  fleet / xargs = %.2f (target <= 0.7: %s)"
          % (n, x_wall, f_wall / x_wall, verdict(f_wall / x_wall <= 0.7)))
    print("  %5d tenants  sequential curl + jq  %7.2f s%s  speed-up %.0fx (target >= 100x: %s)"
          % (n, s_wall, " (%d measured, scaled)" % len(sample) if len(sample) < n else "",
             s_wall / f_wall, verdict(s_wall / f_wall >= 100)))
    if b_wall is not None:
        per_small, per_big = f_wall / n, b_wall / a.big
        print("  %5d tenants  calmbind fleet        %7.2f s  peak RSS %5.1f MiB (target <= 128: %s)"
              % (a.big, b_wall, b_rss / 1024, verdict(b_rss <= 128 * 1024)))
        print("  time per tenant: %.2f ms at %d, %.2f ms at %d (linear: about equal; ratio %.2f)"
              % (per_small * 1000, n, per_big * 1000, a.big, per_big / per_small))
    return 0


if __name__ == "__main__":
    sys.exit(main())
