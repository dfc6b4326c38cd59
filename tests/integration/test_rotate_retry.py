#!/usr/bin/env python3
"""rotate that is safe to retry (issue 18, point 5), against the fake BTP:
--if-older-than makes a rerun within the window create nothing (the newest key is
verified and delivered instead), --dry-run lists what would be created and deleted and
sends no changing request, --delete-old deletes nothing without --yes where there is no
terminal, asks y/N at a terminal (run under a pseudo terminal, answered n and y), and
fleet --command rotate passes --if-older-than, --yes and --dry-run to every tenant."""
import json
import os
import tempfile
import time

from itest import Suite, run, run_answering   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("rotate_retry")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
TMP = tempfile.mkdtemp(prefix="rotate-retry-")
CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def rotate(fake, out, *args, **kw):
    a = ["rotate", "--sm-key", fake.sm_key_path, "--timeout", "60"]
    if out:
        a += ["--out", out]
    return run(a + list(args), env=ENV, **kw)


def bindings(fake, tenant=None):
    return {b["name"]: b for b in fake.state(tenant=tenant)["bindings"]}


def changing(reqs):
    """The requests that could change something: every non-GET but the token grants."""
    return [(r["method"], r["path"]) for r in reqs
            if r["method"] in CHANGING and not r["path"].endswith("/oauth/token")]


def secret(path):
    return json.load(open(path))["uaa"]["clientsecret"]


def lines_with(text, word):
    return [l for l in text.splitlines() if word in l]


