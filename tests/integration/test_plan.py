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
    # no --cis-key on the oldest tenant: plan names the manual step, get exits 4
    with FakeBTP(preset="before-2023-06-12") as fake:
        rc, out, err, rep = run_get(fake, command="plan")
        s.eq("before without --cis-key: plan exits 0", rc, 0)
        s.check("before without --cis-key: plan names the cockpit steps", "Entity Assignments" in out, out)
        rc, out, err, rep = run_get(fake)
        s.eq("before without --cis-key: get exits 4", rc, 4)
        s.check("before without --cis-key: get prints the cockpit steps", "Entity Assignments" in err, err[-600:])
        s.eq("before without --cis-key: nothing was changed", fake.mutations(), [])
    s.done()


if __name__ == "__main__":
    main()
