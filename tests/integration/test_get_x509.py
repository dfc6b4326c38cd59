#!/usr/bin/env python3
"""get --credential-type x509 end to end over HTTPS: the instance allows x509, the
binding is an x509 key, --verify gets its token over mutual TLS, a rerun converges."""
import json
import os
import tempfile

from itest import Suite, run   # puts tests/fakebtp on sys.path
from harness import FakeBTP

S = Suite("get-x509")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}

with FakeBTP(preset="mid-2023", https=True) as fake:
    out = os.path.join(tempfile.mkdtemp(), "key.json")
    args = ["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509", "--verify",
            "--cacert", fake.ca_path, "--out", out, "--timeout", "60"]
    rc, _, err = run(args, env=ENV)
    S.eq("get --credential-type x509 --verify: exit 0", rc, 0)
    body = [m for m in fake.mutations() if m["path"] == "/v1/service_instances"]
    params = body and body[0].get("body", {}).get("parameters", {})
    S.eq("the instance allows x509 next to binding secrets",
         params and params["xs-security"]["oauth2-configuration"]["credential-types"], ["binding-secret", "x509"])
    binds = [m for m in fake.mutations() if m["path"] == "/v1/service_bindings"]
    S.eq("the binding asks for an x509 key", binds and binds[0]["body"].get("parameters"),
         {"credential-type": "x509", "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}})
    key = json.load(open(out))
    uaa = key["uaa"]
    S.check("the key is an x509 key without a secret",
            uaa.get("credential-type") == "x509" and "clientsecret" not in uaa
            and "BEGIN CERTIFICATE" in uaa.get("certificate", "") and uaa.get("certurl", "").startswith("https://"),
            sorted(uaa))
    S.check("verify used mutual TLS and found both Deployment scopes",
            "mutual TLS" in err and "works for Deployment" in err, err[-600:])
    S.check("the private key never reached stderr", uaa["key"].splitlines()[1] not in err, "key material in stderr")
    before = len(fake.mutations())
    rc, _, err = run(args, env=ENV)
    S.eq("rerun: exit 0", rc, 0)
    S.eq("rerun: no mutating request", len(fake.mutations()), before)
    S.eq("rerun: the same key", json.load(open(out)), key)
    S.eq("the key file is 0600", os.stat(out).st_mode & 0o777, 0o600)

# a broker that reads only the {"xsuaa": {...}} shape silently ignores the plain one: the
# key's credential type is checked, the wrong key (calmbind's own) deleted, the other
# documented shape tried; a configurable validity reaches the bind parameters
with FakeBTP(preset="mid-2023", https=True, variants=["x509-wrapped-only"]) as fake:
    out = os.path.join(tempfile.mkdtemp(), "key.json")
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509", "--x509-validity", "30d",
                      "--cacert", fake.ca_path, "--out", out, "--timeout", "60"], env=ENV)
    S.eq("wrapped-only broker: exit 0", rc, 0)
    binds = [m for m in fake.mutations() if m["path"] == "/v1/service_bindings"]
    S.eq("... plain shape first, then {\"xsuaa\": {...}}", [b["body"].get("parameters") for b in binds],
         [{"credential-type": "x509", "x509": {"key-length": 2048, "validity": 30, "validity-type": "DAYS"}},
          {"xsuaa": {"credential-type": "x509", "x509": {"key-length": 2048, "validity": 30,
                                                          "validity-type": "DAYS"}}}])
    S.check("... the wrong key was deleted (calmbind's own, made a moment before)",
            [m["method"] for m in fake.mutations() if m["path"].startswith("/v1/service_bindings/")] == ["DELETE"],
            [(m["method"], m["path"]) for m in fake.mutations()])
    S.check("... the key written is x509", rc == 0 and json.load(open(out))["uaa"].get("credential-type") == "x509")

with FakeBTP(preset="mid-2023") as fake:
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--x509-validity", "30", "--out", "/tmp/x"], env=ENV)
    S.check("--x509-validity without --credential-type x509: exit 2", rc == 2 and "--x509-validity" in err, err)
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509", "--x509-validity", "0",
                      "--out", "/tmp/x"], env=ENV)
    S.check("--x509-validity 0: exit 2 naming the option", rc == 2 and "--x509-validity" in err, err)
    # XSUAA generates certificates of 1 to 30 DAYS only (SAP's page on X.509 certificates
    # managed by the service): months, years and more than 30 days are refused up front
    for v in ("31", "3m", "1y", "45d"):
        rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509", "--x509-validity", v,
                          "--out", "/tmp/x"], env=ENV)
        S.check("--x509-validity %s: exit 2 naming XSUAA's limit of 30 days" % v,
                rc == 2 and "--x509-validity" in err and "30 days" in err, err)
    S.eq("... before any request", fake.requests(), [])
    rc, out, _ = run(["get", "--help"], env=ENV)
    S.check("get --help: the x509 validity is 1-30 days and short-lived keys are rotated",
            "1-30" in out and "rotate" in out.split("--x509-validity", 1)[-1][:200], out[-2000:])
S.done()
