#!/usr/bin/env python3
"""Checks of the fakebtp plug-ins fake_cf (Cloud Foundry v3) and fake_cis (Accounts,
Entitlements, SaaS).  Prints "ok - fakebtp-plugins: ..." / "not ok - ...: why" lines and
exits non-zero on failure.  Starts the fake with harness.FakeBTP (a few presets)."""
import base64
import datetime
import http.client
import json
import os
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import FakeBTP  # noqa: E402

SUITE = "fakebtp-plugins"
FAILED = 0


def check(what, cond, why=""):
    global FAILED
    if cond:
        print("ok - %s: %s" % (SUITE, what), flush=True)
    else:
        FAILED += 1
        print("not ok - %s: %s: %s" % (SUITE, what, why), flush=True)
    return cond


def eq(what, got, want):
    return check(what, got == want, "got %r, want %r" % (got, want))


class Client:
    """HTTP to the fake: every *.localhost URL goes to 127.0.0.1 with the right Host header."""

    def __init__(self, fake):
        self.fake = fake

    def call(self, method, url, body=None, headers=None, form=None, token=None, basic=None):
        u = urllib.parse.urlsplit(url)
        hdrs = {"Host": u.netloc, "Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if basic:
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % basic).encode()).decode()
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=10)
        try:
            path = u.path or "/"
            if u.query:
                path += "?" + u.query
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
            try:
                obj = json.loads(raw) if raw else None
            except ValueError:
                obj = raw.decode("utf-8", "replace")
            return r.status, obj, {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()


def jwt_claims(tok):
    p = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def cc_token(c, fake, cred):
    """client_credentials token for a key's uaa block (form fields, as XSUAA accepts)."""
    st, body, _ = c.call("POST", cred["url"] + "/oauth/token",
                         form={"grant_type": "client_credentials",
                               "client_id": cred["clientid"],
                               "client_secret": cred["clientsecret"]})
    return st, body


def poll_job(c, url, tok, limit=10):
    states = []
    body = None
    for _ in range(limit):
        st, body, _ = c.call("GET", url, token=tok)
        if st != 200:
            return states, body
        states.append(body["state"])
        if body["state"] in ("COMPLETE", "FAILED"):
            break
    return states, body


def date_of_ms(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).date().isoformat()


def saas_text_date(s):
    s = s.replace("\u202f", " ")
    return datetime.datetime.strptime(s, "%b %d, %Y, %I:%M:%S %p").date().isoformat()


# ---------------------------------------------------------------------------------------
# Cloud Foundry (preset cf-legacy)


def test_cf(fake):
    c = Client(fake)
    env = fake.cf_env
    api = env.get("CF_API", "")
    check("cf.env has CF_API, CF_USERNAME, CF_PASSWORD, CF_SPACE_GUID",
          all(env.get(k) for k in ("CF_API", "CF_USERNAME", "CF_PASSWORD", "CF_SPACE_GUID")),
          "got keys %s" % sorted(env))
    st, root, _ = c.call("GET", api + "/")
    links = (root or {}).get("links", {}) if isinstance(root, dict) else {}
    check("CF root has login, uaa and cloud_controller_v3 links",
          st == 200 and "login.cf.localhost" in links.get("login", {}).get("href", "")
          and "uaa.cf.localhost" in links.get("uaa", {}).get("href", "")
          and links.get("cloud_controller_v3", {}).get("href") == api + "/v3",
          "status %s body %r" % (st, root))
    login = links.get("login", {}).get("href", api)
    uaa = links.get("uaa", {}).get("href", api)

    st, tb, _ = c.call("POST", login + "/oauth/token", basic=("cf", ""),
                       form={"grant_type": "password", "username": env["CF_USERNAME"],
                             "password": env["CF_PASSWORD"]})
    tok = (tb or {}).get("access_token") if isinstance(tb, dict) else None
    check("password grant (client cf, empty secret) at the login host gives a CC token",
          st == 200 and tok and "cloud_controller.read" in tb.get("scope", ""),
          "status %s body %r" % (st, tb))
    st, tb2, _ = c.call("POST", uaa + "/oauth/token", basic=("cf", ""),
                        form={"grant_type": "password", "username": env["CF_USERNAME"],
                              "password": env["CF_PASSWORD"]})
    check("password grant also works at the uaa host", st == 200, "status %s" % st)
    st, bad, _ = c.call("POST", login + "/oauth/token", basic=("cf", ""),
                        form={"grant_type": "password", "username": env["CF_USERNAME"],
                              "password": "wrong"})
    check("wrong password -> 401", st == 401, "status %s" % st)
    if not tok:
        return

    st, body, _ = c.call("GET", api + "/v3/service_offerings")
    check("/v3 without a token -> 401 CF-NotAuthenticated",
          st == 401 and body["errors"][0]["code"] == 10002, "status %s body %r" % (st, body))
    st, body, _ = c.call("GET", api + "/v3/service_offerings", token=tok[:-4] + "AAAA")
    check("/v3 with a bad token -> 401 CF-InvalidAuthToken 1000",
          st == 401 and body["errors"][0] == {"code": 1000, "title": "CF-InvalidAuthToken",
                                              "detail": "Invalid Auth Token"},
          "status %s body %r" % (st, body))

    # paging: follow next.href
    url, names, pages, first = api + "/v3/service_offerings", [], 0, None
    while url and pages < 20:
        st, body, _ = c.call("GET", url, token=tok)
        if st != 200:
            break
        first = first or body["pagination"]
        pages += 1
        names += [r["name"] for r in body["resources"]]
        nxt = body["pagination"]["next"]
        url = nxt["href"] if nxt else None
    check("offerings page through next.href (default per_page small, absolute hrefs)",
          pages > 1 and first and first["total_pages"] == pages
          and first["total_results"] == len(names) and "SAPCloudALMAPIs" in names
          and len(set(names)) == len(names),
          "pages %d, names %r, first %r" % (pages, names, first))
    st, body, _ = c.call("GET", api + "/v3/service_offerings?per_page=50", token=tok)
    check("per_page is honoured", st == 200 and body["pagination"]["total_pages"] == 1
          and body["pagination"]["next"] is None and len(body["resources"]) == len(names),
          "status %s body %r" % (st, body))
    st, body, _ = c.call("GET", api + "/v3/service_offerings?per_page=0", token=tok)
    check("per_page=0 -> 400 CF-BadQueryParameter",
          st == 400 and body["errors"][0]["code"] == 10005, "status %s" % st)
    st, body, _ = c.call("GET", api + "/v3/service_offerings?bogus=1", token=tok)
    check("unknown query parameter -> 400", st == 400, "status %s" % st)

    st, body, _ = c.call("GET", api + "/v3/service_plans?names=standard&service_offering_names="
                         "cloudalm-api,sap-cloud-alm-api,SAPCloudALMAPIs&include=service_offering",
                         token=tok)
    plans = body.get("resources", []) if st == 200 else []
    inc = (body or {}).get("included", {}).get("service_offerings", []) if st == 200 else []
    check("plan lookup by offering names (comma = OR) with include=service_offering",
          len(plans) == 1 and [o["name"] for o in inc] == ["SAPCloudALMAPIs"]
          and plans[0]["relationships"]["service_offering"]["data"]["guid"] == inc[0]["guid"],
          "status %s body %r" % (st, body))
    plan_guid = plans[0]["guid"] if plans else ""
    space = env["CF_SPACE_GUID"]

    st, body, _ = c.call("GET", api + "/v3/service_instances?space_guids=%s&service_plan_guids=%s"
                         % (space, plan_guid), token=tok)
    insts = body.get("resources", []) if st == 200 else []
    check("preset has one Cloud ALM instance in the space, created 2022-05-10",
          len(insts) == 1 and insts[0]["created_at"].startswith("2022-05-10")
          and insts[0]["last_operation"]["state"] == "succeeded",
          "status %s body %r" % (st, body))
    if not insts:
        return
    inst = insts[0]
    st, sm_state, _ = c.call("GET", fake.control_url + "/_fake/state")
    sm_inst = [i for i in sm_state.get("instances", []) if i["id"] == inst["guid"]]
    check("the CF instance is listed in SM state with a CF platform_id",
          len(sm_inst) == 1 and sm_inst[0]["platform_id"].startswith("cf-")
          and sm_inst[0]["name"] == inst["name"] and sm_inst[0]["ready"] is True,
          "sm instances %r" % [(i["id"], i["name"], i["platform_id"])
                               for i in sm_state.get("instances", [])])

    st, body, _ = c.call("GET", api + "/v3/service_credential_bindings?type=key&"
                         "service_instance_guids=" + inst["guid"], token=tok)
    keys = body.get("resources", []) if st == 200 else []
    check("preset key is listed", len(keys) == 1 and keys[0]["type"] == "key",
          "status %s body %r" % (st, body))
    if not keys:
        return
    st, det, _ = c.call("GET", keys[0]["links"]["details"]["href"], token=tok)
    cred = (det or {}).get("credentials", {}) if st == 200 else {}
    uaa = cred.get("uaa", {})
    check("key details envelope {credentials: {endpoints.Api, uaa{...}}}",
          st == 200 and set(det) == {"credentials"}
          and cred.get("endpoints", {}).get("Api", "").endswith(".eu10.alm.localhost:%d/api"
                                                               % fake.port)
          and uaa.get("credential-type") == "binding-secret"
          and uaa.get("clientsecret", "").startswith(keys[0]["guid"] + "$")
          and uaa.get("clientid", "").endswith("|calm!b111")
          and ".authentication.localhost" in uaa.get("url", ""),
          "status %s body keys %r" % (st, list((det or {}).keys()) if isinstance(det, dict) else det))
    st, t1 = cc_token(c, fake, uaa)
    sc = jwt_claims(t1["access_token"])["scope"] if st == 200 else []
    check("preset key's token works and lacks the imp-cdm scopes",
          st == 200 and not any("imp-cdm" in s for s in sc), "status %s scopes %r" % (st, sc))

    # new key on the same instance: job polling, a binding secret of its own
    st, _, h = c.call("POST", api + "/v3/service_credential_bindings", token=tok,
                      body={"type": "key", "name": "second-key",
                            "relationships": {"service_instance": {"data": {"guid": inst["guid"]}}}})
    loc = h.get("location", "")
    check("create key -> 202 with absolute Location /v3/jobs/<guid>",
          st == 202 and loc.startswith(api + "/v3/jobs/"), "status %s location %r" % (st, loc))
    st, lst, _ = c.call("GET", api + "/v3/service_credential_bindings?names=second-key", token=tok)
    if lst and lst.get("resources"):
        st2, d2, _ = c.call("GET", lst["resources"][0]["links"]["details"]["href"], token=tok)
        check("details of a key still being created -> 404 CF-ResourceNotFound",
              st2 == 404 and d2["errors"][0]["code"] == 10010, "status %s body %r" % (st2, d2))
    states, job = poll_job(c, loc, tok)
    check("job goes PROCESSING/POLLING then COMPLETE with a link to the key",
          states and states[0] == "PROCESSING" and states[-1] == "COMPLETE"
          and "service_credential_bindings" in job.get("links", {}),
          "states %r job %r" % (states, job))
    key2_url = (job or {}).get("links", {}).get("service_credential_bindings", {}).get("href", "")
    st, d2, _ = c.call("GET", key2_url + "/details", token=tok)
    u2 = (d2 or {}).get("credentials", {}).get("uaa", {}) if st == 200 else {}
    key2_guid = key2_url.rsplit("/", 1)[-1]
    check("binding-secret: the second key shares the clientid, not the secret (<key guid>$...)",
          u2.get("credential-type") == "binding-secret" and u2.get("clientid") == uaa.get("clientid")
          and u2.get("clientsecret", "").startswith(key2_guid + "$")
          and u2.get("clientsecret") != uaa.get("clientsecret"), "status %s %r" % (st, u2.get("credential-type")))
    st_a, _ = cc_token(c, fake, u2) if u2 else (0, None)
    st_b, _ = cc_token(c, fake, dict(u2, clientsecret=uaa.get("clientsecret", "") + "x")) if u2 else (0, None)
    check("each key's own secret gives a token; another secret does not", st_a == 200 and st_b == 401,
          "%s %s" % (st_a, st_b))
    st, _, h = c.call("POST", api + "/v3/service_credential_bindings", token=tok,
                      body={"type": "key", "name": "ask-instance-secret",
                            "parameters": {"credential-type": "instance-secret"},
                            "relationships": {"service_instance": {"data": {"guid": inst["guid"]}}}})
    states, job = poll_job(c, h.get("location", ""), tok)
    check("a key asking for instance-secret on an instance that does not allow it: job FAILED",
          states[-1:] == ["FAILED"] and "instance-secret" in job["errors"][0]["detail"],
          "states %r job %r" % (states, job))

    st, body, _ = c.call("POST", api + "/v3/service_credential_bindings", token=tok,
                         body={"type": "key", "name": "second-key",
                               "relationships": {"service_instance": {"data": {"guid": inst["guid"]}}}})
    check("duplicate key name -> 422 CF-UnprocessableEntity 10008",
          st == 422 and body["errors"][0]["code"] == 10008
          and "second-key" in body["errors"][0]["detail"], "status %s body %r" % (st, body))
    st, body, _ = c.call("POST", api + "/v3/service_instances", token=tok,
                         body={"type": "managed", "name": inst["name"],
                               "relationships": {"space": {"data": {"guid": space}},
                                                 "service_plan": {"data": {"guid": plan_guid}}}})
    check("duplicate instance name -> 422 'The service instance name is taken'",
          st == 422 and body["errors"][0]["code"] == 10008
          and "name is taken" in body["errors"][0]["detail"], "status %s body %r" % (st, body))

    # PATCH with the authorities -> only keys created afterwards get the scopes
    auth = ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
            "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]
    xsappname = uaa.get("xsappname", "").split("!b")[0]
    st, _, h = c.call("PATCH", api + "/v3/service_instances/" + inst["guid"], token=tok,
                      body={"parameters": {"xs-security": {"xsappname": xsappname,
                                                           "authorities": auth}}})
    states, job = poll_job(c, h.get("location", ""), tok)
    check("PATCH parameters -> 202 + job COMPLETE", st == 202 and states[-1:] == ["COMPLETE"],
          "status %s states %r job %r" % (st, states, job))
    st, _, h = c.call("POST", api + "/v3/service_credential_bindings", token=tok,
                      body={"type": "key", "name": "third-key",
                            "relationships": {"service_instance": {"data": {"guid": inst["guid"]}}}})
    states, job = poll_job(c, h.get("location", ""), tok)
    k3 = job.get("links", {}).get("service_credential_bindings", {}).get("href", "")
    st, d3, _ = c.call("GET", k3 + "/details", token=tok)
    u3 = (d3 or {}).get("credentials", {}).get("uaa", {}) if st == 200 else {}
    st, t3 = cc_token(c, fake, u3) if u3 else (0, {})
    sc3 = jwt_claims(t3["access_token"])["scope"] if st == 200 else []
    st, t1b = cc_token(c, fake, uaa)
    sc1 = jwt_claims(t1b["access_token"])["scope"] if st == 200 else []
    check("key created after the PATCH has calm!b111.imp-cdm-feature-* scopes, old key not",
          "calm!b111.imp-cdm-feature-display-ui" in sc3
          and "calm!b111.imp-cdm-feature-manage-ui" in sc3
          and not any("imp-cdm" in s for s in sc1)
          and u3.get("clientsecret") not in (uaa.get("clientsecret"), u2.get("clientsecret")),
          "new scopes %r old scopes %r" % (sc3, sc1))

    st, _, h = c.call("PATCH", api + "/v3/service_instances/" + inst["guid"], token=tok,
                      body={"parameters": {"xs-security": {"xsappname": inst["guid"],
                                                           "authorities": auth}}})
    states, job = poll_job(c, h.get("location", ""), tok)
    check("PATCH changing the xsappname -> job FAILED with errors[]",
          st == 202 and states[-1:] == ["FAILED"] and job["errors"]
          and job["errors"][0]["title"] == "CF-UnprocessableEntity",
          "status %s states %r job %r" % (st, states, job))

    # new instance with the authorities, shell-eaten variant without them
    for name, auths, want in (("calm-new", auth, True),
                              ("calm-extra", auth + ["$XSMASTERAPPNAME.calm-api.analytics.read"], True),
                              ("calm-eaten", [".imp-cdm-feature-display-ui"], False)):
        st, _, h = c.call("POST", api + "/v3/service_instances", token=tok,
                          body={"type": "managed", "name": name,
                                "parameters": {"xs-security": {"xsappname": name,
                                                               "authorities": auths}},
                                "relationships": {"space": {"data": {"guid": space}},
                                                  "service_plan": {"data": {"guid": plan_guid}}}})
        states, job = poll_job(c, h.get("location", ""), tok)
        ig = job.get("links", {}).get("service_instances", {}).get("href", "").rsplit("/", 1)[-1]
        st2, _, h2 = c.call("POST", api + "/v3/service_credential_bindings", token=tok,
                            body={"type": "key", "name": name + "-key",
                                  "relationships": {"service_instance": {"data": {"guid": ig}}}})
        states2, job2 = poll_job(c, h2.get("location", ""), tok)
        kh = job2.get("links", {}).get("service_credential_bindings", {}).get("href", "")
        st3, d, _ = c.call("GET", kh + "/details", token=tok)
        u = (d or {}).get("credentials", {}).get("uaa", {}) if st3 == 200 else {}
        st4, t = cc_token(c, fake, u) if u else (0, {})
        sc = jwt_claims(t["access_token"])["scope"] if st4 == 200 else []
        has = "calm!b111.imp-cdm-feature-manage-ui" in sc
        check("new instance %s: create job, key job, token scopes imp-cdm=%s" % (name, want),
              st == 202 and states[-1:] == ["COMPLETE"] and states2[-1:] == ["COMPLETE"]
              and has == want and u.get("clientsecret") != uaa.get("clientsecret"),
              "states %r %r scopes %r" % (states, states2, sc))
        if name == "calm-extra":
            check("... every $XSMASTERAPPNAME authority is granted, as on the Service Manager side",
                  "calm!b111.calm-api.analytics.read" in sc, sc)
    # deleting a binding-secret key revokes its secret, and only its own
    st, _, h = c.call("DELETE", key2_url, token=tok)
    states, job = poll_job(c, h.get("location", ""), tok)
    st_del, _ = cc_token(c, fake, u2) if u2 else (0, None)
    st_keep, _ = cc_token(c, fake, uaa)
    check("deleting a binding-secret key revokes its secret (401), the other keys keep theirs",
          states[-1:] == ["COMPLETE"] and st_del == 401 and st_keep == 200,
          "states %r: deleted key %s, preset key %s" % (states, st_del, st_keep))

    st, sm_state, _ = c.call("GET", fake.control_url + "/_fake/state")
    names = {i["name"]: i for i in sm_state.get("instances", [])}
    check("instances created through CF show up in SM state",
          "calm-new" in names and names["calm-new"]["platform_id"].startswith("cf-"),
          "names %r" % sorted(names))

    st, _, h = c.call("POST", api + "/v3/service_instances", token=tok,
                      body={"type": "managed", "name": "calm.dotted",
                            "parameters": {"xs-security": {"xsappname": "calm.dotted"}},
                            "relationships": {"space": {"data": {"guid": space}},
                                              "service_plan": {"data": {"guid": plan_guid}}}})
    states, job = poll_job(c, h.get("location", ""), tok)
    check("xsappname with a '.' -> create job FAILED (broker error)",
          states[-1:] == ["FAILED"] and "xsappname" in job["errors"][0]["detail"],
          "states %r job %r" % (states, job))
    st, body, _ = c.call("GET", api + "/v3/service_instances?names=calm-new,calm-eaten&per_page=1",
                         token=tok)
    nxt = body["pagination"]["next"]["href"] if st == 200 and body["pagination"]["next"] else ""
    st2, body2, _ = c.call("GET", nxt, token=tok) if nxt else (0, None, None)
    check("instance list: names filter (comma list) and next.href keeps the filter",
          st == 200 and body["pagination"]["total_results"] == 2 and st2 == 200
          and {body["resources"][0]["name"], body2["resources"][0]["name"]}
          == {"calm-new", "calm-eaten"}, "page1 %r page2 %r" % (body, body2))


def cf_login(c, fake):
    env = fake.cf_env
    st, tb, _ = c.call("POST", env["CF_API"].replace("api.cf", "login.cf") + "/oauth/token",
                       basic=("cf", ""), form={"grant_type": "password", "username": env["CF_USERNAME"],
                                               "password": env["CF_PASSWORD"]})
    return env["CF_API"], (tb or {}).get("access_token") if st == 200 else None


def cf_new_key(c, api, tok, inst_guid, name, params=None):
    """(job states, job, the key's uaa block) for a new key of the instance."""
    body = {"type": "key", "name": name,
            "relationships": {"service_instance": {"data": {"guid": inst_guid}}}}
    if params is not None:
        body["parameters"] = params
    st, _, h = c.call("POST", api + "/v3/service_credential_bindings", token=tok, body=body)
    states, job = poll_job(c, h.get("location", ""), tok)
    href = (job or {}).get("links", {}).get("service_credential_bindings", {}).get("href", "")
    st, d, _ = c.call("GET", href + "/details", token=tok) if href else (0, None, None)
    return states, job, ((d or {}).get("credentials", {}).get("uaa", {}) if st == 200 else {})


def test_cf_old_key(fake):
    """Variant instance-secret: the cf-legacy key is an old instance-secret key (made before
    19 January 2026); new keys of its instance still get binding secrets; an update whose
    credential-types leave out instance-secret (or that sends none: the default is
    binding-secret) revokes the old key."""
    c = Client(fake)
    api, tok = cf_login(c, fake)
    st, body, _ = c.call("GET", api + "/v3/service_credential_bindings?type=key", token=tok)
    keys = [k for k in (body or {}).get("resources", []) if k["name"].endswith("-key")] if st == 200 else []
    if not check("variant instance-secret: the preset key is listed", len(keys) == 1, "status %s" % st):
        return
    inst_guid = keys[0]["relationships"]["service_instance"]["data"]["guid"]
    st, det, _ = c.call("GET", keys[0]["links"]["details"]["href"], token=tok)
    old = (det or {}).get("credentials", {}).get("uaa", {}) if st == 200 else {}
    st_old, _ = cc_token(c, fake, old) if old else (0, None)
    check("variant instance-secret: the preset key is an old instance-secret key that works",
          old.get("credential-type") == "instance-secret" and st_old == 200, "%r %s" % (old.get("credential-type"), st_old))
    states, job, new = cf_new_key(c, api, tok, inst_guid, "new-key")
    check("variant instance-secret: a new key of that instance gets a binding secret of its own",
          new.get("credential-type") == "binding-secret" and new.get("clientid") == old.get("clientid")
          and new.get("clientsecret") != old.get("clientsecret"), "%r %r" % (states, new.get("credential-type")))
    states, job, asked = cf_new_key(c, api, tok, inst_guid, "asked-key", {"credential-type": "instance-secret"})
    check("variant instance-secret: a key asking for instance-secret shares the old secret (still allowed)",
          asked.get("credential-type") == "instance-secret" and asked.get("clientsecret") == old.get("clientsecret"),
          "%r %r" % (states, asked.get("credential-type")))
    xsappname = old.get("xsappname", "").split("!b")[0]
    for label, xs, want_old in (
            ("credential-types keeping instance-secret", {"oauth2-configuration": {
                "credential-types": ["binding-secret", "instance-secret"]}}, 200),
            ("no oauth2-configuration (the default: binding-secret)", {}, 401)):
        xs = dict(xs, xsappname=xsappname)
        st, _, h = c.call("PATCH", api + "/v3/service_instances/" + inst_guid, token=tok,
                          body={"parameters": {"xs-security": xs}})
        states, job = poll_job(c, h.get("location", ""), tok)
        st_old, _ = cc_token(c, fake, old)
        st_new, _ = cc_token(c, fake, new)
        check("variant instance-secret: an update with %s: old key %s, binding-secret key 200" % (label, want_old),
              states[-1:] == ["COMPLETE"] and st_old == want_old and st_new == 200,
              "states %r old %s new %s" % (states, st_old, st_new))


# ---------------------------------------------------------------------------------------
# cis (Accounts, Entitlements, SaaS)


def cis_token(c, fake, path=None):
    with open(path or fake.cis_key_path) as f:
        key = json.load(f)
    st, tb = cc_token(c, fake, key["uaa"])
    return key, (tb or {}).get("access_token") if st == 200 else None


def test_cis_plans(fake):
    """Each plan's token carries its plan's scopes only (SAP's service-plan table): the
    central key cannot read SaaS subscriptions, the local key cannot read subaccounts or
    assign entitlements; both answer 403 naming the missing scope."""
    c = Client(fake)
    ckey, ctok = cis_token(c, fake)
    lkey, ltok = cis_token(c, fake, fake.cis_local_key_path)
    check("cis keys: central and local xsappnames", (ckey["uaa"]["xsappname"], lkey["uaa"]["xsappname"])
          == ("cis-central!b14", "cis-local!b4"), (ckey["uaa"]["xsappname"], lkey["uaa"]["xsappname"]))
    saas = ckey["endpoints"]["saas_registry_service_url"] + "/saas-manager/v1/applications"
    acc = ckey["endpoints"]["accounts_service_url"] + "/accounts/v1/subaccounts/" + fake.subaccount
    put = ckey["endpoints"]["entitlements_service_url"] + "/entitlements/v1/subaccountServicePlans"
    for what, method, url, tok, scope in (
            ("central key reads SaaS subscriptions", "GET", saas, ctok,
             "subaccount.application.subscription.read"),
            ("local key reads the subaccount", "GET", acc, ltok, "global-account.subaccount.read"),
            ("local key assigns an entitlement", "PUT", put, ltok,
             "global-account.entitlement.subaccount.update")):
        st, body, _ = c.call(method, url, token=tok, body={"subaccountServicePlans": []}
                             if method == "PUT" else None)
        msg = ((body or {}).get("error") or {}).get("message", "") if isinstance(body, dict) else ""
        check("%s -> 403 naming %s" % (what, scope), st == 403 and scope in msg, "status %s body %r" % (st, body))
    st, apps, _ = c.call("GET", saas, token=ltok)
    check("local key reads SaaS subscriptions", st == 200 and apps.get("applications"), "status %s" % st)


def test_cis_dates(fake, want_date, label):
    c = Client(fake)
    key, tok = cis_token(c, fake)
    if not check("%s: cis key's client_credentials token" % label, tok is not None, "no token"):
        return None, None, None
    st, sub, _ = c.call("GET", key["endpoints"]["accounts_service_url"]
                        + "/accounts/v1/subaccounts/" + fake.subaccount, token=tok)
    ok = st == 200 and isinstance(sub.get("createdDate"), int)
    check("%s: subaccount createdDate is epoch ms of %s" % (label, want_date),
          ok and date_of_ms(sub["createdDate"]) == want_date
          and sub["displayName"] == "SAP Cloud ALM" and sub["state"] == "OK",
          "status %s body %r" % (st, sub))
    _, ltok = cis_token(c, fake, fake.cis_local_key_path)
    st, apps, _ = c.call("GET", key["endpoints"]["saas_registry_service_url"]
                         + "/saas-manager/v1/applications", token=ltok)
    calm = [a for a in (apps or {}).get("applications", [])
            if a.get("displayName") == "SAP Cloud ALM"] if st == 200 else []
    other = [a for a in (apps or {}).get("applications", [])
             if a.get("displayName") == "Cloud Transport Management"] if st == 200 else []
    check("%s: SaaS Cloud ALM subscription createdDate on %s, other app on another date"
          % (label, want_date),
          len(calm) == 1 and calm[0]["state"] == "SUBSCRIBED"
          and saas_text_date(calm[0]["createdDate"]) == want_date
          and other and saas_text_date(other[0]["createdDate"]) != want_date,
          "status %s body %r" % (st, apps))
    return c, key, tok


def test_cis_entitlement(fake):
    c, key, tok = test_cis_dates(fake, "2022-11-14", "before-2023-06-12")
    if tok is None:
        return
    ent = key["endpoints"]["entitlements_service_url"]
    sub = fake.subaccount
    q = "/entitlements/v1/assignments?subaccountGUID=%s&serviceName=SAPCloudALMAPIs&planName=standard" % sub
    st, body, _ = c.call("GET", ent + q, token=tok)
    plan = (body.get("entitledServices") or [{}])[0].get("servicePlans", [{}])[0] if st == 200 else {}
    check("assignments before: entitled to the global account, not assigned to the subaccount",
          st == 200 and plan.get("category") == "SERVICE" and body.get("assignedServices") == [],
          "status %s body %r" % (st, body))

    # CF marketplace hides the offering while not entitled
    env = fake.cf_env
    st, tb, _ = c.call("POST", env["CF_API"].replace("api.cf", "login.cf") + "/oauth/token",
                       basic=("cf", ""), form={"grant_type": "password",
                                               "username": env["CF_USERNAME"],
                                               "password": env["CF_PASSWORD"]})
    cft = tb.get("access_token") if st == 200 else None
    st, offs, _ = c.call("GET", env["CF_API"] + "/v3/service_offerings?names=SAPCloudALMAPIs",
                         token=cft)
    check("CF marketplace hides SAPCloudALMAPIs while not entitled",
          st == 200 and offs["resources"] == [], "status %s body %r" % (st, offs))

    put = ent + "/entitlements/v1/subaccountServicePlans"
    for what, body in (
            ("missing assignmentInfo", {"subaccountServicePlans": [
                {"serviceName": "SAPCloudALMAPIs", "servicePlanName": "standard"}]}),
            ("both amount and enable", {"subaccountServicePlans": [
                {"serviceName": "SAPCloudALMAPIs", "servicePlanName": "standard",
                 "assignmentInfo": [{"subaccountGUID": sub, "amount": 1, "enable": True}]}]}),
            ("enable on a SERVICE (quota) plan", {"subaccountServicePlans": [
                {"serviceName": "SAPCloudALMAPIs", "servicePlanName": "standard",
                 "assignmentInfo": [{"subaccountGUID": sub, "enable": True}]}]}),
            ("wrong body shape", {"servicePlans": []})):
        st, eb, _ = c.call("PUT", put, body=body, token=tok)
        err = (eb or {}).get("error", {}) if isinstance(eb, dict) else {}
        check("PUT entitlement, %s -> 400 cis error body" % what,
              st == 400 and isinstance(err.get("code"), int) and err.get("message")
              and err.get("correlationID"), "status %s body %r" % (st, eb))
    st, eb, _ = c.call("PUT", put, token=tok, body={"subaccountServicePlans": [
        {"serviceName": "SAPCloudALMAPIs", "servicePlanName": "standard",
         "assignmentInfo": [{"subaccountGUID": sub, "amount": 1}]}]})
    check("PUT entitlement with amount -> 202", st == 202, "status %s body %r" % (st, eb))
    seen = []
    for _ in range(5):
        st, body, _ = c.call("GET", ent + q, token=tok)
        try:
            seen.append(body["assignedServices"][0]["servicePlans"][0]["assignmentInfo"][0]
                        ["entityState"])
        except (KeyError, IndexError, TypeError):
            seen.append(None)
        if seen[-1] == "OK":
            break
    row = body["assignedServices"][0]["servicePlans"][0]["assignmentInfo"][0] if seen[-1] == "OK" else {}
    check("assignment goes PROCESSING then OK (E.16 row shape, epoch-ms dates)",
          seen[:1] == ["PROCESSING"] and seen[-1] == "OK" and row.get("entityId") == sub
          and row.get("entityType") == "SUBACCOUNT" and isinstance(row.get("createdDate"), int),
          "states %r" % seen)
    st, s, _ = c.call("GET", fake.control_url + "/_fake/state")
    check("entitled flag is set once OK", st == 200 and s.get("entitled") is True,
          "state entitled %r" % (s or {}).get("entitled"))
    # SM: the offering is now visible with the SM key
    with open(fake.sm_key_path) as f:
        smk = json.load(f)
    st, smt = cc_token(c, fake, smk)
    st, offs, _ = c.call("GET", smk["sm_url"] + "/v1/service_offerings?fieldQuery="
                         + urllib.parse.quote("catalog_name eq 'SAPCloudALMAPIs'"),
                         token=(smt or {}).get("access_token"))
    check("SM offering SAPCloudALMAPIs visible after the assignment",
          st == 200 and len(offs.get("items", [])) == 1, "status %s body %r" % (st, offs))
    st, offs, _ = c.call("GET", env["CF_API"] + "/v3/service_offerings?names=SAPCloudALMAPIs",
                         token=cft)
    check("CF marketplace shows SAPCloudALMAPIs after the assignment",
          st == 200 and len(offs["resources"]) == 1, "status %s body %r" % (st, offs))

    _, ltok = cis_token(c, fake, fake.cis_local_key_path)
    st, one, _ = c.call("GET", key["endpoints"]["saas_registry_service_url"]
                        + "/saas-manager/v1/applications/no-such-app", token=ltok)
    check("unknown SaaS app -> 404 cis error", st == 404 and "error" in one,
          "status %s body %r" % (st, one))
    st, body, _ = c.call("GET", key["endpoints"]["accounts_service_url"]
                         + "/accounts/v1/subaccounts/" + sub)
    check("cis without a token -> 401", st == 401, "status %s" % st)
    st, body, _ = c.call("GET", key["endpoints"]["entitlements_service_url"]
                         + "/accounts/v1/subaccounts/" + sub, token=tok)
    check("Accounts path on the entitlements host -> 404 unknown route", st == 404,
          "status %s" % st)


def main():
    t0 = time.time()
    try:
        with FakeBTP(preset="cf-legacy") as fake:
            test_cf(fake)
            test_cis_dates(fake, "2022-05-10", "cf-legacy")
        with FakeBTP(preset="cf-legacy", variants=["instance-secret"]) as fake:
            test_cf_old_key(fake)
        with FakeBTP(preset="before-2023-06-12") as fake:
            test_cis_plans(fake)
            test_cis_entitlement(fake)
        for preset, day in (("after-2023-10-16", "2024-03-05"), ("mid-2023", "2023-08-21")):
            with FakeBTP(preset=preset) as fake:
                c, key, tok = test_cis_dates(fake, day, preset)
                if tok:
                    st, body, _ = c.call(
                        "GET", key["endpoints"]["entitlements_service_url"]
                        + "/entitlements/v1/assignments?subaccountGUID=%s&serviceName="
                        "SAPCloudALMAPIs&planName=standard" % fake.subaccount, token=tok)
                    try:
                        state = body["assignedServices"][0]["servicePlans"][0][
                            "assignmentInfo"][0]["entityState"]
                    except (KeyError, IndexError, TypeError):
                        state = None
                    eq("%s: Cloud ALM API entitlement assigned (OK)" % preset, state, "OK")
    except Exception as e:  # a crash is a failure, with the reason on the line
        import traceback
        traceback.print_exc()
        check("suite ran to the end", False, "%s: %s" % (type(e).__name__, e))
    check("suite finished in under 40 s", time.time() - t0 < 40, "%.1f s" % (time.time() - t0))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
