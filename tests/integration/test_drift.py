#!/usr/bin/env python3
"""Drift: after a stock get, a policy that changes the labels or the authorities of what
calmbind created shows in plan as updates in place (field old -> new), plan
--detailed-exitcode exits 7 and plan --json carries the differences; get applies them
(label PATCHes as Service Manager takes them, the instance update with the policy's
authorities, then a new key, verified to carry them) and a plan after it shows no drift
(exit 0). What calmbind did not create is reported and left as it is."""
import json
import os
import tempfile

from itest import ROOT, Suite, run
from harness import FakeBTP
from test_get_paths import run_get, key_token_scopes

S = Suite("drift")
TMP = tempfile.mkdtemp()
EX = os.path.join(ROOT, "examples", "policies")
EXTRA = "$XSMASTERAPPNAME.calm-api.analytics.read"
CDM = ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]


def env(name):
    return {"CALMBIND_PATH": name if os.path.isabs(name) else os.path.join(EX, name)}


def out_path():
    return os.path.join(TMP, "k%d.json" % len(os.listdir(TMP)))


def write_policy(text):
    d = tempfile.mkdtemp(dir=TMP)
    with open(os.path.join(d, "policy.lua"), "w") as f:
        f.write(text)
    return d


def patches(fake, since, path_part):
    return [m for m in fake.mutations()[since:] if m["method"] == "PATCH" and path_part in m["path"]]


def posts(fake, since, path):
    return [m["body"] for m in fake.mutations()[since:] if m["method"] == "POST" and m["path"] == path]


def ops(patch):
    return [(o.get("op"), o.get("values")) for o in patch["body"].get("labels", [])]


def by_name(fake, kind, name):
    hits = [x for x in fake.state()[kind] if x["name"] == name]
    return hits[0] if hits else {}


def authorities():
    """extra-authorities after a stock get: the instance calmbind made gets the third
    authority, then a new key that carries it."""
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path())
        S.eq("authorities: a stock get first", rc, 0)
        inst = by_name(fake, "instances", "calm-api-deployment")
        S.eq("... its label records the authorities it was given", inst.get("labels", {}).get(
            "calmbind_authorities"), CDM)
        rc, out, err, rep = run_get(fake, "--detailed-exitcode", command="plan", env=env("extra-authorities"))
        S.eq("plan --detailed-exitcode under extra-authorities: exit 7", rc, 7)
        S.check("plan shows the instance's update in place, the authorities old -> new",
                "~ update in-place instance 'calm-api-deployment' (%s)" % inst.get("id") in out
                and "~ authorities: [%s] -> [%s]" % (", ".join(CDM), ", ".join(CDM + [EXTRA])) in out, out[-1500:])
        S.check("... names the policy's authorities and file, and a new key for the old one lacks it",
                "token scopes: lacks " + EXTRA in out and "replaced by a new key" in out
                and "binding: would create 'calm-api-deployment-deployment-key'" in out
                and os.path.join(EX, "extra-authorities", "policy.lua") in out, out[-1500:])
        steps = (rep or {}).get("steps", {})
        S.check("the report carries the drift", any(c.get("field") == "authorities" and c.get("new") == CDM + [EXTRA]
                                                   for d in steps.get("drift", []) for c in d.get("changes", []))
                and steps.get("instance", {}).get("op") == "update", steps.get("drift"))
        rc, js, err = run(["plan", "--sm-key", fake.sm_key_path, "--json"], env=env("extra-authorities"))
        S.check("plan --json carries it too", rc == 0 and json.loads(js)["steps"].get("drift"), js[-400:])
        n = len(fake.mutations())
        k = out_path()
        rc, _, err, rep = run_get(fake, "--out", k, env=env("extra-authorities"))
        S.eq("get applies it: exit 0", rc, 0)
        ups = patches(fake, n, "/v1/service_instances/")
        xs = ups and ups[0]["body"].get("parameters", {}).get("xs-security", {})
        S.check("get: one instance update with the three authorities, keeping the xsappname",
                len(ups) >= 1 and xs.get("authorities") == CDM + [EXTRA] and xs.get("xsappname") == "calm-api-deployment",
                [u["body"] for u in ups])
        # (the fake's log redacts every field named "key")
        S.check("... the label changed by a remove, then an add in a second PATCH",
                len(ups) == 2 and ops(ups[0]) == [("remove", None)] and ops(ups[1]) == [("add", CDM + [EXTRA])]
                and by_name(fake, "instances", "calm-api-deployment")["labels"].get("calmbind_authorities")
                == CDM + [EXTRA], [u["body"] for u in ups])
        new = posts(fake, n, "/v1/service_bindings")
        S.check("get: then a new binding", [b["name"] for b in new] == ["calm-api-deployment-deployment-key"], new)
        scopes = key_token_scopes(json.load(open(k))) if rc == 0 else []
        S.check("the key written carries the new authority", any(s.endswith(".calm-api.analytics.read") for s in scopes),
                scopes)
        S.check("... and get verified it", any(c.get("name") == "verify" and c.get("ok") for c in (rep or {}).get(
            "checks", [])) and "verified" in err, err[-500:])
        S.check("get names the old key to delete once the new one is in use",
                "calm-api-deployment-key" in err and "to delete once the new key is in use" in err, err[-800:])
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env("extra-authorities"))
        S.check("a plan after it shows no drift: exit 0", rc == 0 and "drift:" not in out, (rc, out[-800:]))
        n = len(fake.mutations())
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env("extra-authorities"))
        S.check("a second get changes nothing and adopts the new key", rc == 0 and fake.mutations()[n:] == []
                and "calm-api-deployment-deployment-key" in err, (rc, fake.mutations()[n:], err[-400:]))
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan")
        S.check("back on the built-in policy: the two authorities are drift again (exit 7)",
                rc == 7 and "~ authorities: [%s] -> [%s]" % (", ".join(CDM + [EXTRA]), ", ".join(CDM)) in out,
                (rc, out[-900:]))


