#!/usr/bin/env python3
"""The key is the best evidence (issue: correct and safe on real BTP). Before any change,
get and plan take a token with every candidate key and read its scopes; a key that
already carries both imp-cdm-feature-* scopes is adopted, whatever the date or the
instance's xsappname says. calmbind changes only what it created unless
--update-instance names the instance, never advises deleting a key it did not create,
and writes no key that failed verification."""
import json
import os
import tempfile

from itest import Suite, run as itest_run
from harness import FakeBTP
from test_get_paths import run_get, key_token_scopes, has_cdm_scopes, no_secret_in

S = Suite("key-evidence")
TMP = tempfile.mkdtemp()


def out_path():
    return os.path.join(TMP, "k%d.json" % len(os.listdir(TMP)))


def muts(fake, since=0):
    return [(m["method"], m["path"]) for m in fake.mutations()[since:]]


def key_of(fake, binding_name):
    st = fake.state()
    for b in st["bindings"]:
        if b["name"] == binding_name:
            return b
    return None


def generated_named_xsappname():
    """SAP does not document the xsappname of the instance generated since 2023-10-16:
    with one that is not the GUID, get must still find SAP's key by its scopes."""
    with FakeBTP(preset="after-2023-10-16", variants=["generated-xsappname-name"]) as fake:
        rc, out, err, rep = run_get(fake, command="plan")
        S.eq("generated xsappname not the GUID: plan exits 0", rc, 0)
        S.check("... plan adopts SAP's key: its token carries the scopes",
                "calm-api-key-auto" in out and "would create" not in out, out[-1500:])
        k = out_path()
        rc, _, err, rep = run_get(fake, "--out", k)
        S.eq("... get exits 0", rc, 0)
        S.eq("... and sends no mutating request", muts(fake), [])
        S.check("... writes SAP's generated key", rc == 0 and has_cdm_scopes(key_token_scopes(json.load(open(k)))),
                err[-800:])
        S.check("... and advises deleting nothing", "delete" not in err.lower(), err[-800:])
        S.check("... the report names the binding adopted",
                rep and rep["result"].get("binding_name") == "calm-api-key-auto", rep and rep["result"])


def hand_made_deployment_key():
    """An admin already made an instance with the authorities and a key: adopted on
    every date, with a warning when --provisioned contradicts it."""
    with FakeBTP(preset="mid-2023", variants=["hand-deployment"]) as fake:
        k = out_path()
        rc, _, err, rep = run_get(fake, "--out", k)
        S.eq("hand-made Deployment key on a mid-2023 tenant: exit 0", rc, 0)
        S.eq("... no instance created or updated, no binding created", muts(fake), [])
        S.check("... the key is the hand-made one", rep and rep["result"].get("binding_name") == "transport-key",
                rep and rep["result"])
        rc, _, err, rep = run_get(fake, "--provisioned", "2023-08-21", "--out", out_path())
        S.check("--provisioned that contradicts the evidence: warning naming the key",
                rc == 0 and "transport-key" in err and "--provisioned" in err and "warn" in err.lower(), err[-1200:])
        S.eq("... and still no mutation", muts(fake), [])
        rc, out, err, rep = run_get(fake, "--instance-name", "calm.deploy.by-hand", command="plan")
        S.check("an existing instance whose name has '.' can be named (adopted)",
                rc == 0 and "transport-key" in out, (rc, err[-500:]))
        rc, out, err, rep = run_get(fake, "--instance-name", "new.with.dots", "--out", out_path())
        S.check("... but creating one with '.' is refused (exit 2)", rc == 2 and "'.'" in err, (rc, err[-500:]))


