"""The global account of the fake BTP (used by fake_cis): its directory tree, the SAP Cloud
ALM subaccounts (the tenants) among unrelated ones, the Service Manager admin bindings the
Accounts API creates in a subaccount, and the Cloud Management service's rate limit.

What it claims about BTP (cf-uaa-accounts-api.md C.3, C.7; SAP's Accounts API reference):

- `GET /accounts/v1/globalAccount?expand=true` answers the whole tree: `children` (the
  directories, each with its own `children` and `subaccounts`, nested up to five levels) and
  `subaccounts` (those directly in the global account). Empty lists are left out.
- Since 30 Nov 2023 a Cloud ALM global account is named "SAP Cloud ALM" plus the customer
  number and holds a subaccount "SAP Cloud ALM"; older ones vary ("Cloud ALM - Production").
  Tenant i is named CALM_NAMES[i % 3], lives in REGIONS[i % 6] and in PLACES[i % 3].
- Service Manager admin bindings: v2 `POST /accounts/v2/subaccounts/{id}/serviceManagerBindings`
  `{"name", "parameters"?}` (basic credentials, or mTLS with `{"credential-type": "x509",
  "x509": {...}}`) -> 201 with the credentials (`certUrl` for mTLS, as SAP's schema spells it),
  409 for a name the subaccount has; `GET .../{name}` (404 when none), `GET` the list (404
  when the subaccount has none, as documented), `DELETE .../{name}`. v1
  `POST /accounts/v1/subaccounts/{id}/serviceManagementBinding` (no body; the binding is
  always ServiceManagementAccessBinding) -> 201, 409 when it exists; `GET` and `DELETE` it.
  Both need the scope global-account.subaccount.update (GET: .subaccount.read). The knob
  sm_bindings ("v1+v2" default, "v1", "none") takes the newer or both routes away (a
  landscape or key where they are not offered: the routes answer 404 like an unknown path).
- Rate limit (BTPDOC rate-limiting-77b217b): per endpoint and caller (OAuth client id), a
  window of N requests in S seconds; over it, 429 with error 11006, details 11007
  ("Maximum request rate limit is N requests in S seconds") and `X-Ratelimit-Reset` (epoch
  ms, the Accounts OpenAPI), no Retry-After and no remaining-count headers. Off unless
  `--cis-rate-limit N/S` or the knob rate_limit sets it; SAP documents only the example
  "5 GET requests to the global account in 3 seconds", not each endpoint's figure.
"""
import datetime
import hashlib
import threading
import time

REGIONS = ("eu10", "us10", "jp10", "eu20", "ap21", "br10")
CALM_NAMES = ("SAP Cloud ALM", "Cloud ALM - Production", "SAP Cloud ALM")
UNRELATED_NAMES = ("Development", "Integration Suite", "Cloud ALM Playground", "Build Apps",
                   "Data Warehouse")
SM_ADMIN_PLAN = "bbbbbbbb-0000-4000-8000-000000000001"
V1_BINDING = "ServiceManagementAccessBinding"
UTC = datetime.timezone.utc


def ms(dt):
    return int(dt.timestamp() * 1000)


class Limiter:
    """Sliding window per (client id, method, route)."""

    def __init__(self, rule=None):
        self.rule = rule          # (requests, seconds) or None
        self.hits = {}
        self.lock = threading.Lock()

    def check(self, app, req, claims, route):
        rule = self.rule
        if not rule:
            return
        n, secs = rule
        key = (claims.get("client_id"), req.method, route)
        now = time.time()
        with self.lock:
            q = [t for t in self.hits.get(key, ()) if t > now - secs]
            if len(q) >= n:
                self.hits[key] = q
                reset = ms(datetime.datetime.fromtimestamp(q[0] + secs, UTC))
                raise app.HTTPError(429, {"error": {
                    "code": 11006, "message": "Request rate limit exceeded.", "target": req.path,
                    "details": [{"code": 11007, "message": "Maximum request rate limit is %d "
                                 "requests in %g seconds" % (n, secs)}]}},
                    {"X-Ratelimit-Reset": str(reset)})
            q.append(now)
            self.hits[key] = q


