#!/usr/bin/env python3
"""Checks of the fake BTP's multi-tenant mode (--tenants N; tenants.py, harness Tenant).

Prints "ok - fakebtp-tenants: <what>" / "not ok - ...: <why>"; exit 1 on any failure.
"""
import json
import os
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import FakeBTP  # noqa: E402
from test_fakebtp import call, jwt_claims  # noqa: E402

FAILED = []
PASSED = []
PRESETS3 = ["after-2023-10-16", "mid-2023", "before-2023-06-12"]


def check(what, cond, why=""):
    (PASSED if cond else FAILED).append(what)
    if cond:
        print("ok - fakebtp-tenants: %s" % what, flush=True)
    else:
        print("not ok - fakebtp-tenants: %s: %s" % (what, why or "check failed"), flush=True)
    return cond


def token(key, url=None, ctx=None):
    r = call("POST", (url or key["url"]) + "/oauth/token", ctx=ctx,
             form={"grant_type": "client_credentials", "client_id": key["clientid"],
                   "client_secret": key["clientsecret"]})
    return r.json.get("access_token") if r.status == 200 and r.json else None, r


def test_layout(fake):
    ts = fake.tenants
    check("tenants.json lists every tenant", [t.name for t in ts] == ["t0001", "t0002", "t0003", "t0004"],
          repr(ts))
    check("presets are cycled over the tenants",
          [t.preset for t in ts] == PRESETS3 + PRESETS3[:1], repr([t.preset for t in ts]))
    keys = [t.sm_key() for t in ts]
    check("each tenant has its own subaccount, subdomain and SM client",
          len({t.subaccount for t in ts}) == 4 and len({t.subdomain for t in ts}) == 4 and
          len({k["clientid"] for k in keys}) == 4 and len({k["clientsecret"] for k in keys}) == 4)
    check("a tenant's XSUAA host is <subdomain>.authentication.localhost",
          all(urllib.parse.urlsplit(k["url"]).hostname == "%s.authentication.localhost" % t.subdomain
              for t, k in zip(ts, keys)), repr([k["url"] for k in keys]))
    check("a tenant's sm_url carries its /t/<name> prefix",
          all(k["sm_url"].endswith("/t/" + t.name) for t, k in zip(ts, keys)))
    modes = [stat.S_IMODE(os.stat(p).st_mode) for t in ts for p in (t.sm_key_path, t.cis_key_path)]
    check("per-tenant key files are 0600", modes and all(m == 0o600 for m in modes), repr(modes))
    check("no X.509 SM keys without tenant_x509", all(t.sm_key_x509_path is None for t in ts))
    check("the first tenant's files are also the state dir's",
          fake.sm_key() == keys[0] and fake.subaccount == ts[0].subaccount)
    cis = json.load(open(ts[1].cis_key_path))
    check("a tenant's cis key points at its prefix and XSUAA host",
          cis["endpoints"]["accounts_service_url"].endswith("/t/t0002") and
          cis["uaa"]["url"].startswith("http://t0002.authentication.localhost:"), str(cis)[:300])


def test_isolation(fake):
    t1, t2 = fake.tenants[0], fake.tenants[1]
    k1, k2 = t1.sm_key(), t2.sm_key()
    tok1, r = token(k1)
    check("tenant 1's key gets a token at its own XSUAA host", tok1 is not None, repr(r))
    check("the token names tenant 1's zone", tok1 and jwt_claims(tok1)["ext_attr"]["zdn"] == "t0001")
    r = call("GET", k1["sm_url"] + "/v1/service_instances", token=tok1)
    check("tenant 1's token reads tenant 1's SM", r.status == 200, repr(r))
    r = call("GET", k2["sm_url"] + "/v1/service_instances", token=tok1)
    check("tenant 1's token at tenant 2's SM -> 401 invalid_token",
          r.status == 401 and r.json.get("error") == "invalid_token", repr(r))
    _, r = token(k1, url=k2["url"])
    check("tenant 1's client at tenant 2's XSUAA host -> 401", r.status == 401, repr(r))
    tok2, _ = token(k2)
    inst = {"name": "only-in-t2", "service_plan_id": "33333333-aaaa-4bbb-8ccc-000000000003",
            "parameters": {"xs-security": {"authorities": []}}}
    r = call("POST", k2["sm_url"] + "/v1/service_instances?async=true", body=inst, token=tok2)
    loc = r.headers.get("location", "")
    check("an async create answers a Location with the tenant prefix",
          r.status == 202 and loc.startswith("/t/t0002/v1/service_instances/"), repr((r, loc)))
    base = k2["sm_url"][: -len("/t/t0002")]
    states = [call("GET", base + loc, token=tok2).json.get("state") for _ in range(4)]
    check("polling that Location follows the operation", states[-1] == "succeeded", repr(states))
    names = lambda s: {i["name"] for i in s["instances"]}  # noqa: E731
    check("the new instance is in tenant 2's state only",
          "only-in-t2" in names(fake.state(tenant="t0002")) and
          "only-in-t2" not in names(fake.state(tenant="t0001")))
    check("presets give each tenant its own SM state",
          "SAPCloudALMAPIs-auto" in names(fake.state(tenant="t0001")) and
          "SAPCloudALMAPIs-auto" not in names(fake.state(tenant="t0003")) and
          fake.state(tenant="t0003")["entitled"] is False and fake.state(tenant="t0001")["entitled"])
    r = call("GET", k2["sm_url"] + "/v1/service_instances?max_items=1", token=tok2)
    link = r.headers.get("link", "")
    check("a list's Link rel=next keeps the tenant prefix", link.startswith("</t/t0002/v1/"), link)
    r = call("GET", base + "/t/t9999/v1/service_instances", token=tok2)
    check("an unknown tenant prefix -> 404", r.status == 404, repr(r))
    logged = fake.requests(tenant="t0002")
    check("the request log names each request's tenant",
          logged and all(x["tenant"] == "t0002" for x in logged) and
          any(x["path"] == "/v1/service_instances" for x in logged) and
          fake.requests(tenant="t0001"), repr(logged[:1]))
    check("mutations(tenant=) sees only that tenant's creates",
          len(fake.mutations(tenant="t0002")) == 1 and not fake.mutations(tenant="t0001"))


