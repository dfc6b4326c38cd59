#!/usr/bin/env python3
"""calmbind get against the fake BTP for every cell of the path table (three provisioning
dates x two scenarios), each run twice: the requests sent (exact parameters JSON, no
second create on the rerun), the key printed equals the one the fake issued, and for
Deployment the key's token carries both imp-cdm-feature-* scopes.

The helpers at the top are shared by the other path tests (test_plan.py, ...)."""
import base64
import json
import os
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402

AUTHORITIES = ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
               "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]
CDM_SCOPES = ("imp-cdm-feature-display-ui", "imp-cdm-feature-manage-ui")
# Operations are polled fast against the fake (the product default starts at 2 s).
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}


def run_get(fake, *extra, cis=False, command="get", env=None, timeout=120):
    """Runs calmbind get/plan against fake; returns (rc, stdout, stderr, report or None)."""
    rep = os.path.join(fake.dir, "report-%d.json" % len(os.listdir(fake.dir)))
    args = [command, "--sm-key", fake.sm_key_path, "--report", rep]
    if cis:
        # both plans: central (subaccount, entitlements) and local (subscriptions)
        args += ["--cis-key", fake.cis_key_path, "--cis-key2", fake.cis_local_key_path,
                 "--subaccount", fake.subaccount]
    args += list(extra)
    e = dict(ENV)
    e.update(env or {})
    rc, out, err = itest.run(args, env=e, timeout=timeout)
    report = None
    if os.path.exists(rep):
        with open(rep) as f:
            report = json.load(f)
    return rc, out, err, report


def mutations_since(fake, n):
    return fake.mutations()[n:] if n else fake.mutations()


def http_json(url, data=None, headers=None):
    """urllib against the fake: *.localhost hosts are reached on 127.0.0.1 with their Host."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    local = parts._replace(netloc="127.0.0.1:%d" % parts.port)
    h = dict(headers or {})
    h["Host"] = "%s:%d" % (host, parts.port)
    req = urllib.request.Request(urllib.parse.urlunsplit(local), data=data, headers=h)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def sm_token(fake):
    k = fake.sm_key()
    data = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": k["clientid"],
                                   "client_secret": k["clientsecret"]}).encode()
    return http_json(k["url"] + "/oauth/token", data)["access_token"]


def sm_get(fake, path):
    k = fake.sm_key()
    return http_json(k["sm_url"] + path, headers={"Authorization": "Bearer " + sm_token(fake)})


def issued_credentials(fake, binding_id):
    """The credentials the fake's Service Manager holds for a binding."""
    return sm_get(fake, "/v1/service_bindings/" + binding_id).get("credentials")


def key_token_scopes(key):
    """Scopes of a client-credentials token fetched with the key (as its consumers do)."""
    uaa = key["uaa"]
    data = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": uaa["clientid"],
                                   "client_secret": uaa["clientsecret"]}).encode()
    tok = http_json(uaa["url"] + "/oauth/token", data)["access_token"]
    payload = tok.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    sc = claims.get("scope", [])
    return sc.split() if isinstance(sc, str) else sc


def has_cdm_scopes(scopes):
    return all(any(s.endswith("." + want) for s in scopes) for want in CDM_SCOPES)


def no_secret_in(text, fake):
    return not any(s and s in text for s in fake.issued_secrets())


# ------------------------------------------------------------------------------------------

EXPECT = {
    # preset, scenario -> (mutating requests of the first run as (method, path-suffix), ...)
    ("after-2023-10-16", "deployment"): [],
    ("after-2023-10-16", "monitoring"): [],
    ("mid-2023", "deployment"): [("POST", "/v1/service_instances"), ("POST", "/v1/service_bindings")],
    ("mid-2023", "monitoring"): [],
    ("before-2023-06-12", "deployment"): [("PUT", "/entitlements/v1/subaccountServicePlans"),
                                          ("POST", "/v1/service_instances"),
                                          ("POST", "/v1/service_bindings")],
    ("before-2023-06-12", "monitoring"): [("PUT", "/entitlements/v1/subaccountServicePlans"),
                                          ("POST", "/v1/service_instances"),
                                          ("POST", "/v1/service_bindings")],
}


def expected_parameters(scenario, name):
    xs = {"xsappname": name, "oauth2-configuration": {"credential-types": ["binding-secret"]}}
    if scenario == "deployment":
        xs["authorities"] = AUTHORITIES
    return {"xs-security": xs}