def labels():
    """naming's labels after a stock get: instance and binding get them by PATCH."""
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path())
        S.eq("labels: a stock get first", rc, 0)
        pol = write_policy('return { labels = function() return { cost_center = "CC-4711", owner = "basis-team" } end }\n')
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env(pol))
        inst = by_name(fake, "instances", "calm-api-deployment")
        b = by_name(fake, "bindings", "calm-api-deployment-key")
        S.eq("plan --detailed-exitcode with new labels: exit 7", rc, 7)
        S.check("plan shows each label added, on the instance and the binding",
                "~ update in-place instance 'calm-api-deployment' (%s)" % inst.get("id") in out
                and "~ update in-place binding 'calm-api-deployment-key' (%s)" % b.get("id") in out
                and out.count('~ labels.cost_center: (none) -> "CC-4711"') == 2
                and out.count('~ labels.owner: (none) -> "basis-team"') == 2, out[-1200:])
        n = len(fake.mutations())
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env(pol))
        S.eq("get applies them: exit 0", rc, 0)
        S.check("... by label PATCHes only: nothing created, no parameters sent",
                posts(fake, n, "/v1/service_instances") == [] and posts(fake, n, "/v1/service_bindings") == []
                and all("parameters" not in m["body"] for m in patches(fake, n, "/v1/")), fake.mutations()[n:])
        inst = by_name(fake, "instances", "calm-api-deployment")
        b = by_name(fake, "bindings", "calm-api-deployment-key")
        S.check("the instance and the binding carry them",
                inst["labels"].get("cost_center") == ["CC-4711"] and b["labels"].get("owner") == ["basis-team"]
                and inst["labels"].get("created_by") == ["calmbind"], (inst["labels"], b["labels"]))
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env(pol))
        S.check("plan after it: no drift, exit 0", rc == 0 and "drift:" not in out, (rc, out[-600:]))
        pol2 = write_policy('return { labels = function() return { cost_center = "CC-9", owner = "basis-team" } end }\n')
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env(pol2))
        S.check("a changed value: old -> new, exit 7", rc == 7 and '~ labels.cost_center: "CC-4711" -> "CC-9"' in out
                and "labels.owner" not in out, (rc, out[-600:]))
        n = len(fake.mutations())
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env(pol2))
        ps = patches(fake, n, "/v1/service_instances/")
        S.check("get: a remove, then an add in a second PATCH (no replace in Service Manager)",
                rc == 0 and [ops(p) for p in ps] == [[("remove", None)], [("add", ["CC-9"])]]
                and by_name(fake, "instances", "calm-api-deployment")["labels"].get("cost_center") == ["CC-9"],
                (rc, ps, err[-300:]))
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env(pol2))
        S.eq("... then no drift", rc, 0)


