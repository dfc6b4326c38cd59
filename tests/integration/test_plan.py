#!/usr/bin/env python3
"""calmbind plan: the same decision as get with read-only requests only, for every cell of
the path table; it says what get would find, create, update or leave alone, and why."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import run_get, no_secret_in  # noqa: E402

WANT = {
    ("after-2023-10-16", "deployment"): ["instance: find 'SAPCloudALMAPIs-auto'", "binding: find 'calm-api-key-auto'",
                                         "get would send no mutating request"],
    ("after-2023-10-16", "monitoring"): ["instance: find 'SAPCloudALMAPIs-auto'", "get would send no mutating request"],
    ("mid-2023", "deployment"): ["instance: would create 'calm-api-deployment'", "imp-cdm-feature-manage-ui",
                                 "binding: would create 'calm-api-deployment-key'"],
    ("mid-2023", "monitoring"): ["instance: find 'SAPCloudALMAPIs-auto'", "get would send no mutating request"],
    ("before-2023-06-12", "deployment"): ["would assign the entitlement", "instance: would create 'calm-api-deployment'"],
    ("before-2023-06-12", "monitoring"): ["would assign the entitlement", "instance: would create 'calm-api-monitoring'"],
}


def main():
    s = itest.Suite("integration/plan")
    for (preset, scenario), wants in sorted(WANT.items()):
        tag = "%s/%s" % (preset, scenario)
        try:
            with FakeBTP(preset=preset) as fake:
                rc, out, err, rep = run_get(fake, "--scenario", scenario, cis=True, command="plan")
                s.eq(tag + ": plan exits 0", rc, 0)
                s.eq(tag + ": no mutating request", fake.mutations(), [])
                s.check(tag + ": says which path and why", ("path: " + preset) in out and "because" in out, out[:400])
                for w in wants:
                    s.check(tag + ": prints " + repr(w), w in out, out)
                s.check(tag + ": report marks read_only correctly",
                        rep and rep["steps"]["read_only"] == ("would create" not in out and "would assign" not in out),
                        rep and rep["steps"])
                s.check(tag + ": no secret in output or report",
                        no_secret_in(out + err + json.dumps(rep), fake))
                rc, out, err, _ = run_get(fake, "--scenario", scenario, "--json", "--detailed-exitcode",
                                          cis=True, command="plan")
                s.eq(tag + ": --detailed-exitcode: 7 when get would change something, else 0",
                     rc, 0 if rep["steps"]["read_only"] else 7)
                try:
                    doc = json.loads(out)
                except ValueError:
                    doc = None
                s.check(tag + ": --json prints the run report on stdout, and only that",
                        doc and doc["steps"] == rep["steps"] and doc["decision"] == rep["decision"]
                        and doc["result"]["exit"] == rc and doc["result"]["ok"] is True, out[:300])
                s.check(tag + ": --json holds no secret", no_secret_in(out + err, fake))
                s.eq(tag + ": --json sent no mutating request either", fake.mutations(), [])
        except Exception as e:
            s.check(tag + ": runs", False, repr(e))
    # plan after a get: everything is found, nothing would change
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, _, _ = run_get(fake)
        n = len(fake.mutations())
        rc, out, err, rep = run_get(fake, command="plan")
        s.eq("mid-2023 after get: plan exits 0", rc, 0)
        s.check("mid-2023 after get: plan finds what get made",
                "instance: find 'calm-api-deployment'" in out and "get would send no mutating request" in out, out)
        s.eq("mid-2023 after get: plan sends no mutating request", fake.mutations()[n:], [])
        rc, out, err, rep = run_get(fake, "--detailed-exitcode", command="plan")
        s.eq("mid-2023 after get: --detailed-exitcode exits 0 (nothing to change)", rc, 0)
    # no --cis-key on the oldest tenant: plan names the manual step, get exits 4
    with FakeBTP(preset="before-2023-06-12") as fake:
        rc, out, err, rep = run_get(fake, command="plan")
        s.eq("before without --cis-key: plan exits 4, as get would", rc, 4)
        s.check("before without --cis-key: plan names the cockpit steps", "Entity Assignments" in out, out)
        rc, out, err, _ = run_get(fake, "--json", "--detailed-exitcode", command="plan")
        doc = json.loads(out) if out.startswith("{") else {}
        s.check("before without --cis-key: plan --json --detailed-exitcode still exits 4, the report says so",
                rc == 4 and doc.get("result", {}).get("exit") == 4 and doc["steps"].get("manual"), (rc, out[:300]))
        rc, out, err, rep = run_get(fake)
        s.eq("before without --cis-key: get exits 4", rc, 4)
        s.check("before without --cis-key: get prints the cockpit steps", "Entity Assignments" in err, err[-600:])
        s.eq("before without --cis-key: nothing was changed", fake.mutations(), [])
    s.done()


if __name__ == "__main__":
    main()
