#!/usr/bin/env python3
"""Admins customise by dropping one policy.lua that replaces single policy functions and
inherits the rest (calm.policy.load). The command loads it once and hands it down: each
example in examples/policies/ changes what plan, get, rotate and fleet do against the fake
BTP (fleet: one policy per tenant); hooks see views (names, labels, dates, scopes), never a
key; a broken policy file, or a bad value from one, is exit 2 naming the file and field."""
import json
import os
import tempfile

import itest
from itest import ROOT, Suite
from harness import FakeBTP
from test_get_paths import run_get, key_token_scopes, has_cdm_scopes, no_secret_in

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


def write_policy(text):
    d = tempfile.mkdtemp(dir=TMP)
    with open(os.path.join(d, "policy.lua"), "w") as f:
        f.write(text)
    return d


def rotate(fake, policy, *args):
    rep = os.path.join(TMP, "rot%d.json" % len(os.listdir(TMP)))
    rc, _, err = itest.run(["rotate", "--sm-key", fake.sm_key_path, "--out", out_path(), "--report", rep,
                            "--timeout", "60"] + list(args), env=env(policy))
    return rc, err, (json.load(open(rep)) if os.path.exists(rep) else {})


def plans():
    """plan says what get would do under each example, where the stock plan says otherwise."""
    with FakeBTP(preset="mid-2023") as fake:
        _, stock, _, _ = run_get(fake, command="plan")
        rc, out, err, _ = run_get(fake, command="plan", env=env("extra-authorities"))
        S.check("extra authorities: plan names the three the policy gives (and the stock plan the built-in two)",
                rc == 0 and "the 3 authorities $XSMASTERAPPNAME.imp-cdm-feature-display-ui, "
                "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui, $XSMASTERAPPNAME.calm-api.analytics.read ("
                + os.path.join(EX, "extra-authorities", "policy.lua") + ": authorities)" in out
                and "the 2 authorities $XSMASTERAPPNAME.imp-cdm-feature-display-ui, "
                "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui (the built-in policy's authorities)" in stock, out[-900:])
        rc, out, err, _ = run_get(fake, command="plan", env=env("naming"))
        S.check("naming: plan shows the policy's labels on what it would create",
                rc == 0 and "labels: calmbind_authorities=$XSMASTERAPPNAME.imp-cdm-feature-display-ui,"
                "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui, cost_center=CC-4711, "
                "created_by=calmbind, owner=basis-team" in out, out[-900:])
    with FakeBTP(preset="after-2023-10-16") as fake:
        _, stock, _, _ = run_get(fake, command="plan")
        rc, out, err, _ = run_get(fake, command="plan", env=env("adopt-own-keys"))
        S.check("adopt rule: plan would create a key of its own where the stock plan adopts SAP's",
                rc == 0 and "binding: find 'calm-api-key-auto'" in stock
                and "binding: would create 'SAPCloudALMAPIs-auto-key'" in out, out[-900:])


def naming_fallback_binding():
    """The default binding name is taken by an older key without the authorities (made for
    monitoring): the Deployment key gets the policy's deployment_binding_name."""
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path(), "--scenario", "monitoring",
                                "--instance-name", "acme-basis-calm-deployment", env=env("naming"))
        S.eq("naming fallback: a monitoring key on the policy's instance first", rc, 0)
        n = len(fake.mutations())
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env("naming"))
        posts = [m["body"].get("name") for m in fake.mutations()[n:] if m["path"] == "/v1/service_bindings"]
        S.check("naming fallback: the Deployment binding is the policy's deployment_binding_name",
                rc == 0 and posts == ["acme-basis-calm-deployment-deploy-secret"], (rc, posts, err[-400:]))


def rotate_keeps_labels():
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env("naming"))
        S.eq("rotate under naming: get first", rc, 0)
        n = len(fake.mutations())
        rc, err, doc = rotate(fake, "naming")
        posts = [m["body"] for m in fake.mutations()[n:] if m["path"] == "/v1/service_bindings"]
        labels = posts[0].get("labels", {}) if posts else {}
        S.check("rotate: the new binding carries the policy's labels next to calmbind's",
                rc == 0 and labels.get("cost_center") == ["CC-4711"] and labels.get("owner") == ["basis-team"]
                and labels.get("created_by") == ["calmbind"], (rc, labels, err[-400:]))
        S.check("rotate: ... and the policy's binding name", posts
                and posts[0]["name"].startswith("acme-basis-calm-deployment-secret-"), posts and posts[0]["name"])
        S.eq("rotate: the report names the policy file", doc.get("policy"),
             os.path.join(EX, "naming", "policy.lua"))