def names():
    """naming after a stock get: calmbind's instance is renamed as the policy now names it
    (its xsappname stays) and gets the policy's labels; the binding keeps its name."""
    with FakeBTP(preset="mid-2023") as fake:
        rc, _, err, _ = run_get(fake, "--out", out_path())
        S.eq("names: a stock get first", rc, 0)
        inst = by_name(fake, "instances", "calm-api-deployment")
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env("naming"))
        S.check("plan under naming: the instance's name old -> new and its labels, exit 7",
                rc == 7 and '~ name: "calm-api-deployment" -> "acme-basis-calm-deployment"' in out
                and '~ labels.cost_center: (none) -> "CC-4711"' in out
                and "its xsappname stays calm-api-deployment" in out, (rc, out[-1200:]))
        n = len(fake.mutations())
        k = out_path()
        rc, _, err, _ = run_get(fake, "--out", k, env=env("naming"))
        ups = patches(fake, n, "/v1/service_instances/")
        S.check("get renames it in one PATCH with the labels, and creates nothing",
                rc == 0 and len(ups) == 1 and ups[0]["body"].get("name") == "acme-basis-calm-deployment"
                and posts(fake, n, "/v1/service_bindings") == [], (rc, ups, err[-400:]))
        now = [i for i in fake.state()["instances"] if i["id"] == inst.get("id")]
        S.check("the instance is called so now, with the policy's labels",
                now and now[0]["name"] == "acme-basis-calm-deployment"
                and now[0]["labels"].get("owner") == ["basis-team"], now)
        S.check("the key written names the instance by its new name", rc == 0
                and "acme-basis-calm-deployment" in err, err[-400:])
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env("naming"))
        S.check("plan after it: no drift, exit 0", rc == 0 and "drift:" not in out, (rc, out[-800:]))


def cf():
    """--runtime cf: calmbind's instance in the space gets the policy's labels (one metadata
    PATCH) and, when its key's token lacks one of the policy's authorities, the update and a
    new key; the key's own labels are told, not changed."""
    from test_cf_legacy import cf_args, cf_env
    with FakeBTP(preset="cf-legacy") as fake:
        rc, _, err, _ = run_get(fake, *cf_args(fake, "--out", out_path()), env=cf_env(fake))
        S.eq("cf: a stock get first (calmbind's instance in the space)", rc, 0)
        pol = write_policy('return { labels = function() return { owner = "basis-team" } end }\n')
        e = dict(cf_env(fake), **env(pol))
        rc, out, err, _ = run_get(fake, *cf_args(fake, "--detailed-exitcode"), command="plan", env=e)
        S.check("cf: plan shows the instance's label added, exit 7; the key's told and left",
                rc == 7 and "~ update in-place instance 'calm-api-deployment'" in out
                and '~ labels.owner: (none) -> "basis-team"' in out
                and "a Cloud Foundry service key keeps the labels it was made with: left as it is" in out,
                (rc, out[-1000:]))
        n = len(fake.mutations())
        rc, _, err, _ = run_get(fake, *cf_args(fake, "--out", out_path()), env=e)
        ups = [m for m in fake.mutations()[n:] if m["method"] == "PATCH"]
        S.check("cf: get sets it in one PATCH of metadata.labels",
                rc == 0 and len(ups) == 1 and ups[0]["body"].get("metadata", {}).get("labels") == {"owner": "basis-team"}
                and "parameters" not in ups[0]["body"], (rc, ups, err[-400:]))
        rc, out, err, _ = run_get(fake, *cf_args(fake, "--detailed-exitcode"), command="plan", env=e)
        S.eq("cf: then plan exits 0", rc, 0)
        e = dict(cf_env(fake), **env("extra-authorities"))
        rc, out, err, _ = run_get(fake, *cf_args(fake, "--detailed-exitcode"), command="plan", env=e)
        S.check("cf: extra-authorities: the authorities to give, told by the key's token, exit 7",
                rc == 7 and "~ authorities: (not recorded" in out and "token scopes: lacks " + EXTRA in out,
                (rc, out[-1000:]))
        n = len(fake.mutations())
        k = out_path()
        rc, _, err, _ = run_get(fake, *cf_args(fake, "--out", k), env=e)
        ups = [m for m in fake.mutations()[n:] if m["method"] == "PATCH"]
        keys = [m["body"]["name"] for m in fake.mutations()[n:] if m["method"] == "POST"]
        S.check("cf: get updates the instance with the three and makes a new key",
                rc == 0 and ups and ups[0]["body"]["parameters"]["xs-security"]["authorities"] == CDM + [EXTRA]
                and keys == ["calm-api-deployment-deployment-key"], (rc, ups, keys, err[-400:]))
        scopes = key_token_scopes(json.load(open(k))) if rc == 0 else []
        S.check("cf: the key written carries it", any(s.endswith(".calm-api.analytics.read") for s in scopes), scopes)
        rc, out, err, _ = run_get(fake, *cf_args(fake, "--detailed-exitcode"), command="plan", env=e)
        S.check("cf: then plan exits 0", rc == 0 and "drift:" not in out, (rc, out[-600:]))


