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
            "(mutual TLS)" in err and "imp-cdm-feature-manage-ui yes" in err, err[-600:])
    S.check("the private key never reached stderr", uaa["key"].splitlines()[1] not in err, "key material in stderr")
    before = len(fake.mutations())
    rc, _, err = run(args, env=ENV)
    S.eq("rerun: exit 0", rc, 0)
    S.eq("rerun: no mutating request", len(fake.mutations()), before)
    S.eq("rerun: the same key", json.load(open(out)), key)
    S.eq("the key file is 0600", os.stat(out).st_mode & 0o777, 0o600)
S.done()
