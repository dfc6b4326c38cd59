#!/usr/bin/env python3
"""calmbind discover on the fake global account (global_account.py): the table, the
evidence per tenant, the inventory (JSON and CSV), --bootstrap-sm-keys (v2, v1, neither),
reruns that create nothing, the rate limit's 429s, then `fleet` on the inventory: every
tenant's Cloud ALM key, verified."""
import json
import os
import shutil
import stat
import tempfile

from itest import Suite, run   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("discover")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
TMP = tempfile.mkdtemp(prefix="discover-")
PRESETS3 = ["after-2023-10-16", "mid-2023", "before-2023-06-12"]


def fresh(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def discover(*args, cwd=None):
    return run(["discover", "--timeout", "120"] + list(args), env=ENV, timeout=180, cwd=cwd)


def posts(fake, since):
    return [r for r in fake.requests()[since:] if r["method"] == "POST"
            and "ervice" in r["path"] and r["path"].startswith("/accounts/")]


def created(fake, since):
    """The binding POSTs the fake carried out: one refused with 429 by the rate
    limit made nothing and is rightly sent again."""
    return [r for r in posts(fake, since) if r["status"] in (200, 201)]


def test_table(fake, cis):
    rc, out, err = discover("--cis-key", cis)
    S.eq("table: exit 0", rc, 0)
    lines = out.splitlines()
    S.check("table: names the global account and counts 4 of 7 subaccounts",
            "SAP Cloud ALM 0001234567" in lines[0] and "7 subaccounts in 3 directories, 4 of SAP Cloud ALM"
            in lines[0], lines[:1])
    rows = {ln.split()[0]: ln for ln in lines[2:6]}
    for t in fake.tenants:
        S.check("table: %s with its subaccount" % t.name, t.subaccount in rows.get(t.name, ""),
                rows.get(t.name))
    S.check("table: directories shown as paths", "Customers/ACME" in rows["t0003"], rows["t0003"])
    S.check("table: without bootstrap the SM key is missing",
            all(r.endswith(" missing") for r in rows.values()) and out.count(": missing sm_key") == 4)
    S.check("table: the name that only suggests Cloud ALM is not counted",
            "not counted: 'Cloud ALM Playground'" in out and "Development" not in out)
    S.check("table: says what the request count was", "2 API requests" in out, out[-200:])


def test_bootstrap_and_fleet(fake, cis):
    sm = fresh("sm")
    inv = os.path.join(fresh("inv"), "fleet.json")
    n0 = len(fake.requests())
    # relative paths, as an admin types them: the inventory must point at them from its directory
    rc, out, err = discover("--cis-key", os.path.relpath(cis, TMP), "--inventory", "inv/fleet.json",
                            "--bootstrap-sm-keys", "sm", cwd=TMP)
    S.eq("bootstrap: exit 0", rc, 0)
    made = created(fake, n0)
    S.eq("bootstrap: one v2 binding created per tenant",
         sorted(r["path"].split("/")[4] for r in made), sorted(t.subaccount for t in fake.tenants))
    S.check("bootstrap: 429s of the rate limit were retried",
            any(r["status"] == 429 for r in fake.requests()[n0:]), "no 429 seen")
    files = sorted(os.listdir(sm))
    S.eq("bootstrap: DIR/<name>-sm.json per tenant", files, ["t000%d-sm.json" % i for i in range(1, 5)])
    S.check("bootstrap: key files are 0600",
            all(stat.S_IMODE(os.stat(os.path.join(sm, f)).st_mode) == 0o600 for f in files))
    doc = json.load(open(inv))
    tenants = {t["name"]: t for t in doc["tenants"]}
    S.check("inventory: every tenant with subaccount, region and its key",
            all(tenants[t.name]["subaccount"] == t.subaccount and tenants[t.name]["region"]
                and os.path.exists(os.path.join(os.path.dirname(inv), tenants[t.name]["sm_key"]))
                for t in fake.tenants), doc)
    S.check("inventory: paths are relative to the inventory",
            tenants["t0001"]["sm_key"] == "../sm/t0001-sm.json"
            and doc["defaults"]["cis_key"] == "../" + os.path.relpath(cis, TMP), doc)
    S.check("inventory: the tenant without entitlement says what is missing",
            "SAPCloudALMAPIs entitlement" in tenants["t0003"].get("missing", "")
            and "missing" not in tenants["t0001"], tenants["t0003"])
    secrets = [s for s in fake.issued_secrets() if len(s) > 8]
    S.check("bootstrap: no secret in the output or the inventory",
            not any(s in out or s in err or s in open(inv).read() for s in secrets))

    # fleet on the inventory: each tenant's key, verified (get verifies by default)
    keys = fresh("keys")
    rep = os.path.join(TMP, "fleet-report.json")
    rc, out, err = run(["fleet", inv, "--out-dir", keys, "--report", rep, "--timeout", "120"],
                       env=ENV, timeout=180)
    S.eq("fleet on the inventory: exit 0", rc, 0)
    report = {t["name"]: t for t in json.load(open(rep))["tenants"]}
    S.check("fleet: every tenant ok", all(report[t.name]["exit"] == 0 for t in fake.tenants), report)
    S.check("fleet: the tenant without entitlement got it assigned through the central key",
            fake.state(tenant="t0003")["entitled"] is True)
    for t in fake.tenants:
        rc, vout, verr = run(["verify", os.path.join(keys, t.name + ".json"), "--timeout", "60"], env=ENV)
        S.eq("verify %s's Cloud ALM key" % t.name, rc, 0)

    # a rerun creates nothing, and gives the same inventory
    def keyed(path):
        d = json.load(open(path))
        return d["defaults"], [(t["name"], t["subaccount"], t["region"], t["sm_key"]) for t in d["tenants"]]
    before = keyed(inv)
    n1 = len(fake.requests())
    rc, out, err = discover("--cis-key", os.path.relpath(cis, TMP), "--inventory", "inv/fleet.json",
                            "--bootstrap-sm-keys", "sm", cwd=TMP)
    S.eq("rerun: exit 0", rc, 0)
    S.eq("rerun: creates nothing", posts(fake, n1), [])
    S.check("rerun: reuses the key files", out.count("(kept)") == 4, out)
    S.check("rerun: same tenants, keys and defaults", keyed(inv) == before)
    t3 = [t for t in json.load(open(inv))["tenants"] if t["name"] == "t0003"][0]
    S.check("rerun: t0003 is now decided by its entitlement and misses nothing",
            t3["evidence"].startswith("decided by entitlement") and "missing" not in t3, t3)

    # a lost key file: the binding is found by name, not made a second time
    old = json.load(open(os.path.join(sm, "t0002-sm.json")))
    os.unlink(os.path.join(sm, "t0002-sm.json"))
    n2 = len(fake.requests())
    rc, out, err = discover("--cis-key", cis, "--bootstrap-sm-keys", sm)
    S.eq("lost file: exit 0", rc, 0)
    S.eq("lost file: no binding created", posts(fake, n2), [])
    S.check("lost file: the same binding's credentials written again",
            json.load(open(os.path.join(sm, "t0002-sm.json"))) == old and "t0002-sm.json (found)" in out)

    # CSV: fleet reads it too
    csv_inv = os.path.join(TMP, "inv", "fleet.csv")
    rc, out, err = discover("--cis-key", cis, "--inventory", csv_inv, "--bootstrap-sm-keys", sm)
    S.eq("csv: exit 0", rc, 0)
    rc, out, err = run(["fleet", csv_inv, "--command", "verify", "--out-dir", keys], env=ENV, timeout=120)
    S.eq("csv: fleet --command verify on it: exit 0", rc, 0)


def test_v1_and_none(fake, cis):
    fake.cis_knobs(sm_bindings="v1")
    sm = fresh("sm-v1")
    n0 = len(fake.requests())
    rc, out, err = discover("--cis-key", cis, "--bootstrap-sm-keys", sm, "--jobs", "1")
    S.eq("v1 only: exit 0", rc, 0)
    made = created(fake, n0)
    S.check("v1 only: bindings made through serviceManagementBinding",
            len(made) == 4 and all(r["path"].endswith("/serviceManagementBinding") for r in made),
            [r["path"] for r in made])
    rc, out, err = run(["plan", "--sm-key", os.path.join(sm, "t0001-sm.json"), "--timeout", "60"], env=ENV)
    S.eq("v1 only: the made key works (plan on it)", rc, 0)
    fake.cis_knobs(sm_bindings="none")
    rc, out, err = discover("--cis-key", cis, "--bootstrap-sm-keys", fresh("sm-none"))
    S.eq("neither API: exit 4 (a manual step)", rc, 4)
    S.check("neither API: says to make the key by hand", "by hand" in out + err, (out + err)[-400:])
    fake.cis_knobs(sm_bindings="v1+v2")


def test_bad_input(fake):
    rc, out, err = discover("--cis-key", fake.cis_local_key_path)
    S.check("a local-plan key as --cis-key: exit 2 naming the plan", rc == 2 and "central-plan" in err, err)
    rc, out, err = discover("--cis-key", fake.cis_key_path, "--inventory", os.path.join(TMP, "x.txt"))
    S.check("--inventory with another extension: exit 2", rc == 2 and ".json or .csv" in err, err)
    rc, out, err = discover("--cis-key", fake.cis_key_path, "--bootstrap-sm-keys", os.path.join(TMP, "nope"))
    S.check("--bootstrap-sm-keys of a missing directory: exit 2", rc == 2 and "does not exist" in err, err)
    n = len(fake.requests())
    rc, out, err = discover("--cis-key", fake.sm_key_path)
    S.check("an SM key as --cis-key: exit 2, no request", rc == 2 and len(fake.requests()) == n, err)


def test_json(fake, cis):
    rc, out, err = discover("--cis-key", cis, "--json")
    doc = json.loads(out) if rc == 0 else {}
    S.check("--json: the tenants with evidence and what is missing",
            len(doc.get("tenants", [])) == 4 and all(t["evidence"] and t["missing"] for t in doc["tenants"])
            and doc["possible"][0]["display_name"] == "Cloud ALM Playground", out[:300])
    by = {t["name"]: t for t in doc.get("tenants", [])}
    S.eq("decided by entitlement, entitlement, name (no entitlement before 2023-06-12), entitlement",
         [by[n]["decided_by"] for n in sorted(by)], ["entitlement", "entitlement", "name", "entitlement"])
    S.eq("regions of the tree", [by[n]["region"] for n in sorted(by)], ["eu10", "us10", "jp10", "eu20"])
    S.eq("directories of the tree", [by[n]["directory"] for n in sorted(by)],
         ["", "Cloud ALM", "Customers/ACME", ""])


def main():
    with FakeBTP(tenants=4, presets=PRESETS3, cis_rate_limit="2/1") as fake:
        cis = fake.cis_key_path
        test_table(fake, cis)
        test_json(fake, cis)
        test_bad_input(fake)
        test_bootstrap_and_fleet(fake, cis)
        test_v1_and_none(fake, cis)
    shutil.rmtree(TMP, ignore_errors=True)
    S.done()


if __name__ == "__main__":
    main()