def cell(s, preset, scenario):
    tag = "%s/%s" % (preset, scenario)
    with FakeBTP(preset=preset) as fake:
        cis = preset == "before-2023-06-12"
        rc, out1, err1, rep1 = run_get(fake, "--scenario", scenario, cis=cis)
        if not s.eq(tag + ": first get exits 0", rc, 0):
            print("#   " + err1.replace("\n", "\n#   ")[-3000:])
            return
        muts = fake.mutations()
        got = [(m["method"], m["path"]) for m in muts]
        s.eq(tag + ": mutating requests of the first run", got, EXPECT[(preset, scenario)])
        for m in muts:
            if m["method"] == "POST" and m["path"] == "/v1/service_instances":
                s.eq(tag + ": exact create parameters", m["body"].get("parameters"),
                     expected_parameters(scenario, "calm-api-" + scenario))
                s.eq(tag + ": instance name", m["body"].get("name"), "calm-api-" + scenario)
            if m["method"] == "POST" and m["path"] == "/v1/service_bindings":
                s.check(tag + ": binding name avoids <SID>_<client>_<sysno>",
                        m["body"].get("name") == "calm-api-%s-key" % scenario, m["body"].get("name"))
            if m["method"] == "PUT":
                s.eq(tag + ": entitlement body", m["body"]["subaccountServicePlans"][0]["serviceName"],
                     "SAPCloudALMAPIs")
        key = json.loads(out1)
        s.check(tag + ": bare key (no binding envelope)", "uaa" in key and "credentials" not in key,
                sorted(key))
        bid = rep1["result"]["binding_id"]
        s.eq(tag + ": printed key equals the credentials the fake issued", key,
             issued_credentials(fake, bid))
        scopes = key_token_scopes(key)
        if scenario == "deployment":
            s.check(tag + ": the key's token carries both imp-cdm-feature-* scopes",
                    has_cdm_scopes(scopes), scopes)
        s.check(tag + ": report has the path and actions, no secret",
                rep1["result"]["path"] == preset and no_secret_in(json.dumps(rep1), fake),
                rep1["result"])
        s.check(tag + ": stderr holds no secret", no_secret_in(err1, fake))
        s.check(tag + ": decision and reasons on stderr", "path: " + preset in err1, err1[-500:])
        if (preset, scenario) == ("mid-2023", "deployment"):
            # the generated (monitoring) key may already sit in Landscape Management
            s.check(tag + ": rotation hint names the generated key on the other instance",
                    "'calm-api-key-auto' (instance 'SAPCloudALMAPIs-auto'," in err1
                    and "kept: on another instance" in err1, err1[-800:])
        elif preset != "mid-2023":
            s.check(tag + ": no rotation hint when no other key exists", "New binding" not in err1,
                    err1[-400:])

        n = len(fake.mutations())
        rc, out2, err2, rep2 = run_get(fake, "--scenario", scenario, cis=cis)
        s.eq(tag + ": second get exits 0", rc, 0)
        s.eq(tag + ": second get sends no mutating request", fake.mutations()[n:], [])
        s.check(tag + ": second get prints the same key", out2 == out1, "keys differ")
        st = fake.state()
        calm = [i for i in st["instances"] if i.get("service_plan_id") == "33333333-aaaa-4bbb-8ccc-000000000003"]
        s.eq(tag + ": exactly one instance per name", len({i["name"] for i in calm}), len(calm))


def after_round_trips(s):
    """after-2023-10-16: token, then every read at once; no per-binding GET."""
    with FakeBTP(preset="after-2023-10-16") as fake:
        rc, out, err, rep = run_get(fake)
        s.eq("after: get exits 0", rc, 0)
        reqs = [r for r in fake.requests() if not r["path"].startswith("/_fake")]
        tokens = [r for r in reqs if r["path"].endswith("/oauth/token")]
        reads = [r for r in reqs if r["path"].startswith("/v1/")]
        # the Service Manager key's token, and one with SAP's key to read its scopes before
        # anything else (reused as the verification before writing)
        s.eq("after: two token requests (SM key, the existing key's scopes)", len(tokens), 2)
        s.check("after: only reads, at most 4 (offerings, plans, instances, bindings)",
                all(r["method"] == "GET" for r in reads) and len(reads) <= 4,
                [(r["method"], r["path"]) for r in reads])
        s.check("after: no per-binding GET",
                not any(r["path"].startswith("/v1/service_bindings/") for r in reads))


