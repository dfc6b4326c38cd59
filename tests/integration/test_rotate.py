#!/usr/bin/env python3
"""calmbind rotate against the fake BTP: a new verified key written, the bindings it
replaces listed, --delete-old deleting only older calmbind-made bindings on the
instance (never SAP's generated key, <SID>_<client>_<sysno> or hand-made ones), the
rollback when the new key fails verification, and fleet --command rotate."""
import json
import os
import tempfile

from itest import Suite, run   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("rotate")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
TMP = tempfile.mkdtemp(prefix="rotate-")

# Changes made "by hand" in the subaccount, through Service Manager itself (a user
# script with calmbind's own SM client): bindings with chosen labels, and an
# instance update that drops the authorities.
HAND = os.path.join(TMP, "hand.lua")
with open(HAND, "w") as f:
    f.write(r'''
local sm, input = require "calm.btp.sm", require "calm.lib.input"
local args = { ... }
local t = assert(input.load_key(args[1], "sm", "--sm-key"))
local c = assert(sm.from_key(t))
local insts = assert(c:list("service_instances", { fieldQuery = sm.eq("name", args[3]) }))
local inst = assert(insts[1], "no instance " .. args[3])
if args[2] == "bind" then
  local labels = nil
  if args[5] == "calmbind" then labels = { created_by = { "calmbind" } } end
  assert(c:create_binding { name = args[4], service_instance_id = inst.id, labels = labels })
elseif args[2] == "strip" then
  assert(c:update_instance(inst.id, { parameters = { ["xs-security"] = { xsappname = args[3], authorities = { "$XSMASTERAPPNAME.other-feature" } } } },
    "removing the authorities"))
end
return 0
''')


def hand(fake, *args):
    rc, out, err = run([HAND, fake.sm_key_path] + list(args), env=ENV)
    if rc != 0:
        raise RuntimeError("hand.lua %s: %s" % (args, err))


def rotate(fake, out, *args):
    rep = os.path.join(TMP, "r%d.json" % len(os.listdir(TMP)))
    rc, so, err = run(["rotate", "--sm-key", fake.sm_key_path, "--out", out, "--report", rep,
                       "--timeout", "60"] + list(args), env=ENV)
    doc = json.load(open(rep)) if os.path.exists(rep) else {}
    return rc, err, doc


def bindings(fake, tenant=None):
    state = fake.state(tenant=tenant) if tenant else fake.state()
    return {b["name"]: b for b in state["bindings"]}


def verify(path):
    return run(["verify", path], env=ENV)[0]


