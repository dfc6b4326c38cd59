#!/usr/bin/env python3
"""The Cloud Foundry legacy path: an instance Service Manager lists but Cloud Foundry owns
cannot be bound through SM (exit 4, said so); with --runtime cf the instance and key are
found or created through the CF v3 API; new keys are binding-secret keys (XSUAA's default since
19 January 2026), an old instance-secret key is adopted, named as such, and kept working."""
import json
import os
import sys
import time
import urllib.error
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import (run_get, no_secret_in, AUTHORITIES, has_cdm_scopes,  # noqa: E402
                            key_token_scopes, http_json, ENV)


def cf_args(fake, *extra):
    return ["--runtime", "cf", "--cf-api", fake.cf_env["CF_API"],
            "--cf-space", fake.cf_env["CF_SPACE_GUID"]] + list(extra)


def cf_env(fake):
    return {"CF_USERNAME": fake.cf_env["CF_USERNAME"], "CF_PASSWORD": fake.cf_env["CF_PASSWORD"]}


def cf_deployment(s, fake):
    """Deployment (the default) with --runtime cf on an instance made without the authorities
    (before-2023-06-12 here): calmbind would make its own instance; with --update-instance it
    PATCHes the authorities in, keeping the xsappname, then a NEW key
    <instance>-deployment-key whose token carries both scopes; a rerun adopts it for its scopes."""
    inst = "cloudalm-api-service"
    n0 = len(fake.mutations())
    rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env=cf_env(fake))
    s.check("plan --runtime cf (deployment) on an instance calmbind did not create: calmbind would make an "
            "instance of its own in the space and leave that one alone (the same planner as Service Manager)",
            rc == 0 and "instance: would create 'calm-api-deployment'" in out and "would update" not in out,
            (rc, out[-600:]))
    rc, out, err, rep = run_get(fake, *cf_args(fake, "--update-instance", inst), command="plan", env=cf_env(fake))
    s.check("plan --runtime cf (deployment): would update the instance and create a new key",
            rc == 0 and ("instance: would update '%s'" % inst) in out
            and ("service key: would create '%s-deployment-key'" % inst) in out, out)
    s.eq("plan --runtime cf (deployment): no mutating request", fake.mutations()[n0:], [])

    rc, out1, err, rep = run_get(fake, *cf_args(fake, "--verify", "--update-instance", inst), env=cf_env(fake))
    s.eq("deployment --runtime cf --update-instance --verify: exit 0", rc, 0)
    s.check("... warns that the update replaces the instance's authorities", "replaced" in err, err[-600:])
    muts = fake.mutations()[n0:]
    got = [(m["method"], m["path"]) for m in muts]
    s.check("deployment --runtime cf: PATCH the instance, then create one key",
            len(got) >= 2 and got[0][0] == "PATCH" and got[0][1].startswith("/v3/service_instances/")
            and got[-1] == ("POST", "/v3/service_credential_bindings")
            and all(m == "PATCH" for m, _ in got[:-1]), got)
    if got:
        s.eq("deployment --runtime cf: exact PATCH parameters (xsappname kept, the default credential type)",
             muts[0]["body"].get("parameters"),
             {"xs-security": {"xsappname": inst, "authorities": AUTHORITIES,
                              "oauth2-configuration": {"credential-types": ["binding-secret"]}}})
        s.eq("deployment --runtime cf: the new key's name", muts[-1]["body"].get("name"), inst + "-deployment-key")
    if rc == 0:
        key = json.loads(out1)
        s.check("deployment --runtime cf: the key's token carries both imp-cdm-feature-* scopes",
                has_cdm_scopes(key_token_scopes(key)))
        s.eq("deployment --runtime cf: report names the new key",
             (rep or {}).get("result", {}).get("binding_name"), inst + "-deployment-key")
    n1 = len(fake.mutations())
    rc, out2, err, rep = run_get(fake, *cf_args(fake, "--verify"), env=cf_env(fake))
    s.check("deployment --runtime cf rerun: exit 0, same key, no mutation",
            rc == 0 and out2 == out1 and fake.mutations()[n1:] == [], (rc, fake.mutations()[n1:], err[-400:]))
    # a key made before the update is never adopted for Deployment
    rc, out3, err, rep = run_get(fake, *cf_args(fake, "--binding-name", inst + "-key"), env=cf_env(fake))
    s.check("deployment --runtime cf naming a pre-update key: exit 2, no mutation",
            rc == 2 and fake.mutations()[n1:] == [] and "name a new binding with --binding-name" in err,
            (rc, err[-400:]))


def token_status(uaa):
    """HTTP status of a client-credentials token request with the key's uaa block."""
    data = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": uaa["clientid"],
                                   "client_secret": uaa["clientsecret"]}).encode()
    try:
        http_json(uaa["url"] + "/oauth/token", data)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