def rotate_extra_authorities():
    """rotate under extra-authorities: after a stock get it first wants get's authority
    update (drift); after get, its new key is labelled with the three authorities and
    its token, verified before it is written, carries them."""
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path())
        S.eq("rotate under extra-authorities: a stock get first", rc, 0)
        n = len(fake.mutations())
        rc, err, doc = rotate(fake, "extra-authorities")
        S.check("rotate: exit 4 naming the update get would make first, nothing changed",
                rc == 4 and "calmbind get would first update instance 'calm-api-deployment'" in err
                and fake.mutations()[n:] == [], (rc, err[-400:]))
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env("extra-authorities"))
        S.eq("rotate under extra-authorities: get applies the policy", rc, 0)
        n = len(fake.mutations())
        k = out_path()
        rep = os.path.join(TMP, "rot%d.json" % len(os.listdir(TMP)))
        rc, _, err = itest.run(["rotate", "--sm-key", fake.sm_key_path, "--out", k, "--report", rep,
                                "--timeout", "60"], env=env("extra-authorities"))
        posts = [m["body"] for m in fake.mutations()[n:] if m["path"] == "/v1/service_bindings"]
        S.check("rotate: the new binding is labelled with the policy's three authorities",
                rc == 0 and posts and posts[0]["labels"].get("calmbind_authorities") == [
                    "$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui",
                    "$XSMASTERAPPNAME.calm-api.analytics.read"], (rc, posts, err[-400:]))
        scopes = key_token_scopes(json.load(open(k))) if rc == 0 else []
        S.check("rotate: ... and its key carries them", has_cdm_scopes(scopes)
                and any(s.endswith(".calm-api.analytics.read") for s in scopes), scopes)


def rotate_adopt_own_keys():
    """rotate under adopt-own-keys on a tenant whose get made a key of its own: the new key
    replaces calmbind's key; SAP's generated key is kept, whichever policy."""
    with FakeBTP(preset="after-2023-10-16") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env("adopt-own-keys"))
        S.eq("rotate under adopt-own-keys: get makes calmbind's own key first", rc, 0)
        rc, err, doc = rotate(fake, "adopt-own-keys", "--delete-old", "--yes")
        rep = {e["name"]: e for e in doc.get("replaced", [])}
        S.check("rotate: calmbind's key (the policy's) is replaced and deleted, SAP's kept",
                rc == 0 and rep.get("SAPCloudALMAPIs-auto-key", {}).get("deleted")
                and not rep.get("calm-api-key-auto", {}).get("replace"), (rc, doc.get("replaced"), err[-400:]))
        S.eq("rotate: the report names the policy file", doc.get("policy"),
             os.path.join(EX, "adopt-own-keys", "policy.lua"))


VIEWS = r"""
local function keys(t)
  local k = {}
  for n in pairs(t or {}) do k[#k + 1] = n end
  table.sort(k)
  return table.concat(k, ",")
end
local function tell(field, c)
  warn(string.format("hook %s c={%s} instance={%s} binding={%s} iname=%s bname=%s scopes=%s", field, keys(c),
    keys(c.instance), keys(c.binding), tostring(c.instance and c.instance.name),
    tostring(c.binding and c.binding.name), table.concat(c.binding and c.binding.scopes or {}, " ")))
end
local default = require "calm.policy.default"
local out = {}
for _, f in ipairs { "instance_name", "binding_name", "deployment_binding_name", "authorities", "labels",
                     "adoptable", "adopt_rank" } do
  out[f] = function(c) tell(f, c); return default[f](c) end
end
return out
"""