def parse_rule(text):
    """"N/S" -> (N, S) | raises ValueError."""
    n, _, s = str(text).partition("/")
    n, s = int(n), float(s)
    if n < 1 or s <= 0:
        raise ValueError("rate limit must be N/S with N >= 1, S > 0")
    return n, s


# ---------------------------------------------------------------------------------------
# the tree


def in_tenant(app, t, fn):
    prev = app.tenants.current()
    app.tenants.use(t)
    try:
        return fn()
    finally:
        app.tenants.use(prev)


def get(app):
    """The global account (built once, from the tenants). Call with app.lock held."""
    g = getattr(app, "_global_account", None)
    if g is not None:
        return g
    tenants = list(app.tenants.by_name.values()) if app.tenants.multi else [app.tenants.default]
    first = tenants[0].state
    guid = first.get("subaccount", {}).get("global_account_id") or app.uuid()
    created = datetime.datetime(2021, 3, 1, 8, 0, tzinfo=UTC)
    g = {"guid": guid, "displayName": "SAP Cloud ALM 0001234567", "subdomain": "calm-ga-0001234567",
         "created": created, "dirs": {}, "subaccounts": [], "by_id": {}}

    def directory(name, parent):
        d = {"guid": app.uuid(), "displayName": name, "parent": parent or guid, "created": created}
        g["dirs"][d["guid"]] = d
        return d["guid"]
    d_calm = directory("Cloud ALM", None)
    d_cust = directory("Customers", None)
    d_acme = directory("ACME", d_cust)
    places = (guid, d_calm, d_acme)
    for i, t in enumerate(tenants):
        sub = t.state["subaccount"]
        rec = {"guid": sub["id"], "subdomain": sub["subdomain"], "displayName": CALM_NAMES[i % 3],
               "region": REGIONS[i % len(REGIONS)], "parent": places[i % 3], "tenant": t,
               "created": sub["created"]}
        g["subaccounts"].append(rec)
    for j in range(int(getattr(app.config, "ga_unrelated", 3) or 0)):
        name = UNRELATED_NAMES[j % len(UNRELATED_NAMES)]
        if j >= len(UNRELATED_NAMES):
            name += " %d" % (j // len(UNRELATED_NAMES) + 1)
        rec = {"guid": app.uuid(), "subdomain": "ga-other-%04d" % (j + 1), "displayName": name,
               "region": REGIONS[(j + 1) % len(REGIONS)], "parent": places[(j + 1) % 3],
               "tenant": None, "created": created + datetime.timedelta(days=30 + j)}
        g["subaccounts"].append(rec)
    for rec in g["subaccounts"]:
        g["by_id"][rec["guid"]] = rec
    app._global_account = g
    return g


def subaccount_obj(app, rec, base=None):
    """SubaccountResponseObject of a record; base: the tenant's own object (fake_cis)."""
    g = get(app)
    out = dict(base or {})
    out.update({
        "guid": rec["guid"], "technicalName": rec["guid"], "displayName": rec["displayName"],
        "description": "", "globalAccountGUID": g["guid"], "parentGUID": rec["parent"],
        "parentFeatures": ["DEFAULT"], "subdomain": rec["subdomain"], "region": rec["region"],
        "state": "OK", "stateMessage": "Subaccount created.", "betaEnabled": False,
        "usedForProduction": "UNSET", "labels": {}})
    if base is None:
        out.update({"createdBy": "admin@example.com", "createdDate": ms(rec["created"]),
                    "modifiedDate": ms(rec["created"])})
    return out


def tree(app, sub_obj_of):
    """The expanded global account: children (directories) and subaccounts."""
    g = get(app)
    subs_of, dirs_of = {}, {}
    for rec in g["subaccounts"]:
        subs_of.setdefault(rec["parent"], []).append(sub_obj_of(rec))
    for d in g["dirs"].values():
        dirs_of.setdefault(d["parent"], []).append(d)

    def node(d):
        out = {"guid": d["guid"], "displayName": d["displayName"], "description": "",
               "parentGUID": d["parent"], "globalAccountGUID": g["guid"],
               "directoryFeatures": ["DEFAULT"], "entityState": "OK",
               "createdDate": ms(d["created"]), "modifiedDate": ms(d["created"])}
        kids = [node(c) for c in dirs_of.get(d["guid"], [])]
        if kids:
            out["children"] = kids
        if subs_of.get(d["guid"]):
            out["subaccounts"] = subs_of[d["guid"]]
        return out
    out = {}
    kids = [node(c) for c in dirs_of.get(g["guid"], [])]
    if kids:
        out["children"] = kids
    if subs_of.get(g["guid"]):
        out["subaccounts"] = subs_of[g["guid"]]
    return out


def find(app, guid):
    return get(app)["by_id"].get(guid)


# ---------------------------------------------------------------------------------------
# Service Manager admin bindings (in the subaccount's tenant; call with app.lock held)


def _admin(app):
    return app.state.setdefault("sm_admin", {"instance": None, "bindings": {}})


def _x509_days(params):
    x = params.get("x509") if isinstance(params.get("x509"), dict) else {}
    v = x.get("validity", 7)
    unit = str(x.get("validity-type", "DAYS")).upper()
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        return None
    return v * {"DAYS": 1, "MONTHS": 30, "YEARS": 365}.get(unit, 0) or None


def create_binding(app, name, params):
    """A new SM admin binding `name` of the current tenant: its credentials (the answer) |
    raises HTTPError 409 (exists) / 400 (bad parameters)."""
    import sm
    a = _admin(app)
    if name in a["bindings"]:
        raise app.HTTPError(409, {"error": {"code": 20009, "message": "Service Manager binding "
                                            "'%s' already exists for this subaccount" % name}})
    x509 = params.get("credential-type") == "x509"
    days = _x509_days(params) if x509 else None
    if x509 and days is None:
        raise app.HTTPError(400, {"error": {"code": 11002, "message": "Invalid request payload: "
                                            "x509.validity must be a positive integer"}})
    now = datetime.datetime.now(UTC)
    if a["instance"] is None:
        inst = sm.add_instance(app, "ServiceManagementAccessInstance", SM_ADMIN_PLAN, now)
        a["instance"] = inst["id"]
    inst = app.state["instances"][a["instance"]]
    b = sm.add_binding(app, inst, name, now)
    sm.revoke_binding(app, b["id"])        # its credentials are the client below
    sub = app.state["subaccount"]
    n = 1000 + len(a["bindings"]) + 1
    xsapp = "%s!b%d|%s" % (inst["id"], n, sm.SM_MASTER)
    clientid = "sb-" + xsapp
    client = {"secret": None, "cert_cn": None, "zid": sub["id"],
              "scopes": ["%s.%s" % (xsapp, s) for s in sm.SM_SCOPE_NAMES]}
    out = {"name": name, "clientid": clientid, "sm_url": app.url("service-manager.localhost"),
           "xsappname": xsapp, "creationDate": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if x509:
        cn = app.uuid()
        chain, key, der = app.ca.issue_client(cn, days, "service-manager")
        app.record_secret(key)
        client.update(cert_cn=cn, cert_sha256=hashlib.sha256(der).hexdigest())
        out.update(certificate=chain, key=key,
                   certUrl=app.cert_url("%s.authentication.cert.localhost" % sub["subdomain"]))
    else:
        secret = b["id"] + "$" + app.new_secret()
        client["secret"] = secret
        out.update(clientsecret=secret,
                   url=app.url("%s.authentication.localhost" % sub["subdomain"]))
    app.clients[clientid] = client
    a["bindings"][name] = {"out": out, "binding_id": b["id"], "clientid": clientid}
    return out


def binding(app, name):
    rec = _admin(app)["bindings"].get(name)
    return rec["out"] if rec else None


def bindings(app):
    return [r["out"] for r in _admin(app)["bindings"].values()]


def delete_binding(app, name):
    import sm
    a = _admin(app)
    rec = a["bindings"].pop(name, None)
    if rec is None:
        return False
    app.clients.pop(rec["clientid"], None)
    sm.revoke_binding(app, rec["binding_id"])
    app.state["bindings"].pop(rec["binding_id"], None)
    return True


# ---------------------------------------------------------------------------------------
# routes (cis: the fake_cis module, for its auth, errors and host check)

SM_BINDINGS_KNOB = ("v1+v2", "v1", "none")


def register(app, cis):
    rule = getattr(app.config, "cis_rate_limit", None)
    app.cis_limiter = Limiter(parse_rule(rule) if rule else None)
    app.sm_bindings_api = "v1+v2"

    def target(req, m, scope):
        """The tenant of the subaccount in the path, after auth and rate limit."""
        cis.check_host(app, req, cis.ACCOUNTS_HOST)
        offered = app.sm_bindings_api
        if offered == "none" or ("/v2/" in req.path and offered == "v1"):
            raise app.HTTPError(404, {"error": "NotFound",
                                      "description": "no route for %s %s" % (req.method, req.path)})
        cis.auth(app, req, scope, m)
        rec = find(app, m.group(1))
        if rec is None:
            cis.cis_error(app, 404, 20004, "Subaccount %s not found" % m.group(1), req)
        if rec["tenant"] is None:
            cis.cis_error(app, 404, 20004, "Subaccount %s has no Service Manager in this fake"
                          % m.group(1), req)
        return rec["tenant"]

    def missing(req, name):
        cis.cis_error(app, 404, 20010, "Service Manager binding %s not found" % name, req)

    def v2_create(req, m):
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            cis.bad_payload(app, req, "'name' is required")
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            cis.bad_payload(app, req, "'parameters' must be an object")
        with app.lock:
            t = target(req, m, "global-account.subaccount.update")
            out = in_tenant(app, t, lambda: create_binding(app, body["name"], params))
            return app.json(201, out)

    def v2_list(req, m):
        with app.lock:
            t = target(req, m, "global-account.subaccount.read")
            items = in_tenant(app, t, lambda: bindings(app))
            if not items:   # documented: 404 when the subaccount has no binding
                cis.cis_error(app, 404, 20010, "No Service Manager bindings found for "
                              "subaccount %s" % m.group(1), req)
            return app.json(200, {"items": items})

    def v2_one(req, m):
        with app.lock:
            t = target(req, m, "global-account.subaccount.read" if req.method == "GET"
                       else "global-account.subaccount.update")
            if req.method == "DELETE":
                if not in_tenant(app, t, lambda: delete_binding(app, m.group(2))):
                    missing(req, m.group(2))
                return app.empty(200)
            out = in_tenant(app, t, lambda: binding(app, m.group(2)))
            if out is None:
                missing(req, m.group(2))
            return app.json(200, out)

    def v1(req, m):
        with app.lock:
            t = target(req, m, "global-account.subaccount.read" if req.method == "GET"
                       else "global-account.subaccount.update")
            if req.method == "POST":
                out = in_tenant(app, t, lambda: create_binding(app, V1_BINDING, {}))
                return app.json(201, {k: out[k] for k in ("clientid", "clientsecret", "url",
                                                          "sm_url", "xsappname")})
            if req.method == "DELETE":
                if not in_tenant(app, t, lambda: delete_binding(app, V1_BINDING)):
                    missing(req, V1_BINDING)
                return app.empty(200)
            out = in_tenant(app, t, lambda: binding(app, V1_BINDING))
            if out is None:
                missing(req, V1_BINDING)
            return app.json(200, {k: out[k] for k in ("clientid", "clientsecret", "url",
                                                      "sm_url", "xsappname")})

    g = r"([^/]+)"
    app.route("POST", r"/accounts/v2/subaccounts/%s/serviceManagerBindings" % g, v2_create)
    app.route("GET", r"/accounts/v2/subaccounts/%s/serviceManagerBindings" % g, v2_list)
    app.route("*", r"/accounts/v2/subaccounts/%s/serviceManagerBindings/%s" % (g, g), v2_one)
    app.route("*", r"/accounts/v1/subaccounts/%s/serviceManagementBinding" % g, v1)


def knob(app, k, v):
    """POST /_fake/plugins/cis: rate_limit ("N/S" or null), sm_bindings. True if it was one."""
    if k == "rate_limit":
        app.cis_limiter.rule = parse_rule(v) if v else None
        app.cis_limiter.hits.clear()
        return True
    if k == "sm_bindings" and v in SM_BINDINGS_KNOB:
        app.sm_bindings_api = v
        return True
    return False


def knobs(app):
    r = app.cis_limiter.rule
    return {"rate_limit": "%d/%g" % r if r else None, "sm_bindings": app.sm_bindings_api}
