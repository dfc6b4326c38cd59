"""fake_cf: Cloud Foundry v3 (Cloud Controller) plug-in for fakebtp - the legacy CF path.

Serves GET / (root links), /v3 organizations, spaces, service offerings/plans/instances,
service credential bindings (keys) and jobs on host api.cf.localhost, following
cf-uaa-accounts-api.md section A and examples E.1-E.10.  Tokens: the core's /oauth/token
answers the password grant for client `cf` on any host (login.cf.localhost, uaa.cf.localhost).

Seam: PLUGINS.md.  Details and simplifications: README.md.
"""
import datetime
import math
import os
import re
import urllib.parse

API_HOST = "api.cf.localhost"
LOGIN_HOST = "login.cf.localhost"
UAA_HOST = "uaa.cf.localhost"

CALM_OFFERING = "SAPCloudALMAPIs"
CALM_PLAN = "standard"
MASTER = "calm!b111"          # master xsappname of the Cloud ALM broker (scope prefix)
AUTHORITIES = ("imp-cdm-feature-display-ui", "imp-cdm-feature-manage-ui")
CF_USER = "calm.admin@example.com"
IDP_ORIGIN = "corp-idp"

UTC = datetime.timezone.utc
FAKE_PEM = "-----BEGIN PUBLIC KEY-----\nFAKEBTP-NOT-A-KEY\n-----END PUBLIC KEY-----"

# Offerings in the marketplace of the fake org: (name, description, plan names).
# SAPCloudALMAPIs is only visible while app.state["entitled"] is true.
CATALOG = [
    ("xsuaa", "Manage application authorizations and trust to identity providers",
     ["application", "broker"]),
    ("destination", "Manage destinations", ["lite"]),
    (CALM_OFFERING, "SAP Cloud ALM API", [CALM_PLAN]),
    ("connectivity", "Connect to on-premise systems", ["lite"]),
    ("feature-flags", "Feature toggles", ["standard", "lite"]),
]

XSAPPNAME_RX = re.compile(r"[A-Za-z0-9_\-\\/]{1,100}")


# ---------------------------------------------------------------------------------------
# helpers


def now():
    return datetime.datetime.now(UTC)


def ts(dt):
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api(app, path=""):
    return app.url(API_HOST) + path


def cf_error(app, status, code, title, detail, headers=None):
    raise app.HTTPError(status, {"errors": [{"code": code, "title": title, "detail": detail}]},
                        headers)


def unprocessable(app, detail):
    cf_error(app, 422, 10008, "CF-UnprocessableEntity", detail)


def not_found(app, what):
    cf_error(app, 404, 10010, "CF-ResourceNotFound", "%s not found" % what)


def check_host(app, req):
    h = req.host
    if h.endswith(".localhost") and h != API_HOST:
        raise app.HTTPError(404, "404 Not Found: Requested route ('%s') does not exist.\n" % h,
                            {"X-Cf-Routererror": "unknown_route"})


def auth(app, req, write=False):
    """Bearer token of the CF password grant with a cloud_controller scope."""
    check_host(app, req)
    if not req.bearer():
        cf_error(app, 401, 10002, "CF-NotAuthenticated", "Authentication error")
    try:
        claims = app.tokens.check(req)
    except app.HTTPError as e:
        if e.status == 401:
            cf_error(app, 401, 1000, "CF-InvalidAuthToken", "Invalid Auth Token")
        raise
    scopes = claims.get("scope") or []
    if isinstance(scopes, str):
        scopes = scopes.split()
    need = "cloud_controller.write" if write else "cloud_controller.read"
    if need not in scopes and "cloud_controller.admin" not in scopes:
        cf_error(app, 403, 10003, "CF-NotAuthorized",
                 "You are not authorized to perform the requested action")
    return claims


def st(app):
    return app.state["cf"]


def split_query(req):
    """name -> list of values, commas split *before* unquoting (so %2C stays a literal comma)."""
    out = {}
    for part in (req.raw_query or "").split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        k = urllib.parse.unquote_plus(k)
        out[k] = [urllib.parse.unquote_plus(x) for x in v.split(",")] if v != "" else [""]
    return out


def check_params(app, q, allowed):
    bad = [k for k in q if k not in allowed and not k.startswith("fields[")]
    if bad:
        cf_error(app, 400, 10005, "CF-BadQueryParameter",
                 "The query parameter is invalid: Unknown query parameter(s): '%s'. "
                 "Valid parameters are: '%s'" % ("', '".join(sorted(bad)),
                                                  "', '".join(sorted(allowed))))


COMMON = {"page", "per_page", "order_by", "label_selector", "created_ats", "updated_ats"}


def paginate(app, req, q, items, render, included=None):
    """CF v3 list envelope with page/per_page and absolute first/last/next/previous hrefs."""
    s = st(app)
    try:
        per_page = int(q.get("per_page", [s["per_page"]])[0])
        page = int(q.get("page", ["1"])[0])
    except ValueError:
        cf_error(app, 400, 10005, "CF-BadQueryParameter",
                 "The query parameter is invalid: Page must be a positive integer, "
                 "Per page must be between 1 and 5000")
    if not 1 <= per_page <= 5000 or page < 1:
        cf_error(app, 400, 10005, "CF-BadQueryParameter",
                 "The query parameter is invalid: Page must be a positive integer, "
                 "Per page must be between 1 and 5000")
    order = q.get("order_by", ["created_at"])[0]
    key = order.lstrip("-+")
    if key not in ("created_at", "updated_at", "name"):
        cf_error(app, 400, 10005, "CF-BadQueryParameter",
                 "The query parameter is invalid: Order by can only be: 'created_at', "
                 "'updated_at', 'name'")
    items = sorted(items, key=lambda r: (r.get(key) or "", r["guid"]),
                   reverse=order.startswith("-"))
    if "label_selector" in q and q["label_selector"] != [""]:
        items = []          # label selectors are not supported by the fake
    total = len(items)
    pages = int(math.ceil(total / float(per_page)))
    keep = [(k, ",".join(urllib.parse.quote(x, safe="") for x in v))
            for k, v in q.items() if k not in ("page", "per_page")]

    def href(p):
        qs = "&".join("%s=%s" % (urllib.parse.quote(k, safe="[]"), v) for k, v in keep)
        qs = (qs + "&" if qs else "") + "page=%d&per_page=%d" % (p, per_page)
        return {"href": api(app, req.path) + "?" + qs}
    chunk = items[(page - 1) * per_page: page * per_page]
    body = {"pagination": {"total_results": total, "total_pages": pages,
                           "first": href(1), "last": href(max(pages, 1)),
                           "next": href(page + 1) if page < pages else None,
                           "previous": href(page - 1) if page > 1 else None},
            "resources": [render(app, r) for r in chunk]}
    if included is not None:
        inc = included(chunk)
        if inc:
            body["included"] = inc
    return app.json(200, body)


def names_filter(q, name, items, field, ci=False):
    if name not in q:
        return items
    want = set(v.lower() for v in q[name]) if ci else set(q[name])
    return [r for r in items if ((r.get(field) or "").lower() if ci else r.get(field)) in want]


def select_fields(obj, fields):
    return {k: obj[k] for k in fields if k in obj} if fields else obj


# ---------------------------------------------------------------------------------------
# renderers