def update_only_what_calmbind_owns():
    # the generated key is an old instance-secret key (made before 2026): the update keeps it working
    with FakeBTP(preset="mid-2023", variants=["instance-secret"]) as fake:
        rc, _, err, rep = run_get(fake, "--instance-name", "SAPCloudALMAPIs-auto", "--out", out_path())
        S.check("naming SAP's generated instance without --update-instance: exit 2, the option named",
                rc == 2 and "--update-instance" in err, (rc, err[-800:]))
        S.eq("... nothing changed", muts(fake), [])
        k = out_path()
        rc, _, err, rep = run_get(fake, "--update-instance", "SAPCloudALMAPIs-auto", "--out", k)
        S.eq("--update-instance SAPCloudALMAPIs-auto: exit 0", rc, 0)
        S.check("... warns what the update replaces", "replace" in err and "authorities" in err, err[-1200:])
        got = muts(fake)
        S.check("... one update, one new binding", got.count(("POST", "/v1/service_bindings")) == 1
                and any(m[0] == "PATCH" for m in got), got)
        S.check("... keeps allowing the instance-secret keys of SAP's generated binding",
                any(m["method"] == "PATCH" and "instance-secret" in json.dumps(m["body"]) for m in fake.mutations()),
                [m["body"] for m in fake.mutations() if m["method"] == "PATCH"])
        S.check("... and the key works for Deployment", rc == 0 and has_cdm_scopes(key_token_scopes(json.load(open(k)))))
        old = key_of(fake, "calm-api-key-auto") or {}
        S.check("... and SAP's old instance-secret key still works after the update",
                old.get("id") in [c["binding_id"] for c in fake.state()["_credentials"]], old.get("id"))
        S.check("... never advises deleting SAP's generated key",
                not any("delete" in l.lower() and "calm-api-key-auto" in l for l in err.splitlines()), err[-1500:])
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, rep = run_get(fake, "--out", out_path())
        S.eq("mid-2023 plain get: exit 0 (a new instance of calmbind's own)", rc, 0)
        S.check("... SAP's generated key is never named for deletion",
                not any("delete" in l.lower() and "calm-api-key-auto" in l for l in err.splitlines()), err[-1500:])


def cf_instance_with_authorities():
    with FakeBTP(preset="cf-legacy", variants=["cf-authorities"]) as fake:
        if not fake.cf_env:
            return
        env = {"CF_USERNAME": fake.cf_env["CF_USERNAME"], "CF_PASSWORD": fake.cf_env["CF_PASSWORD"]}
        cf = ["--runtime", "cf", "--cf-api", fake.cf_env["CF_API"], "--cf-space", fake.cf_env["CF_SPACE_GUID"]]
        k = out_path()
        rc, _, err, rep = run_get(fake, *cf, "--out", k, env=env)
        S.eq("CF instance that already has the authorities and a working key: exit 0", rc, 0)
        S.eq("... no PATCH, no new key", [m for m in muts(fake) if m[0] in ("PATCH", "POST", "DELETE")], [])
        S.check("... the key carries the scopes", rc == 0 and has_cdm_scopes(key_token_scopes(json.load(open(k)))))


def refused_key_never_written():
    with FakeBTP(preset="after-2023-10-16") as fake:
        b = key_of(fake, "calm-api-key-auto")
        fake.revoke(b["id"])
        k = out_path()
        rc, _, err, rep = run_get(fake, "--out", k)
        S.eq("the only key is refused by XSUAA: exit 3", rc, 3)
        S.check("... nothing written", not os.path.exists(k))
        S.check("... the message names the refused key and the way out",
                "calm-api-key-auto" in err and "--binding-name" in err and len(err.strip().splitlines()[-1]) < 600,
                err[-800:])
        S.check("... and holds no secret", no_secret_in(err, fake))
        rc, _, err, rep = run_get(fake, "--out", k, "--no-verify")
        S.check("--no-verify writes it anyway", rc == 0 and os.path.exists(k), (rc, err[-400:]))


def refused_sm_key_is_named():
    with FakeBTP(preset="after-2023-10-16") as fake:
        k = fake.sm_key()
        k["clientsecret"] = "not-the-secret"
        bad = os.path.join(TMP, "bad-sm-key.json")
        with open(bad, "w") as f:
            json.dump(k, f)
        rc, _, err = itest_run(["get", "--sm-key", bad, "--out", out_path()])
        S.check("a refused Service Manager key: exit 3 naming that key and the way out",
                rc == 3 and "Service Manager key" in err and "create a new binding of the Service Manager instance"
                in err and "not-the-secret" not in err, (rc, err[-500:]))


def kyma_is_not_cloud_foundry():
    with FakeBTP(preset="mid-2023", variants=["kyma-owned"]) as fake:
        rc, out, err, rep = run_get(fake, "--instance-name", "calm-api-kyma", "--out", out_path())
        S.check("a Kyma-owned instance: manual step (exit 4) that names Kyma, not Cloud Foundry",
                rc == 4 and "Kyma" in err and "Cloud Foundry" not in err, (rc, err[-600:]))


generated_named_xsappname()
hand_made_deployment_key()
update_only_what_calmbind_owns()
cf_instance_with_authorities()
refused_key_never_written()
refused_sm_key_is_named()
kyma_is_not_cloud_foundry()
S.done()
