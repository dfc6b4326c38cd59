#!/usr/bin/env python3
"""Cloud Management Service plans and the subaccount (issue 9, points 4, 5 and 8's 204):
the fake grants each cis plan its own scopes (central: subaccount and entitlements; local:
subscriptions), so calmbind takes a key of each plan (--cis-key, --cis-key2, either order),
names a missing scope instead of dropping the evidence, refuses two keys of one plan or a
local key of another subaccount, takes --subaccount from the Service Manager key's token and
refuses another one before any change, and accepts 204 from the Entitlements API."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import ENV  # noqa: E402

S = itest.Suite("integration/cis_plans")


def run(fake, command, *extra):
    rep = os.path.join(fake.dir, "report-%d.json" % len(os.listdir(fake.dir)))
    args = [command, "--sm-key", fake.sm_key_path, "--report", rep] + list(extra)
    if command == "get":
        args += ["--out", os.path.join(fake.dir, "key-%d.json" % len(os.listdir(fake.dir)))]
    rc, out, err = itest.run(args, env=ENV, timeout=120)
    report = None
    if os.path.exists(rep):
        import json
        with open(rep) as f:
            report = json.load(f)
    return rc, out, err, report


def decision(rep):
    d = (rep or {}).get("decision") or {}
    return d.get("date"), d.get("source")


def plans():
    with FakeBTP(preset="mid-2023") as fake:
        central, local = fake.cis_key_path, fake.cis_local_key_path
        for what, keys in (("central as --cis-key, local as --cis-key2", ["--cis-key", central, "--cis-key2", local]),
                           ("local as --cis-key, central as --cis-key2", ["--cis-key", local, "--cis-key2", central])):
            rc, out, err, rep = run(fake, "plan", *keys)
            S.eq("%s: exit 0" % what, rc, 0)
            S.eq("%s: the date is the subscription's" % what, decision(rep), ("2023-08-21", "subscription"))
        rc, out, err, rep = run(fake, "plan", "--cis-key", central)
        S.eq("central key only: the date is the subaccount's", decision(rep), ("2023-08-21", "subaccount"))
        S.check("central key only: names the scope that reads subscriptions",
                "subaccount.application.subscription.read" in out + err and "local-plan" in out + err, out + err[-800:])
        rc, out, err, rep = run(fake, "plan", "--cis-key", local)
        S.eq("local key only: the date is the subscription's", decision(rep), ("2023-08-21", "subscription"))
        S.check("local key only: names the scope that reads the subaccount",
                "global-account.subaccount.read" in out + err and "central-plan" in out + err, out + err[-800:])
        n = len(fake.requests())
        rc, out, err, rep = run(fake, "plan", "--cis-key", central, "--cis-key2", central)
        S.eq("two central keys: exit 2", rc, 2)
        S.check("two central keys: says so", "both central-plan cis keys" in err, err[-400:])
        S.eq("two central keys: no request", [r for r in fake.requests()[n:] if not r["path"].startswith("/_fake")], [])
        rc, out, err, rep = run(fake, "plan", "--cis-key", central, "--cis-key2", fake.cis_local_key_other_path)
        S.eq("local key of another subaccount: exit 2", rc, 2)
        S.check("local key of another subaccount: says whose it is",
                "is a cis key of subaccount" in err and fake.subaccount in err, err[-400:])


def entitlement():
    """before-2023-06-12, not entitled: only a central key can assign the entitlement."""
    with FakeBTP(preset="before-2023-06-12") as fake:
        rc, out, err, rep = run(fake, "get", "--cis-key", fake.cis_local_key_path)
        S.eq("local key only, not entitled: exit 4 (manual step)", rc, 4)
        S.check("local key only, not entitled: names the scope that assigns it",
                "global-account.entitlement.subaccount.update" in err, err[-800:])
        S.eq("local key only, not entitled: no mutating request", fake.mutations(), [])
        S.check("local key only, not entitled: the manual step says a central-plan key is missing, "
                "not that no --cis-key was given", "local-plan key, which cannot assign entitlements" in err
                and "no --cis-key was given" not in err,
                err[-800:])
    with FakeBTP(preset="before-2023-06-12") as fake:
        # no --subaccount: the Service Manager key's subaccount is the one entitled
        rc, out, err, rep = run(fake, "get", "--cis-key", fake.cis_local_key_path,
                                "--cis-key2", fake.cis_key_path, "--scenario", "monitoring")
        S.eq("both keys, no --subaccount: exit 0", rc, 0)
        puts = [r for r in fake.mutations() if r["path"] == "/entitlements/v1/subaccountServicePlans"]
        S.eq("both keys, no --subaccount: one entitlement assignment", len(puts), 1)
        S.check("both keys, no --subaccount: assigned to the SM key's subaccount",
                puts and fake.subaccount in str(puts[0].get("body", "")), puts[:1])
        rc, out, err, rep = run(fake, "plan", "-v", "--cis-key", fake.cis_key_path)
        S.check("-v says where the subaccount came from", "ext_attr.subaccountid" in err, err[-800:])
    with FakeBTP(preset="before-2023-06-12") as fake:
        fake.control("POST", "/_fake/plugins/cis", {"assign_status": 204, "empty_assignments_status": 204})
        rc, out, err, rep = run(fake, "get", "--cis-key", fake.cis_key_path, "--scenario", "monitoring")
        S.eq("Entitlements API answering 204 (PUT and the empty GET): exit 0", rc, 0)
    # the Entitlements API's categories: SERVICE and QUOTA_BASED_APPLICATION plans have a
    # numeric quota (`amount`), ELASTIC_SERVICE and APPLICATION plans are enabled (`enable`)
    for category, field in (("QUOTA_BASED_APPLICATION", "amount"), ("APPLICATION", "enable")):
        with FakeBTP(preset="before-2023-06-12") as fake:
            fake.control("POST", "/_fake/plugins/cis", {"plan_category": category})
            rc, out, err, rep = run(fake, "get", "--cis-key", fake.cis_key_path, "--scenario", "monitoring")
            S.eq("plan category %s: exit 0" % category, rc, 0)
            puts = [r for r in fake.mutations() if r["path"] == "/entitlements/v1/subaccountServicePlans"]
            info = puts and puts[0]["body"]["subaccountServicePlans"][0]["assignmentInfo"][0]
            S.check("plan category %s: the assignment sends %s" % (category, field),
                    bool(info) and field in info and len(info) == 2, (info, err[-400:]))


def subaccount():
    """--subaccount that is not the Service Manager key's: exit 2 before any change (today:
    the entitlement went to that subaccount, then a 9-minute wait)."""
    other = "0badc0de-0000-4000-8000-000000000001"
    with FakeBTP(preset="before-2023-06-12") as fake:
        for cmd in ("plan", "get"):
            rc, out, err, rep = run(fake, cmd, "--cis-key", fake.cis_key_path, "--subaccount", other)
            S.eq("%s --subaccount of another subaccount: exit 2" % cmd, rc, 2)
            S.check("%s --subaccount mismatch: names both" % cmd, other in err and fake.subaccount in err,
                    err[-400:])
        S.eq("--subaccount mismatch: no mutating request", fake.mutations(), [])
        rc, out, err, rep = run(fake, "plan", "--cis-key", fake.cis_key_path,
                                "--subaccount", fake.subaccount.upper())
        S.eq("--subaccount in upper case: the same subaccount, exit 0", rc, 0)


def main():
    plans()
    entitlement()
    subaccount()
    S.done()


if __name__ == "__main__":
    main()