def r_org(app, o):
    return {"guid": o["guid"], "created_at": o["created_at"], "updated_at": o["updated_at"],
            "name": o["name"], "suspended": False,
            "relationships": {"quota": {"data": {"guid": o["quota"]}}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": {"href": api(app, "/v3/organizations/" + o["guid"])},
                      "domains": {"href": api(app, "/v3/organizations/%s/domains" % o["guid"])},
                      "quota": {"href": api(app, "/v3/organization_quotas/" + o["quota"])}}}


def r_space(app, sp):
    return {"guid": sp["guid"], "created_at": sp["created_at"], "updated_at": sp["updated_at"],
            "name": sp["name"],
            "relationships": {"organization": {"data": {"guid": sp["org_guid"]}},
                              "quota": {"data": None}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": {"href": api(app, "/v3/spaces/" + sp["guid"])},
                      "organization": {"href": api(app, "/v3/organizations/" + sp["org_guid"])},
                      "features": {"href": api(app, "/v3/spaces/%s/features" % sp["guid"])},
                      "apply_manifest": {"href": api(app, "/v3/spaces/%s/actions/apply_manifest"
                                                     % sp["guid"]), "method": "POST"}}}


def r_offering(app, o):
    return {"guid": o["guid"], "name": o["name"], "description": o["description"],
            "available": True, "tags": [], "requires": [], "shareable": False,
            "documentation_url": None, "created_at": o["created_at"],
            "updated_at": o["updated_at"],
            "broker_catalog": {"id": o["catalog_id"],
                               "metadata": {"displayName": o["display_name"]},
                               "features": {"plan_updateable": True, "bindable": True,
                                            "instances_retrievable": False,
                                            "bindings_retrievable": False,
                                            "allow_context_updates": False}},
            "relationships": {"service_broker": {"data": {"guid": st(app)["broker_guid"]}}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": {"href": api(app, "/v3/service_offerings/" + o["guid"])},
                      "service_plans": {"href": api(app, "/v3/service_plans?service_offering_guids="
                                                    + o["guid"])},
                      "service_broker": {"href": api(app, "/v3/service_brokers/"
                                                     + st(app)["broker_guid"])}}}


def r_plan(app, p):
    return {"guid": p["guid"], "name": p["name"], "description": p["name"],
            "visibility_type": "organization", "available": True, "free": True, "costs": [],
            "created_at": p["created_at"], "updated_at": p["updated_at"],
            "maintenance_info": {},
            "broker_catalog": {"id": p["catalog_id"], "metadata": {},
                               "maximum_polling_duration": None,
                               "features": {"bindable": True, "plan_updateable": True}},
            "schemas": {"service_instance": {"create": {"parameters": {}},
                                             "update": {"parameters": {}}},
                        "service_binding": {"create": {"parameters": {}}}},
            "relationships": {"service_offering": {"data": {"guid": p["offering_guid"]}}},
            "metadata": {"labels": {}, "annotations": {}},
            "links": {"self": {"href": api(app, "/v3/service_plans/" + p["guid"])},
                      "service_offering": {"href": api(app, "/v3/service_offerings/"
                                                       + p["offering_guid"])},
                      "visibility": {"href": api(app, "/v3/service_plans/%s/visibility"
                                                 % p["guid"])}}}


def r_last_op(lo):
    return {"type": lo["type"], "state": lo["state"], "description": lo.get("description", ""),
            "created_at": lo["created_at"], "updated_at": lo["updated_at"]}


def r_instance(app, i):
    g = i["guid"]
    return {"guid": g, "created_at": i["created_at"], "updated_at": i["updated_at"],
            "name": i["name"], "tags": list(i.get("tags") or []), "type": "managed",
            "maintenance_info": {}, "upgrade_available": False, "dashboard_url": None,
            "last_operation": r_last_op(i["last_operation"]),
            "relationships": {"space": {"data": {"guid": i["space_guid"]}},
                              "service_plan": {"data": {"guid": i["plan_guid"]}}},
            "metadata": {"labels": dict(i.get("labels") or {}), "annotations": {}},
            "links": {"self": {"href": api(app, "/v3/service_instances/" + g)},
                      "space": {"href": api(app, "/v3/spaces/" + i["space_guid"])},
                      "service_plan": {"href": api(app, "/v3/service_plans/" + i["plan_guid"])},
                      "parameters": {"href": api(app, "/v3/service_instances/%s/parameters" % g)},
                      "shared_spaces": {"href": api(app, "/v3/service_instances/%s/relationships/"
                                                    "shared_spaces" % g)},
                      "service_credential_bindings": {
                          "href": api(app, "/v3/service_credential_bindings?service_instance_guids="
                                      + g)},
                      "service_route_bindings": {
                          "href": api(app, "/v3/service_route_bindings?service_instance_guids="
                                      + g)}}}


def r_binding(app, b):
    g = b["guid"]
    return {"guid": g, "created_at": b["created_at"], "updated_at": b["updated_at"],
            "name": b["name"], "type": "key",
            "last_operation": r_last_op(b["last_operation"]),
            "metadata": {"labels": dict(b.get("labels") or {}), "annotations": {}},
            "relationships": {"service_instance": {"data": {"guid": b["instance_guid"]}}},
            "links": {"self": {"href": api(app, "/v3/service_credential_bindings/" + g)},
                      "details": {"href": api(app, "/v3/service_credential_bindings/%s/details"
                                              % g)},
                      "parameters": {"href": api(app, "/v3/service_credential_bindings/%s/"
                                                 "parameters" % g)},
                      "service_instance": {"href": api(app, "/v3/service_instances/"
                                                       + b["instance_guid"])}}}


def r_job(app, j):
    """Cloud Controller names a finished job's resource link by the resource's type
    (`service_instances`, `service_credential_bindings`: CF v3 API, "Jobs"); the knob
    job_link_names renames it to show a client that follows a name it assumed."""
    links = {"self": {"href": api(app, "/v3/jobs/" + j["guid"])}}
    if j["state"] == "COMPLETE" and j.get("resource"):
        kind, g = j["resource"]
        name = st(app).get("job_link_names", {}).get(kind, kind)
        links[name] = {"href": api(app, "/v3/%s/%s" % (kind, g))}
    return {"guid": j["guid"], "created_at": j["created_at"], "updated_at": j["updated_at"],
            "operation": j["operation"], "state": j["state"], "errors": list(j["errors"]),
            "warnings": list(j["warnings"]), "links": links}


# ---------------------------------------------------------------------------------------
# catalogue visibility


def visible_offerings(app):
    return [o for o in st(app)["offerings"]
            if o["name"] != CALM_OFFERING or app.state.get("entitled")]


def visible_plans(app):
    offs = {o["guid"] for o in visible_offerings(app)}
    return [p for p in st(app)["plans"] if p["offering_guid"] in offs]


def offering_by_guid(app, g):
    for o in st(app)["offerings"]:
        if o["guid"] == g:
            return o
    return None


def plan_by_guid(app, g):
    for p in st(app)["plans"]:
        if p["guid"] == g:
            return p
    return None


# ---------------------------------------------------------------------------------------
# broker behaviour: xs-security, clients, credentials


def xs_security(params):
    xs = params.get("xs-security") if isinstance(params, dict) else None
    return xs if isinstance(xs, dict) else None