def cf_old_key(s):
    """An old instance-secret CF key (made before 19 January 2026): get adopts it and says it
    is one; an update of its instance keeps instance-secret among the credential-types (SAP:
    removing a type invalidates its bindings), so the old key keeps working next to the new
    binding-secret key."""
    inst = "cloudalm-api-service"
    with FakeBTP(preset="cf-legacy", variants=["instance-secret"]) as fake:
        rc, out, err, rep = run_get(fake, *cf_args(fake, "--scenario", "monitoring"), env=cf_env(fake))
        old = json.loads(out)["uaa"] if rc == 0 else {}
        s.check("old CF key: get adopts the instance-secret key (exit 0)",
                rc == 0 and old.get("credential-type") == "instance-secret", (rc, err[-400:]))
        s.check("... and says it is an old instance-secret key", "old key" in err and "instance secret" in err,
                err[-800:])
        n0 = len(fake.mutations())
        rc, out, err, rep = run_get(fake, *cf_args(fake, "--verify", "--update-instance", inst), env=cf_env(fake))
        s.eq("old CF key: deployment --update-instance: exit 0", rc, 0)
        patch = [m for m in fake.mutations()[n0:] if m["method"] == "PATCH"]
        s.eq("old CF key: the update keeps instance-secret next to binding-secret",
             patch[0]["body"]["parameters"]["xs-security"].get("oauth2-configuration") if patch else None,
             {"credential-types": ["binding-secret", "instance-secret"]})
        if rc == 0:
            s.eq("... the new key is a binding-secret key", json.loads(out)["uaa"].get("credential-type"),
                 "binding-secret")
        if old:
            s.eq("... and the old instance-secret key still gets a token", token_status(old), 200)
        n1 = len(fake.mutations())
        rc, out, err = itest.run(["rotate", "--sm-key", fake.sm_key_path, "--scenario", "monitoring"], env=ENV)
        s.check("rotate on the Cloud Foundry instance: exit 4, no change, and the CF way (a new key has a binding "
                "secret of its own; the old instance-secret key is not revoked by deleting it)",
                rc == 4 and fake.mutations()[n1:] == [] and "--binding-name NEW" in err
                and "binding secret of its own" in err and "instance-secret key's secret stays valid" in err,
                (rc, err[-600:]))


def cf_instance_choice(s):
    """--instance-name picks (or creates) exactly that instance; without it, several
    SAPCloudALMAPIs instances in the space stop get with exit 2 before any change."""
    with FakeBTP(preset="mid-2023") as fake:
        # a monitoring-only instance made in CF (no authorities), then Deployment on it
        rc, out, err, rep = run_get(fake, *cf_args(fake, "--instance-name", "calm-mon", "--scenario", "monitoring"),
                                    env=cf_env(fake))
        s.eq("mid-2023 cf: monitoring instance created, exit 0", rc, 0)
        n0 = len(fake.mutations())
        rc, out1, err, rep = run_get(fake, *cf_args(fake, "--instance-name", "calm-mon", "--verify"), env=cf_env(fake))
        s.eq("mid-2023 cf: deployment on the named instance, verify exit 0", rc, 0)
        muts = fake.mutations()[n0:]
        patch = [m for m in muts if m["method"] == "PATCH" and "parameters" in (m["body"] or {})]
        s.eq("mid-2023 cf: exact PATCH parameters", patch[0]["body"]["parameters"] if patch else None,
             {"xs-security": {"xsappname": "calm-mon", "authorities": AUTHORITIES,
                              "oauth2-configuration": {"credential-types": ["binding-secret"]}}})
        s.eq("mid-2023 cf: new key", [m["body"].get("name") for m in muts if m["method"] == "POST"],
             ["calm-mon-deployment-key"])
        # a second instance, created with the authorities: its key needs no update. Cloud
        # Foundry's created_at has whole seconds, and of two keys calmbind would adopt alike
        # the older instance's wins (below): in the same second the order is the GUIDs'
        time.sleep(1.0 - time.time() % 1.0 + 0.01)
        n1 = len(fake.mutations())
        rc, out, err, rep = run_get(fake, *cf_args(fake, "--instance-name", "calm-dep", "--verify"), env=cf_env(fake))
        s.eq("mid-2023 cf: --instance-name of a missing instance: created, verify exit 0", rc, 0)
        muts = fake.mutations()[n1:]
        s.eq("mid-2023 cf: create with the authorities, then the key",
             [(m["method"], m["path"]) for m in muts],
             [("POST", "/v3/service_instances"), ("POST", "/v3/service_credential_bindings")])
        n2 = len(fake.mutations())
        rc, out2, err, rep = run_get(fake, *cf_args(fake, "--instance-name", "calm-dep"), env=cf_env(fake))
        s.check("mid-2023 cf: rerun on the created instance: same key, no mutation",
                rc == 0 and out2 == out and fake.mutations()[n2:] == [], (rc, fake.mutations()[n2:]))
        rc, out, err, rep = run_get(fake, *cf_args(fake), env=cf_env(fake))
        s.check("mid-2023 cf: two instances, no --instance-name: the key that already carries the scopes "
                "is adopted", rc == 0 and (rep or {}).get("result", {}).get("binding_name", "").endswith(
                    "-deployment-key"), (rc, err[-400:]))
        s.eq("mid-2023 cf: two instances: no mutation", fake.mutations()[n2:], [])


