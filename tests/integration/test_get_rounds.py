#!/usr/bin/env python3
"""The round trips of a `get` on an after-2023-10-16 tenant (issue 18, point 7): its floor is
three that wait on each other (the Service Manager token; the four lists at once; the token
with the key found, which is also the verification), and the second token goes on the
connection of the first (one XSUAA). Counted from the fake's request log (which connection,
when each request arrived and its answer left), not timed."""
import os
import tempfile

from itest import Suite, run   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("get_rounds")
TMP = tempfile.mkdtemp(prefix="get-rounds-")


def chain(reqs):
    """The longest chain of requests each of which arrived after the one before it was
    answered: the round trips that could not overlap."""
    reqs = sorted(reqs, key=lambda r: r["arrived"])
    depth = []
    for i, r in enumerate(reqs):
        before = [depth[j] for j in range(i) if reqs[j]["answered"] <= r["arrived"]]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


for latency in (0, 200):
    with FakeBTP(preset="after-2023-10-16", latency_ms=latency) as fake:
        out = os.path.join(TMP, "key-%d.json" % latency)
        rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--out", out])
        reqs = fake.requests()
        what = "latency %d ms: " % latency
        S.check(what + "get succeeds", rc == 0, err[-500:])
        S.eq(what + "six requests: two tokens, four lists",
             sorted((r["method"], r["path"]) for r in reqs),
             sorted([("POST", "/oauth/token")] * 2 + [("GET", "/v1/" + p) for p in (
                 "service_offerings", "service_plans", "service_instances", "service_bindings")]))
        tokens = [r for r in reqs if r["path"] == "/oauth/token"]
        S.check(what + "the token with the key goes on the connection of the Service Manager token",
                len(tokens) == 2 and tokens[0]["conn"] == tokens[1]["conn"],
                [(t["host"], t["conn"]) for t in tokens])
        if latency:
            S.eq(what + "three round trips wait on each other, no more", chain(reqs), 3)
            lists = [r for r in reqs if r["method"] == "GET"]
            S.check(what + "the four lists are in flight together",
                    max(r["arrived"] for r in lists) < min(r["answered"] for r in lists),
                    [(r["path"], r["arrived"], r["answered"]) for r in lists])
S.done()