def mid_update(s):
    """mid-2023, deployment, --instance-name of the generated instance: PATCH it with its GUID
    as xsappname, then a new binding (only new bindings get the authorities)."""
    with FakeBTP(preset="mid-2023") as fake:
        gen = [i for i in fake.state()["instances"] if i["name"] == "SAPCloudALMAPIs-auto"][0]
        rc, out, err, rep = run_get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
        s.eq("mid update: exit 0", rc, 0)
        got = [(m["method"], m["path"]) for m in fake.mutations()]
        s.eq("mid update: PATCH the generated instance, then a new binding", got,
             [("PATCH", "/v1/service_instances/" + gen["id"]), ("POST", "/v1/service_bindings")])
        patch = fake.mutations()[0]["body"] if got else {}
        want = expected_parameters("deployment", gen["id"])
        # the generated key is a binding-secret key (XSUAA's default since 2026-01-19): nothing else to keep
        s.eq("mid update: exact parameters, xsappname = the instance GUID",
             patch.get("parameters"), want)
        if rc == 0:
            key = json.loads(out)
            s.check("mid update: the new key's token carries both imp-cdm-feature-* scopes",
                    has_cdm_scopes(key_token_scopes(key)))
        s.check("mid update: rotation hint names the old binding", "calm-api-key-auto" in err, err[-600:])
        n = len(fake.mutations())
        rc, out2, err, rep = run_get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
        s.check("mid update rerun: same key, no mutation", rc == 0 and out2 == out and
                fake.mutations()[n:] == [], fake.mutations()[n:])


def keeps_x509(s):
    """An update must keep every credential type an existing binding uses: the generated
    instance has an x509 key of an ABAP system; the update that adds the authorities keeps
    x509 in credential-types, so that key keeps working (the fake revokes bindings whose
    type an update removes)."""
    with FakeBTP(preset="mid-2023", variants=["abap-x509-key", "instance-secret"]) as fake:
        st = fake.state()
        gen = [i for i in st["instances"] if i["name"] == "SAPCloudALMAPIs-auto"][0]
        mtls = [b for b in st["bindings"] if b["name"] == "abap-mtls-key"][0]
        rc, out, err, rep = run_get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
        s.eq("x509 in use: exit 0", rc, 0)
        patch = [m for m in fake.mutations() if m["method"] == "PATCH"]
        types = patch and patch[0]["body"]["parameters"]["xs-security"]["oauth2-configuration"]["credential-types"]
        s.check("x509 in use: the update keeps x509 (and instance-secret) next to binding-secret",
                bool(types) and set(types) == {"binding-secret", "instance-secret", "x509"}, types)
        live = [c["binding_id"] for c in fake.state()["_credentials"]]
        s.check("x509 in use: the ABAP system's x509 key still works after the update", mtls["id"] in live,
                (mtls["id"], live))
        notes = " ".join(((rep or {}).get("steps") or {}).get("notes") or [])
        s.check("x509 in use: the report says which types are kept and why",
                "keeps allowing instance-secret and x509 keys" in notes, notes)


def no_binding_xsappname(s):
    """No binding shows the generated instance's xsappname (its key was deleted): SAP's page
    for updating the generated instance says its xsappname is its GUID; calmbind follows it
    and the new key's scopes confirm the update."""
    with FakeBTP(preset="mid-2023") as fake:
        st = fake.state()
        gen = [i for i in st["instances"] if i["name"] == "SAPCloudALMAPIs-auto"][0]
        auto = [b for b in st["bindings"] if b["name"] == "calm-api-key-auto"][0]
        k = fake.sm_key()
        req = urllib.request.Request(
            "http://127.0.0.1:%d/v1/service_bindings/%s?async=false" % (fake.port, auto["id"]), method="DELETE",
            headers={"Authorization": "Bearer " + sm_token(fake), "Host": urllib.parse.urlsplit(k["sm_url"]).netloc})
        urllib.request.urlopen(req, timeout=10).read()
        n = len(fake.mutations())
        rc, out, err, rep = run_get(fake, "--update-instance", "SAPCloudALMAPIs-auto")
        s.eq("no binding shows the xsappname: exit 0", rc, 0)
        patch = [m for m in fake.mutations()[n:] if m["method"] == "PATCH"]
        s.eq("... the update uses the instance GUID as xsappname (SAP's page for the generated instance)",
             patch and patch[0]["body"]["parameters"]["xs-security"].get("xsappname"), gen["id"])
        s.check("... and the new key's token confirms it with both imp-cdm-feature-* scopes",
                rc == 0 and has_cdm_scopes(key_token_scopes(json.loads(out))), err[-600:])


