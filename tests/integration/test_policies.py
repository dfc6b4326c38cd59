#!/usr/bin/env python3
"""Admins customise by dropping one policy.lua that replaces single policy functions and
inherits the rest (calm.policy.load). Each example in examples/policies/ runs against the fake
BTP through plan and get; a broken policy file is exit 2 before any request."""
import json
import os
import tempfile

from itest import ROOT, Suite
from harness import FakeBTP
from test_get_paths import run_get, key_token_scopes, has_cdm_scopes

S = Suite("policies")
TMP = tempfile.mkdtemp()
EX = os.path.join(ROOT, "examples", "policies")


def env(name):
    return {"CALMBIND_PATH": os.path.join(EX, name)}


def out_path():
    return os.path.join(TMP, "k%d.json" % len(os.listdir(TMP)))


def creates(fake, since=0):
    return [m for m in fake.mutations()[since:] if m["method"] == "POST"]


def naming():
    with FakeBTP(preset="mid-2023") as fake:
        rc, out, err, rep = run_get(fake, command="plan", env=env("naming"))
        S.check("naming: plan follows the policy", rc == 0 and "'acme-basis-calm-deployment'" in out
                and "'acme-basis-calm-deployment-secret'" in out, out[-800:])
        rc, _, err, rep = run_get(fake, "--out", out_path(), env=env("naming"))
        S.eq("naming: get exits 0", rc, 0)
        posts = creates(fake)
        S.eq("naming: get follows it too", [p["body"].get("name") for p in posts],
             ["acme-basis-calm-deployment", "acme-basis-calm-deployment-secret"])
        S.check("naming: the policy's labels next to calmbind's own",
                posts and posts[0]["body"]["labels"].get("cost_center") == ["CC-4711"]
                and posts[0]["body"]["labels"].get("created_by") == ["calmbind"], posts and posts[0]["body"])
        S.eq("naming: xsappname follows the instance name",
             posts and posts[0]["body"]["parameters"]["xs-security"]["xsappname"], "acme-basis-calm-deployment")
        n = len(fake.mutations())
        rc, _, err, rep = run_get(fake, "--out", out_path(), env=env("naming"))
        S.check("naming: a rerun converges", rc == 0 and fake.mutations()[n:] == [], (rc, err[-300:]))


def extra_authorities():
    with FakeBTP(preset="mid-2023") as fake:
        k = out_path()
        rc, _, err, rep = run_get(fake, "--out", k, env=env("extra-authorities"))
        S.eq("extra authorities: get exits 0", rc, 0)
        post = [p for p in creates(fake) if p["path"] == "/v1/service_instances"]
        auth = post and post[0]["body"]["parameters"]["xs-security"]["authorities"]
        S.eq("extra authorities: the two Deployment ones and the extra one", auth,
             ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui",
              "$XSMASTERAPPNAME.calm-api.analytics.read"])
        scopes = key_token_scopes(json.load(open(k))) if rc == 0 else []
        S.check("extra authorities: the key's token carries all three",
                has_cdm_scopes(scopes) and any(s.endswith(".calm-api.analytics.read") for s in scopes), scopes)


def adopt_own_keys():
    with FakeBTP(preset="after-2023-10-16") as fake:
        sap = [b for b in fake.state()["bindings"] if b["name"] == "calm-api-key-auto"][0]
        k = out_path()
        rc, _, err, rep = run_get(fake, "--out", k, env=env("adopt-own-keys"))
        S.eq("adopt rule: get exits 0", rc, 0)
        posts = creates(fake)
        S.check("adopt rule: SAP's key is not adopted, one binding of calmbind's own is made",
                len(posts) == 1 and posts[0]["path"] == "/v1/service_bindings"
                and (rep or {}).get("result", {}).get("binding_id") != sap["id"], (posts, err[-400:]))
        S.check("adopt rule: SAP's generated key is left as it was",
                not any(m["method"] in ("PATCH", "DELETE") for m in fake.mutations()))
        n = len(fake.mutations())
        rc, _, err, rep = run_get(fake, "--out", out_path(), env=env("adopt-own-keys"))
        S.check("adopt rule: a rerun adopts calmbind's key", rc == 0 and fake.mutations()[n:] == [], err[-300:])
    with FakeBTP(preset="after-2023-10-16") as fake:
        rc, _, err, rep = run_get(fake, "--out", out_path())
        S.check("without the policy SAP's key is adopted", rc == 0 and fake.mutations() == [], err[-300:])


def broken_policy():
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "policy.lua"), "w") as f:
        f.write("return { instance_nmae = function() return 'x' end }\n")
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, rep = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
        S.check("a misspelt policy: exit 2 naming the field and the known ones",
                rc == 2 and "instance_nmae" in err and "instance_name" in err, (rc, err[-300:]))
        S.eq("... before any request", fake.requests(), [])
    with open(os.path.join(d, "policy.lua"), "w") as f:
        f.write("return 42\n")
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, rep = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
        S.check("a policy file that returns no table: exit 2", rc == 2 and "policy" in err, (rc, err[-300:]))


def empty_authorities():
    """A policy whose authorities list is empty: the broker gets a JSON array ([]), which it
    accepts, not an object ({}), which it refuses (authorities must be an array)."""
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "policy.lua"), "w") as f:
        f.write("return { authorities = function() return {} end }\n")
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, rep = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
        post = [p for p in creates(fake) if p["path"] == "/v1/service_instances"]
        auth = post and post[0]["body"]["parameters"]["xs-security"].get("authorities")
        S.check("empty authorities: sent as [] and the instance created",
                auth == [] and "must be an array" not in err and fake.state()["instances"], (auth, err[-300:]))
        S.check("... the key then lacks the Deployment scopes: exit 6, nothing written",
                rc == 6 and "imp-cdm-feature" in err, (rc, err[-300:]))


def listed():
    import itest
    rc, out, err = itest.run(["scripts"], env=env("naming"))
    S.check("calmbind scripts lists the policy with its file",
            rc == 0 and "policy.lua" in out and os.path.join(EX, "naming") in out, out[-600:])


naming()
extra_authorities()
adopt_own_keys()
broken_policy()
empty_authorities()
listed()
S.done()