with FakeBTP(preset="mid-2023") as fake:
    k1 = os.path.join(TMP, "k1.json")
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--out", k1], env=ENV)
    S.eq("setup: get creates the Deployment instance and key", rc, 0)
    old_key = json.load(open(k1))
    b0 = bindings(fake)

    key = os.path.join(TMP, "key.json")
    rc, err, doc = rotate(fake, key)
    b1 = bindings(fake)
    new = set(b1) - set(b0)
    S.check("rotate: exit 0, one new binding", rc == 0 and len(new) == 1, (rc, err[-400:], new))
    name = next(iter(new)) if new else ""
    S.eq("... labelled created_by: calmbind", (b1.get(name) or {}).get("labels", {}).get("created_by"), ["calmbind"])
    S.check("... its key written (0600) and working for Deployment",
            os.path.exists(key) and (os.stat(key).st_mode & 0o777) == 0o600 and verify(key) == 0, err[-300:])
    S.check("... a different secret than the old key",
            json.load(open(key))["uaa"]["clientsecret"] != old_key["uaa"]["clientsecret"])
    S.eq("... nothing deleted without --delete-old", set(b0) - set(b1), set())
    S.eq("... the old key still works", verify(k1), 0)
    rep = {r["name"]: r for r in doc.get("replaced", [])}
    S.check("... the report lists what it replaces: the older calmbind key, SAP's generated key kept",
            rep.get("calm-api-deployment-key", {}).get("replace") is True
            and rep.get("calm-api-key-auto", {}).get("replace") is False, rep)
    S.check("... and says what the admin must do", "Landscape Management" in err and "/SDF/ALM_SETUP" in err
            and "calm-api-deployment-key" in err, err[-600:])

    # never-delete rules: hand-made, <SID>_<client>_<sysno> (even with our label)
    hand(fake, "bind", "calm-api-deployment", "handmade-key", "")
    hand(fake, "bind", "calm-api-deployment", "S4H_100_00", "calmbind")
    key2 = os.path.join(TMP, "key2.json")
    rc, err, doc = rotate(fake, key2, "--delete-old", "--yes")
    b2 = bindings(fake)
    gone = set(b1) | {"handmade-key", "S4H_100_00"}
    gone = {n for n in gone if n not in b2}
    S.eq("rotate --delete-old: exit 0", rc, 0)
    S.eq("... deletes exactly the older calmbind keys on the instance", gone, {"calm-api-deployment-key", name})
    S.check("... keeps SAP's generated key, the <SID>_<client>_<sysno> and the hand-made binding",
            all(n in b2 for n in ("calm-api-key-auto", "handmade-key", "S4H_100_00")), sorted(b2))
    S.check("... the deleted keys stop working, the new one works",
            verify(k1) == 3 and verify(key) == 3 and verify(key2) == 0, (verify(k1), verify(key), verify(key2)))
    rep = {r["name"]: r for r in doc.get("replaced", [])}
    S.check("... the report says why each one was kept",
            "SID" in rep.get("S4H_100_00", {}).get("why", "") and "by hand" in rep.get("handmade-key", {}).get("why", ""),
            rep)
    S.check("... and warns that deleted keys stopped working", "stopped working" in err, err[-300:])

    # rollback: the instance lost its authorities (changed by hand in the cockpit)
    hand(fake, "strip", "calm-api-deployment")
    before = bindings(fake)
    text = open(key2).read()
    n = len(fake.mutations())
    rc, err, doc = rotate(fake, key2, "--delete-old", "--yes")
    after = bindings(fake)
    muts = [(m["method"], m["path"].split("/")[2]) for m in fake.mutations()[n:]]
    S.eq("new key fails verification: exit 6", rc, 6)
    S.check("... its binding deleted again, nothing else deleted", set(after) == set(before)
            and muts == [("POST", "service_bindings"), ("DELETE", "service_bindings")], (muts, err[-300:]))
    S.check("... the old key file untouched and still working", open(key2).read() == text and verify(key2) == 0)
    S.check("... the message says so", "imp-cdm-feature" in err and "deleted again" in err, err[-400:])
    S.eq("... the report's result", (doc.get("result") or {}).get("exit"), 6)

    # failed rollback: the new key fails verification and deleting its binding fails too
    # (500 on every DELETE): the binding is left behind, named once, nothing else deleted
    fake.fault(method="DELETE", path=r"^/v1/service_bindings/", action="status", status=500,
               retry_after="0", count=100)
    before = bindings(fake)
    n = len(fake.mutations())
    rc, err, doc = rotate(fake, key2, "--delete-old", "--yes")
    fake.clear_faults()
    after = bindings(fake)
    left = set(after) - set(before)
    muts = [(m["method"], m["path"].split("/")[2]) for m in fake.mutations()[n:]]
    name = next(iter(left)) if left else "?"
    S.check("new key fails, its rollback fails too: exit 6, the new binding left, nothing else deleted",
            rc == 6 and len(left) == 1 and set(before) <= set(after), (rc, sorted(left), err[-400:]))
    S.check("... only the one binding created; every DELETE aimed at it",
            muts[0] == ("POST", "service_bindings") and len(muts) > 1
            and all(m == ("DELETE", "service_bindings") for m in muts[1:])
            and all(m["path"].endswith(after[name]["id"]) for m in fake.mutations()[n + 1:]), muts)
    S.check("... the old key file untouched and still working", open(key2).read() == text and verify(key2) == 0)
    err_lines = [l for l in err.splitlines() if name in l and "failed too" in l]
    S.check("... one line naming the binding left behind (name and id) for the admin to delete",
            len(err_lines) == 1 and "binding '%s' (%s) is left behind" % (name, after[name]["id"]) in err_lines[0]
            and "delete it by hand" in err_lines[0]
            and key2 in err_lines[0], err[-600:])
    S.check("... the report names it too", name in ((doc.get("result") or {}).get("error") or "")
            and (doc.get("result") or {}).get("exit") == 6, doc.get("result"))

