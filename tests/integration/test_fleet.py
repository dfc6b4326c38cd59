#!/usr/bin/env python3
"""calmbind fleet against several fake BTPs at once: a mixed inventory (the three
provisioning-date paths, a refused key, an unreachable host, a manual step, a
deadline) with each tenant's outcome checked, JSON and CSV, bad inventories
refused before any request, shards, reruns, progress output."""
import csv
import json
import os
import time
import pty
import select
import shutil
import socket
import stat
import subprocess
import tempfile

from itest import CALMBIND, Suite, run   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("fleet")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
TMP = tempfile.mkdtemp(prefix="fleet-")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def fresh_dir(name):
    d = os.path.join(TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def fleet(inventory, *args, timeout=180):
    rep = os.path.join(TMP, "report-%d.json" % len(os.listdir(TMP)))
    rc, out, err = run(["fleet", inventory, "--report", rep, "--timeout", "120"] + list(args),
                       env=ENV, timeout=timeout)
    doc = json.load(open(rep)) if os.path.exists(rep) else None
    return rc, out, err, doc


def by_name(doc):
    return {t["name"]: t for t in (doc or {}).get("tenants", [])}


def total_requests(fakes):
    return sum(len(f.requests()) for f in fakes)


def settled_requests(fakes):
    """The request count once the fake's log has caught up: it writes an entry after the
    answer, so the last requests of a run that just ended can land a moment later (seen
    under ASan on a loaded machine)."""
    n, deadline = total_requests(fakes), time.time() + 5
    while time.time() < deadline:
        time.sleep(0.3)
        m = total_requests(fakes)
        if m == n:
            return n
        n = m
    return n


def total_mutations(fakes):
    return sum(len(f.mutations()) for f in fakes)


# one multi-tenant fake: five subaccounts behind one port, each with its own keys and XSUAA host
PRESETS = ["after-2023-10-16", "mid-2023", "before-2023-06-12", "before-2023-06-12", "after-2023-10-16"]
with FakeBTP(tenants=5, presets=PRESETS) as fake:
    fa, fm, fb, fx, fs = fake.tenants
    fakes = [fake]
    keys = fresh_dir("keys")
    refused = fa.sm_key()
    refused["clientsecret"] = refused["clientsecret"] + "-wrong"
    write_json(os.path.join(keys, "refused.json"), refused)
    away = fa.sm_key()
    port = closed_port()
    away["url"] = "http://gone.authentication.localhost:%d" % port
    away["sm_url"] = "http://service-manager.localhost:%d" % port
    write_json(os.path.join(keys, "away.json"), away)
    # the slow tenant: every Service Manager read of its fake takes 8 s; its own timeout is 4 s
    fake.fault(method="GET", path=r"^/v1/service_", action="delay", delay_ms=8000, count=1000, tenant=fs.name)

    tenants = [
        {"name": "slow", "sm_key": fs.sm_key_path, "timeout": 4},
        {"name": "after", "sm_key": fa.sm_key_path},
        {"name": "mid", "sm_key": fm.sm_key_path, "provisioned": "2023-08-01"},
        {"name": "before", "sm_key": fb.sm_key_path, "cis_key": fb.cis_key_path, "subaccount": fb.subaccount},
        {"name": "manual", "sm_key": fx.sm_key_path},
        {"name": "refused", "sm_key": "keys/refused.json"},
        {"name": "unreachable", "sm_key": "keys/away.json"},
    ]
    inv = write_json(os.path.join(TMP, "fleet.json"), {"defaults": {"scenario": "deployment"}, "tenants": tenants})
    out_dir = fresh_dir("out")
    secrets = fake.issued_secrets() + [refused["clientsecret"]]

    rc, out, err, doc = fleet(inv, "--out-dir", out_dir, "--jobs", "3")
    t = by_name(doc)
    S.eq("mixed inventory: exit 1 (some tenants failed)", rc, 1)
    want = {"after": 0, "mid": 0, "before": 0, "manual": 4, "refused": 3, "unreachable": 1, "slow": 5}
    S.eq("each tenant's exit is what get would exit", {n: t[n]["exit"] for n in t}, want)
    S.eq("... with the path each took", {n: t[n].get("path") for n in ("after", "mid", "before")},
         {"after": "after-2023-10-16", "mid": "mid-2023", "before": "before-2023-06-12"})
    S.check("the report names each failure", "credentials" in t["refused"]["error"].lower()
            and "entitled" in t["manual"]["error"] and t["unreachable"]["error"]
            and "deadline" in t["slow"]["error"], {n: t[n].get("error") for n in t})
    S.eq("the report's summary", doc["summary"]["ok"], 3)
    manual = t["manual"]["error"].splitlines()
    rows = out.splitlines()
    at = [i for i, l in enumerate(rows) if l.startswith("manual ")]
    S.check("the manual step keeps its lines in the report and the table (not joined with '; ')",
            len(manual) > 1 and at and all(rows[at[0] + i].strip() == manual[i].strip() for i in range(1, len(manual)))
            and ".; " not in out, (manual, rows[at[0]:at[0] + len(manual)] if at else out))
    S.check("the before tenant's actions show the entitlement, instance and binding it created",
            [a["action"] for a in t["before"]["actions"]].count("create") >= 2, t["before"]["actions"])
    files = sorted(os.listdir(out_dir))
    S.eq("a key file for each tenant that succeeded, none for the others", files,
         ["after.json", "before.json", "mid.json"])
    modes = {f: stat.S_IMODE(os.stat(os.path.join(out_dir, f)).st_mode) for f in files}
    S.eq("... each mode 0600", set(modes.values()), {0o600})
    vr = {f: run(["verify", os.path.join(out_dir, f)], env=ENV)[0] for f in files}
    S.eq("... and each key works for Deployment", vr, {f: 0 for f in files})
    for name in want:
        S.check("summary table row for " + name, any(line.split()[:2] == [name, str(want[name])]
                                                     for line in out.splitlines()), out)
    text = out + err + json.dumps(doc)
    S.check("no secret in output, log or report", not any(s and s in text for s in secrets),
            [s[:4] for s in secrets if s and s in text])
    S.check("plain lines when stderr is not a terminal", "fleet: [7/7]" in err and "\r" not in err, err[-400:])
    done = [l.split("] ")[1].split(":")[0] for l in err.splitlines() if l.startswith("fleet: [")]
    S.check("the slow tenant (first, holding one of 3 slots) does not hold up the others",
            len(done) == 7 and done[-1] == "slow", done)

    # rerun: converges, no mutating request anywhere
    settled_requests(fakes)
    n = total_mutations(fakes)
    before_keys = {f: open(os.path.join(out_dir, f)).read() for f in files}
    rc2, out2, err2, doc2 = fleet(inv, "--out-dir", out_dir)
    S.eq("rerun: the same outcomes", {k: v["exit"] for k, v in by_name(doc2).items()}, want)
    S.eq("rerun: no mutating request", total_mutations(fakes), n)
    S.eq("rerun: the same keys", {f: open(os.path.join(out_dir, f)).read() for f in files}, before_keys)
    S.check("rerun: nothing created or updated", all(a["action"] == "adopt" for x in doc2["tenants"]
                                                     for a in x["actions"]), doc2["tenants"])

    # one tenant at a time gives the same outcomes: failures do not change the others
    rc3, _, _, doc3 = fleet(inv, "--out-dir", fresh_dir("out1"), "--jobs", "1")
    S.eq("--jobs 1: the same outcomes", {k: v["exit"] for k, v in by_name(doc3).items()}, want)

    # CSV with relative paths, run from another directory
    cdir = fresh_dir("csv")
    shutil.copy(fa.sm_key_path, os.path.join(cdir, "a-sm.json"))
    shutil.copy(fm.sm_key_path, os.path.join(cdir, "m-sm.json"))
    shutil.copy(os.path.join(keys, "refused.json"), os.path.join(cdir, "refused.json"))
    with open(os.path.join(cdir, "tenants.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "sm_key", "provisioned", "scenario"])
        w.writerow(["csv-after", "a-sm.json", "", ""])
        w.writerow(["csv-mid", "m-sm.json", "2023-08-01", "deployment"])
        w.writerow(["csv-refused", "refused.json", "", "monitoring"])
    cout = fresh_dir("csv-out")
    rep = os.path.join(TMP, "csv-report.json")
    rc, out, err = run(["fleet", "csv/tenants.csv", "--out-dir", "csv-out", "--report", rep], env=ENV, cwd=TMP)
    t = by_name(json.load(open(rep))) if os.path.exists(rep) else {}
    S.eq("CSV inventory, paths relative to it: outcomes",
         {k: v["exit"] for k, v in t.items()}, {"csv-after": 0, "csv-mid": 0, "csv-refused": 3})
    S.eq("... key files", sorted(os.listdir(cout)), ["csv-after.json", "csv-mid.json"])

    # --command verify over the keys just written; a monitoring-only key fails for Deployment
    mon = os.path.join(TMP, "mon.json")
    rc, _, err = run(["get", "--sm-key", fm.sm_key_path, "--scenario", "monitoring", "--out", mon], env=ENV)
    vinv = write_json(os.path.join(TMP, "verify.json"), {"tenants": [
        {"name": "after"}, {"name": "mid"}, {"name": "monitoring-only", "key": mon}]})
    settled_requests(fakes)
    n = total_mutations(fakes)
    rc, out, err, doc = fleet(vinv, "--command", "verify", "--out-dir", out_dir)
    S.eq("--command verify: each tenant's verify exit",
         {k: v["exit"] for k, v in by_name(doc).items()}, {"after": 0, "mid": 0, "monitoring-only": 6})
    S.check("... and it changes nothing", rc == 1 and total_mutations(fakes) == n, (rc, err[-300:]))

    # bad inventories: exit 2 before any request. The slow tenant's reads from the runs
    # above are still sleeping in the fake (8 s, longer than its 4 s deadline) and are
    # logged when they wake: stop delaying, and let them finish before counting.
    fake.clear_faults()
    time.sleep(8.5)
    def bad(what, content, ext="json", args=(), expect=None):
        p = os.path.join(TMP, "bad." + ext)
        with open(p, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        n = settled_requests(fakes)
        rc, out, err = run(["fleet", p, "--out-dir", fresh_dir("bad-out")] + list(args), env=ENV)
        S.check("bad inventory (%s): exit 2, one line naming it, no request" % what,
                rc == 2 and total_requests(fakes) == n and (expect is None or expect in err)
                and len(err.strip().splitlines()) == 1 and not os.listdir(os.path.join(TMP, "bad-out")),
                (rc, err[-300:], total_requests(fakes) - n))

    good = {"name": "ok", "sm_key": fa.sm_key_path}
    bad("duplicate name", {"tenants": [good, dict(good)]}, expect="used twice")
    bad("unknown field", {"tenants": [good, {"name": "y", "sm_key": fa.sm_key_path, "sm-key": "z"}]},
        expect="unknown field 'sm-key'")
    bad("unknown field in defaults", {"defaults": {"colour": "red"}, "tenants": [good]}, expect="colour")
    bad("no name", {"tenants": [good, {"sm_key": fa.sm_key_path}]}, expect="no name")
    bad("name with a slash", {"tenants": [{"name": "../x", "sm_key": fa.sm_key_path}]}, expect="name")
    bad("not JSON", "{\"tenants\": [", expect="inventory")
    bad("no tenants", {"tenants": []}, expect="no tenants")
    bad("CSV: unknown column", "name,sm_key,colour\nok,%s,red\n" % fa.sm_key_path, "csv", expect="colour")
    bad("CSV: misspelt column", "name,sm_kye\nok,%s\n" % fa.sm_key_path, "csv",
        expect="unknown field 'sm_kye' (did you mean sm_key?)")
    bad("two tenants, one key file", {"tenants": [good, dict(good, name="o2", out=os.path.join(TMP, "bad-out",
        "ok.json"))]}, expect="is also tenant 'ok''s")
    bad("CSV: short row", "name,sm_key\nok,%s\nx\n" % fa.sm_key_path, "csv", expect="line 3")
    bad("CSV: open quote", "name,sm_key\n\"ok,%s\n" % fa.sm_key_path, "csv", expect="not closed")
    bad("CSV: duplicate name", "name,sm_key\nok,%s\nok,%s\n" % (fa.sm_key_path, fa.sm_key_path), "csv",
        expect="used twice")
    bad("--shard 3/2", {"tenants": [good]}, args=("--shard", "3/2"), expect="--shard")

    # a tenant's own bad value or key file is its own row (exit 2, the field named); the others run
    p = write_json(os.path.join(TMP, "own.json"), {"tenants": [good, dict(good, name="odd", scenario="both"),
                                                               dict(good, name="cis", sm_key=fb.cis_key_path)]})
    rc, out, err, doc = fleet(p, "--out-dir", fresh_dir("own"))
    t = by_name(doc)
    S.check("a tenant's bad value or wrong key: its own row (exit 2, field named), the others run",
            rc == 1 and t["ok"]["exit"] == 0 and t["odd"]["exit"] == 2 and "scenario must be one of" in t["odd"]["error"]
            and t["cis"]["exit"] == 2 and "sm_key " + fb.cis_key_path in t["cis"]["error"], (rc, doc and doc["tenants"]))

    # messages name the value as the user wrote it: the tenant's field, the field of the
    # inventory's defaults, or fleet's own option (not a field name made from an option)
    def said(what, inv_doc, args, want, unwanted):
        p = write_json(os.path.join(TMP, "said.json"), inv_doc)
        rc, out, err, doc = fleet(p, *args)
        text = err + out + json.dumps(doc or {})
        S.check("message names %s" % what, want in text and not any(u in text for u in unwanted),
                (rc, text[-600:]))
    said("the tenant's field", {"tenants": [dict(good, provisioned="2023-13-01")]},
         ["--out-dir", fresh_dir("said")], "provisioned 2023-13-01 is not a calendar date", ["--provisioned"])
    said("the defaults' field", {"defaults": {"provisioned": "2023-13-01"}, "tenants": [good]},
         ["--out-dir", fresh_dir("said")], "provisioned (inventory defaults) 2023-13-01", ["--provisioned"])
    said("fleet's option", {"tenants": [good]}, ["--out-dir", fresh_dir("said"), "--provisioned", "2023-13-01"],
         "--provisioned 2023-13-01 is not a calendar date", ["): provisioned"])
    said("fleet's --x509-validity", {"tenants": [good]}, ["--out-dir", fresh_dir("said"), "--credential-type",
         "x509", "--x509-validity", "5w"], "--x509-validity must be", ["x509_validity"])
    said("the out field and fleet's --out-dir", {"tenants": [good]}, [],
         "no out field and no --out-dir DIR option", ["out_dir"])
    said("the key field of --command verify", {"tenants": [{"name": "v", "key": "nope.json"}]},
         ["--command", "verify"], "key: key file", ["out_dir"])

    # shards: disjoint, together exactly the inventory
    many = [{"name": "t%02d" % i, "sm_key": fa.sm_key_path} for i in range(24)]
    sinv = write_json(os.path.join(TMP, "shards.json"), {"tenants": many})
    seen = []
    ok = True
    for k in (1, 2, 3):
        rc, out, err, doc = fleet(sinv, "--out-dir", fresh_dir("shard%d" % k), "--shard", "%d/3" % k)
        names = [x["name"] for x in doc["tenants"]] if doc else []
        ok = ok and rc == 0 and names == sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(TMP, "shard%d" % k)))
        seen.append(names)
    flat = [n for s in seen for n in s]
    S.check("shards 1/3, 2/3, 3/3: disjoint and together the inventory exactly once",
            ok and sorted(flat) == sorted(t["name"] for t in many) and len(flat) == len(set(flat))
            and all(seen), [len(s) for s in seen])
    # the same shard of a reordered, grown inventory keeps its tenants
    grown = list(reversed(many)) + [{"name": "new-one", "sm_key": fa.sm_key_path}]
    ginv = write_json(os.path.join(TMP, "grown.json"), {"tenants": grown})
    rc, out, err, doc = fleet(ginv, "--out-dir", fresh_dir("grown"), "--shard", "2/3")
    again = set(x["name"] for x in doc["tenants"]) - {"new-one"}
    S.eq("a tenant's shard depends on its name only", again, set(seen[1]))

    # a terminal: one progress line rewritten in place (done/failed/running)
    master, slave = pty.openpty()
    small = write_json(os.path.join(TMP, "small.json"), {"tenants": tenants[1:2] + tenants[5:6]})
    p = subprocess.Popen([CALMBIND, "fleet", small, "--out-dir", fresh_dir("tty")], stdout=subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL, env=dict(os.environ, **ENV), cwd=TMP)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    tty_out = p.stdout.read().decode()
    p.wait(60)
    os.close(master)
    screen = b"".join(chunks).decode(errors="replace")
    S.check("on a terminal: a progress line with done, failed and running",
            "\r" in screen and "done" in screen and "failed" in screen and "running" in screen
            and "refused" in screen, screen[-400:])
    S.check("... and the summary table on stdout", "TENANT" in tty_out and "after" in tty_out, tty_out)

# every line a tenant's run prints names the tenant: two tenants warn at once (an explicit
# --provisioned the key contradicts), one of them also retries a 503; with -v each debug
# line of a tenant's requests (its sub-flows' too) carries its name, fleet's own lines none
with FakeBTP(tenants=3, presets=["after-2023-10-16", "after-2023-10-16", "mid-2023"]) as fake:
    f1, f2, f3 = fake.tenants
    inv = write_json(os.path.join(TMP, "labels.json"), {"tenants": [
        {"name": "warn-1", "sm_key": f1.sm_key_path, "provisioned": "2023-08-01"},
        {"name": "warn-2", "sm_key": f2.sm_key_path, "provisioned": "2023-08-01"},
        {"name": "quiet", "sm_key": f3.sm_key_path}]})
    names = {f1.name: "warn-1", f2.name: "warn-2", f3.name: "quiet"}
    for args in ([], ["-v"]):
        fake.fault(method="GET", path=r"^/v1/service_instances", action="status", status=503, count=1,
                   tenant=f2.name)
        rc, out, err, doc = fleet(inv, "--out-dir", fresh_dir("labels"), "--jobs", "3", *args)
        lines = err.splitlines()
        what = "fleet %s: " % " ".join(["get"] + args)
        contra = {l.split("]")[0][1:] for l in lines if "warning: --provisioned 2023-08-01 says" in l}
        S.check(what + "exit 0, each contradiction warning names its tenant",
                rc == 0 and contra == {"warn-1", "warn-2"}
                and sum("--provisioned 2023-08-01 says" in l for l in lines) == 2, err[-1500:])
        unnamed = [l for l in lines if not l.startswith("fleet: [")
                   and not any(l.startswith("[%s] " % n) for n in names.values())]
        S.check(what + "every other line starts with a tenant's name", unnamed == [], unnamed[:5])
    wrong = [l for l in lines for f, n in names.items()
             if ("/t/%s/" % f in l or "%s.authentication" % f in l) and not l.startswith("[%s] " % n)]
    S.check("fleet -v: each request line carries the name of the tenant it belongs to",
            wrong == [] and sum("/t/" in l for l in lines) > 10, wrong[:5])
    S.check("... the retry of warn-2's 503 is warn-2's line",
            any(l.startswith("[warn-2] ") and "503; retrying" in l for l in lines)
            and not any("503; retrying" in l and not l.startswith("[warn-2] ") for l in lines), err[-1500:])
    S.check("... no secret in the labelled lines", not any(x and x in err for x in fake.issued_secrets()))


# --jobs above 64: as many transfers in flight as tenants (fleet raises task.limit to --jobs);
# under the default limit of 64 the 65th tenant's first request waited for a free slot
with FakeBTP(tenants=80, latency_ms=1500) as crowd:
    inv80 = write_json(os.path.join(TMP, "fleet80.json"),
                       {"tenants": [{"name": t.name, "sm_key": t.sm_key_path} for t in crowd.tenants]})
    rc, out, err, doc = fleet(inv80, "--out-dir", fresh_dir("out80"), "--jobs", "80", "-q")
    S.eq("80 tenants at --jobs 80: all done", (rc, len([t for t in by_name(doc).values() if t["exit"] == 0])),
         (0, 80))
    most = crowd.stats()["max_in_flight"]
    # a tenant reads four lists at once, so the limit is 4 x --jobs (320); a few more at the
    # fake: a handler still finishing an answer while the next request of that tenant arrives
    S.check("... with more than --jobs requests at the fake at once, 4 x --jobs at most", 96 < most <= 336,
            "most in flight: %d" % most)


# whole-fleet accounting: 30 tenants, of which 5 have broken key files, 3 are refused and 2
# hang past --tenant-timeout: every tenant has its row in the table and the report, the
# others run; --out-dir is created (0700, parents too)
with FakeBTP(tenants=22, presets=["after-2023-10-16", "mid-2023"]) as fake:
    kdir = fresh_dir("acct-keys")
    rows = [{"name": "ok-%02d" % i, "sm_key": t.sm_key_path} for i, t in enumerate(fake.tenants[:20])]
    for i, t in enumerate(fake.tenants[20:]):
        fake.fault(method="GET", path=r"^/v1/service_", action="delay", delay_ms=15000, count=-1, tenant=t.name)
        rows.append({"name": "hang-%d" % i, "sm_key": t.sm_key_path})
    for i in range(3):
        k = fake.tenants[i].sm_key()
        k["clientsecret"] += "-wrong"
        rows.append({"name": "refused-%d" % i, "sm_key": write_json(os.path.join(kdir, "refused-%d.json" % i), k)})
    os.makedirs(os.path.join(kdir, "a-directory.json"))
    with open(os.path.join(kdir, "truncated.json"), "w") as f:
        f.write(json.dumps(fake.tenants[0].sm_key())[:40])
    with open(os.path.join(kdir, "empty.json"), "w") as f:
        pass
    broken = {"missing": os.path.join(kdir, "missing.json"), "unreadable": os.path.join(kdir, "a-directory.json"),
              "truncated": os.path.join(kdir, "truncated.json"), "empty": os.path.join(kdir, "empty.json"),
              "cis-as-sm": fake.tenants[0].cis_key_path}
    rows += [{"name": "broken-" + n, "sm_key": p} for n, p in broken.items()]
    rows = rows[::3] + rows[1::3] + rows[2::3]     # broken, refused and hanging ones among the others
    inv = os.path.join(TMP, "acct.csv")
    with open(inv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "sm_key"])
        for r in rows:
            w.writerow([r["name"], r["sm_key"]])
    out_dir = os.path.join(TMP, "acct-new", "out", "keys")
    shutil.rmtree(os.path.join(TMP, "acct-new"), ignore_errors=True)
    t0 = time.time()
    rc, out, err, doc = fleet(inv, "--out-dir", out_dir, "--jobs", "8", "--tenant-timeout", "3")
    secs = time.time() - t0
    want = {r["name"]: 0 for r in rows if r["name"].startswith("ok-")}
    want.update({"hang-0": 5, "hang-1": 5, "refused-0": 3, "refused-1": 3, "refused-2": 3})
    want.update({"broken-" + n: 2 for n in broken})
    t = by_name(doc)
    S.eq("30 tenants, 5 broken key files, 3 refused, 2 hanging: every tenant's exit in the report",
         {n: x["exit"] for n, x in t.items()}, want)
    table = {l.split()[0]: l.split()[1] for l in out.splitlines()[1:-1] if l and not l.startswith(" ")}
    S.eq("... and a row for each in the table", table, {n: str(e) for n, e in want.items()})
    S.check("... the summary counts all 30", rc == 1 and out.splitlines()[-1] ==
            "fleet get: 30 tenants, 20 ok, 10 failed (5 input, 3 auth, 2 deadline)"
            and doc["summary"]["tenants"] == 30 and doc["summary"]["by_exit"] == {"0": 20, "2": 5, "3": 3, "5": 2},
            (rc, out.splitlines()[-1:], doc and doc["summary"]))
    bad_rows = {n: t.get("broken-" + n, {}).get("error", "") for n in broken}
    S.check("... each broken key's row names the field and the file",
            all("sm_key" in e and broken[n] in e for n, e in bad_rows.items()), bad_rows)
    S.check("... the hanging tenants stop at their timeout, the run does not wait for them",
            all("timeout: 3 s" in t["hang-%d" % i]["error"] for i in (0, 1)) and secs < 14, (secs, t.get("hang-0")))
    S.eq("... a key file for each tenant that succeeded", sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else [],
         sorted(n + ".json" for n in want if want[n] == 0))
    modes = [stat.S_IMODE(os.stat(p).st_mode) for p in (out_dir, os.path.dirname(out_dir),
                                                         os.path.dirname(os.path.dirname(out_dir)))]
    S.eq("... --out-dir was created, parents too, each 0700", modes, [0o700] * 3)
    S.check("... no secret in the output or report", not any(s and s in out + err + json.dumps(doc)
                                                            for s in fake.issued_secrets()))

    # --command verify after that run: the 10 tenants without a key file get their rows, the 20 verify
    rc, out, err, doc = fleet(inv, "--command", "verify", "--out-dir", out_dir)
    t = by_name(doc)
    S.check("fleet --command verify with 10 key files missing: 20 verified, 10 rows naming the missing file",
            rc == 1 and sum(x["exit"] == 0 for x in t.values()) == 20 and len(t) == 30
            and all(x["exit"] == 2 and "--out-dir: key file %s/%s.json does not exist" % (out_dir, n) in x["error"]
                    for n, x in t.items() if want[n] != 0), (rc, {n: x.get("error") for n, x in t.items()
                                                                  if x["exit"] != 0}))

    # --only: just those tenants; a name not in the inventory is exit 2 with a "did you mean"
    n = settled_requests([fake])
    rc, out, err, doc = fleet(inv, "--out-dir", out_dir, "--only", "ok-03,refused-1")
    S.check("--only ok-03,refused-1: those two tenants run", rc == 1 and
            {k: v["exit"] for k, v in by_name(doc).items()} == {"ok-03": 0, "refused-1": 3}, (rc, err[-300:]))
    n = settled_requests([fake])
    rc, out, err = run(["fleet", inv, "--out-dir", out_dir, "--only", "ok-03,okk-03"], env=ENV)
    S.check("--only with a name not in the inventory: exit 2 before any request, did you mean",
            rc == 2 and "--only: no tenant 'okk-03'" in err and "did you mean ok-03?" in err
            and total_requests([fake]) == n, (rc, err))
    # --cis-key2 is a default of every tenant, judged as theirs
    rc, out, err, doc = fleet(inv, "--out-dir", out_dir, "--only", "ok-04", "--cis-key2", fake.tenants[4].sm_key_path)
    S.check("--cis-key2 reaches every tenant (a Service Manager key there is refused, named as the option)",
            rc == 1 and "--cis-key2 " in by_name(doc).get("ok-04", {}).get("error", ""), (rc, doc and doc["tenants"]))

# fleet --command plan: each tenant's plan with --detailed-exitcode semantics per tenant, a
# summary of how many would change, no mutating request
with FakeBTP(tenants=3, presets=["after-2023-10-16", "mid-2023", "before-2023-06-12"]) as fake:
    fa, fm, fb = fake.tenants
    rc, _, err = run(["get", "--sm-key", fa.sm_key_path, "--out", os.path.join(TMP, "plan-a.json")], env=ENV)
    inv = write_json(os.path.join(TMP, "plan.json"), {"tenants": [
        {"name": "done", "sm_key": fa.sm_key_path}, {"name": "todo", "sm_key": fm.sm_key_path},
        {"name": "manual", "sm_key": fb.sm_key_path}]})
    alone = {}
    for name, t in (("done", fa), ("todo", fm), ("manual", fb)):
        alone[name] = run(["plan", "--sm-key", t.sm_key_path, "--detailed-exitcode"], env=ENV)
    n = len(fake.mutations())
    rc, out, err, doc = fleet(inv, "--command", "plan", "--detailed-exitcode")
    t = by_name(doc)
    S.eq("fleet --command plan --detailed-exitcode: each tenant exits what its own plan exits",
         {k: v["exit"] for k, v in t.items()}, {k: v[0] for k, v in alone.items()})
    S.check("... 7 for the one that would change, 0 for the converged one", alone["todo"][0] == 7
            and alone["done"][0] == 0 and alone["manual"][0] == 4, {k: v[0] for k, v in alone.items()})
    S.check("... each tenant's plan on stdout, as plan prints it", all(("== tenant " + k) in out
            and alone[k][1].strip().splitlines()[0] in out for k in alone), out[:1500])
    S.check("... a summary of how many would change", "fleet plan: 3 tenants, 1 would change, 1 unchanged, 1 failed"
            in out and doc["summary"]["changes"] == 1 and t["todo"]["changes"] is True, out.splitlines()[-1:])
    S.check("... no mutating request", len(fake.mutations()) == n)
    S.eq("... fleet exits 1 when a tenant failed", rc, 1)
    rc, out, err, doc = fleet(inv, "--command", "plan", "--detailed-exitcode", "--only", "done,todo")
    S.eq("... and 7 when none failed and one would change", rc, 7)
    rc, out, err, doc = fleet(inv, "--command", "plan", "--only", "done,todo")
    S.check("... without --detailed-exitcode: 0, the change still counted", rc == 0 and
            by_name(doc)["todo"]["exit"] == 0 and "1 would change" in out, (rc, out[-300:]))

S.done()