def main():
    s = itest.Suite("integration/cf_legacy")
    with FakeBTP(preset="cf-legacy") as fake:
        rc, out, err, rep = run_get(fake)
        s.eq("SM only: exit 4", rc, 4)
        s.check("SM only: says Cloud Foundry owns the instance and how to proceed",
                "owned by Cloud Foundry" in err and "--runtime cf" in err, err[-600:])
        s.eq("SM only: no mutating request", fake.mutations(), [])
        s.eq("SM only: nothing on stdout", out, "")

        mon = ("--scenario", "monitoring")
        rc, out, err, rep = run_get(fake, *cf_args(fake, *mon), command="plan", env=cf_env(fake))
        s.eq("plan --runtime cf (monitoring): exit 0", rc, 0)
        s.check("plan --runtime cf (monitoring): finds the CF instance and key",
                "instance: find 'cloudalm-api-service'" in out and "service key: find" in out, out)
        s.check("plan --runtime cf: the plan text Service Manager's runs show (one writer): the space in place "
                "of the entitlement, and that get would only read",
                "runtime: Cloud Foundry %s, space %s" % (fake.cf_env["CF_API"], fake.cf_env["CF_SPACE_GUID"]) in out
                and "get would send no mutating request" in out and (rep or {}).get("steps", {}).get("read_only"),
                out)
        s.eq("plan --runtime cf: no mutating request", fake.mutations(), [])

        rc, out1, err, rep = run_get(fake, *cf_args(fake, *mon), env=cf_env(fake))
        s.eq("get --runtime cf (monitoring): exit 0", rc, 0)
        if rc == 0:
            key = json.loads(out1)
            s.eq("get --runtime cf: a binding-secret key (XSUAA's default since 19 January 2026)",
                 key["uaa"].get("credential-type"), "binding-secret")
        s.eq("get --runtime cf (monitoring): adopts, creates nothing", fake.mutations(), [])
        s.check("get --runtime cf: no password or secret on stderr or in the report",
                no_secret_in(err + json.dumps(rep), fake) and fake.cf_env["CF_PASSWORD"] not in err + json.dumps(rep))
        rc, out2, err, rep = run_get(fake, *cf_args(fake, *mon), env=cf_env(fake))
        s.check("get --runtime cf twice: same key", rc == 0 and out2 == out1, err[-400:])

        # a new key by name: created through CF (job polled), then adopted on the rerun
        rc, out3, err, rep = run_get(fake, *cf_args(fake, "--binding-name", "calmbind-cf-key", *mon), env=cf_env(fake))
        s.eq("get --runtime cf --binding-name: exit 0", rc, 0)
        muts = [(m["method"], m["path"]) for m in fake.mutations()]
        s.eq("get --runtime cf --binding-name: one key created through CF",
             muts, [("POST", "/v3/service_credential_bindings")])
        rc, out4, err, rep = run_get(fake, *cf_args(fake, "--binding-name", "calmbind-cf-key", *mon), env=cf_env(fake))
        s.check("rerun: same key, no second create", rc == 0 and out4 == out3 and len(fake.mutations()) == 1,
                fake.mutations())

        cf_deployment(s, fake)

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
            s.eq("empty space: the parameters of SAP's current page (credential-types binding-secret)",
                 body.get("parameters"),
                 {"xs-security": {"xsappname": "calm-cf", "authorities": [
                     "$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
                     "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"],
                     "oauth2-configuration": {"credential-types": ["binding-secret"]}}})
            if rc == 0:
                s.eq("empty space: binding-secret key", json.loads(out)["uaa"].get("credential-type"),
                     "binding-secret")
    # a finished job names the new resource by its type (links.service_instances): a link
    # under another name is a mismatch to report, not something to paper over by name
    with FakeBTP(preset="after-2023-10-16") as fake:
        if fake.cf_env:
            fake.control("POST", "/_fake/plugins/cf", {"job_link_names": {"service_instances": "service_instance"}})
            rc, out, err, rep = run_get(fake, *cf_args(fake, "--instance-name", "calm-cf"), env=cf_env(fake))
            s.check("job link under another name than the resource type: exit 1 naming links.service_instances",
                    rc == 1 and "links.service_instances" in err, (rc, err[-400:]))
    cf_instance_choice(s)
    cf_old_key(s)
    s.done()


if __name__ == "__main__":
    main()