with FakeBTP(preset="mid-2023") as fake:
    k0 = os.path.join(TMP, "k0.json")
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--out", k0], env=ENV)
    S.eq("setup: get makes the Deployment instance and calmbind's key", rc, 0)
    k1 = os.path.join(TMP, "k1.json")
    rc, _, err = rotate(fake, k1)
    S.eq("setup: a first rotate makes a new key", rc, 0)
    b1 = bindings(fake)

    # --- a second rotate within the window creates nothing ------------------------
    n = len(fake.requests())
    k2 = os.path.join(TMP, "k2.json")
    rc, _, err = rotate(fake, k2, "--if-older-than", "1h")
    reqs = fake.requests()[n:]
    S.check("--if-older-than 1h right after a rotation: exit 0, no binding created, nothing changed",
            rc == 0 and bindings(fake).keys() == b1.keys() and changing(reqs) == [], (rc, changing(reqs), err[-400:]))
    S.check("... the newest key is delivered as rotate delivers one: written (0600), the same key as before",
            os.path.exists(k2) and (os.stat(k2).st_mode & 0o777) == 0o600 and secret(k2) == secret(k1), err[-300:])
    S.check("... verified live first (a token from the key itself)",
            any(r["path"].endswith("/oauth/token") and "calm-demo" in r.get("host", "") for r in reqs)
            and "verified: the key of binding" in err, err[-400:])
    one = lines_with(err, "nothing was rotated")
    S.check("... one line: the key is N old, younger than 1h, so nothing was rotated",
            len(one) == 1 and " old, younger than 1h, so nothing was rotated" in one[0]
            and "calm-api-deployment-key-" in one[0], err[-400:])
    rep = os.path.join(TMP, "skip-report.json")
    rc, so, err = rotate(fake, None, "--if-older-than", "7d", "--report", rep)
    S.check("... without --out the key goes to standard output, as today",
            rc == 0 and json.loads(so)["uaa"]["clientsecret"] == secret(k1), (rc, err[-300:]))
    doc = json.load(open(rep)) if os.path.exists(rep) else {}
    S.check("... the report says nothing was rotated and why",
            (doc.get("rotation") or {}).get("rotate") is False and "younger than 7d" in doc["rotation"].get("why", "")
            and doc.get("actions") == [], (doc.get("rotation"), doc.get("actions")))

    time.sleep(2.2)
    k3 = os.path.join(TMP, "k3.json")
    rc, _, err = rotate(fake, k3, "--if-older-than", "2")
    new = set(bindings(fake)) - set(b1)
    S.check("--if-older-than 2 (seconds) once the key is older: a new key is made",
            rc == 0 and len(new) == 1 and secret(k3) != secret(k1), (rc, new, err[-400:]))
    S.check("... and the run says why", "older than 2s" in err, err[-400:])
    rc, _, err = rotate(fake, k3, "--if-older-than", "soon")
    S.check("a bad duration: exit 2 naming the option and the grammar", rc == 2 and "--if-older-than" in err
            and "7d" in err, err)

    # --- --dry-run ----------------------------------------------------------------------
    b2 = bindings(fake)
    n = len(fake.requests())
    kd = os.path.join(TMP, "dry.json")
    rc, so, err = rotate(fake, kd, "--dry-run", "--delete-old")
    reqs = fake.requests()[n:]
    S.check("--dry-run --delete-old: exit 0, no POST/PUT/PATCH/DELETE in the fake's log (token grants aside)",
            rc == 0 and changing(reqs) == [] and len(reqs) > 0, (rc, changing(reqs), err[-300:]))
    S.check("... no binding made or deleted, no key file written",
            bindings(fake).keys() == b2.keys() and not os.path.exists(kd))
    olds = sorted(n for n, b in b2.items() if (b.get("labels") or {}).get("created_by") == ["calmbind"])
    S.check("... lists the binding it would create and every calmbind key it would delete",
            "would create: binding 'calm-api-deployment-key-<UTC time>' on instance 'calm-api-deployment'" in so
            and all(any(l.startswith("would delete: '%s'" % o) for l in so.splitlines()) for o in olds)
            and lines_with(so, "would keep: 'calm-api-key-auto'"), (olds, so))
    rc, so, _ = rotate(fake, kd, "--dry-run")
    S.check("--dry-run without --delete-old: the old keys would be kept for now",
            rc == 0 and len(lines_with(so, "would keep for now: ")) == len(olds)
            and not [l for l in so.splitlines() if l.startswith("would delete:")], so)
    rc, _, _ = rotate(fake, kd, "--dry-run", "--detailed-exitcode")
    S.eq("--dry-run --detailed-exitcode: exit 7 when it would create a key (plan's 'changes pending')", rc, 7)
    rc, so, _ = rotate(fake, kd, "--dry-run", "--detailed-exitcode", "--if-older-than", "1h")
    S.check("... exit 0 when within the window nothing would change",
            rc == 0 and "would create nothing: key '" in so and "younger than 1h" in so, (rc, so))
    rc, so, _ = rotate(fake, kd, "--dry-run", "--detailed-exitcode", "--if-older-than", "1h", "--delete-old")
    S.eq("... exit 7 within the window with --delete-old and older keys to delete", rc, 7)
    S.eq("... still nothing changed by any dry run", changing(fake.requests()[n:]), [])
    rc, _, err = rotate(fake, kd, "--detailed-exitcode")
    S.check("--detailed-exitcode without --dry-run: exit 2, one line", rc == 2 and "--dry-run" in err
            and len(err.strip().splitlines()) == 1, (rc, err))

    # --- --delete-old with nobody to ask ---------------------------------------------
    b3 = bindings(fake)
    n = len(fake.requests())
    k4 = os.path.join(TMP, "k4.json")
    rc, _, err = rotate(fake, k4, "--delete-old", "--if-older-than", "1h", new_session=True)
    S.check("--delete-old without --yes and without a terminal: exit 0, nothing deleted",
            rc == 0 and bindings(fake).keys() == b3.keys() and changing(fake.requests()[n:]) == [],
            (rc, changing(fake.requests()[n:]), err[-400:]))
    why = lines_with(err, "no terminal to ask on")
    S.check("... one line says so and how to delete (--yes)", len(why) == 1 and "nothing deleted" in why[0]
            and "--yes" in why[0], err[-600:])
    S.check("... and the summary keeps them for now, saying why",
            len(lines_with(err, "kept for now: ")) == len(olds) - 1 and not lines_with(err, "deleted: "), err[-800:])

    # --- the prompt at a terminal -------------------------------------------------------
    n = len(fake.requests())
    rc, screen, asked = run_answering(["rotate", "--sm-key", fake.sm_key_path, "--out", k4, "--delete-old",
                                       "--if-older-than", "1h"], "n\n", env=ENV)
    S.check("at a terminal --delete-old asks [y/N], naming the keys; answered n: exit 0, nothing deleted",
            asked and rc == 0 and bindings(fake).keys() == b3.keys() and changing(fake.requests()[n:]) == []
            and "calm-api-deployment-key'" in screen and "stop working at once" in screen, (rc, asked, screen[-600:]))
    S.check("... and says it was not confirmed", "not confirmed" in screen, screen[-400:])
    rc, screen, asked = run_answering(["rotate", "--sm-key", fake.sm_key_path, "--out", k4, "--delete-old",
                                       "--if-older-than", "1h"], "y\n", env=ENV)
    b4 = bindings(fake)
    gone = set(b3) - set(b4)
    newest = sorted(new)[0] if new else "?"
    S.check("... answered y: the older calmbind keys are deleted, the newest kept and nothing created",
            asked and rc == 0 and gone == set(olds) - {newest} and newest in b4 and set(b4) <= set(b3),
            (rc, sorted(gone), screen[-600:]))
    S.check("... the summary names each deleted key", gone and all(lines_with(screen, "deleted: '%s'" % g) for g in gone),
            screen[-800:])
    S.check("... the deleted keys stop working, the delivered one works",
            run(["verify", k0], env=ENV)[0] == 3 and run(["verify", k1], env=ENV)[0] == 3
            and run(["verify", k4], env=ENV)[0] == 0)

    # --- --yes --------------------------------------------------------------------------
    k5 = os.path.join(TMP, "k5.json")
    rc, _, err = rotate(fake, k5, "--delete-old", "--yes", new_session=True)
    b5 = bindings(fake)
    S.check("--delete-old --yes without a terminal: a new key, the one before it deleted without asking",
            rc == 0 and newest not in b5 and len(set(b5) - set(b4)) == 1 and "[y/N]" not in err
            and lines_with(err, "deleted: '%s'" % newest), (rc, sorted(b5), err[-500:]))
    S.check("... one summary: what was created, what was deleted, what was kept and why, nothing contradictory",
            lines_with(err, "rotate: created key '") and lines_with(err, "kept: 'calm-api-key-auto'")
            and not lines_with(err, "kept for now") and "it replaces" not in err and "next time" not in err,
            err[-800:])