def test_faults(fake):
    k1, k2 = fake.tenants[0].sm_key(), fake.tenants[1].sm_key()
    tok1, _ = token(k1)
    tok2, _ = token(k2)
    fake.fault(tenant="t0002", method="GET", path="^/v1/service_offerings$", status=503, count=-1)
    r1 = call("GET", k1["sm_url"] + "/v1/service_offerings", token=tok1)
    r2 = call("GET", k2["sm_url"] + "/v1/service_offerings", token=tok2)
    check("a fault rule with tenant= hits only that tenant", r1.status == 200 and r2.status == 503,
          repr((r1, r2)))
    fake.clear_faults()


def test_cf_password_grant(fake):
    # The CF login host is regional: the prefix in the href picks the tenant's users.
    t4 = fake.tenants[3]
    env = dict(line.strip().split("=", 1) for line in open(t4.cf_env_path) if "=" in line)
    root = call("GET", env["CF_API"] + "/").json
    login = root["links"]["login"]["href"]
    check("CF root links carry the tenant prefix", login.endswith("/t/t0004"), login)
    import base64
    basic = base64.b64encode(b"cf:").decode()
    form = {"grant_type": "password", "username": env["CF_USERNAME"], "password": env["CF_PASSWORD"]}
    r = call("POST", login + "/oauth/token", form=form, headers={"Authorization": "Basic " + basic})
    check("a tenant's CF user logs in at its prefixed login URL", r.status == 200, repr(r))
    other = fake.tenants[0].url_prefix
    r = call("POST", login.replace("/t/t0004", other) + "/oauth/token", form=form,
             headers={"Authorization": "Basic " + basic})
    check("the same CF user is unknown at another tenant", r.status == 401, repr(r))


def test_flags():
    with tempfile.TemporaryDirectory() as d:
        for args, what in ((["--tenants", "2", "--tenant-presets", "after-2023-10-16,nope"],
                            "an unknown preset in --tenant-presets"),
                           (["--tenant-presets", "mid-2023"], "--tenant-presets without --tenants"),
                           (["--tenants", "-1"], "a negative --tenants")):
            p = subprocess.run([sys.executable, os.path.join(HERE, "fakebtp.py"), "--state-dir", d]
                               + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
            check("%s -> exit 2 with a message" % what,
                  p.returncode == 2 and b"tenant" in p.stderr, p.stderr.decode()[-200:])


def test_x509():
    with FakeBTP(tenants=2, tenant_x509=True, https=True) as fake:
        t2 = fake.tenants[1]
        check("tenant_x509 writes an X.509 SM key per tenant",
              t2.sm_key_x509_path and os.path.exists(t2.sm_key_x509_path))
        k = json.load(open(t2.sm_key_x509_path))
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "c.pem"), os.path.join(d, "c.key")
            open(cert, "w").write(k["certificate"])
            open(key, "w").write(k["key"])
            ctx = ssl.create_default_context(cafile=fake.ca_path)
            ctx.load_cert_chain(cert, key)
            r = call("POST", k["certurl"] + "/oauth/token", ctx=ctx,
                     form={"grant_type": "client_credentials", "client_id": k["clientid"]})
        check("tenant 2's certificate gets a token at its cert host",
              r.status == 200 and jwt_claims(r.json["access_token"])["ext_attr"]["zdn"] == "t0002",
              repr(r))
        ctx2 = ssl.create_default_context(cafile=fake.ca_path)
        r = call("GET", t2.sm_key()["sm_url"] + "/v1/info", ctx=ctx2,
                 token=token(t2.sm_key(), ctx=ctx2)[0])
        check("--https serves a tenant's prefixed sm_url", r.status == 200, repr(r))


def main():
    t0 = time.time()
    try:
        with FakeBTP(tenants=4, presets=PRESETS3) as fake:
            test_layout(fake)
            test_isolation(fake)
            test_faults(fake)
            test_cf_password_grant(fake)
        test_flags()
        test_x509()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        check("test run completes", False, "exception (see stderr)")
    print("# fakebtp-tenants: %d passed, %d failed in %.1f s" % (len(PASSED), len(FAILED),
                                                                 time.time() - t0))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