def foreign_binding_name(s):
    """mid-2023, deployment, naming the generated instance and its old key: refused (exit 2)
    before any request that changes something; plan says get would stop."""
    with FakeBTP(preset="mid-2023") as fake:
        args = ("--update-instance", "SAPCloudALMAPIs-auto", "--binding-name", "calm-api-key-auto")
        rc, out, err, rep = run_get(fake, *args)
        s.check("old binding named for deployment: exit 2, says to name a new binding",
                rc == 2 and "name a new binding" in err, (rc, err[-400:]))
        s.eq("old binding named for deployment: no mutating request", fake.mutations(), [])
        rc, out, err, rep = run_get(fake, *args, command="plan")
        s.check("plan says get would stop with exit 2, and exits 2", rc == 2 and "would stop here (exit 2)" in out,
                (rc, out[-400:]))


def run_get_tty(fake, *extra):
    """calmbind get with stdout on a pseudo terminal; returns (rc, terminal output, stderr)."""
    return itest.run_tty(["get", "--sm-key", fake.sm_key_path] + list(extra), env=ENV)


def refused_before_requests(s):
    """mid-2023, deployment would create an instance and a binding: a terminal without
    --show-secrets, or an --out whose directory is missing, stops get with exit 2 before
    any request (not after the mutations)."""
    with FakeBTP(preset="mid-2023") as fake:
        def sent():
            return [r for r in fake.requests() if not r["path"].startswith("/_fake")]
        rc, out, err = run_get_tty(fake)
        s.eq("terminal without --show-secrets: exit 2", rc, 2)
        s.check("terminal without --show-secrets: says so", "--show-secrets" in err, err[-400:])
        s.eq("terminal without --show-secrets: no mutating request", fake.mutations(), [])
        s.eq("terminal without --show-secrets: no request at all", sent(), [])
        missing = os.path.join(fake.dir, "no", "such", "dir", "key.json")
        rc, out, err, rep = run_get(fake, "--out", missing)
        s.eq("--out in a missing directory: exit 2", rc, 2)
        s.check("--out in a missing directory: names it", "does not exist" in err, err[-400:])
        s.eq("--out in a missing directory: no request at all", (fake.mutations(), sent()), ([], []))
        rc, out, err, rep = run_get(fake, "--out", os.path.join(fake.sm_key_path, "key.json"))
        s.check("--out under a file: exit 2, no request", rc == 2 and sent() == [] and "not a directory" in err,
                (rc, err[-400:]))
        rc, out, err, rep = run_get(fake, "--out", fake.dir)
        s.check("--out naming a directory: exit 2, no request", rc == 2 and sent() == [], (rc, err[-400:]))
        # still fine: a terminal with --show-secrets, plan on a terminal
        rc, out, err = run_get_tty(fake, "--scenario", "monitoring", "--show-secrets")
        s.check("terminal with --show-secrets: exit 0, the key shown", rc == 0 and '"uaa"' in out, (rc, err[-400:]))


def vcap_names(s):
    """get --format vcap names the entry after the binding and carries binding and instance names."""
    with FakeBTP(preset="after-2023-10-16") as fake:
        rc, out, err, rep = run_get(fake, "--format", "vcap")
        s.eq("get --format vcap: exit 0", rc, 0)
        if rc != 0:
            return
        entry = json.loads(out)["SAPCloudALMAPIs"][0]
        s.eq("get --format vcap: entry names", (entry.get("name"), entry.get("binding_name"),
                                                entry.get("instance_name")),
             ("calm-api-key-auto", "calm-api-key-auto", "SAPCloudALMAPIs-auto"))


def main():
    s = itest.Suite("integration/get_paths")
    for preset in ("after-2023-10-16", "mid-2023", "before-2023-06-12"):
        for scenario in ("deployment", "monitoring"):
            try:
                cell(s, preset, scenario)
            except Exception as e:  # one broken cell must not hide the others
                s.check("%s/%s: runs" % (preset, scenario), False, repr(e))
    after_round_trips(s)
    mid_update(s)
    keeps_x509(s)
    no_binding_xsappname(s)
    foreign_binding_name(s)
    refused_before_requests(s)
    vcap_names(s)
    s.done()


if __name__ == "__main__":
    main()
