#!/usr/bin/env python3
"""Cloud Foundry login as the cf CLI does it (issue 9, point 7): a user of a custom identity
provider (CF_ORIGIN / --cf-origin, sent as login_hint={"origin":...}), a one-time SSO passcode
(CF_PASSCODE, grant_type=password with passcode, as `cf login --sso`), secrets from the
environment only; the plan is looked up under the one offering name SAPCloudALMAPIs and
filtered by the target space."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
from test_get_paths import run_get  # noqa: E402

S = itest.Suite("integration/cf_login")


def cf_args(fake, *extra):
    return ["--runtime", "cf", "--cf-api", fake.cf_env["CF_API"],
            "--cf-space", fake.cf_env["CF_SPACE_GUID"], "--scenario", "monitoring"] + list(extra)


def token_requests(fake):
    return [r for r in fake.requests() if r["path"].startswith("/oauth/token") and "login." in r.get("host", "")]


def main():
    with FakeBTP(preset="cf-legacy") as fake:
        e = fake.cf_env
        idp = {"CF_USERNAME": e["CF_IDP_USERNAME"], "CF_PASSWORD": e["CF_IDP_PASSWORD"]}
        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env=idp)
        S.eq("custom-IdP user without its origin: refused (exit 3)", rc, 3)
        n = len(fake.requests())
        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env=dict(idp, CF_ORIGIN=e["CF_IDP_ORIGIN"]))
        S.eq("custom-IdP user with CF_ORIGIN: exit 0", rc, 0)
        toks = [r for r in fake.requests()[n:] if r["path"].startswith("/oauth/token")]
        hints = [(r.get("query") or {}).get("login_hint") for r in toks]
        S.check("the origin goes as login_hint={\"origin\":...} in the query, as the cf CLI sends it",
                any(h and json.loads(h) == {"origin": e["CF_IDP_ORIGIN"]} for h in hints), hints)
        rc, out, err, rep = run_get(fake, *cf_args(fake, "--cf-origin", e["CF_IDP_ORIGIN"]), command="plan", env=idp)
        S.eq("custom-IdP user with --cf-origin: exit 0", rc, 0)
        rc, out, err, rep = run_get(fake, *cf_args(fake, "--cf-origin", "no-such-idp"), command="plan", env=idp)
        S.eq("an unknown origin: refused (exit 3)", rc, 3)
        S.check("no password in the output", e["CF_IDP_PASSWORD"] not in out + err + json.dumps(rep), err[-300:])
        code = fake.control("POST", "/_fake/plugins/cf", {"passcode": True})["passcode"]
        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env={"CF_PASSCODE": code})
        S.eq("an SSO passcode (CF_PASSCODE): exit 0", rc, 0)
        S.check("the passcode is not shown", code not in out + err + json.dumps(rep), err[-300:])
        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env={"CF_PASSCODE": code})
        S.eq("the same passcode again: refused (one use), exit 3", rc, 3)
        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan", env={})
        S.eq("no CF credentials at all: exit 2", rc, 2)
        S.check("... names CF_PASSCODE as the other way", "CF_PASSCODE" in err, err[-300:])
        n = len(fake.requests())
        rc, out, err, rep = run_get(fake, *cf_args(fake), command="plan",
                                    env={"CF_USERNAME": e["CF_USERNAME"], "CF_PASSWORD": e["CF_PASSWORD"]})
        plans = [r for r in fake.requests()[n:] if r["path"].startswith("/v3/service_plans")]
        q = plans[0].get("query") or {} if plans else {}
        S.eq("plan lookup: only the offering name SAPCloudALMAPIs", q.get("service_offering_names"),
             "SAPCloudALMAPIs")
        S.eq("plan lookup: filtered by the target space", q.get("space_guids"), e["CF_SPACE_GUID"])
    S.done()


if __name__ == "__main__":
    main()
