#!/usr/bin/env python3
"""Checks of the fake's global account (global_account.py): the expanded tree, the
global account's entitlement assignments, subaccounts of other tenants through one central
key, the Service Manager admin bindings (v2 and v1) and the rate limit.

Prints "ok - fakebtp-ga: <what>" / "not ok - ...: <why>"; exit 1 on any failure.
"""
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import FakeBTP  # noqa: E402
from test_fakebtp import call, q  # noqa: E402

FAILED = []
PASSED = []
PRESETS3 = ["after-2023-10-16", "mid-2023", "before-2023-06-12"]


def check(what, cond, why=""):
    (PASSED if cond else FAILED).append(what)
    if cond:
        print("ok - fakebtp-ga: %s" % what, flush=True)
    else:
        print("not ok - fakebtp-ga: %s: %s" % (what, why or "failed"), flush=True)
    return cond


def cis_token(key):
    u = key["uaa"]
    r = call("POST", u["url"] + "/oauth/token",
             form={"grant_type": "client_credentials", "client_id": u["clientid"],
                   "client_secret": u["clientsecret"]})
    return r.json["access_token"]


def walk(node, path=()):
    for s in node.get("subaccounts", []):
        yield s, path
    for d in node.get("children", []):
        yield from walk(d, path + (d["displayName"],))


def test_tree(fake, key, tok):
    acc = key["endpoints"]["accounts_service_url"]
    r = call("GET", acc + "/accounts/v1/globalAccount?expand=true", token=tok)
    check("expanded global account answers 200", r.status == 200, r.status)
    ga = r.json
    subs = list(walk(ga))
    check("the tree holds every tenant and 3 unrelated subaccounts", len(subs) == 4 + 3,
          len(subs))
    by_id = {s["guid"]: (s, p) for s, p in subs}
    ts = fake.tenants
    check("every tenant is a subaccount of the tree", all(t.subaccount in by_id for t in ts))
    names = [by_id[t.subaccount][0]["displayName"] for t in ts]
    check("tenants are named as SAP documents it, and older ways",
          names == ["SAP Cloud ALM", "Cloud ALM - Production", "SAP Cloud ALM", "SAP Cloud ALM"],
          names)
    regions = {by_id[t.subaccount][0]["region"] for t in ts}
    check("tenants live in different regions", len(regions) == 4, regions)
    paths = [by_id[t.subaccount][1] for t in ts]
    check("tenants sit at the root, in a directory and in a nested one",
          paths[:3] == [(), ("Cloud ALM",), ("Customers", "ACME")], paths)
    check("the global account is named SAP Cloud ALM plus the customer number",
          ga["displayName"].startswith("SAP Cloud ALM "), ga["displayName"])
    check("every subaccount names the one global account",
          {s["globalAccountGUID"] for s, _ in subs} == {ga["guid"]})
    r = call("GET", acc + "/accounts/v1/globalAccount", token=tok)
    check("without expand the global account has no tree",
          r.status == 200 and "children" not in r.json and "subaccounts" not in r.json)
    t3 = ts[2]
    r = call("GET", acc + "/accounts/v1/subaccounts/" + t3.subaccount, token=tok)
    check("one central key reads another tenant's subaccount",
          r.status == 200 and r.json["subdomain"] == t3.subdomain, (r.status, r.raw[:200]))


def test_entitlements(fake, key, tok):
    ent = key["endpoints"]["entitlements_service_url"]
    r = call("GET", ent + "/entitlements/v1/assignments?assignedServiceName=SAPCloudALMAPIs",
             token=tok)
    rows = [ai["entityId"] for svc in r.json["assignedServices"] if svc["name"] == "SAPCloudALMAPIs"
            for p in svc["servicePlans"] for ai in p["assignmentInfo"]]
    want = {t.subaccount for t in fake.tenants if t.preset != "before-2023-06-12"}
    check("the global account's assignments list each entitled tenant once",
          sorted(rows) == sorted(want), rows)
    t3 = fake.tenants[2]
    r = call("PUT", ent + "/entitlements/v1/subaccountServicePlans", token=tok, body={
        "subaccountServicePlans": [{"serviceName": "SAPCloudALMAPIs", "servicePlanName": "standard",
                                    "assignmentInfo": [{"subaccountGUID": t3.subaccount, "amount": 1}]}]})
    check("a central key assigns the entitlement to another tenant", r.status == 202, r.status)
    for _ in range(3):
        call("GET", ent + "/entitlements/v1/assignments?subaccountGUID=" + t3.subaccount, token=tok)
    check("that tenant is entitled afterwards", fake.state(tenant=t3.name)["entitled"] is True)
    check("the caller's tenant is untouched", fake.state(tenant="t0001")["entitled"] is True)