def granted(xs):
    """Authority names granted by the broker: only the literal $XSMASTERAPPNAME form counts
    (a shell-eaten "$XSMASTERAPPNAME" grants nothing). Every such authority of the master
    app is granted, as the Service Manager side does (sm._calm_scopes): it is the same XSUAA
    broker, and the calm-api.* authorities of other integrations are master-app ones too
    (service-manager-api.md §3.2)."""
    out = []
    auths = (xs or {}).get("authorities") or []
    for a in auths if isinstance(auths, list) else []:
        if isinstance(a, str) and a.startswith("$XSMASTERAPPNAME.") and a[17:] not in out:
            out.append(a[17:])
    return tuple(out)


def client_id(inst):
    return "sb-%s!b%d|%s" % (inst["xsappname"], inst["bnum"], MASTER)


CRED_TYPES = ("binding-secret", "instance-secret", "x509")


def cred_types(xs):
    """oauth2-configuration.credential-types of an xs-security block, or None when absent."""
    oc = (xs or {}).get("oauth2-configuration")
    if isinstance(oc, dict) and isinstance(oc.get("credential-types"), list):
        return [str(x) for x in oc["credential-types"]]
    return None


def allowed_types(inst):
    """Since 19 January 2026 XSUAA's credential-types default to ["binding-secret"] (SAP BTP
    security docs, "Service Instance Secrets"); an old instance (variant instance-secret)
    still allows the instance secret its old keys use."""
    return inst.get("cred_types") or ["binding-secret"]


def register_client(app, inst):
    """(Re)registers the OAuth client of the instance's current generation at the core XSUAA.
    Keys made before an authority change keep the old client id (and the old scopes). The
    instance secret authenticates only while the instance allows instance-secret; each
    binding-secret key adds its own secret to `secrets` (bind, unbind)."""
    sub = app.state.get("subaccount") or {}
    cid = client_id(inst)
    scopes = ["%s.%s" % (MASTER, a) for a in read_scopes()] + \
        ["%s.%s" % (MASTER, a) for a in inst["authorities"]] + ["uaa.resource"]
    old = app.clients.get(cid) or {}
    app.clients[cid] = {"secret": inst["secret"] if "instance-secret" in allowed_types(inst) else None,
                        "secrets": list(old.get("secrets") or ()), "cert_cn": None,
                        "scopes": scopes, "zid": sub.get("id"),
                        "claims": {"ext_attr": {"enhancer": "XSUAA",
                                                "subaccountid": sub.get("id"),
                                                "zdn": sub.get("subdomain"),
                                                "serviceinstanceid": inst["guid"]}}}
    return cid


def instance_clients(app, inst):
    """The client ids of every generation of the instance (keys keep theirs)."""
    pre = "sb-%s!b" % inst["xsappname"]
    return [cid for cid in app.clients if cid.startswith(pre) and cid.endswith("|" + MASTER)]


def restrict_types(app, inst):
    """SAP's "Service Instance Secrets" / migration pages: removing instance-secret from
    credential-types invalidates the instance's instance-secret keys (they stay listed)."""
    if "instance-secret" in allowed_types(inst):
        return
    for cid in instance_clients(app, inst):
        app.clients[cid]["secret"] = None


def credentials(app, inst, kind, secret):
    sub = app.state.get("subaccount") or {}
    zdn = sub.get("subdomain")
    cid = client_id(inst)
    return {
        "endpoints": {"Api": app.url("%s.eu10.alm.localhost" % zdn) + "/api"},
        "uaa": {
            "apiurl": app.url("api.authentication.localhost"),
            "clientid": cid,
            "clientsecret": secret,
            "credential-type": kind,
            "identityzone": zdn,
            "identityzoneid": sub.get("id"),
            "sburl": app.url("internal-xsuaa.authentication.localhost"),
            "serviceInstanceId": inst["guid"],
            "subaccountid": sub.get("id"),
            "tenantid": sub.get("id"),
            "tenantmode": "dedicated",
            "uaadomain": "authentication.localhost",
            "url": app.url("%s.authentication.localhost" % zdn),
            "verificationkey": app.state.get("_verificationkey") or FAKE_PEM,
            "xsappname": cid[3:],
            "zoneid": sub.get("id"),
        },
    }


def broker_check_xsappname(xs, inst_guid):
    name = (xs or {}).get("xsappname", inst_guid)
    if not isinstance(name, str) or not XSAPPNAME_RX.fullmatch(name):
        return None, ("Service broker error: Invalid xsappname %r: only letters, digits, '-', "
                      "'_', '/' and '\\' are allowed (no '.')" % (name,))
    return name, None


# ---------------------------------------------------------------------------------------
# SM mirror: Service Manager lists CF-created instances (platform_id = the CF platform)


def core_sm():
    try:
        import sm  # the core's Service Manager module (tests/fakebtp/sm.py)
        return sm
    except ImportError:
        return None


def read_scopes():
    """Scopes every Cloud ALM key has (the core's SM keys use the same list)."""
    sm = core_sm()
    return list(getattr(sm, "CALM_READ_SCOPES", None) or ["calm-api.landscape.read"])


def sm_plan_id(app):
    sm = core_sm()
    return getattr(sm, "CALM_PLAN_ID", None) or st(app).setdefault("_sm_plan_id", app.uuid())


def platform_id(app):
    pid = app.state.get("cf_platform_id")
    if not pid:
        pid = app.state["cf_platform_id"] = "cf-" + app.uuid()
    return pid


def sm_context(app, inst):
    s = st(app)
    sp = s["spaces"][inst["space_guid"]]
    return {"organization_guid": s["org"]["guid"], "organization_name": s["org"]["name"],
            "space_guid": sp["guid"], "space_name": sp["name"], "env_type": "cloudfoundry",
            "platform": "cloudfoundry", "origin": "cloudfoundry", "instance_name": inst["name"]}