# one delivery for get and rotate: one may-delete rule (an older calmbind key on another
# instance is kept, by get's advice as by rotate), one advice text, one report writer
with FakeBTP(preset="mid-2023") as fake:
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--out", os.path.join(TMP, "one.json")], env=ENV)
    S.eq("one rule: setup get", rc, 0)
    grep = os.path.join(TMP, "get-report.json")
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--instance-name", "calm-api-second", "--binding-name",
                      "second-key", "--out", os.path.join(TMP, "two.json"), "--report", grep], env=ENV)
    line = [l for l in err.splitlines() if "'calm-api-deployment-key' (instance 'calm-api-deployment'" in l]
    S.check("get on a second instance: the older calmbind key on the first is kept, by the rule rotate uses",
            rc == 0 and len(line) == 1 and "kept: on another instance ('calm-api-deployment')" in line[0]
            and "then delete" not in err and "can go" not in err, err[-900:])
    S.check("... the advice is rotate's: upload, /SDF/ALM_SETUP", "next steps:" in err
            and "Landscape Management" in err and "/SDF/ALM_SETUP" in err, err[-600:])
    rc, err, doc = rotate(fake, os.path.join(TMP, "three.json"), "--instance-name", "calm-api-second")
    gdoc = json.load(open(grep))
    S.check("rotate's report comes from get's writer: the same result fields, path included",
            rc == 0 and doc["result"].get("path") == gdoc["result"].get("path") == "mid-2023"
            and set(gdoc["result"]) <= set(doc["result"]) and doc["decision"]["reasons"], (doc.get("result"), gdoc["result"]))
    S.check("... and the same advice text", "next steps:" in err and "then delete the 1 old binding" in err
            and "kept: 'calm-api-deployment-key' (instance 'calm-api-deployment'" in err
            and ": on another instance ('calm-api-deployment')" in err, err[-900:])
    kept_now = [l for l in err.splitlines() if l.startswith("kept for now: ")]
    S.check("... one summary of what was kept and why, no 'replaces ... kept' list",
            "it replaces" not in err and "next time" not in err and "to delete once" not in err
            and len(kept_now) == 1 and "'second-key'" in kept_now[0]
            and kept_now[0].endswith("an older key calmbind made on this instance (use --delete-old to delete it)")
            and len([l for l in err.splitlines() if l.startswith("kept: ")]) == 2, err[-900:])

# an x509 key: rotate keeps the credential type (no option needed), the new key verifies
# over mutual TLS; --delete-old then deletes the older x509 key calmbind made; an explicit
# --credential-type binding-secret is another purpose and leaves the x509 keys alone
with FakeBTP(preset="mid-2023", https=True) as fake:
    X = ["--cacert", fake.ca_path]
    kx = os.path.join(TMP, "x1.json")
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509", "--out", kx] + X, env=ENV)
    S.eq("x509 setup: get --credential-type x509", rc, 0)
    b0 = bindings(fake)
    n = len(fake.mutations())
    kx2 = os.path.join(TMP, "x2.json")
    # XSUAA's 7-day certificates are within verify's default --warn-days 30 (test_expiry.py)
    XV = X + ["--warn-days", "0"]
    rc, err, doc = rotate(fake, kx2, *X)
    new = set(bindings(fake)) - set(b0)
    posts = [m["body"].get("parameters") for m in fake.mutations()[n:] if m["method"] == "POST"]
    S.check("rotate of an x509 key: exit 0, one new binding asked for as x509",
            rc == 0 and len(new) == 1 and posts == [{"credential-type": "x509", "x509": {
                "key-length": 2048, "validity": 7, "validity-type": "DAYS"}}], (rc, posts, err[-400:]))
    uaa = json.load(open(kx2))["uaa"] if os.path.exists(kx2) else {}
    S.check("... the new key is x509 (certificate, no secret), another certificate than the old",
            uaa.get("credential-type") == "x509" and "clientsecret" not in uaa
            and uaa.get("certificate") != json.load(open(kx))["uaa"]["certificate"], sorted(uaa))
    S.check("... verified over mutual TLS before it was written", "mutual TLS" in err
            and "works for Deployment" in err and (os.stat(kx2).st_mode & 0o777) == 0o600, err[-600:])
    S.eq("... and it works", run(["verify", kx2] + XV, env=ENV)[0], 0)
    S.eq("... the report's credential type", (doc.get("result") or {}).get("credential_type"), "x509")
    S.check("... the private key never reached stderr", uaa.get("key", "x\ny").splitlines()[1] not in err)
    kx3 = os.path.join(TMP, "x3.json")
    rc, err, doc = rotate(fake, kx3, "--delete-old", "--yes", *X)
    gone = (set(b0) | new) - set(bindings(fake))
    S.check("rotate --delete-old of x509 keys: the older calmbind x509 keys deleted, SAP's kept",
            rc == 0 and gone == {"calm-api-deployment-x509-key"} | new
            and "calm-api-key-auto" in bindings(fake), (rc, gone, err[-300:]))
    S.check("... the deleted keys stop working, the new one works",
            run(["verify", kx] + XV, env=ENV)[0] != 0 and run(["verify", kx3] + XV, env=ENV)[0] == 0)
    ks = os.path.join(TMP, "xs.json")
    b3 = bindings(fake)
    rc, err, doc = rotate(fake, ks, "--delete-old", "--yes", "--credential-type", "binding-secret", *X)
    S.check("--credential-type binding-secret: a secret key; the x509 key is another purpose, kept",
            rc == 0 and "clientsecret" in json.load(open(ks))["uaa"] and set(b3) <= set(bindings(fake))
            and run(["verify", kx3] + XV, env=ENV)[0] == 0, (rc, err[-300:]))

