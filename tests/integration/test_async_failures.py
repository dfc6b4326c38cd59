#!/usr/bin/env python3
"""Async operations and failures: a failed async create (SM's error text, the leftover
ready:false instance deleted, the rerun converges), a stuck operation past --timeout
(exit 5), a create whose answer is lost (looked up by name, no second instance), a 409
(adopted), and every name rule (exit 2 before any request)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import run_get, no_secret_in  # noqa: E402

CALM_PLAN = "33333333-aaaa-4bbb-8ccc-000000000003"


def calm_instances(fake, name=None):
    return [i for i in fake.state()["instances"]
            if i.get("service_plan_id") == CALM_PLAN and (name is None or i["name"] == name)]


def main():
    s = itest.Suite("integration/async_failures")

    # failed async create -> leftover deleted, SM's text reported; rerun converges
    with FakeBTP(preset="mid-2023", errors_style="array") as fake:
        fake.fault(action="op_fail", method="POST", path=r"^/v1/service_instances$",
                   description="fake broker failure text")
        rc, out, err, rep = run_get(fake)
        s.eq("failed create: exit 1", rc, 1)
        s.check("failed create: SM's error text is reported", "fake broker failure text" in err, err[-800:])
        dels = [m for m in fake.mutations() if m["method"] == "DELETE"]
        s.check("failed create: the leftover instance is deleted",
                len(dels) == 1 and dels[0]["path"].startswith("/v1/service_instances/"), dels)
        s.eq("failed create: no instance 'calm-api-deployment' is left", calm_instances(fake, "calm-api-deployment"), [])
        s.check("failed create: report records the failure without secrets",
                rep and rep["result"]["exit"] == 1 and any(a["action"] == "create-failed" for a in rep["actions"])
                and no_secret_in(json.dumps(rep), fake), rep and rep["actions"])
        s.eq("failed create: nothing on stdout", out, "")
        rc, out, err, rep = run_get(fake)
        s.eq("after the failure: rerun succeeds", rc, 0)
        s.eq("after the failure: one instance", len(calm_instances(fake, "calm-api-deployment")), 1)

    # errors as an object (the other shape)
    with FakeBTP(preset="mid-2023", errors_style="object") as fake:
        fake.fault(action="op_fail", method="POST", path=r"^/v1/service_instances$",
                   description="object-shaped failure")
        rc, out, err, rep = run_get(fake)
        s.check("errors as object: text reported", rc == 1 and "object-shaped failure" in err, err[-400:])

    # stuck operation past --timeout -> exit 5 with a resumable message
    with FakeBTP(preset="mid-2023") as fake:
        fake.fault(action="op_stuck", method="POST", path=r"^/v1/service_instances$")
        rc, out, err, rep = run_get(fake, "--timeout", "2")
        s.eq("stuck operation: exit 5", rc, 5)
        s.check("stuck operation: says the deadline passed while waiting, and how to resume",
                "deadline" in err and "rerun" in err, err[-400:])
        s.check("stuck operation: progress on stderr", "in progress" in err, err[-400:])
        s.eq("stuck operation: nothing on stdout", out, "")

    # the create's answer is lost (connection reset after SM acted): looked up by name
    with FakeBTP(preset="mid-2023") as fake:
        fake.fault(action="late_create", method="POST", path=r"^/v1/service_instances$")
        rc, out, err, rep = run_get(fake)
        s.eq("lost create answer: exit 0", rc, 0)
        posts = [m for m in fake.mutations() if m["method"] == "POST" and m["path"] == "/v1/service_instances"]
        # neither calm.net.rest nor libcurl may resend the POST (mutations get a fresh
        # connection, so libcurl has no dead reused connection to replay on)
        s.check("lost create answer: the POST was sent once, then settled by name",
                len(posts) == 1, [(p["status"], p.get("fault")) for p in posts])
        s.eq("lost create answer: exactly one instance", len(calm_instances(fake, "calm-api-deployment")), 1)

    # 409: an instance of that name appears between the look and the create
    with FakeBTP(preset="mid-2023") as fake:
        fake.fault(action="status", status=409, method="POST", path=r"^/v1/service_bindings$")
        rc, out, err, rep = run_get(fake)
        s.check("409 on the binding create, nothing by that name: reported (exit 1)", rc == 1, err[-300:])
        rc, out, err, rep = run_get(fake)
        s.eq("then the rerun converges", rc, 0)

    # 5xx on a create: outcome unknown -> look up by name, never a blind resend
    with FakeBTP(preset="mid-2023") as fake:
        fake.fault(action="status", status=503, method="POST", path=r"^/v1/service_instances$")
        rc, out, err, rep = run_get(fake)
        posts = [m for m in fake.requests() if m["method"] == "POST" and m["path"] == "/v1/service_instances"]
        s.eq("503 on create: no blind resend of the POST", len(posts), 1)
        s.check("503 on create: fails clearly (exit 1)", rc == 1 and "calm-api-deployment" in err, err[-300:])

    # name rules: exit 2 before any request
    bad = [("--instance-name", "calm.api", "no '.'"),
           ("--instance-name", "a" * 33, "at most 32"),
           ("--instance-name", "calm api", "instead of spaces"),
           ("--instance-name", "calm$api", "letters, digits"),
           ("--binding-name", "S4H_100_00", "<SID>_<client>_<system number>"),
           ("--binding-name", "ABC_001_99", "<SID>_<client>_<system number>"),
           ("--provisioned", "2023-02-30", "not a calendar date"),
           ("--provisioned", "June 2023", "YYYY-MM-DD")]
    with FakeBTP(preset="after-2023-10-16") as fake:
        for opt, val, text in bad:
            n = len(fake.requests())
            rc, out, err, rep = run_get(fake, opt, val)
            s.check("%s %r: exit 2, says %r" % (opt, val[:40], text), rc == 2 and text in err, (rc, err[-300:]))
            if opt == "--instance-name":
                # the strict name rules are for creating: an existing instance of that name
                # would be adopted, so get reads first; it changes nothing
                s.eq("%s %r: no mutating request" % (opt, val[:40]),
                     [r for r in fake.requests()[n:] if r["method"] not in ("GET",)
                      and not r["path"].endswith("/oauth/token")], [])
            else:
                s.eq("%s %r: no request sent" % (opt, val[:40]), len(fake.requests()) - n, 0)
        rc, out, err, rep = run_get(fake, "--instance-name", "a" * 32, "--binding-name", "S4H_100_0",
                                    command="plan")
        s.eq("32-character instance name and a near-miss binding name are accepted", rc, 0)
    s.done()


if __name__ == "__main__":
    main()