# --- fleet --command rotate --------------------------------------------------------
with FakeBTP(tenants=2, presets=["mid-2023", "mid-2023"]) as fake:
    ta, tb = fake.tenants
    for t in (ta, tb):
        rc, _, err = run(["get", "--sm-key", t.sm_key_path, "--out", os.path.join(TMP, t.name + "-0.json")], env=ENV)
        S.eq("fleet setup: get on %s" % t.name, rc, 0)
    inv = os.path.join(TMP, "fleet.json")
    with open(inv, "w") as f:
        json.dump({"tenants": [{"name": "a", "sm_key": ta.sm_key_path},
                               {"name": "b", "sm_key": tb.sm_key_path}]}, f)
    out = os.path.join(TMP, "fleet-out")

    def fleet(*args):
        rep = os.path.join(TMP, "fleet-%d.json" % len(os.listdir(TMP)))
        rc, so, err = run(["fleet", inv, "--command", "rotate", "--out-dir", out, "--report", rep] + list(args),
                          env=ENV, new_session=True)
        doc = json.load(open(rep)) if os.path.exists(rep) else {"tenants": []}
        return rc, so, err, {t["name"]: t for t in doc["tenants"]}

    before = {t.name: bindings(fake, t.name) for t in (ta, tb)}
    rc, so, err, t = fleet("--if-older-than", "1h")
    S.check("fleet --if-older-than 1h: every tenant exit 0, none creates a key",
            rc == 0 and {k: v["exit"] for k, v in t.items()} == {"a": 0, "b": 0}
            and all(bindings(fake, x.name).keys() == before[x.name].keys() for x in (ta, tb)), (rc, so, err[-400:]))
    S.check("... each key verified and written; the table says why nothing was rotated",
            sorted(os.listdir(out)) == ["a.json", "b.json"] and run(["verify", os.path.join(out, "a.json")], env=ENV)[0] == 0
            and len(lines_with(so, "not rotated: key 'calm-api-deployment-key' is")) == 2
            and "2 tenants not rotated" in err
            and all("younger than 1h" in (t[x].get("not_rotated") or "") for x in ("a", "b")), (so, err[-400:], t))

    rc, _, _, _ = fleet()
    after = {x.name: bindings(fake, x.name) for x in (ta, tb)}
    S.check("setup: a plain fleet rotation makes one key per tenant",
            rc == 0 and all(len(after[x]) == len(before[x]) + 1 for x in after), after)
    n = len(fake.requests())
    rc, so, err, t = fleet("--dry-run", "--delete-old", "--detailed-exitcode")
    S.check("fleet --dry-run --delete-old --detailed-exitcode: exit 7, nothing changed in any tenant",
            rc == 7 and changing(fake.requests()[n:]) == [] and
            all(bindings(fake, x.name).keys() == after[x.name].keys() for x in (ta, tb)), (rc, so, err[-300:]))
    S.check("... each tenant's dry run printed whole, listing what it would create and delete",
            "== tenant a (would change)" in so and "== tenant b (would change)" in so
            and len(lines_with(so, "would create: binding")) == 2
            and len(lines_with(so, "would delete: 'calm-api-deployment-key'")) == 2, so)
    rc, so, err, t = fleet("--if-older-than", "1h", "--delete-old")
    S.check("fleet --delete-old without --yes: fleet asks nobody, deletes nothing, says so",
            rc == 0 and all(bindings(fake, x.name).keys() == after[x.name].keys() for x in (ta, tb))
            and "2 tenants kept their old keys: --delete-old without --yes" in err, (rc, err[-500:]))
    rc, so, err, t = fleet("--if-older-than", "1h", "--delete-old", "--yes")
    gone = {x.name: set(after[x.name]) - set(bindings(fake, x.name)) for x in (ta, tb)}
    S.check("fleet --if-older-than 1h --delete-old --yes: no new key, each tenant's older calmbind key deleted",
            rc == 0 and gone == {ta.name: {"calm-api-deployment-key"}, tb.name: {"calm-api-deployment-key"}}
            and all(set(bindings(fake, x.name)) <= set(after[x.name]) for x in (ta, tb)), (rc, gone, err[-400:]))
    rc, _, err = run(["fleet", inv, "--command", "get", "--yes"], env=ENV)
    S.check("fleet --yes with another command: exit 2, one line", rc == 2 and "--command rotate" in err, err)

S.done()