# an old instance-secret key (made before 19 January 2026): XSUAA now gives every new
# binding its own binding secret, so rotate replaces it with a binding-secret key
with FakeBTP(preset="after-2023-10-16", variants=["instance-secret"]) as fake:
    gen = os.path.join(TMP, "gen.json")
    rc, err, doc = rotate(fake, gen)
    k = json.load(open(gen)) if rc == 0 else {}
    S.check("an old instance-secret key: rotate replaces it with a binding-secret key (exit 0)",
            rc == 0 and k.get("uaa", {}).get("credential-type") == "binding-secret" and verify(gen) == 0,
            (rc, err[-400:]))
    S.check("... and says the old key is an instance-secret key",
            "'calm-api-key-auto'" in err and "old instance-secret key" in err, err[-800:])

with FakeBTP(preset="before-2023-06-12") as fake:
    n = len(fake.requests())
    rc, err, doc = rotate(fake, os.path.join(TMP, "none.json"))
    S.check("nothing to rotate (not entitled): exit 4, no mutating request",
            rc == 4 and fake.mutations() == [], (rc, err[-300:]))
    n = len(fake.requests())
    rc, _, err = run(["rotate", "--sm-key", fake.sm_key_path, "--out", "/nonexistent/dir/k.json"], env=ENV)
    S.check("a bad --out: exit 2 before any request", rc == 2 and len(fake.requests()) == n, (rc, err))
    rc, _, err = run(["rotate", "--sm-key", fake.sm_key_path, "--binding-name", "S4H_100_00", "--out",
                      os.path.join(TMP, "x.json")], env=ENV)
    S.check("--binding-name <SID>_<client>_<sysno>: exit 2 before any request",
            rc == 2 and len(fake.requests()) == n, (rc, err))

# fleet --command rotate: two tenants rotate, one is refused;
# two subaccounts behind one multi-tenant fake
with FakeBTP(tenants=2, presets=["mid-2023", "after-2023-10-16"]) as fake:
    fm, fa = fake.tenants
    rc, _, err = run(["get", "--sm-key", fm.sm_key_path, "--out", os.path.join(TMP, "m.json")], env=ENV)
    bad = fa.sm_key()
    bad["clientsecret"] += "-wrong"
    with open(os.path.join(TMP, "bad-sm.json"), "w") as f:
        json.dump(bad, f)
    inv = os.path.join(TMP, "rot-fleet.json")
    with open(inv, "w") as f:
        json.dump({"tenants": [{"name": "m", "sm_key": fm.sm_key_path, "delete_old": True, "yes": True},
                               {"name": "a", "sm_key": fa.sm_key_path},
                               {"name": "bad", "sm_key": "bad-sm.json"}]}, f)
    out = os.path.join(TMP, "rot-out")
    os.makedirs(out)
    rep = os.path.join(TMP, "rot-fleet-report.json")
    rc, so, err = run(["fleet", inv, "--command", "rotate", "--out-dir", out, "--report", rep], env=ENV)
    doc = json.load(open(rep)) if os.path.exists(rep) else {"tenants": []}
    t = {x["name"]: x for x in doc["tenants"]}
    S.eq("fleet --command rotate: per-tenant exits", {k: v["exit"] for k, v in t.items()}, {"m": 0, "a": 0, "bad": 3})
    b1 = bindings(fake, fm.name)
    S.check("... the rotated tenant: new key written, its old calmbind key deleted (delete_old)",
            sorted(os.listdir(out)) == ["a.json", "m.json"] and verify(os.path.join(out, "m.json")) == 0
            and "calm-api-deployment-key" not in b1 and "calm-api-key-auto" in b1, (os.listdir(out), sorted(b1)))
    S.check("... and the admin's steps once, after the table", "Landscape Management" in err
            and "/SDF/ALM_SETUP" in err and "2 tenants rotated" in err, err[-500:])
    S.check("... the report lists what each replaced", any(r.get("name") == "calm-api-deployment-key"
                                                         for r in t.get("m", {}).get("replaced", [])), t.get("m"))

S.done()
