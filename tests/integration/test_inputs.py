#!/usr/bin/env python3
"""Input is judged once, the same way in every command (issue 9, point 9): files that
are not keys, the wrong kind of key, raw `cf service-key` output, option values checked
before any request, and an unreachable host (exit 1 at once, not six retries)."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402

S = itest.Suite("integration/inputs")
TMP = tempfile.mkdtemp(prefix="calmbind-inputs-")


def write(name, text, mode=0o600):
    p = os.path.join(TMP, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def unreachable():
    """A key whose token host refuses connections: exit 1 in every command, quickly, with
    at most two tries (not six with backoff ending in exit 5)."""
    sm = write("sm-unreachable.json", json.dumps({
        "clientid": "sb-x!b1|service-manager!b1", "clientsecret": "s3cr3t-unreachable",
        "url": "http://127.0.0.1:1", "sm_url": "http://127.0.0.1:1", "xsappname": "x!b1"}))
    calm = write("calm-unreachable.json", json.dumps({
        "endpoints": {"Api": "https://t.eu10.alm.cloud.sap/api"},
        "uaa": {"clientid": "sb-k!b1|sapcloudalm!b2", "clientsecret": "s3cr3t-unreachable",
                "url": "http://127.0.0.1:1", "identityzone": "t",
                "credential-type": "binding-secret"}}))
    for cmd, args in (("plan", ["plan", "--sm-key", sm]),
                      ("get", ["get", "--sm-key", sm, "--out", os.path.join(TMP, "k.json")]),
                      ("verify", ["verify", calm])):
        t0 = time.monotonic()
        rc, out, err = itest.run(args, timeout=60)
        took = time.monotonic() - t0
        S.eq("%s with an unreachable token host: exit 1" % cmd, rc, 1)
        S.check("%s with an unreachable token host: says it cannot reach it" % cmd,
                "cannot reach 127.0.0.1:1" in err, err[-400:])
        S.check("%s with an unreachable token host: at most one retry" % cmd,
                err.count("retrying") <= 1 and took < 10, (took, err[-400:]))
        S.check("%s: the secret is not shown" % cmd, "s3cr3t-unreachable" not in err + out, err[-300:])


CALM_KEY = {"endpoints": {"Api": "https://t.eu10.alm.cloud.sap/api"},
            "uaa": {"clientid": "sb-k!b1|sapcloudalm!b2", "clientsecret": "s3cr3t-calm",
                    "url": "https://t.authentication.eu10.hana.ondemand.com", "identityzone": "t",
                    "credential-type": "binding-secret"}}
SM_KEY = {"clientid": "sb-x!b1|service-manager!b1", "clientsecret": "s3cr3t-sm",
          "url": "https://t.authentication.eu10.hana.ondemand.com",
          "sm_url": "https://service-manager.cfapps.eu10.hana.ondemand.com", "xsappname": "x!b1"}
CIS_KEY = {"endpoints": {"accounts_service_url": "https://accounts-service.cfapps.eu10.hana.ondemand.com"},
           "grant_type": "client_credentials",
           "uaa": {"clientid": "sb-c!b1|cis-central!b14", "clientsecret": "s3cr3t-cis",
                   "url": "https://t.authentication.eu10.hana.ondemand.com", "xsappname": "cis-central!b14"}}
NOT_KEYS = [("pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "PEM certificate"),
            ("empty", "", "empty"),
            ("yaml", "clientid: x\nclientsecret: s3cr3t-yaml\n", "YAML"),
            ("broken", '{"uaa": {"clientsecret": "s3cr3t-broken",}}', "invalid JSON")]


def sent(fake):
    return [r for r in fake.requests() if not r["path"].startswith("/_fake")]


def not_keys():
    """Files that are not keys, and keys of the wrong kind: exit 2 in every command, with a
    message saying what the file looks like, before any request."""
    calm = write("calm.lib.json", json.dumps(CALM_KEY))
    sm = write("sm.json", json.dumps(SM_KEY))
    cis = write("cis.json", json.dumps(CIS_KEY))
    cmds = {"check": lambda f: ["check", f], "verify": lambda f: ["verify", f],
            "export": lambda f: ["export", f, "--out", os.path.join(TMP, "x.json")],
            "plan --sm-key": lambda f: ["plan", "--sm-key", f],
            "get --sm-key": lambda f: ["get", "--sm-key", f, "--out", os.path.join(TMP, "x.json")],
            "plan --cis-key": lambda f: ["plan", "--sm-key", sm, "--cis-key", f]}
    for name, text, says in NOT_KEYS:
        path = write("not-a-key-%s.txt" % name, text)
        for cmd, args in cmds.items():
            rc, out, err = itest.run(args(path), timeout=30)
            S.eq("%s on a %s file: exit 2" % (cmd, name), rc, 2)
            S.check("%s on a %s file: says what it looks like" % (cmd, name), says in err, err[-300:])
            S.check("%s on a %s file: no secret shown" % (cmd, name), "s3cr3t" not in out + err, err[-300:])
    wrong = [("check", ["check", sm], "Service Manager binding"),
             ("verify", ["verify", sm], "Service Manager binding"),
             ("export", ["export", sm, "--out", os.path.join(TMP, "x.json")], "Service Manager binding"),
             ("check", ["check", cis], "Cloud Management Service (cis) key"),
             ("verify", ["verify", cis], "Cloud Management Service (cis) key"),
             ("plan --sm-key", ["plan", "--sm-key", calm], "the SAP Cloud ALM API key"),
             ("get --sm-key", ["get", "--sm-key", calm, "--out", os.path.join(TMP, "x.json")],
              "the SAP Cloud ALM API key"),
             ("plan --sm-key", ["plan", "--sm-key", cis], "pass it as --cis-key"),
             ("plan --cis-key", ["plan", "--sm-key", sm, "--cis-key", calm], "the SAP Cloud ALM API key"),
             ("get --cis-key", ["get", "--sm-key", sm, "--cis-key", sm, "--out", os.path.join(TMP, "x.json")],
              "pass it as --sm-key")]
    for cmd, args, says in wrong:
        rc, out, err = itest.run(args, timeout=30)
        S.eq("%s given %s: exit 2" % (cmd, os.path.basename(args[-1] if cmd in ("check", "verify")
                                                          else args[2])), rc, 2)
        S.check("%s: says %r" % (cmd, says), says in err, err[-400:])
        S.check("%s: no secret shown" % cmd, "s3cr3t" not in out + err, err[-300:])


def cf_output_and_options():
    """Raw `cf service-key` output is a key; --subaccount, --cacert and --report are checked
    before any request."""
    with FakeBTP(preset="after-2023-10-16") as fake:
        with open(fake.sm_key_path) as f:
            smk = json.load(f)
        for style, body in (("v6", smk), ("v8", {"credentials": smk})):
            raw = write("cf-sm-%s.txt" % style, "Getting key calmbind-sm-key for service instance "
                        "calmbind-sm as admin@example.com...\n\n" + json.dumps(body, indent=2) + "\n")
            rc, out, err = itest.run(["plan", "--sm-key", raw], timeout=60)
            S.eq("plan --sm-key with raw cf service-key output (%s): exit 0" % style, rc, 0)
        rc, out, err = itest.run(["get", "--sm-key", fake.sm_key_path, "--out", os.path.join(TMP, "k.json")],
                                 timeout=60)
        S.eq("get: exit 0", rc, 0)
        raw = write("cf-calm.txt", "Getting key k for service instance i as admin@example.com...\n\n"
                    + json.dumps({"credentials": json.load(open(os.path.join(TMP, "k.json")))}) + "\n")
        rc, out, err = itest.run(["check", raw, "--for", "alm-setup"])
        S.eq("check on raw cf service-key output: exit 0", rc, 0)
        n = len(sent(fake))
        bad = [("--subaccount", ["--subaccount", "calm-subaccount"], "--subaccount must be a GUID"),
               ("--subaccount with spaces", ["--subaccount", "1234"], "GUID"),
               ("--cacert missing", ["--cacert", os.path.join(TMP, "nope.pem")], "--cacert"),
               ("--cacert not PEM", ["--cacert", fake.sm_key_path], "no PEM certificate"),
               ("--report in a missing directory", ["--report", os.path.join(TMP, "no", "r.json")],
                "does not exist"),
               ("--report naming a directory", ["--report", TMP], "is a directory")]
        for what, extra, says in bad:
            for cmd in ("plan", "get"):
                args = [cmd, "--sm-key", fake.sm_key_path] + extra
                if cmd == "get":
                    args += ["--out", os.path.join(TMP, "k2.json")]
                rc, out, err = itest.run(args, timeout=30)
                S.eq("%s %s: exit 2" % (cmd, what), rc, 2)
                S.check("%s %s: says %r" % (cmd, what, says), says in err, err[-300:])
        rc, out, err = itest.run(["verify", os.path.join(TMP, "k.json"), "--cacert", fake.sm_key_path])
        S.eq("verify --cacert not PEM: exit 2", rc, 2)
        S.eq("bad options: no request at all", sent(fake)[n:], [])


def out_is_input():
    """--out (and --report) naming an input file, by any name (a hard link, ./ in the path),
    is refused before any request, and the input is left as it was."""
    with FakeBTP(preset="mid-2023") as fake:
        with open(fake.sm_key_path) as f:
            before = f.read()
        link = os.path.join(TMP, "sm-hardlink.json")
        if os.path.exists(link):
            os.unlink(link)
        os.link(fake.sm_key_path, link)
        dotted = os.path.join(os.path.dirname(fake.sm_key_path), ".", os.path.basename(fake.sm_key_path))
        cases = [("--out = --sm-key", ["get", "--sm-key", fake.sm_key_path, "--out", fake.sm_key_path],
                  "is the --sm-key file"),
                 ("--out = a hard link of --sm-key", ["get", "--sm-key", fake.sm_key_path, "--out", link],
                  "is the --sm-key file"),
                 ("--out = --sm-key via ./", ["get", "--sm-key", fake.sm_key_path, "--out", dotted],
                  "is the --sm-key file"),
                 ("--out = --cis-key", ["get", "--sm-key", fake.sm_key_path, "--cis-key", fake.cis_key_path,
                                        "--out", fake.cis_key_path], "is the --cis-key file"),
                 ("--out = --cacert", ["get", "--sm-key", fake.sm_key_path, "--cacert", fake.ca_path,
                                       "--out", fake.ca_path], "is the --cacert file"),
                 ("--report = --sm-key", ["plan", "--sm-key", fake.sm_key_path, "--report", fake.sm_key_path],
                  "is the --sm-key file"),
                 ("--out = --report", ["get", "--sm-key", fake.sm_key_path, "--report", os.path.join(TMP, "r"),
                                       "--out", os.path.join(TMP, "r")], "is the --report file")]
        open(os.path.join(TMP, "r"), "w").close()
        for what, args, says in cases:
            rc, out, err = itest.run(args, timeout=30)
            S.eq("%s: exit 2" % what, rc, 2)
            S.check("%s: says so" % what, says in err, err[-300:])
        with open(fake.sm_key_path) as f:
            S.eq("--out = input: the SM key is unchanged", f.read(), before)
        S.eq("--out = input: no request at all", sent(fake), [])
        k = write("export-in.json", json.dumps(CALM_KEY))
        rc, out, err = itest.run(["export", k, "--format", "env", "--out", k])
        S.eq("export FILE --out FILE: exit 2", rc, 2)
        S.eq("export FILE --out FILE: the key is unchanged", json.load(open(k)), CALM_KEY)


def main():
    out_is_input()
    unreachable()
    not_keys()
    cf_output_and_options()
    S.done()


if __name__ == "__main__":
    main()