def sm_mirror(app, inst):
    """Service Manager lists CF-created Cloud ALM instances (platform_id = the CF platform);
    it cannot patch or bind them (the core answers 404 for non-service-manager platforms)."""
    plan = plan_by_guid(app, inst["plan_guid"])
    if plan is None or plan["offering_name"] != CALM_OFFERING:
        return
    instances = app.state.setdefault("instances", {})
    rec = instances.get(inst["guid"])
    created = datetime.datetime.strptime(inst["created_at"], "%Y-%m-%dT%H:%M:%SZ") \
        .replace(tzinfo=UTC)
    lo = inst["last_operation"]
    ready = lo["type"] != "create" or lo["state"] == "succeeded"
    sm = core_sm()
    if rec is None:
        if sm is not None and hasattr(sm, "new_instance_record"):
            rec = sm.new_instance_record(app, inst["name"], sm_plan_id(app), created,
                                         inst["params"], None, platform_id(app),
                                         sm_context(app, inst), instance_id=inst["guid"])
            if hasattr(sm, "_done_op"):
                rec["_last_op"] = sm._done_op(app, "create", "/v1/service_instances",
                                              rec["id"], created)
        else:
            sub = app.state.get("subaccount") or {}
            ctx = dict(sm_context(app, inst), subaccount_id=sub.get("id"))
            rec = {"id": inst["guid"], "name": inst["name"], "service_plan_id": sm_plan_id(app),
                   "platform_id": platform_id(app), "context": ctx,
                   "labels": {"subaccount_id": [sub.get("id")]}, "shared": False,
                   "maintenance_info": {}, "created_at": inst["created_at"]}
        instances[inst["guid"]] = rec
    upd = datetime.datetime.strptime(inst["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
    rec.update({"name": inst["name"], "ready": ready, "usable": lo["state"] != "failed",
                "updated_at": upd.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    if isinstance(rec.get("context"), dict):
        rec["context"]["instance_name"] = inst["name"]
    if "_authorities" in rec:
        rec["_authorities"] = ["$XSMASTERAPPNAME." + a for a in inst["authorities"]]


# ---------------------------------------------------------------------------------------
# jobs


def new_job(app, operation, resource, on_finish):
    t = ts(now())
    j = {"guid": app.uuid(), "operation": operation, "state": "PROCESSING", "errors": [],
         "warnings": [], "created_at": t, "updated_at": t, "resource": resource,
         "polls_left": st(app)["job_polls"], "reads": 0, "on_finish": on_finish}
    st(app)["jobs"][j["guid"]] = j
    return j


def advance(app, j):
    if j["state"] in ("COMPLETE", "FAILED"):
        return
    j["reads"] += 1
    if j["polls_left"] > 0:
        j["polls_left"] -= 1
        j["state"] = "PROCESSING" if j["reads"] == 1 else "POLLING"
        return
    err = j["on_finish"]()
    j["updated_at"] = ts(now())
    if err:
        j["state"] = "FAILED"
        j["errors"] = [{"code": 10008, "title": "CF-UnprocessableEntity", "detail": err}]
    else:
        j["state"] = "COMPLETE"


def advance_for(app, guid):
    for j in list(st(app)["jobs"].values()):
        if j.get("resource") and j["resource"][1] == guid:
            advance(app, j)


def take_failure(app, op):
    return st(app)["fail_next"].pop(op, None)


def accepted(app, j):
    return app.empty(202, {"Location": api(app, "/v3/jobs/" + j["guid"])})


# ---------------------------------------------------------------------------------------
# handlers


def h_root(app):
    def handler(req, m):
        if req.host.endswith(".localhost") and req.host != API_HOST:
            raise app.HTTPError(404, {"error": "NotFound", "description": "no route for GET /"})
        base = api(app)
        return app.json(200, {"links": {
            "self": {"href": base},
            "bits_service": None,
            "cloud_controller_v2": {"href": base + "/v2", "meta": {"version": "2.240.0"}},
            "cloud_controller_v3": {"href": base + "/v3", "meta": {"version": "3.175.0"}},
            "network_policy_v0": {"href": base + "/networking/v0/external"},
            "network_policy_v1": {"href": base + "/networking/v1/external"},
            "login": {"href": app.url(LOGIN_HOST)},
            "uaa": {"href": app.url(UAA_HOST)},
            "credhub": None,
            "routing": {"href": base + "/routing"},
            "logging": {"href": app.url("doppler.cf.localhost").replace("http", "ws", 1)},
            "log_cache": {"href": app.url("log-cache.cf.localhost")},
            "log_stream": {"href": app.url("log-stream.cf.localhost")},
            "app_ssh": {"href": "ssh.cf.localhost:2222",
                        "meta": {"host_key_fingerprint": "fake", "oauth_client": "ssh-proxy"}}}})
    return handler


def h_v3_root(app):
    def handler(req, m):
        check_host(app, req)
        base = api(app, "/v3")
        names = ("organizations", "spaces", "service_offerings", "service_plans",
                 "service_instances", "service_credential_bindings", "jobs")
        return app.json(200, {"links": dict({"self": {"href": base}},
                                            **{n: {"href": base + "/" + n} for n in names})})
    return handler


def h_info(app):
    def handler(req, m):
        check_host(app, req)
        return app.json(200, {"build": "fake", "cli_version": {"minimum": "", "recommended": ""},
                              "custom": {}, "description": "fakebtp Cloud Foundry",
                              "name": "fakebtp", "version": 3, "osbapi_version": "2.15",
                              "links": {"self": {"href": api(app, "/v3/info")},
                                        "support": {"href": ""}}})
    return handler


def h_orgs(app):
    def handler(req, m):
        auth(app, req)
        q = split_query(req)
        check_params(app, q, COMMON | {"names", "guids"})
        with app.lock:
            items = [st(app)["org"]]
            items = names_filter(q, "names", items, "name", ci=True)
            items = names_filter(q, "guids", items, "guid")
            return paginate(app, req, q, items, r_org)
    return handler


def h_org(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            if m.group(1) != st(app)["org"]["guid"]:
                not_found(app, "Organization")
            return app.json(200, r_org(app, st(app)["org"]))
    return handler


def h_spaces(app):
    def handler(req, m):
        auth(app, req)
        q = split_query(req)
        check_params(app, q, COMMON | {"names", "guids", "organization_guids", "include"})
        with app.lock:
            items = list(st(app)["spaces"].values())
            items = names_filter(q, "names", items, "name", ci=True)
            items = names_filter(q, "guids", items, "guid")
            items = names_filter(q, "organization_guids", items, "org_guid")
            inc = None
            if "include" in q:
                if q["include"] != ["organization"]:
                    cf_error(app, 400, 10005, "CF-BadQueryParameter",
                             "The query parameter is invalid: Invalid included resource: '%s'"
                             % ",".join(q["include"]))
                inc = lambda chunk: {"organizations": [r_org(app, st(app)["org"])]}  # noqa
            return paginate(app, req, q, items, r_space, inc)
    return handler


def h_space(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            sp = st(app)["spaces"].get(m.group(1))
            if sp is None:
                not_found(app, "Space")
            return app.json(200, r_space(app, sp))
    return handler


def h_offerings(app):
    def handler(req, m):
        auth(app, req)
        q = split_query(req)
        check_params(app, q, COMMON | {"names", "guids", "available", "space_guids",
                                       "organization_guids", "service_broker_guids",
                                       "service_broker_names", "broker_catalog_ids"})
        with app.lock:
            items = visible_offerings(app)
            items = names_filter(q, "names", items, "name", ci=True)
            items = names_filter(q, "guids", items, "guid")
            items = names_filter(q, "broker_catalog_ids", items, "catalog_id")
            if "space_guids" in q and not set(q["space_guids"]) & set(st(app)["spaces"]):
                items = []
            if "organization_guids" in q and st(app)["org"]["guid"] not in q["organization_guids"]:
                items = []
            return paginate(app, req, q, items, r_offering)
    return handler


def h_offering(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            for o in visible_offerings(app):
                if o["guid"] == m.group(1):
                    return app.json(200, r_offering(app, o))
            not_found(app, "Service offering")
    return handler


def h_plans(app):
    def handler(req, m):
        auth(app, req)
        q = split_query(req)
        check_params(app, q, COMMON | {"names", "guids", "available", "space_guids",
                                       "organization_guids", "service_offering_guids",
                                       "service_offering_names", "service_broker_guids",
                                       "service_broker_names", "broker_catalog_ids",
                                       "service_instance_guids", "include"})
        with app.lock:
            items = visible_plans(app)
            items = names_filter(q, "names", items, "name", ci=True)
            items = names_filter(q, "guids", items, "guid")
            items = names_filter(q, "service_offering_guids", items, "offering_guid")
            items = names_filter(q, "service_offering_names", items, "offering_name", ci=True)
            items = names_filter(q, "broker_catalog_ids", items, "catalog_id")
            if "service_instance_guids" in q:
                want = {st(app)["instances"][g]["plan_guid"] for g in q["service_instance_guids"]
                        if g in st(app)["instances"]}
                items = [p for p in items if p["guid"] in want]
            inc = None
            if "include" in q:
                bad = set(q["include"]) - {"service_offering", "space.organization"}
                if bad:
                    cf_error(app, 400, 10005, "CF-BadQueryParameter",
                             "The query parameter is invalid: Invalid included resource: '%s'"
                             % ",".join(sorted(bad)))

                def inc(chunk):
                    out = {}
                    if "service_offering" in q["include"]:
                        seen = []
                        for p in chunk:
                            if p["offering_guid"] not in seen:
                                seen.append(p["offering_guid"])
                        out["service_offerings"] = [r_offering(app, offering_by_guid(app, g))
                                                    for g in seen]
                    if "space.organization" in q["include"]:
                        out["spaces"] = []
                        out["organizations"] = []
                    return out
            return paginate(app, req, q, items, r_plan, inc)
    return handler


def h_plan(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            for p in visible_plans(app):
                if p["guid"] == m.group(1):
                    return app.json(200, r_plan(app, p))
            not_found(app, "Service plan")
    return handler


def instance_fields_included(app, q, chunk):
    """fields[space], fields[space.organization], fields[service_plan],
    fields[service_plan.service_offering] -> 'included' as CC does."""
    out = {}
    plans = []
    for i in chunk:
        p = plan_by_guid(app, i["plan_guid"])
        if p is not None and p not in plans:
            plans.append(p)
    f_plan = q.get("fields[service_plan]")
    f_off = q.get("fields[service_plan.service_offering]")
    if f_plan is not None or f_off is not None:
        rows = []
        for p in plans:
            r = select_fields(r_plan(app, p), f_plan or ["guid", "name"])
            if f_off is not None:
                r["relationships"] = {"service_offering": {"data": {"guid": p["offering_guid"]}}}
            rows.append(r)
        out["service_plans"] = rows
    if f_off is not None:
        seen = []
        for p in plans:
            if p["offering_guid"] not in seen:
                seen.append(p["offering_guid"])
        out["service_offerings"] = [select_fields(r_offering(app, offering_by_guid(app, g)), f_off)
                                    for g in seen]
    f_space = q.get("fields[space]")
    f_org = q.get("fields[space.organization]")
    if f_space is not None or f_org is not None:
        spaces = []
        for i in chunk:
            sp = st(app)["spaces"].get(i["space_guid"])
            if sp is not None and sp not in spaces:
                spaces.append(sp)
        rows = []
        for sp in spaces:
            r = select_fields(r_space(app, sp), f_space or ["guid", "name"])
            if f_org is not None:
                r["relationships"] = {"organization": {"data": {"guid": sp["org_guid"]}}}
            rows.append(r)
        out["spaces"] = rows
        if f_org is not None:
            out["organizations"] = [select_fields(r_org(app, st(app)["org"]), f_org)]
    return out


def h_instances(app):
    def handler(req, m):
        auth(app, req)
        q = split_query(req)
        check_params(app, q, COMMON | {"names", "guids", "type", "space_guids",
                                       "organization_guids", "service_plan_guids",
                                       "service_plan_names"})
        for k in q:
            if k.startswith("fields[") and k not in ("fields[space]", "fields[space.organization]",
                                                      "fields[service_plan]",
                                                      "fields[service_plan.service_offering]"):
                cf_error(app, 400, 10005, "CF-BadQueryParameter",
                         "The query parameter is invalid: Fields %s is not supported" % k)
        with app.lock:
            items = list(st(app)["instances"].values())
            items = names_filter(q, "names", items, "name")
            items = names_filter(q, "guids", items, "guid")
            items = names_filter(q, "space_guids", items, "space_guid")
            items = names_filter(q, "service_plan_guids", items, "plan_guid")
            if "type" in q and "managed" not in q["type"]:
                items = []
            if "organization_guids" in q and st(app)["org"]["guid"] not in q["organization_guids"]:
                items = []
            if "service_plan_names" in q:
                want = {v.lower() for v in q["service_plan_names"]}
                items = [i for i in items if plan_by_guid(app, i["plan_guid"])["name"].lower() in want]
            return paginate(app, req, q, items, r_instance,
                            lambda chunk: instance_fields_included(app, q, chunk))
    return handler


def get_instance(app, guid):
    i = st(app)["instances"].get(guid)
    if i is None:
        not_found(app, "Service instance")
    return i


def h_instance(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            i = get_instance(app, m.group(1))
            advance_for(app, i["guid"])
            return app.json(200, r_instance(app, i))
    return handler


def h_instance_params(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            get_instance(app, m.group(1))
        cf_error(app, 400, 120004, "CF-ServiceFetchInstanceParametersNotSupported",
                 "This service does not support fetching service instance parameters.")
    return handler


def obj_or_422(app, body, what="Request"):
    if not isinstance(body, dict):
        unprocessable(app, "%s invalid: body must be a JSON object" % what)
    return body


def rel_guid(body, name):
    try:
        g = body["relationships"][name]["data"]["guid"]
    except (KeyError, TypeError):
        return None
    return g if isinstance(g, str) else None


def set_last_op(inst, typ, state, description=""):
    t = ts(now())
    inst["last_operation"] = {"type": typ, "state": state, "description": description,
                              "created_at": t if state == "in progress" else
                              inst["last_operation"]["created_at"], "updated_at": t}
    inst["updated_at"] = t


def busy(inst):
    return inst["last_operation"]["state"] in ("initial", "in progress")


def make_instance(app, name, space_guid, plan_guid, params, created=None, guid=None):
    t = ts(created or now())
    g = guid or app.uuid()
    inst = {"guid": g, "name": name, "space_guid": space_guid, "plan_guid": plan_guid,
            "created_at": t, "updated_at": t, "tags": [], "params": params or {},
            "xsappname": None, "authorities": (), "bnum": 0, "secret": None, "cred_types": None,
            "labels": {},
            "last_operation": {"type": "create", "state": "in progress", "description": "",
                               "created_at": t, "updated_at": t}}
    st(app)["instances"][g] = inst
    return inst


def provision(app, inst):
    """Broker side of a create; returns an error detail or None."""
    xs = xs_security(inst["params"])
    name, err = broker_check_xsappname(xs, inst["guid"])
    err = err or take_failure(app, "service_instance.create")
    if err:
        set_last_op(inst, "create", "failed", err)
        sm_mirror(app, inst)
        return err
    inst["xsappname"] = name
    inst["authorities"] = granted(xs)
    inst["cred_types"] = cred_types(xs)
    inst["bnum"] = st(app)["next_bnum"]
    st(app)["next_bnum"] += 1
    inst["secret"] = app.new_secret()
    register_client(app, inst)
    set_last_op(inst, "create", "succeeded")
    sm_mirror(app, inst)
    return None


def apply_labels(inst, body):
    """CF v3 metadata.labels: string values set, null removes (as CF does)."""
    md = body.get("metadata")
    labels = md.get("labels") if isinstance(md, dict) else None
    if not isinstance(labels, dict):
        return
    for k, v in labels.items():
        if v is None:
            inst["labels"].pop(k, None)
        elif isinstance(v, str):
            inst["labels"][k] = v


def h_create_instance(app):
    def handler(req, m):
        auth(app, req, write=True)
        body = obj_or_422(app, req.json())
        if body.get("type") != "managed":
            unprocessable(app, "Type must be one of 'managed', 'user-provided' "
                          "(the fake supports 'managed' only)")
        name = body.get("name")
        if not isinstance(name, str) or not name:
            unprocessable(app, "Name must be a string, Name can't be blank")
        params = body.get("parameters", {})
        if not isinstance(params, dict):
            unprocessable(app, "Parameters must be an object")
        space_guid = rel_guid(body, "space")
        plan_guid = rel_guid(body, "service_plan")
        with app.lock:
            s = st(app)
            if space_guid not in s["spaces"]:
                unprocessable(app, "Invalid space. Ensure that the space exists and you have "
                              "access to it.")
            if plan_guid not in {p["guid"] for p in visible_plans(app)}:
                unprocessable(app, "Invalid service plan. Ensure that the service plan exists, "
                              "is available, and you have access to it.")
            for i in s["instances"].values():
                if i["space_guid"] == space_guid and i["name"] == name:
                    unprocessable(app, "The service instance name is taken: %s." % name)
            inst = make_instance(app, name, space_guid, plan_guid, params)
            apply_labels(inst, body)
            sm_mirror(app, inst)
            job = new_job(app, "service_instance.create", ("service_instances", inst["guid"]),
                          lambda: provision(app, inst))
            return accepted(app, job)
    return handler


def h_update_instance(app):
    def handler(req, m):
        auth(app, req, write=True)
        body = obj_or_422(app, req.json())
        with app.lock:
            inst = get_instance(app, m.group(1))
            if busy(inst):
                cf_error(app, 409, 60016, "CF-AsyncServiceInstanceOperationInProgress",
                         "An operation for service instance %s is in progress." % inst["name"])
            if "parameters" in body and not isinstance(body["parameters"], dict):
                unprocessable(app, "Parameters must be an object")
            new_name = body.get("name")
            if new_name is not None:
                if not isinstance(new_name, str) or not new_name:
                    unprocessable(app, "Name must be a string")
                for i in st(app)["instances"].values():
                    if i is not inst and i["space_guid"] == inst["space_guid"] \
                            and i["name"] == new_name:
                        unprocessable(app, "The service instance name is taken: %s." % new_name)
            new_plan = rel_guid(body, "service_plan")
            if "relationships" in body and new_plan not in {p["guid"] for p in visible_plans(app)}:
                unprocessable(app, "Invalid service plan. Ensure that the service plan exists, "
                              "is available, and you have access to it.")
            if isinstance(body.get("tags"), list):
                inst["tags"] = [t for t in body["tags"] if isinstance(t, str)]
            apply_labels(inst, body)
            if new_name is not None:
                inst["name"] = new_name
                inst["updated_at"] = ts(now())
            if "parameters" not in body and new_plan is None:
                sm_mirror(app, inst)
                return app.json(200, r_instance(app, inst))
            params = body.get("parameters")
            set_last_op(inst, "update", "in progress")

            def finish():
                err = take_failure(app, "service_instance.update")
                xs = xs_security(params) if params is not None else None
                if not err and xs is not None and "xsappname" in xs \
                        and xs["xsappname"] != inst["xsappname"]:
                    err = ("Service broker error: The xsappname cannot be changed: the instance "
                           "has xsappname '%s', the update requests '%s'"
                           % (inst["xsappname"], xs["xsappname"]))
                if err:
                    set_last_op(inst, "update", "failed", err)
                    return err
                if xs is not None:
                    types = cred_types(xs)
                    if types == [] or any(t not in CRED_TYPES for t in types or ()):
                        err = "Service broker error: invalid credential-types %s" % (types,)
                        set_last_op(inst, "update", "failed", err)
                        return err
                    # the xs-security block replaces the descriptor: without
                    # oauth2-configuration, credential-types fall back to the default
                    inst["cred_types"] = types
                    restrict_types(app, inst)
                    auths = granted(xs)
                    if auths != inst["authorities"]:
                        # New authorities reach only keys created from now on: new client id.
                        inst["authorities"] = auths
                        inst["bnum"] = st(app)["next_bnum"]
                        st(app)["next_bnum"] += 1
                        register_client(app, inst)
                    inst["params"] = params
                if new_plan is not None:
                    inst["plan_guid"] = new_plan
                set_last_op(inst, "update", "succeeded")
                sm_mirror(app, inst)
                return None
            job = new_job(app, "service_instance.update", ("service_instances", inst["guid"]),
                          finish)
            return accepted(app, job)
    return handler


def h_bindings(app):
    def handler(req, m):
        auth(app, req)
        q = split_query(req)
        check_params(app, q, COMMON | {"names", "guids", "type", "service_instance_guids",
                                       "service_instance_names", "service_plan_guids",
                                       "service_plan_names", "service_offering_guids",
                                       "service_offering_names", "app_guids", "app_names",
                                       "include"})
        with app.lock:
            s = st(app)
            items = list(s["bindings"].values())
            items = names_filter(q, "names", items, "name")
            items = names_filter(q, "guids", items, "guid")
            items = names_filter(q, "service_instance_guids", items, "instance_guid")
            if "type" in q and "key" not in q["type"]:
                items = []
            if "app_guids" in q or "app_names" in q:
                items = []

            def inst_of(b):
                return s["instances"][b["instance_guid"]]
            if "service_instance_names" in q:
                items = [b for b in items if inst_of(b)["name"] in q["service_instance_names"]]
            if "service_plan_guids" in q:
                items = [b for b in items if inst_of(b)["plan_guid"] in q["service_plan_guids"]]
            if "service_plan_names" in q:
                want = {v.lower() for v in q["service_plan_names"]}
                items = [b for b in items
                         if plan_by_guid(app, inst_of(b)["plan_guid"])["name"].lower() in want]
            if "service_offering_guids" in q:
                items = [b for b in items if plan_by_guid(app, inst_of(b)["plan_guid"])
                         ["offering_guid"] in q["service_offering_guids"]]
            if "service_offering_names" in q:
                want = {v.lower() for v in q["service_offering_names"]}
                items = [b for b in items if plan_by_guid(app, inst_of(b)["plan_guid"])
                         ["offering_name"].lower() in want]
            inc = None
            if "include" in q:
                bad = set(q["include"]) - {"service_instance", "app"}
                if bad:
                    cf_error(app, 400, 10005, "CF-BadQueryParameter",
                             "The query parameter is invalid: Invalid included resource: '%s'"
                             % ",".join(sorted(bad)))

                def inc(chunk):
                    out = {}
                    if "service_instance" in q["include"]:
                        seen = []
                        for b in chunk:
                            if b["instance_guid"] not in seen:
                                seen.append(b["instance_guid"])
                        out["service_instances"] = [r_instance(app, s["instances"][g])
                                                    for g in seen]
                    if "app" in q["include"]:
                        out["apps"] = []
                    return out
            return paginate(app, req, q, items, r_binding, inc)
    return handler


def get_binding(app, guid):
    b = st(app)["bindings"].get(guid)
    if b is None:
        not_found(app, "Service credential binding")
    return b


def h_binding(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            b = get_binding(app, m.group(1))
            advance_for(app, b["guid"])
            return app.json(200, r_binding(app, b))
    return handler


def h_binding_details(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            b = get_binding(app, m.group(1))
            lo = b["last_operation"]
            if lo["state"] != "succeeded":
                verb = "in progress" if lo["state"] in ("initial", "in progress") else "failed"
                cf_error(app, 404, 10010, "CF-ResourceNotFound",
                         "Creation of service key %s" % verb)
            return app.json(200, {"credentials": b["credentials"]})
    return handler


def h_binding_params(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            get_binding(app, m.group(1))
        cf_error(app, 502, 10001, "CF-ServiceBrokerBadResponse",
                 "This service does not support fetching service binding parameters.")
    return handler


def make_binding(app, inst, name, created=None):
    t = ts(created or now())
    b = {"guid": app.uuid(), "name": name, "instance_guid": inst["guid"], "created_at": t,
         "updated_at": t, "credentials": None, "labels": {},
         "last_operation": {"type": "create", "state": "in progress", "description": "",
                            "created_at": t, "updated_at": t}}
    st(app)["bindings"][b["guid"]] = b
    return b


def key_kind(inst, params):
    """(credential type of a new key, broker error or None): the type the key's parameters
    ask for, else the instance's first credential type (SAP's "Service Instance Secrets").
    The fake makes no x509 keys for Cloud Foundry."""
    p = params if isinstance(params, dict) else {}
    if isinstance(p.get("xsuaa"), dict):
        p = p["xsuaa"]
    allowed = allowed_types(inst)
    want = p.get("credential-type")
    if want == "x509" or "x509" in p or (want is None and allowed[0] == "x509"):
        return None, ("Service broker error: credential-type x509 is not allowed for this "
                      "instance (its credential-types do not include x509)")
    if want is None:
        return allowed[0], None
    if want not in allowed:
        return None, ("Service broker error: credential-type \"%s\" is not allowed by the "
                      "instance (oauth2-configuration.credential-types %s)" % (want, allowed))
    return want, None


def bind(app, inst, b, params, kind=None):
    """Broker side of a key create: snapshot of the instance's current client. A
    binding-secret key gets a secret of its own (`<key guid>$...`) that its deletion
    revokes; an instance-secret key (kind forces one: an old key made before 19 January
    2026) shares the instance's secret."""
    err = take_failure(app, "service_keys.create")
    if not err and kind is None:
        kind, err = key_kind(inst, params)
    t = ts(now())
    b["updated_at"] = t
    if err:
        b["last_operation"].update({"state": "failed", "description": err, "updated_at": t})
        return err
    if kind == "instance-secret":
        secret = inst["secret"]
    else:
        secret = b["guid"] + "$" + app.new_secret()
        client = app.clients.get(client_id(inst))
        if client is not None:
            client["secrets"].append(secret)
    b["credentials"] = credentials(app, inst, kind, secret)
    b["last_operation"].update({"state": "succeeded", "updated_at": t})
    return None


def unbind(app, b):
    """Deleting a binding-secret key revokes its secret; an instance-secret key's shared
    secret stays valid (SAP: it cannot be rotated by deleting keys)."""
    uaa = (b.get("credentials") or {}).get("uaa") or {}
    client = app.clients.get(uaa.get("clientid"))
    if client is not None and uaa.get("credential-type") == "binding-secret":
        client["secrets"] = [x for x in client["secrets"] if x != uaa.get("clientsecret")]


def h_create_binding(app):
    def handler(req, m):
        auth(app, req, write=True)
        body = obj_or_422(app, req.json())
        if body.get("type") != "key":
            unprocessable(app, "Type must be one of 'app', 'key' (the fake supports 'key' only)")
        name = body.get("name")
        if not isinstance(name, str) or not name:
            unprocessable(app, "Name can't be blank")
        params = body.get("parameters")
        if params is not None and not isinstance(params, dict):
            unprocessable(app, "Parameters must be an object")
        ig = rel_guid(body, "service_instance")
        with app.lock:
            s = st(app)
            inst = s["instances"].get(ig)
            if inst is None:
                unprocessable(app, "The service instance could not be found: '%s'." % ig)
            if busy(inst):
                unprocessable(app, "There is an operation in progress for the service instance")
            if inst["secret"] is None:
                unprocessable(app, "Service instance %s is not usable (its creation failed)"
                              % inst["name"])
            for b in s["bindings"].values():
                if b["instance_guid"] == ig and b["name"] == name:
                    unprocessable(app, "The binding name is invalid. Key binding names must be "
                                  "unique. The service instance already has a key binding with "
                                  "name '%s'." % name)
            b = make_binding(app, inst, name)
            apply_labels(b, body)
            # Credentials reflect the instance at the time the key is requested.
            snap = dict(inst)
            job = new_job(app, "service_keys.create", ("service_credential_bindings", b["guid"]),
                          lambda: bind(app, snap, b, params))
            return accepted(app, job)
    return handler


def h_delete_binding(app):
    def handler(req, m):
        auth(app, req, write=True)
        with app.lock:
            b = get_binding(app, m.group(1))

            def finish():
                st(app)["bindings"].pop(b["guid"], None)
                unbind(app, b)
                return None
            job = new_job(app, "service_keys.delete", None, finish)
            return accepted(app, job)
    return handler


def h_job(app):
    def handler(req, m):
        auth(app, req)
        with app.lock:
            j = st(app)["jobs"].get(m.group(1))
            if j is None:
                not_found(app, "Job")
            advance(app, j)
            return app.json(200, r_job(app, j))
    return handler


# ---------------------------------------------------------------------------------------
# control: POST /_fake/plugins/cf {"fail_next": {"service_instance.create"|
#   "service_instance.update"|"service_keys.create": "detail"}, "job_polls": n, "per_page": n,
#   "job_link_names": {"service_instances": "other"}}


def h_control(app):
    def handler(req, m):
        with app.lock:
            s = st(app)
            if req.method == "POST":
                body = req.json()
                if not isinstance(body, dict):
                    raise app.HTTPError(400, {"error": "body must be an object"})
                for k, v in body.items():
                    if k == "fail_next" and isinstance(v, dict):
                        s["fail_next"].update({str(a): str(b) for a, b in v.items()})
                    elif k == "job_link_names" and isinstance(v, dict):
                        s["job_link_names"] = {str(a): str(b) for a, b in v.items()}
                    elif k in ("job_polls", "per_page") and isinstance(v, int) and v >= 0:
                        s[k] = max(v, 1) if k == "per_page" else v
                    elif k == "passcode" and v is True:
                        code = app.new_secret("pc-")
                        s["passcodes"][code] = (s["user"], "sap.ids")
                        return app.json(200, {"passcode": code})
                    else:
                        raise app.HTTPError(400, {"error": "unknown or bad knob %s" % k})
            return app.json(200, {"job_polls": s["job_polls"], "per_page": s["per_page"],
                                  "fail_next": s["fail_next"], "user": s["user"],
                                  "space_guid": s["space"]["guid"]})
    return handler


# ---------------------------------------------------------------------------------------
# seam


def register(app):
    app.route("GET", r"/", h_root(app))
    app.route("GET", r"/v3", h_v3_root(app))
    app.route("GET", r"/v3/info", h_info(app))
    app.route("GET", r"/v3/organizations", h_orgs(app))
    app.route("GET", r"/v3/organizations/([^/]+)", h_org(app))
    app.route("GET", r"/v3/spaces", h_spaces(app))
    app.route("GET", r"/v3/spaces/([^/]+)", h_space(app))
    app.route("GET", r"/v3/service_offerings", h_offerings(app))
    app.route("GET", r"/v3/service_offerings/([^/]+)", h_offering(app))
    app.route("GET", r"/v3/service_plans", h_plans(app))
    app.route("GET", r"/v3/service_plans/([^/]+)", h_plan(app))
    app.route("GET", r"/v3/service_instances", h_instances(app))
    app.route("POST", r"/v3/service_instances", h_create_instance(app))
    app.route("GET", r"/v3/service_instances/([^/]+)", h_instance(app))
    app.route("PATCH", r"/v3/service_instances/([^/]+)", h_update_instance(app))
    app.route("GET", r"/v3/service_instances/([^/]+)/parameters", h_instance_params(app))
    app.route("GET", r"/v3/service_credential_bindings", h_bindings(app))
    app.route("POST", r"/v3/service_credential_bindings", h_create_binding(app))
    app.route("GET", r"/v3/service_credential_bindings/([^/]+)", h_binding(app))
    app.route("DELETE", r"/v3/service_credential_bindings/([^/]+)", h_delete_binding(app))
    app.route("GET", r"/v3/service_credential_bindings/([^/]+)/details", h_binding_details(app))
    app.route("GET", r"/v3/service_credential_bindings/([^/]+)/parameters", h_binding_params(app))
    app.route("GET", r"/v3/jobs/([^/]+)", h_job(app))
    if hasattr(app, "control"):
        app.control("*", r"/_fake/plugins/cf", h_control(app))


def _base_state(app):
    """Org, space, marketplace and user; the same for every preset."""
    sub = app.state.get("subaccount") or {}
    created = sub.get("created")
    if not isinstance(created, datetime.datetime):
        created = now()
    env_t = created + datetime.timedelta(minutes=40)
    t = ts(env_t)
    cfg = getattr(app, "config", None)
    s = {"per_page": max(1, int(getattr(cfg, "page_size", 2) or 2)),
         "job_polls": int(getattr(cfg, "op_polls", 1)),
         "fail_next": {}, "instances": {}, "bindings": {}, "jobs": {}, "next_bnum": 4711,
         "broker_guid": app.uuid()}
    org = {"guid": app.uuid(), "name": "%s_org" % (sub.get("subdomain") or "calm-fake"),
           "created_at": t, "updated_at": t, "quota": app.uuid()}
    space = {"guid": app.uuid(), "name": "calm", "org_guid": org["guid"], "created_at": t,
             "updated_at": t}
    other = {"guid": app.uuid(), "name": "dev", "org_guid": org["guid"], "created_at": t,
             "updated_at": t}
    s["org"], s["space"] = org, space
    s["spaces"] = {space["guid"]: space, other["guid"]: other}
    offerings, plans = [], []
    for n, (name, desc, plan_names) in enumerate(CATALOG):
        ot = ts(datetime.datetime(2020, 1, 1, tzinfo=UTC) + datetime.timedelta(days=n))
        o = {"guid": app.uuid(), "name": name, "description": desc, "display_name": desc,
             "catalog_id": "%s-catalog-id" % name.lower(), "created_at": ot, "updated_at": ot}
        offerings.append(o)
        for pn in plan_names:
            plans.append({"guid": app.uuid(), "name": pn, "offering_guid": o["guid"],
                          "offering_name": name, "catalog_id": "%s-%s" % (o["catalog_id"], pn),
                          "created_at": ot, "updated_at": ot})
    s["offerings"], s["plans"] = offerings, plans
    s["user"] = CF_USER
    s["password"] = app.new_secret()
    app.users[CF_USER] = s["password"]
    # a user of a custom identity provider (origin corp-idp, login_hint) and the one-time
    # SSO passcodes the control knob {"passcode": true} hands out (xsuaa.py checks both)
    s["idp_user"], s["idp_password"] = "jane@corp.example", app.new_secret()
    s["idp_users"] = {IDP_ORIGIN: {s["idp_user"]: s["idp_password"]}}
    s["passcodes"] = {}
    s["environment"] = {"id": app.uuid(), "api": api(app), "org_name": org["name"],
                        "org_id": org["guid"], "created": env_t}
    return s


def apply_preset(app, name):
    with app.lock:
        app.state["cf"] = _base_state(app)
        if name != "cf-legacy":
            return
        s = st(app)
        plan = [p for p in s["plans"] if p["offering_name"] == CALM_OFFERING][0]
        # The core (sm.apply_preset) already put a CF-owned Cloud ALM instance into the SM
        # state; adopt it (same GUID and name) so SM and CF describe one instance.
        core = app.state.get("instances", {}).get(app.state.get("cf_legacy_instance_id") or "")
        name, guid = "calm-api-cf", None
        created = datetime.datetime(2022, 5, 10, 13, 7, 12, tzinfo=UTC)
        if core is not None:
            name, guid = core["name"], core["id"]
            try:
                created = datetime.datetime.strptime(core["created_at"][:19],
                                                     "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            except (KeyError, ValueError):
                pass
        params = {"xs-security": {"xsappname": name}}
        variants = getattr(app.config, "variants", ())
        if "cf-authorities" in variants:
            params["xs-security"]["authorities"] = ["$XSMASTERAPPNAME." + a for a in AUTHORITIES]
        inst = make_instance(app, name, s["space"]["guid"], plan["guid"], params, created, guid)
        if core is not None and isinstance(core.get("context"), dict):
            core["context"].update(sm_context(app, inst))
        provision(app, inst)
        old_key = "instance-secret" in variants
        if old_key:
            # made before 19 January 2026: the instance still allows its instance secret
            inst["cred_types"] = ["binding-secret", "instance-secret"]
            register_client(app, inst)
        inst["last_operation"].update({"created_at": inst["created_at"],
                                       "updated_at": ts(created + datetime.timedelta(seconds=9))})
        inst["updated_at"] = inst["last_operation"]["updated_at"]
        sm_mirror(app, inst)
        b = make_binding(app, inst, name + "-key", created + datetime.timedelta(minutes=6))
        bind(app, inst, b, None, "instance-secret" if old_key else None)
        b["updated_at"] = b["last_operation"]["updated_at"] = \
            ts(created + datetime.timedelta(minutes=6, seconds=4))
        # A second instance of another offering in the same space (lists are not just ours).
        xs = [p for p in s["plans"] if p["offering_name"] == "xsuaa"][0]
        other = make_instance(app, "approuter-uaa", s["space"]["guid"], xs["guid"], {},
                              created + datetime.timedelta(days=30))
        other.update({"xsappname": "approuter-uaa", "bnum": 1, "secret": app.new_secret()})
        set_last_op(other, "create", "succeeded")


def write_files(app, state_dir):
    with app.lock:
        s = st(app)
        text = ("CF_API=%s\nCF_USERNAME=%s\nCF_PASSWORD=%s\nCF_SPACE_GUID=%s\n"
                "CF_IDP_ORIGIN=%s\nCF_IDP_USERNAME=%s\nCF_IDP_PASSWORD=%s\n") % (
            api(app), s["user"], s["password"], s["space"]["guid"],
            IDP_ORIGIN, s["idp_user"], s["idp_password"])
    path = os.path.join(state_dir, "cf.env")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