def hook_views():
    """Every hook gets one table: the context and the views it is about, never a key."""
    d = write_policy(VIEWS)
    with FakeBTP(preset="after-2023-10-16") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
        hooks = [l for l in err.splitlines() if "hook " in l]
        adopt = [l for l in hooks if "hook adoptable " in l]
        S.check("views: adoptable(c) gets c.binding and c.instance with names and the token's scopes",
                rc == 0 and adopt and all("iname=SAPCloudALMAPIs-auto bname=calm-api-key-auto" in l
                                          and "imp-cdm-feature-display-ui" in l for l in adopt), hooks or err[-600:])
        want_c = "c={binding,credential_type,instance,runtime,scenario}"
        S.check("views: one convention, c = context + views", adopt and all(want_c in l for l in adopt), adopt)
        S.check("views: a binding view has no credentials, an instance view no raw record",
                hooks and not any(w in l for l in hooks for w in ("credentials", "raw", "clientsecret")),
                hooks)
        S.check("views: no secret the fake issued reaches a hook", no_secret_in(err, fake))
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
        names = [l for l in err.splitlines() if "hook binding_name " in l]
        S.check("views: binding_name(c) gets the instance in c.instance",
                rc == 0 and names and all("iname=calm-api-deployment" in l for l in names), names or err[-600:])
        labels = [l for l in err.splitlines() if "hook labels " in l]
        S.check("views: labels(c) for the binding gets c.instance and c.binding",
                any("iname=calm-api-deployment bname=calm-api-deployment-key" in l for l in labels), labels)


def policy_value_errors():
    """A bad value from a policy names the file and the field, not an option nobody gave."""
    cases = [
        ("instance_name = function(c) return 'acme.calm' end", "instance_name 'acme.calm': no '.' allowed"),
        ("binding_name = function(c) return 'S4H_100_00' end", "binding_name 'S4H_100_00' looks like <SID>"),
        ("authorities = function(c) return { x = 1 } end", "authorities gave a table that is not a list"),
        ("labels = function(c) return { owner = {} } end", "labels 'owner' is a table"),
        ("instance_name = function(c) return c.nothing.here end", "instance_name: "),
    ]
    for body, want in cases:
        d = write_policy("return { %s }\n" % body)
        f = os.path.join(d, "policy.lua")
        with FakeBTP(preset="mid-2023") as fake:
            rc, out, err, _ = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
            S.check("policy error %r: exit 2 naming %s and the field" % (want, f),
                    rc == 2 and (f + ": " + want) in err and "--instance-name" not in err
                    and "--binding-name" not in err, (rc, err[-400:]))
            S.check("... nothing created", not [m for m in fake.mutations() if m["method"] == "POST"])


def fleet_policies():
    """Tenants with different policies in one fleet run: each gets its own, a tenant without one
    the stock behaviour; paths are relative to the inventory file."""
    inv_dir = tempfile.mkdtemp(dir=TMP)
    rel = lambda name: os.path.relpath(os.path.join(EX, name), inv_dir)
    with FakeBTP(tenants=4, presets=["mid-2023", "mid-2023", "after-2023-10-16", "mid-2023"]) as fake:
        fn, fx, fa, fs = fake.tenants
        inv = os.path.join(inv_dir, "fleet.json")
        with open(inv, "w") as f:
            json.dump({"tenants": [
                {"name": "naming", "sm_key": fn.sm_key_path, "policy": rel("naming")},
                {"name": "extra", "sm_key": fx.sm_key_path, "policy": rel("extra-authorities") + "/policy.lua"},
                {"name": "own", "sm_key": fa.sm_key_path, "policy": rel("adopt-own-keys")},
                {"name": "stock", "sm_key": fs.sm_key_path}]}, f)
        out_dir = tempfile.mkdtemp(dir=TMP)
        rc, out, err = itest.run(["fleet", inv, "--out-dir", out_dir, "--timeout", "120"],
                                 env={"CALMBIND_POLL_INTERVAL": "0.05"}, timeout=180)
        S.eq("fleet with per-tenant policies: exit 0", rc, 0)

        def posts(t, path):
            return [m["body"] for m in fake.mutations(tenant=t.name) if m["method"] == "POST" and m["path"] == path]
        S.eq("fleet: the naming tenant's names", [b["name"] for b in posts(fn, "/v1/service_instances")
                                                  + posts(fn, "/v1/service_bindings")],
             ["acme-basis-calm-deployment", "acme-basis-calm-deployment-secret"])
        S.check("fleet: ... and its labels", all(b["labels"].get("cost_center") == ["CC-4711"]
                                                for b in posts(fn, "/v1/service_bindings")), posts(fn, "/v1/service_bindings"))
        auth = [b["parameters"]["xs-security"]["authorities"] for b in posts(fx, "/v1/service_instances")]
        S.check("fleet: the extra-authorities tenant's instance gets three",
                auth and auth[0][-1] == "$XSMASTERAPPNAME.calm-api.analytics.read" and len(auth[0]) == 3, auth)
        S.eq("fleet: the adopt-own-keys tenant makes a key of its own",
             [b["name"] for b in posts(fa, "/v1/service_bindings")], ["SAPCloudALMAPIs-auto-key"])
        stock = posts(fs, "/v1/service_instances")
        S.check("fleet: the tenant without a policy is stock", [b["name"] for b in stock] == ["calm-api-deployment"]
                and "cost_center" not in stock[0]["labels"]
                and len(stock[0]["parameters"]["xs-security"]["authorities"]) == 2, stock)
    bad = write_policy("return { instance_nmae = function() return 'x' end }\n")
    with FakeBTP(tenants=2, presets=["mid-2023", "mid-2023"]) as fake:
        f1, f2 = fake.tenants
        inv = os.path.join(inv_dir, "bad.json")
        with open(inv, "w") as f:
            json.dump({"tenants": [{"name": "fine", "sm_key": f1.sm_key_path},
                                   {"name": "typo", "sm_key": f2.sm_key_path, "policy": bad}]}, f)
        rc, out, err = itest.run(["fleet", inv, "--out-dir", tempfile.mkdtemp(dir=TMP)], env={}, timeout=60)
        row = [l for l in out.splitlines() if l.startswith("typo ")]
        S.check("fleet: a tenant's broken policy is its own row, exit 2, naming the file and the field",
                rc == 1 and row and row[0].split()[1] == "2" and os.path.join(bad, "policy.lua") in err
                and "instance_nmae" in err and "fleet: [" in err and "typo: exit 2" in err, (rc, out, err[-400:]))
        S.check("... the other tenant runs", any(l.split()[:2] == ["fine", "0"] for l in out.splitlines()), out)
        S.eq("... and the broken one sends no request", fake.requests(tenant=f2.name), [])