def fleet():
    """fleet follows each tenant's policy: a tenant whose inventory policy changed what
    calmbind made is 7 under --command plan --detailed-exitcode, a fleet get applies it, and
    the next fleet plan is 0 for both."""
    with FakeBTP(tenants=2, presets=["mid-2023", "mid-2023"]) as fake:
        ta, tb = fake.tenants
        for t in (ta, tb):
            rc, _, err = run(["get", "--sm-key", t.sm_key_path, "--out", out_path()], env={})
            S.eq("fleet: a stock get of tenant %s first" % t.name, rc, 0)
        inv = os.path.join(TMP, "fleet-drift.json")
        with open(inv, "w") as f:
            json.dump({"tenants": [{"name": "extra", "sm_key": ta.sm_key_path,
                                    "policy": os.path.join(EX, "extra-authorities")},
                                   {"name": "stock", "sm_key": tb.sm_key_path}]}, f)

        def fleet_run(*args):
            rep = os.path.join(TMP, "fleet-rep%d.json" % len(os.listdir(TMP)))
            rc, out, err = run(["fleet", inv, "--report", rep, "--timeout", "120"] + list(args),
                               env={"CALMBIND_POLL_INTERVAL": "0.05"}, timeout=180)
            doc = json.load(open(rep)) if os.path.exists(rep) else {}
            return rc, out, {t["name"]: t["exit"] for t in doc.get("tenants", [])}
        rc, out, exits = fleet_run("--command", "plan", "--detailed-exitcode")
        S.check("fleet plan: the tenant whose policy drifted is 7, the other 0",
                rc == 7 and exits == {"extra": 7, "stock": 0} and "~ authorities:" in out, (rc, exits, out[-600:]))
        rc, out, exits = fleet_run("--out-dir", tempfile.mkdtemp(dir=TMP))
        S.check("fleet get applies it", rc == 0 and exits == {"extra": 0, "stock": 0}
                and [m["body"]["name"] for m in fake.mutations(tenant=ta.name) if m["method"] == "POST"][-1:]
                == ["calm-api-deployment-deployment-key"]
                and not [m for m in fake.mutations(tenant=tb.name) if m["method"] in ("PATCH", "DELETE")],
                (rc, exits, out[-400:]))
        rc, out, exits = fleet_run("--command", "plan", "--detailed-exitcode")
        S.check("fleet plan after it: 0 for both", rc == 0 and exits == {"extra": 0, "stock": 0}, (rc, exits))


def not_ours():
    """SAP's generated instance and key: the policy's labels and authorities are told, never
    applied."""
    with FakeBTP(preset="after-2023-10-16") as fake:
        pol = write_policy('local d = require "calm.policy.default"\n'
                           'return { labels = function() return { owner = "basis-team" } end,\n'
                           '  authorities = function(c) local a = d.authorities(c); '
                           'a[#a + 1] = "$XSMASTERAPPNAME.calm-api.analytics.read"; return a end }\n')
        rc, out, err, _ = run_get(fake, "--detailed-exitcode", command="plan", env=env(pol))
        S.check("not calmbind's: reported, left as it is, exit 0",
                rc == 0 and "instance 'SAPCloudALMAPIs-auto'" in out and "not calmbind's: left as it is" in out
                and 'labels.owner: (none) -> "basis-team"' in out and "token scopes: lacks " + EXTRA in out
                and "update in-place" not in out, (rc, out[-900:]))
        rc, _, err, _ = run_get(fake, "--out", out_path(), env=env(pol))
        S.check("get changes nothing of SAP's", rc == 0 and fake.mutations() == [], (rc, fake.mutations(), err[-300:]))


authorities()
labels()
names()
cf()
fleet()
not_ours()
S.done()