def test_sm_bindings(fake, key, tok):
    acc = key["endpoints"]["accounts_service_url"]
    t2 = fake.tenants[1]
    base = acc + "/accounts/v2/subaccounts/%s/serviceManagerBindings" % t2.subaccount
    r = call("GET", base, token=tok)
    check("v2 list of a subaccount without bindings -> 404 (documented)", r.status == 404, r.status)
    r = call("GET", base + "/calmbind-sm", token=tok)
    check("v2 binding by an unknown name -> 404", r.status == 404, r.status)
    r = call("POST", base, token=tok, body={"name": "calmbind-sm"})
    check("v2 create -> 201 with basic credentials",
          r.status == 201 and {"clientid", "clientsecret", "url", "sm_url", "xsappname",
                               "name", "creationDate"} <= set(r.json), (r.status, r.raw[:300]))
    cred = r.json
    r = call("POST", base, token=tok, body={"name": "calmbind-sm"})
    check("v2 create of a name the subaccount has -> 409", r.status == 409, r.status)
    r = call("GET", base + "/calmbind-sm", token=tok)
    check("v2 GET by name gives the same credentials", r.status == 200 and r.json == cred)
    r = call("POST", cred["url"] + "/oauth/token", form={
        "grant_type": "client_credentials", "client_id": cred["clientid"],
        "client_secret": cred["clientsecret"]})
    smtok = r.json.get("access_token") if r.status == 200 else None
    check("the binding's client gets a token at the tenant's XSUAA", smtok is not None, r.status)
    r = call("GET", cred["sm_url"] + "/v1/service_instances?fieldQuery=" +
             q("name eq 'ServiceManagementAccessInstance'"), token=smtok)
    names = [i["name"] for i in (r.json or {}).get("items", [])]
    check("the token works at that tenant's Service Manager, which lists the access instance",
          r.status == 200 and "ServiceManagementAccessInstance" in names, (r.status, names))
    r = call("POST", base, token=tok, body={"name": "calmbind-sm-x509", "parameters": {
        "credential-type": "x509", "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}}})
    check("v2 create with x509 parameters -> certificate, key and certUrl",
          r.status == 201 and {"certificate", "key", "certUrl"} <= set(r.json)
          and "clientsecret" not in r.json, (r.status, r.raw[:200]))
    r = call("GET", base, token=tok)
    check("v2 list shows both bindings",
          r.status == 200 and sorted(b["name"] for b in r.json["items"]) ==
          ["calmbind-sm", "calmbind-sm-x509"])
    r = call("DELETE", base + "/calmbind-sm-x509", token=tok)
    check("v2 delete -> 200", r.status == 200, r.status)
    v1 = acc + "/accounts/v1/subaccounts/%s/serviceManagementBinding" % t2.subaccount
    r = call("GET", v1, token=tok)
    check("v1 GET before any -> 404", r.status == 404, r.status)
    r = call("POST", v1, token=tok)
    check("v1 create -> 201 clientid, clientsecret, url, sm_url, xsappname",
          r.status == 201 and set(r.json) == {"clientid", "clientsecret", "url", "sm_url", "xsappname"},
          (r.status, r.raw[:200]))
    r = call("POST", v1, token=tok)
    check("v1 create again -> 409", r.status == 409, r.status)
    fake.cis_knobs(sm_bindings="v1")
    r = call("POST", base, token=tok, body={"name": "x"})
    check("knob sm_bindings=v1: the v2 route is not there (404, no cis error)",
          r.status == 404 and "error" in r.json and not isinstance(r.json["error"], dict))
    fake.cis_knobs(sm_bindings="v1+v2")
    other = [s for s, _ in walk(call("GET", acc + "/accounts/v1/globalAccount?expand=true",
                                     token=tok).json) if s["displayName"] == "Development"][0]
    r = call("POST", acc + "/accounts/v2/subaccounts/%s/serviceManagerBindings" % other["guid"],
             token=tok, body={"name": "x"})
    check("an unrelated subaccount (no fake state) -> 404", r.status == 404, r.status)


def test_rate_limit(fake, key, tok):
    acc = key["endpoints"]["accounts_service_url"]
    fake.cis_knobs(rate_limit="3/2")
    got = [call("GET", acc + "/accounts/v1/globalAccount", token=tok) for _ in range(4)]
    check("over N requests in S seconds -> 429", [r.status for r in got] == [200, 200, 200, 429],
          [r.status for r in got])
    r = got[-1]
    err = r.json["error"]
    check("the 429 is SAP's error 11006 with details 11007",
          err["code"] == 11006 and err["details"][0]["code"] == 11007
          and "3 requests in 2 seconds" in err["details"][0]["message"], err)
    reset = int(r.headers.get("x-ratelimit-reset", "0"))
    check("X-Ratelimit-Reset is epoch ms within the window, and no Retry-After",
          0 < reset / 1000 - time.time() <= 2.1 and "retry-after" not in r.headers,
          (reset, r.headers))
    r = call("GET", acc + "/accounts/v1/subaccounts", token=tok)
    check("the limit is per endpoint: another endpoint still answers", r.status == 200, r.status)
    time.sleep(max(0, reset / 1000 - time.time()) + 0.05)
    r = call("GET", acc + "/accounts/v1/globalAccount", token=tok)
    check("after the reset time the endpoint answers again", r.status == 200, r.status)
    fake.cis_knobs(rate_limit=None)


def main():
    t0 = time.time()
    try:
        with FakeBTP(tenants=4, presets=PRESETS3) as fake:
            key = json.load(open(fake.cis_key_path))
            tok = cis_token(key)
            for fn in (test_tree, test_entitlements, test_sm_bindings, test_rate_limit):
                try:
                    fn(fake, key, tok)
                except Exception:
                    traceback.print_exc()
                    check(fn.__name__ + " ran", False, "raised")
    except Exception:
        traceback.print_exc()
        check("fake started", False, "raised")
    print("# fakebtp-ga: %d passed, %d failed in %.1f s" % (len(PASSED), len(FAILED),
                                                            time.time() - t0))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