def path_override():
    """docs/lua-api.md's example: a path's file dropped into CALMBIND_PATH replaces the
    built-in one (here mid-2023 Deployment becomes a manual step, Monitoring stays)."""
    with open(os.path.join(ROOT, "docs", "lua-api.md"), encoding="utf-8") as fh:
        page = fh.read()
    start = page.index("-- calm/model/paths/mid_2023.lua in CALMBIND_PATH")
    code = page[start:page.index("```", start)]
    d = os.path.join(TMP, "path-override")
    os.makedirs(os.path.join(d, "calm", "model", "paths"))
    with open(os.path.join(d, "calm", "model", "paths", "mid_2023.lua"), "w") as fh:
        fh.write(code)
    with FakeBTP(preset="mid-2023") as fake:
        rc, out, err, rep = run_get(fake, "--scenario", "monitoring", command="plan")
        S.check("path file: built in, mid-2023 Monitoring takes SAP's generated instance",
                rc == 0 and (rep or {}).get("steps", {}).get("instance", {}).get("op") == "adopt", out[-600:])
        rc, out, err, rep = run_get(fake, command="plan", env={"CALMBIND_PATH": d})
        S.check("path file: the admin's mid_2023.lua makes Deployment a manual step (exit 4)",
                rc == 4 and "from the Basis team" in out and "would create" not in out, (rc, out[-600:], err[-300:]))
        rc, out, err, rep = run_get(fake, "--scenario", "monitoring", command="plan", env={"CALMBIND_PATH": d})
        S.check("path file: ... and Monitoring still takes SAP's generated instance",
                rc == 0 and (rep or {}).get("steps", {}).get("instance", {}).get("op") == "adopt", out[-600:])
        n = len(fake.mutations())
        rc, out, err, rep = run_get(fake, "--out", out_path(), env={"CALMBIND_PATH": d})
        S.check("path file: get stops there too, before any change",
                rc == 4 and fake.mutations()[n:] == [] and "Basis team" in err, (rc, err[-400:]))


naming()
naming_fallback_binding()
plans()
rotate_keeps_labels()
rotate_extra_authorities()
rotate_adopt_own_keys()
hook_views()
policy_value_errors()
fleet_policies()
extra_authorities()
adopt_own_keys()
broken_policy()
empty_authorities()
listed()
path_override()
S.done()
