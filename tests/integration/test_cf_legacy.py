#!/usr/bin/env python3
"""The Cloud Foundry legacy path: an instance Service Manager lists but Cloud Foundry owns
cannot be bound through SM (exit 4, said so); with --runtime cf the instance and key are
found or created through the CF v3 API and the result is an instance-secret key."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import run_get, no_secret_in  # noqa: E402


def cf_args(fake, *extra):
    return ["--runtime", "cf", "--cf-api", fake.cf_env["CF_API"],
            "--cf-space", fake.cf_env["CF_SPACE_GUID"]] + list(extra)


def cf_env(fake):
    return {"CF_USERNAME": fake.cf_env["CF_USERNAME"], "CF_PASSWORD": fake.cf_env["CF_PASSWORD"]}


def main():
    s = itest.Suite("integration/cf_legacy")
    with FakeBTP(preset="cf-legacy") as fake:
        rc, out, err, rep = run_get(fake)
        s.eq("SM only: exit 4", rc, 4)
        s.check("SM only: says Cloud Foundry owns the instance and how to proceed",
                "owned by Cloud Foundry" in err and "--runtime cf" in err, err[-600:])
        s.eq("SM only: no mutating request", fake.mutations(), [])
        s.eq("SM only: nothing on stdout", out, "")

        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env=cf_env(fake))
        s.eq("plan --runtime cf: exit 0", rc, 0)
        s.check("plan --runtime cf: finds the CF instance and key",
                "instance: find 'cloudalm-api-service'" in out and "service key: find" in out, out)
        s.eq("plan --runtime cf: no mutating request", fake.mutations(), [])

        rc, out1, err, rep = run_get(fake, *cf_args(fake), env=cf_env(fake))
        s.eq("get --runtime cf: exit 0", rc, 0)
        if rc == 0:
            key = json.loads(out1)
            s.eq("get --runtime cf: an instance-secret key", key["uaa"].get("credential-type"), "instance-secret")
        s.eq("get --runtime cf: adopts, creates nothing", fake.mutations(), [])
        s.check("get --runtime cf: no password or secret on stderr or in the report",
                no_secret_in(err + json.dumps(rep), fake) and fake.cf_env["CF_PASSWORD"] not in err + json.dumps(rep))
        rc, out2, err, rep = run_get(fake, *cf_args(fake), env=cf_env(fake))
        s.check("get --runtime cf twice: same key", rc == 0 and out2 == out1, err[-400:])

        # a new key by name: created through CF (job polled), then adopted on the rerun
        rc, out3, err, rep = run_get(fake, *cf_args(fake, "--binding-name", "calmbind-cf-key"), env=cf_env(fake))
        s.eq("get --runtime cf --binding-name: exit 0", rc, 0)
        muts = [(m["method"], m["path"]) for m in fake.mutations()]
        s.eq("get --runtime cf --binding-name: one key created through CF",
             muts, [("POST", "/v3/service_credential_bindings")])
        rc, out4, err, rep = run_get(fake, *cf_args(fake, "--binding-name", "calmbind-cf-key"), env=cf_env(fake))
        s.check("rerun: same key, no second create", rc == 0 and out4 == out3 and len(fake.mutations()) == 1,
                fake.mutations())

        rc, out, err, rep = run_get(fake, "--runtime", "cf", "--cf-api", fake.cf_env["CF_API"], env=cf_env(fake))
        s.eq("--runtime cf without --cf-space: usage error", rc, 2)
        rc, out, err, rep = run_get(fake, *cf_args(fake), env={"CF_USERNAME": "", "CF_PASSWORD": ""})
        s.eq("--runtime cf without CF_USERNAME/CF_PASSWORD: usage error", rc, 2)

    # create in an empty space of an entitled subaccount (after preset has no CF instance)
    with FakeBTP(preset="after-2023-10-16") as fake:
        if fake.cf_env:
            rc, out, err, rep = run_get(fake, *cf_args(fake, "--instance-name", "calm-cf"), env=cf_env(fake))
            s.eq("empty space: get --runtime cf exit 0", rc, 0)
            muts = [(m["method"], m["path"]) for m in fake.mutations()]
            s.eq("empty space: instance and key created through CF", muts,
                 [("POST", "/v3/service_instances"), ("POST", "/v3/service_credential_bindings")])
            body = fake.mutations()[0]["body"] if fake.mutations() else {}
            s.eq("empty space: the 2023 CF parameters (no oauth2-configuration)", body.get("parameters"),
                 {"xs-security": {"xsappname": "calm-cf", "authorities": [
                     "$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
                     "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]}})
            if rc == 0:
                s.eq("empty space: instance-secret key", json.loads(out)["uaa"].get("credential-type"),
                     "instance-secret")
    s.done()


if __name__ == "__main__":
    main()
