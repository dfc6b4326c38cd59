#!/usr/bin/env python3
"""make bench (called by bench/run.sh): `calmbind discover` on a global account of SUBS
subaccounts, TENANTS of them SAP Cloud ALM's, every request answered after LATENCY ms by
the fake BTP (tests/fakebtp, multi-tenant mode with --ga-unrelated).

Figures: requests (from the fake's log, the token included) and wall time of
  * discover (table, inventory): the tree and the entitlements are one request each,
    whatever the size;
  * discover --bootstrap-sm-keys (a look-up and a creation per tenant, --jobs N at once);
  * the rerun (a key file per tenant: nothing to ask);
  * with the cis rate limit on (--rate-limit N/S per endpoint and client, SAP's documented
    example 5/3), the bootstrap of RL_TENANTS tenants: 429s waited out by X-Ratelimit-Reset.
A benchmark, not a test: prints the figures; exits 1 only if a run fails.

    python3 bench/discover_bench.py build/calmbind [--subaccounts 1000] [--tenants 100]
                                    [--latency-ms 100] [--jobs 4,16] [--rl-tenants 20]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "fakebtp"))
from harness import FakeBTP  # noqa: E402


def run(binary, args):
    t = time.perf_counter()
    p = subprocess.run([binary, "discover", "--timeout", "1200"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError("discover exited %d: %s" % (p.returncode, p.stderr[-800:]))
    return dt


def measure(fake, binary, args):
    n0 = len(fake.requests())
    dt = run(binary, args)
    time.sleep(0.3)        # the log line of the last answer lands after it
    reqs = fake.requests()[n0:]
    return dt, len(reqs), sum(1 for r in reqs if r["status"] == 429)


def line(what, dt, n, n429, latency):
    print("  %-44s %5d requests (%d answered 429)  %6.2f s  (%.1f requests' latency)"
          % (what, n, n429, dt, dt / (latency / 1000.0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--subaccounts", type=int, default=1000)
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--jobs", default="4,16")
    ap.add_argument("--rl-tenants", type=int, default=20)
    ap.add_argument("--rate-limit", default="5/3")
    a = ap.parse_args()
    print("discover bench: %d subaccounts (%d SAP Cloud ALM), %d ms a request"
          % (a.subaccounts, a.tenants, a.latency_ms))
    with FakeBTP(tenants=a.tenants, ga_unrelated=a.subaccounts - a.tenants,
                 latency_ms=a.latency_ms) as fake:
        d = tempfile.mkdtemp(prefix="discover-bench-")
        cis = fake.cis_key_path
        line("discover (table)", *measure(fake, a.binary, ["--cis-key", cis]), a.latency_ms)
        line("discover --inventory", *measure(fake, a.binary, ["--cis-key", cis, "--inventory",
                                                                os.path.join(d, "inv.json")]),
             a.latency_ms)
        for jobs in [int(j) for j in a.jobs.split(",")]:
            sm = os.path.join(d, "sm-%d" % jobs)
            os.makedirs(sm)
            line("--bootstrap-sm-keys, --jobs %d (first run)" % jobs,
                 *measure(fake, a.binary, ["--cis-key", cis, "--bootstrap-sm-keys", sm,
                                           "--sm-binding-name", "bench-%d" % jobs, "--jobs", str(jobs)]),
                 a.latency_ms)
        line("--bootstrap-sm-keys rerun (files there)",
             *measure(fake, a.binary, ["--cis-key", cis, "--bootstrap-sm-keys", sm]), a.latency_ms)
    with FakeBTP(tenants=a.rl_tenants, ga_unrelated=0, latency_ms=a.latency_ms,
                 cis_rate_limit=a.rate_limit) as fake:
        sm = tempfile.mkdtemp(prefix="discover-bench-rl-")
        line("rate limit %s: bootstrap of %d tenants" % (a.rate_limit, a.rl_tenants),
             *measure(fake, a.binary, ["--cis-key", fake.cis_key_path, "--bootstrap-sm-keys", sm]),
             a.latency_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
