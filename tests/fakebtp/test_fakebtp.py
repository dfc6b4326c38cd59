#!/usr/bin/env python3
"""Checks of the fake BTP core (SM, XSUAA, faults, presets, log) against the reference examples.

Prints "ok - fakebtp: <what>" / "not ok - fakebtp: <what>: <why>"; exit 1 on any failure.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import sys
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeBTP  # noqa: E402

FAILED = []
PASSED = []


def check(what, cond, why=""):
    if cond:
        PASSED.append(what)
        print("ok - fakebtp: %s" % what, flush=True)
    else:
        FAILED.append(what)
        print("not ok - fakebtp: %s: %s" % (what, why or "check failed"), flush=True)
    return cond


# ----------------------------------------------------------------------------------------
# tiny HTTP client: always connects to 127.0.0.1, sends the URL's host in Host / SNI


class _TLSConn(http.client.HTTPSConnection):
    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


def call(method, url, body=None, headers=None, token=None, form=None, ctx=None, timeout=10):
    u = urllib.parse.urlsplit(url)
    hdrs = {"Host": u.netloc, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        hdrs["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    if u.scheme == "https":
        conn = _TLSConn(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", u.port, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
    finally:
        conn.close()


def q(s):
    return urllib.parse.quote(s, safe="")


def jwt_claims(tok):
    p = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


class Env:
    """Convenience wrapper around a running fake."""

    def __init__(self, fake):
        self.f = fake
        self.key = fake.sm_key()
        self.ctx = ssl.create_default_context(cafile=fake.ca_path) if fake.https else None
        self._tok = None

    def sm_token(self):
        if self._tok is None:
            r = call("POST", self.key["url"] + "/oauth/token", ctx=self.ctx,
                     form={"grant_type": "client_credentials", "client_id": self.key["clientid"],
                           "client_secret": self.key["clientsecret"]})
            self._tok = r.json["access_token"]
        return self._tok

    def sm(self, method, path, body=None, **kw):
        return call(method, self.key["sm_url"] + path, body=body, token=self.sm_token(),
                    ctx=self.ctx, **kw)

    def list_all(self, path):
        items, pages, url = [], 0, path
        while True:
            r = self.sm("GET", url)
            assert r.status == 200, r
            pages += 1
            items += r.json["items"]
            if not r.json.get("token"):
                return items, pages, r.json["num_items"]
            sep = "&" if "?" in path else "?"
            url = path + sep + "token=" + q(r.json["token"])

    def calm_plan(self):
        r = self.sm("GET", "/v1/service_plans?fieldQuery=" +
                    q("catalog_name eq 'standard' and service_offering_id eq "
                      "'11111111-aaaa-4bbb-8ccc-000000000001'"))
        return r.json["items"][0]["id"] if r.json and r.json.get("items") else None

    def poll(self, location, limit=20):
        states = []
        for _ in range(limit):
            r = self.sm("GET", location)
            states.append(r.json.get("state"))
            if r.json.get("state") != "in progress":
                return r, states
        return r, states

    def create_instance(self, name, params=None, async_=None):
        body = {"name": name, "service_plan_id": self.calm_plan()}
        if params is not None:
            body["parameters"] = params
        path = "/v1/service_instances" + ("" if async_ is None else "?async=%s" % async_)
        r = self.sm("POST", path, body)
        if r.status == 202:
            loc = r.headers["location"]
            self.poll(loc)
            iid = loc.split("/")[3]
            return self.sm("GET", "/v1/service_instances/" + iid).json
        return r.json

    def bind(self, iid, name, params=None):
        body = {"name": name, "service_instance_id": iid}
        if params is not None:
            body["parameters"] = params
        r = self.sm("POST", "/v1/service_bindings?async=false", body)
        return r

    def token_for(self, uaa):
        return call("POST", uaa["url"] + "/oauth/token", ctx=self.ctx,
                    form={"grant_type": "client_credentials", "client_id": uaa["clientid"],
                          "client_secret": uaa["clientsecret"]})


CDM = ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui", "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]


def has_cdm(scopes):
    return any(s.endswith(".imp-cdm-feature-manage-ui") for s in scopes) and \
        any(s.endswith(".imp-cdm-feature-display-ui") for s in scopes)


# ----------------------------------------------------------------------------------------


def test_main(fake):
    e = Env(fake)
    key = e.key
    # --- token endpoint ---
    r = call("POST", key["url"] + "/oauth/token",
             form={"grant_type": "client_credentials", "client_id": key["clientid"],
                   "client_secret": key["clientsecret"]})
    ok = r.status == 200 and r.json.get("token_type") == "bearer"
    claims = jwt_claims(r.json["access_token"]) if ok else {}
    check("client_credentials (form) returns a bearer JWT", ok, repr(r))
    check("SM token carries subaccount-admin scopes, zid, ext_attr.zdn, exp",
          isinstance(claims.get("scope"), list) and
          any(s.endswith(".subaccount.service_instance.manage") for s in claims["scope"]) and
          claims.get("zid") == fake.subaccount and claims.get("ext_attr", {}).get("zdn") and
          claims.get("exp", 0) > time.time() and claims.get("cid") == key["clientid"], str(claims))
    basic = base64.b64encode(("%s:%s" % (q(key["clientid"]), q(key["clientsecret"]))).encode()).decode()
    r = call("POST", key["url"] + "/oauth/token", form={"grant_type": "client_credentials"},
             headers={"Authorization": "Basic " + basic, "X-CF-ENCODED-CREDENTIALS": "true"})
    check("client_credentials with form-urlencoded HTTP Basic and X-CF-ENCODED-CREDENTIALS",
          r.status == 200, repr(r))
    r = call("POST", key["url"] + "/oauth/token", form={"grant_type": "client_credentials"},
             headers={"Authorization": "Basic " + basic})
    check("form-urlencoded Basic without X-CF-ENCODED-CREDENTIALS is not decoded: 401",
          r.status == 401, repr(r))
    raw = base64.b64encode(("%s:%s" % (key["clientid"], key["clientsecret"])).encode()).decode()
    r = call("POST", key["url"] + "/oauth/token", form={"grant_type": "client_credentials"},
             headers={"Authorization": "Basic " + raw})
    check("plain Basic without the header is taken as it is", r.status == 200, repr(r))
    r = call("POST", key["url"] + "/oauth/token",
             form={"grant_type": "client_credentials", "client_id": key["clientid"],
                   "client_secret": "wrong"})
    check("wrong secret -> 401 invalid_client Bad credentials",
          r.status == 401 and r.json == {"error": "invalid_client",
                                         "error_description": "Bad credentials"}, repr(r))
    r = call("GET", key["sm_url"] + "/v1/service_offerings", token="not.a.token")
    check("unknown token -> 401 invalid_token", r.status == 401 and
          r.json.get("error") == "invalid_token", repr(r))

    # --- paging ---
    items, pages, num = e.list_all("/v1/service_offerings")
    check("offerings paged with token until no token (default page size 2)",
          pages >= 3 and len(items) == num and len({i["id"] for i in items}) == num,
          "pages=%d items=%d num=%d" % (pages, len(items), num))
    r = e.sm("GET", "/v1/service_offerings?max_items=0")
    check("max_items=0 -> only num_items", r.status == 200 and r.json == {"num_items": num}, repr(r))
    r = e.sm("GET", "/v1/service_offerings?max_items=-1")
    check("negative max_items -> 400 InvalidMaxItems",
          r.status == 400 and r.json.get("error") == "InvalidMaxItems", repr(r))
    r = e.sm("GET", "/v1/service_offerings?token=%21%21bogus")
    check("bad paging token -> 400 TokenInvalid",
          r.status == 400 and r.json.get("error") == "TokenInvalid", repr(r))
    r = e.sm("GET", "/v1/service_offerings?max_items=2")
    check("page with a token has a Link rel=next header",
          'rel="next"' in r.headers.get("link", "") and r.json.get("token"), repr(r.headers))

    # --- query grammar ---
    r = e.sm("GET", "/v1/service_offerings?fieldQuery=" + q("catalog_name eq 'SAPCloudALMAPIs'"))
    it = (r.json.get("items") or [{}])[0]
    check("offering by catalog_name (§6.4)", r.json.get("num_items") == 1 and
          it.get("metadata", {}).get("displayName") == "SAP Cloud ALM API", repr(r))
    plan = e.calm_plan()
    check("plan by catalog_name and service_offering_id (§6.5)",
          plan == "33333333-aaaa-4bbb-8ccc-000000000003", str(plan))
    r = e.sm("GET", "/v1/service_offerings?max_items=50&fieldQuery=" +
             q("name in ('xsuaa', 'destination','nope')"))
    check("in (...) list", r.json.get("num_items") == 2, repr(r))
    r = e.sm("GET", "/v1/service_offerings?max_items=50&fieldQuery=" +
             q("name notin ('xsuaa','destination') and bindable eq true"))
    check("notin + and + unquoted boolean", r.json.get("num_items") == num - 2, repr(r))
    r = e.sm("GET", "/v1/service_instances?fieldQuery=" + q("context/instance_name eq 'calmbind-sm'"))
    check("nested key with '/'", r.json.get("num_items") == 1, repr(r))
    r = e.sm("GET", "/v1/service_instances?labelQuery=" + q("subaccount_id eq '%s'" % fake.subaccount))
    check("labelQuery subaccount_id", r.json.get("num_items", 0) >= 2, repr(r))
    bad = {"unquoted string": "name eq SAPCloudALMAPIs", "unknown operator": "name equals 'x'",
           "or is not supported": "name eq 'a' or name eq 'b'",
           "unterminated quote": "name eq 'abc", "double space": "name  eq 'x'"}
    for what, fq in bad.items():
        r = e.sm("GET", "/v1/service_offerings?fieldQuery=" + q(fq))
        check("bad fieldQuery (%s) -> 400 at column N" % what,
              r.status == 400 and r.json.get("error") == "BadRequest" and
              r.json.get("description", "").startswith("error while parsing fieldQuery at column "),
              repr(r))

    # --- sync and async create ---
    no_auth = {"xs-security": {"xsappname": "calm-plain",
                               "oauth2-configuration": {"credential-types": ["binding-secret"]}}}
    r = e.sm("POST", "/v1/service_instances?async=false",
             {"name": "calm-plain", "service_plan_id": plan, "parameters": no_auth})
    inst_plain = r.json
    check("sync create -> 201 entity (§6.6)", r.status == 201 and r.json.get("ready") is True and
          r.json.get("platform_id") == "service-manager" and
          r.json.get("labels", {}).get("subaccount_id") == [fake.subaccount] and
          r.json.get("last_operation", {}).get("state") == "succeeded", repr(r))
    with_auth = {"xs-security": {"xsappname": "calm-api-demo", "authorities": CDM,
                                 "oauth2-configuration": {"credential-types": ["binding-secret", "x509"]}}}
    r = e.sm("POST", "/v1/service_instances",
             {"name": "calm-api-demo", "service_plan_id": plan, "parameters": with_auth,
              "labels": {"created_by": ["test"]}})
    loc = r.headers.get("location", "")
    check("mixed mode: instance create -> 202 with relative Location",
          r.status == 202 and r.json == {} and loc.startswith("/v1/service_instances/") and
          "/operations/" in loc, repr(r))
    iid = loc.split("/")[3] if loc else ""
    g = e.sm("GET", "/v1/service_instances/" + iid)
    check("instance listed not ready while creating", g.json.get("ready") is False and
          g.json.get("last_operation", {}).get("state") == "in progress", repr(g))
    r2 = e.sm("PATCH", "/v1/service_instances/" + iid, {"labels": []})
    check("422 ConcurrentOperationInProgress while in progress",
          r2.status == 422 and r2.json.get("error") == "ConcurrentOperationInProgress", repr(r2))
    last, states = e.poll(loc)
    check("operation goes in progress -> succeeded (§6.7)",
          states[-1] == "succeeded" and "in progress" in states and last.json.get("type") == "create",
          str(states))
    g = e.sm("GET", "/v1/service_instances/" + iid)
    check("instance ready after the operation", g.json.get("ready") is True, repr(g))
    r = e.sm("POST", "/v1/service_instances?async=false",
             {"name": "calm-api-demo", "service_plan_id": plan})
    check("409 on duplicate instance name", r.status == 409 and r.json ==
          {"error": "Conflict", "description": "found conflicting /v1/service_instances"}, repr(r))
    r = e.sm("POST", "/v1/service_instances", {"id": "x", "name": "n2", "service_plan_id": plan})
    check("create body with id -> 400", r.status == 400, repr(r))
    r = e.sm("POST", "/v1/service_instances", b'{"name":"n3"}',
             headers={"Content-Type": "application/x-www-form-urlencoded"})
    check("non-JSON Content-Type -> 400", r.status == 400, repr(r))

    # --- bindings and scopes ---
    r = e.sm("POST", "/v1/service_bindings", {"name": "k1", "service_instance_id": iid})
    b1 = r.json or {}
    uaa = b1.get("credentials", {}).get("uaa", {})
    sd = key["url"].split("//")[1].split(".")[0]
    check("mixed mode: binding create -> 201 with Cloud ALM credentials (§6.10)",
          r.status == 201 and uaa.get("credential-type") == "binding-secret" and
          uaa.get("clientsecret", "").startswith(b1.get("id", "?") + "$") and
          uaa.get("clientid", "").startswith("sb-calm-api-demo!b") and
          uaa.get("clientid", "").endswith("|calm!b111") and
          uaa.get("xsappname") == uaa.get("clientid", "")[3:] and uaa.get("identityzone") == sd and
          uaa.get("tenantid") == fake.subaccount and uaa.get("serviceInstanceId") == iid and
          "BEGIN PUBLIC KEY" in uaa.get("verificationkey", "") and
          b1["credentials"]["endpoints"]["Api"].startswith("http://%s.eu10.alm.localhost:" % sd),
          repr(r))
    r = e.sm("POST", "/v1/service_bindings", {"name": "k1", "service_instance_id": iid})
    check("409 on duplicate binding name", r.status == 409 and r.json == {
        "error": "Conflict",
        "description": "binding with same name exists for instance with id %s" % iid}, repr(r))
    items, _, _ = e.list_all("/v1/service_bindings?fieldQuery=" + q("service_instance_id eq '%s'" % iid))
    check("binding list items include credentials",
          len(items) == 1 and items[0].get("credentials", {}).get("uaa", {}).get("clientsecret"),
          str(items)[:300])
    t = e.token_for(uaa)
    sc = jwt_claims(t.json["access_token"])["scope"] if t.status == 200 else []
    check("binding token has imp-cdm scopes when the instance had the authorities",
          has_cdm(sc) and "calm!b111.imp-cdm-feature-manage-ui" in sc, str(sc))
    r = e.bind(inst_plain["id"], "k-plain")
    t = e.token_for(r.json["credentials"]["uaa"])
    sc_plain = jwt_claims(t.json["access_token"])["scope"]
    check("binding token lacks imp-cdm scopes without authorities but has calm-api reads",
          not has_cdm(sc_plain) and any(".calm-api." in s for s in sc_plain), str(sc_plain))
    old_uaa = r.json["credentials"]["uaa"]
    r = e.sm("PATCH", "/v1/service_instances/%s?async=false" % inst_plain["id"],
             {"parameters": {"xs-security": {"xsappname": "other-name", "authorities": CDM}}})
    check("PATCH changing xsappname -> 400 broker error", r.status == 400, repr(r))
    r = e.sm("PATCH", "/v1/service_instances/%s?async=false" % inst_plain["id"],
             {"parameters": {"xs-security": {"xsappname": "calm-plain", "authorities": CDM}}})
    check("PATCH adding authorities (sync) -> 200", r.status == 200, repr(r))
    t_old = e.token_for(old_uaa)
    t_new = e.token_for(e.bind(inst_plain["id"], "k-plain-2").json["credentials"]["uaa"])
    check("authorities snapshot at bind time: old key unchanged, new key has imp-cdm",
          not has_cdm(jwt_claims(t_old.json["access_token"])["scope"]) and
          has_cdm(jwt_claims(t_new.json["access_token"])["scope"]), "")
    # --- label changes (§2.10): add/remove, no replace, one change per key a request ---
    lurl = "/v1/service_instances/%s?async=false" % inst_plain["id"]
    r = e.sm("PATCH", lurl, {"labels": [{"op": "add", "key": "owner", "values": ["a"]},
                                        {"op": "add", "key": "calmbind_authorities",
                                         "values": ["$XSMASTERAPPNAME.x", "$XSMASTERAPPNAME.y"]}]})
    check("label add (two keys, several values, '$' allowed) -> 200",
          r.status == 200 and r.json.get("labels", {}).get("owner") == ["a"] and
          r.json["labels"].get("calmbind_authorities") == ["$XSMASTERAPPNAME.x", "$XSMASTERAPPNAME.y"],
          repr(r))
    r = e.sm("PATCH", lurl, {"labels": [{"op": "remove", "key": "owner"},
                                        {"op": "add", "key": "owner", "values": ["b"]}]})
    g = e.sm("GET", "/v1/service_instances/" + inst_plain["id"])
    check("remove and add of one key in one request -> 400, nothing changed",
          r.status == 400 and g.json["labels"].get("owner") == ["a"], repr(r))
    r1 = e.sm("PATCH", lurl, {"labels": [{"op": "remove", "key": "owner"}]})
    r2 = e.sm("PATCH", lurl, {"labels": [{"op": "add", "key": "owner", "values": ["b"]}]})
    check("... in two requests the value changes", r1.status == 200 and r2.status == 200 and
          r2.json["labels"].get("owner") == ["b"], repr(r2))
    r = e.sm("PATCH", lurl, {"labels": [{"op": "add", "key": "bad key", "values": ["x"]}]})
    r2 = e.sm("PATCH", lurl, {"labels": [{"op": "add", "key": "k", "values": ["x" * 256]}]})
    check("a label key with a space, a value over 255 characters -> 400",
          r.status == 400 and r2.status == 400, repr((r, r2)))
    r = e.sm("DELETE", "/v1/service_bindings/%s" % b1["id"])
    t = e.token_for(uaa)
    check("deleting a binding revokes its secret", r.status == 200 and t.status == 401, repr(t))

    # --- x509 key and mTLS token ---
    r = e.bind(iid, "k-x509", {"credential-type": "x509",
                               "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}})
    xu = (r.json or {}).get("credentials", {}).get("uaa", {})
    check("x509 binding: certificate, key, certurl, no clientsecret",
          r.status == 201 and xu.get("credential-type") == "x509" and "BEGIN CERTIFICATE" in
          xu.get("certificate", "") and "PRIVATE KEY" in xu.get("key", "") and
          xu.get("certurl", "").startswith("https://%s.authentication.cert.localhost:" % sd) and
          "clientsecret" not in xu, repr(r)[:300])
    tmpd = fake.dir
    cpath, kpath = os.path.join(tmpd, "t-cert.pem"), os.path.join(tmpd, "t-key.pem")
    with open(cpath, "w") as f:
        f.write(xu.get("certificate", ""))
    with open(kpath, "w") as f:
        f.write(xu.get("key", ""))
    ctx = ssl.create_default_context(cafile=fake.ca_path)
    ctx.load_cert_chain(cpath, kpath)
    r = call("POST", xu["certurl"] + "/oauth/token", ctx=ctx,
             form={"grant_type": "client_credentials", "client_id": xu["clientid"]})
    check("mTLS token with the binding certificate",
          r.status == 200 and has_cdm(jwt_claims(r.json["access_token"])["scope"]), repr(r))
    x509key = json.load(open(fake.sm_key_x509_path))
    with open(cpath, "w") as f:
        f.write(x509key["certificate"])
    with open(kpath, "w") as f:
        f.write(x509key["key"])
    ctx2 = ssl.create_default_context(cafile=fake.ca_path)
    ctx2.load_cert_chain(cpath, kpath)
    r = call("POST", xu["certurl"] + "/oauth/token", ctx=ctx2,
             form={"grant_type": "client_credentials", "client_id": xu["clientid"]})
    check("mTLS with another client's certificate -> 401", r.status == 401, repr(r))
    r = call("POST", x509key["certurl"] + "/oauth/token", ctx=ctx2,
             form={"grant_type": "client_credentials", "client_id": x509key["clientid"]})
    check("sm-key-x509.json works over mTLS", r.status == 200, repr(r))
    try:
        r = call("POST", xu["certurl"] + "/oauth/token", ctx=ssl.create_default_context(
            cafile=fake.ca_path), form={"grant_type": "client_credentials", "client_id": "x"})
        check("cert port without a client certificate is refused", False, repr(r))
    except (ssl.SSLError, ConnectionError, OSError):
        check("cert port without a client certificate is refused", True)
    r = e.bind(inst_plain["id"], "k-x509-no", {"credential-type": "x509"})
    check("x509 bind on an instance without x509 credential-type -> 400", r.status == 400, repr(r))
    r = e.bind(iid, "k-x509-wrapped", {"xsuaa": {"credential-type": "x509"}})
    check("x509 bind wrapped in {xsuaa: ...}", r.status == 201 and
          r.json["credentials"]["uaa"].get("credential-type") == "x509", repr(r)[:200])
    # XSUAA's page on service-managed X.509 certificates: DAYS only, 1 to 30
    for i, (v, vt, ok) in enumerate(((30, "DAYS", True), (31, "DAYS", False), (0, "DAYS", False),
                                     (3, "MONTHS", False), (1, "YEARS", False))):
        r = e.bind(iid, "k-x509-v%d" % i, {"credential-type": "x509",
                                          "x509": {"key-length": 2048, "validity": v, "validity-type": vt}})
        if ok:
            check("x509 validity %d %s is within XSUAA's range" % (v, vt), r.status == 201, repr(r)[:200])
        else:
            check("x509 validity %d %s -> 400 broker error naming the range" % (v, vt),
                  r.status == 400 and "Service broker error" in r.json.get("description", "")
                  and ("1 to 30 DAYS" in r.json["description"] or "supported: DAYS" in r.json["description"]),
                  repr(r)[:300])
    for p in (cpath, kpath):
        os.unlink(p)

    # --- faults ---
    for spec, pred in (("5", lambda v: v == "5"),
                       ("http-date", lambda v: v and v.endswith(" GMT") and "," in v),
                       ("go", lambda v: v and v.endswith(" +0000 UTC")),
                       (None, lambda v: v is None)):
        fake.fault(method="GET", path="^/v1/service_plans$", action="status", status=429,
                   retry_after=spec)
        r = e.sm("GET", "/v1/service_plans")
        check("429 with Retry-After %s" % (spec or "absent"),
              r.status == 429 and pred(r.headers.get("retry-after")), repr(r.headers))
    fake.fault(path="^/v1/service_plans$", action="status", status=503, body="html")
    r = e.sm("GET", "/v1/service_plans")
    check("503 with an HTML body", r.status == 503 and r.raw.startswith(b"<html"), repr(r))
    r = e.sm("GET", "/v1/service_plans")
    check("fault count 1 is consumed", r.status == 200, repr(r))
    for action, excs in (("reset", (ConnectionResetError, http.client.RemoteDisconnected,
                                    ConnectionAbortedError, BrokenPipeError)),
                         ("truncate", (http.client.IncompleteRead,)),):
        fake.fault(path="^/v1/service_plans$", action=action)
        try:
            r = e.sm("GET", "/v1/service_plans")
            check("fault %s" % action, False, "got %r" % r)
        except excs:
            check("fault %s" % action, True)
        except Exception as ex:  # noqa: BLE001
            check("fault %s" % action, False, "unexpected %r" % ex)
    fake.fault(path="^/v1/service_plans$", action="close_truncate")
    r = e.sm("GET", "/v1/service_plans")
    check("fault close_truncate: no Content-Length, Connection close, half JSON",
          "content-length" not in r.headers and r.headers.get("connection") == "close" and
          r.json is None and r.raw.startswith(b"{"), repr(r))
    fake.fault(path="^/v1/service_plans$", action="html")
    r = e.sm("GET", "/v1/service_plans")
    check("fault html -> 502 proxy page", r.status == 502 and b"502 Bad Gateway" in r.raw, repr(r))
    fake.fault(path="^/v1/service_plans$", action="nonjson")
    r = e.sm("GET", "/v1/service_plans")
    check("fault nonjson -> 200 text", r.status == 200 and r.json is None, repr(r))
    fake.fault(path="^/v1/service_plans$", action="delay", delay_ms=300)
    t0 = time.time()
    r = e.sm("GET", "/v1/service_plans")
    check("fault delay", r.status == 200 and time.time() - t0 >= 0.29, "")
    fake.fault(method="POST", path="^/v1/service_instances$", action="late_create")
    try:
        e.sm("POST", "/v1/service_instances?async=false", {"name": "late-one", "service_plan_id": plan})
        check("late_create resets but creates", False, "no reset")
    except (ConnectionError, http.client.RemoteDisconnected):
        r = e.sm("GET", "/v1/service_instances?fieldQuery=" + q("name eq 'late-one'"))
        check("late_create resets but creates", r.json.get("num_items") == 1, repr(r))
    fake.fault(action="op_fail", errors="quota exceeded (test)")
    r = e.sm("POST", "/v1/service_instances?async=true", {"name": "fails", "service_plan_id": plan})
    last, states = e.poll(r.headers["location"])
    errs = last.json.get("errors")
    errs = errs[0] if isinstance(errs, list) else errs
    fid = r.headers["location"].split("/")[3]
    g = e.sm("GET", "/v1/service_instances/" + fid)
    check("op_fail: operation failed with errors, instance ready:false",
          states[-1] == "failed" and "quota exceeded" in (errs or {}).get("description", "") and
          g.json.get("ready") is False, str(last.json))
    fake.fault(action="op_stuck")
    r = e.sm("POST", "/v1/service_instances?async=false", {"name": "stuck", "service_plan_id": plan})
    last, states = e.poll(r.headers.get("location", ""), limit=6) if r.status == 202 else (r, [])
    check("op_stuck: even async=false answers 202 and the operation stays in progress",
          r.status == 202 and states == ["in progress"] * 6, "%r %s" % (r, states))
    fake.fault(path="^/v1/service_plans$", count=2, action="status", status=500)
    s = [e.sm("GET", "/v1/service_plans").status for _ in range(3)]
    check("fault count 2", s == [500, 500, 200], str(s))
    fake.fault(path="^/v1/service_plans$", count=5, action="status", status=500)
    fake.clear_faults()
    check("DELETE /_fake/faults clears", e.sm("GET", "/v1/service_plans").status == 200, "")

    # --- tokens expire / revoke ---
    fake.expire_tokens()
    r = e.sm("GET", "/v1/service_offerings")
    check("expire_tokens -> 401 invalid_token", r.status == 401 and
          r.json.get("error") == "invalid_token", repr(r))
    e._tok = None
    bid = e.bind(iid, "k-revoke").json["id"]
    ru = e.sm("GET", "/v1/service_bindings/" + bid).json["credentials"]["uaa"]
    fake.revoke(bid)
    check("/_fake/revoke/<id> invalidates the binding secret", e.token_for(ru).status == 401, "")

    # --- CF-owned 404 and entitlement ---
    st = fake.state()
    check("/_fake/state has instances/bindings/operations/entitled",
          all(k in st for k in ("instances", "bindings", "operations", "entitled")), str(st.keys()))
    fake.set_entitled(False)
    r = e.sm("GET", "/v1/service_offerings?fieldQuery=" + q("catalog_name eq 'SAPCloudALMAPIs'"))
    r2 = e.sm("GET", "/v1/service_plans/33333333-aaaa-4bbb-8ccc-000000000003")
    check("not entitled: offering and plan invisible", r.json.get("num_items") == 0 and
          r2.status == 404, "%r %r" % (r, r2))
    fake.set_entitled(True)

    # --- request log ---
    reqs = fake.requests()
    raw = open(os.path.join(fake.dir, "requests.jsonl")).read()
    leaked = [s for s in fake.issued_secrets() if len(s) > 8 and (s in raw or json.dumps(s)[1:-1] in raw)]
    check("request log has ts/method/host/path/query/headers/body/status",
          reqs and all(k in reqs[0] for k in ("ts", "method", "host", "path", "query", "headers",
                                              "body", "status")), str(reqs[:1]))
    check("request log holds no issued secret", not leaked, "%d leaked" % len(leaked))
    check("control endpoints not logged", not any(r["path"].startswith("/_fake/") for r in reqs), "")
    auths = [r["headers"].get("Authorization") for r in reqs if "Authorization" in r["headers"]]
    check("Authorization redacted in the log", auths and set(auths) == {"<redacted>"}, str(set(auths)))
    check("mutations() lists non-GET SM requests",
          any(m["path"] == "/v1/service_instances" and m["method"] == "POST"
              for m in fake.mutations()), "")


def test_presets():
    for preset, (entitled, day, name) in {
            "after-2023-10-16": (True, "2024-03-05", "calm-api-key-auto"),
            "mid-2023": (True, "2023-08-21", "calm-api-key-auto"),
            "before-2023-06-12": (False, None, None),
            "empty": (False, None, None)}.items():
        with FakeBTP(preset=preset) as fake:
            e = Env(fake)
            r = e.sm("GET", "/v1/service_offerings?fieldQuery=" + q("catalog_name eq 'SAPCloudALMAPIs'"))
            ents = r.json.get("num_items") == 1
            insts, _, _ = e.list_all("/v1/service_instances?fieldQuery=" +
                                     q("service_plan_id eq '33333333-aaaa-4bbb-8ccc-000000000003'"))
            if day is None:
                check("preset %s: not entitled, no Cloud ALM instance" % preset,
                      not ents and not insts, "%s %s" % (ents, insts))
                continue
            inst = insts[0] if insts else {}
            binds, _, _ = e.list_all("/v1/service_bindings?fieldQuery=" +
                                     q("service_instance_id eq '%s'" % inst.get("id")))
            ok = ents == entitled and len(insts) == 1 and inst["created_at"].startswith(day) and \
                len(binds) == 1 and binds[0]["name"] == name
            check("preset %s: entitled, instance created %s, key %s" % (preset, day, name), ok,
                  "%s %s" % (insts, [b["name"] for b in binds]))
            if ok:
                uaa = binds[0]["credentials"]["uaa"]
                sc = jwt_claims(e.token_for(uaa).json["access_token"])["scope"]
                want = preset == "after-2023-10-16"
                check("preset %s: auto key is binding-secret (XSUAA's default since 2026-01-19), "
                      "imp-cdm scopes %s" % (preset, "present" if want else "absent"),
                      uaa["credential-type"] == "binding-secret" and has_cdm(sc) == want and
                      uaa["clientsecret"].startswith(binds[0]["id"] + "$") and
                      uaa["xsappname"].startswith(inst["id"] + "!b"), str(sc))
                # GUID xsappname accepted on PATCH for a parameterless instance
                r = e.sm("PATCH", "/v1/service_instances/%s?async=false" % inst["id"],
                         {"parameters": {"xs-security": {"xsappname": inst["id"], "authorities": CDM,
                                                         "oauth2-configuration": {
                                                             "credential-types": ["binding-secret"]}}}})
                check("preset %s: PATCH with the GUID xsappname accepted" % preset,
                      r.status == 200, repr(r))
    # the old default survives only as a variant: an instance-secret key made before 2026
    with FakeBTP(preset="mid-2023", variants=["instance-secret"]) as fake:
        e = Env(fake)
        binds, _, _ = e.list_all("/v1/service_bindings?fieldQuery=" + q("name eq 'calm-api-key-auto'"))
        uaa = binds[0]["credentials"]["uaa"] if binds else {}
        check("variant instance-secret: the generated key is an old instance-secret key that works",
              uaa.get("credential-type") == "instance-secret" and e.token_for(uaa).status == 200, str(uaa)[:200])
        inst_id = binds[0]["service_instance_id"] if binds else ""
        r = e.bind(inst_id, "k-new-after-2026")
        check("variant instance-secret: a new binding of that instance gets a binding secret",
              r.status == 201 and r.json["credentials"]["uaa"]["credential-type"] == "binding-secret", repr(r)[:200])
        r = e.bind(inst_id, "k-ask-instance-secret", {"credential-type": "instance-secret"})
        check("variant instance-secret: no new instance-secret binding (400)", r.status == 400, repr(r)[:200])
        r = e.sm("PATCH", "/v1/service_instances/%s?async=false" % inst_id,
                 {"parameters": {"xs-security": {"xsappname": inst_id,
                                                 "oauth2-configuration": {"credential-types": ["binding-secret"]}}}})
        check("variant instance-secret: an update without instance-secret revokes the old key",
              r.status == 200 and e.token_for(uaa).status == 401, repr(r)[:200])
    with FakeBTP(preset="cf-legacy") as fake:
        e = Env(fake)
        insts, _, _ = e.list_all("/v1/service_instances?fieldQuery=" +
                                 q("service_plan_id eq '33333333-aaaa-4bbb-8ccc-000000000003'"))
        cf = [i for i in insts if i["platform_id"].startswith("cf-")]
        check("preset cf-legacy: CF-owned instance listed", len(cf) == 1, str(insts))
        if cf:
            nf = {"error": "NotFound", "description": "service instance not found or not accessible"}
            r1 = e.sm("PATCH", "/v1/service_instances/" + cf[0]["id"], {"labels": []})
            r2 = e.sm("DELETE", "/v1/service_instances/" + cf[0]["id"])
            r3 = e.bind(cf[0]["id"], "k")
            check("CF-owned instance: PATCH/DELETE/bind -> 404 not accessible",
                  r1.status == r2.status == r3.status == 404 and r1.json == r2.json == r3.json == nf,
                  "%r %r %r" % (r1, r2, r3))


def test_modes():
    with FakeBTP(preset="empty", async_mode="sync", op_polls=0, page_size=3) as fake:
        e = Env(fake)
        fake.set_entitled(True)
        plan = e.calm_plan()
        r = e.sm("POST", "/v1/service_instances", {"name": "s1", "service_plan_id": plan})
        check("--async-mode sync: create -> 201", r.status == 201, repr(r))
        r = e.sm("POST", "/v1/service_instances?async=true", {"name": "s2", "service_plan_id": plan})
        last, states = e.poll(r.headers.get("location", ""))
        check("async=true forces 202; --op-polls 0 -> first poll succeeded",
              r.status == 202 and states == ["succeeded"], str(states))
        r = e.sm("GET", "/v1/service_offerings")
        check("--page-size 3", len(r.json["items"]) == 3 and r.json.get("token"), repr(r)[:100])
    with FakeBTP(preset="after-2023-10-16", async_mode="async") as fake:
        e = Env(fake)
        insts, _, _ = e.list_all("/v1/service_instances?fieldQuery=" + q("name eq 'SAPCloudALMAPIs-auto'"))
        r = e.sm("POST", "/v1/service_bindings", {"name": "a1", "service_instance_id": insts[0]["id"]})
        loc = r.headers.get("location", "")
        check("--async-mode async: binding create -> 202 Location", r.status == 202 and
              loc.startswith("/v1/service_bindings/"), repr(r))
        b = e.sm("GET", "/v1/service_bindings/" + loc.split("/")[3]).json
        check("binding in progress has no credentials yet", "credentials" not in b and
              b.get("ready") is False, str(b)[:200])
        e.poll(loc)
        b = e.sm("GET", "/v1/service_bindings/" + loc.split("/")[3]).json
        check("binding has credentials after its operation", b.get("ready") and "credentials" in b, "")
        r = e.sm("GET", "/v1/service_instances?attach_last_operations=true&max_items=10")
        check("attach_last_operations adds last_operation to list items",
              all("last_operation" in i for i in r.json["items"]), "")
    # 4 s, not 1: on a loaded machine the first request can come a second after the token
    with FakeBTP(preset="mid-2023", https=True, token_lifetime=4) as fake:
        e = Env(fake)
        r = e.sm("GET", "/v1/service_offerings")
        check("--https: TLS verified with ca.pem for service-manager.localhost", r.status == 200, repr(r))
        try:
            call("GET", "https://mytenant.eu10.alm.localhost:%d/api" % fake.port, ctx=e.ctx)
            check("--https: server cert covers *.eu10.alm.localhost", True)
        except ssl.SSLError as ex:
            check("--https: server cert covers *.eu10.alm.localhost", False, str(ex))
        time.sleep(4.3)
        r = e.sm("GET", "/v1/service_offerings")
        check("--token-lifetime 4: token expires -> 401 invalid_token",
              r.status == 401 and r.json.get("error") == "invalid_token", repr(r))


def main():
    t0 = time.time()
    try:
        with FakeBTP(preset="after-2023-10-16") as fake:
            test_main(fake)
        test_presets()
        test_modes()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        check("test run completes", False, "exception (see stderr)")
    print("# fakebtp: %d passed, %d failed in %.1f s" % (len(PASSED), len(FAILED), time.time() - t0))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
