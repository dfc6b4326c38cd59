"""Fake Service Manager /v1 (offerings, plans, instances, bindings, operations), the Cloud ALM
broker behaviour behind it, the SM key files and the core part of the presets."""
import base64
import datetime
import json
import random
import re

import smquery

CALM_MASTER = "calm!b111"
SM_MASTER = "service-manager!b5"
CALM_OFFERING_ID = "11111111-aaaa-4bbb-8ccc-000000000001"
CALM_PLAN_ID = "33333333-aaaa-4bbb-8ccc-000000000003"
CALM_READ_SCOPES = ["calm-api.landscape.read", "calm-api.projects.read", "calm-api.tasks.read"]
SM_SCOPE_NAMES = [
    "subaccount.service_instance.read", "subaccount.service_instance.manage",
    "subaccount.service_binding.read", "subaccount.service_binding.manage",
    "subaccount.service_plan.read", "subaccount.service_offering.read",
    "subaccount.service_broker.read", "subaccount.service_broker.manage",
    "subaccount.platform.read", "subaccount.platform.manage",
]
XSAPPNAME_RE = re.compile(r"[A-Za-z0-9\-_/\\]{1,128}")
NOT_ACCESSIBLE = {"error": "NotFound", "description": "service instance not found or not accessible"}
PRESET_DATES = {
    "after-2023-10-16": datetime.datetime(2024, 3, 5, 9, 30, tzinfo=datetime.timezone.utc),
    "mid-2023": datetime.datetime(2023, 8, 21, 8, 0, tzinfo=datetime.timezone.utc),
    "before-2023-06-12": datetime.datetime(2022, 11, 14, 8, 0, tzinfo=datetime.timezone.utc),
    "cf-legacy": datetime.datetime(2022, 5, 10, 8, 0, tzinfo=datetime.timezone.utc),
    "empty": datetime.datetime(2025, 1, 1, 8, 0, tzinfo=datetime.timezone.utc),
}
INSTANCE_FIELDS = ("id", "name", "service_plan_id", "platform_id", "context", "labels", "ready",
                   "usable", "shared", "dashboard_url", "maintenance_info", "created_at",
                   "updated_at", "last_operation")
BINDING_FIELDS = ("id", "name", "service_instance_id", "service_instance_name", "context",
                  "bind_resource", "labels", "ready", "credentials", "created_at", "updated_at",
                  "last_operation")
OP_FIELDS = ("id", "type", "state", "description", "resource_id", "resource_type", "platform_id",
             "correlation_id", "errors", "reschedule", "deletion_scheduled", "ready", "labels",
             "created_at", "updated_at")
OFFERING_FIELDS = ("id", "name", "catalog_name", "catalog_id", "description", "broker_id",
                   "bindable", "instances_retrievable", "bindings_retrievable", "plan_updateable",
                   "allow_context_updates", "metadata", "tags", "labels", "ready", "data_center",
                   "created_at", "updated_at")
PLAN_FIELDS = ("id", "name", "catalog_name", "catalog_id", "description", "service_offering_id",
               "free", "bindable", "plan_updateable", "maximum_polling_duration", "metadata",
               "labels", "ready", "created_at", "updated_at")


def ts(dt=None):
    dt = dt or datetime.datetime.now(datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def err(app, status, error, description, headers=None):
    raise app.HTTPError(status, {"error": error, "description": description}, headers)


# ----------------------------------------------------------------------------------------
# catalog


def _catalog(app):
    t = ts(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    calm_t = ts(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    broker = "22222222-aaaa-4bbb-8ccc-000000000002"

    def off(oid, name, disp, gated=False, created=t):
        return {"id": oid, "name": name, "catalog_name": name, "catalog_id": "cat-" + name,
                "description": disp, "broker_id": broker, "bindable": True,
                "instances_retrievable": False, "bindings_retrievable": False,
                "plan_updateable": False, "allow_context_updates": False,
                "metadata": {"displayName": disp}, "tags": [], "labels": {}, "ready": True,
                "data_center": "cf-eu10", "created_at": created, "updated_at": created,
                "_gated": gated, "_seq": 0}

    def plan(pid, name, oid, gated=False, created=t):
        return {"id": pid, "name": name, "catalog_name": name, "catalog_id": "cat-plan-" + name,
                "description": name + " plan", "service_offering_id": oid, "free": True,
                "bindable": True, "plan_updateable": False, "maximum_polling_duration": 0,
                "metadata": {"supportedPlatforms": ["sapbtp", "cloudfoundry"]}, "labels": {},
                "ready": True, "created_at": created, "updated_at": created, "_gated": gated,
                "_seq": 0}

    offs = [
        off("aaaaaaaa-0000-4000-8000-000000000001", "service-manager", "Service Manager"),
        off("aaaaaaaa-0000-4000-8000-000000000002", "xsuaa", "Authorization and Trust Management Service"),
        off("aaaaaaaa-0000-4000-8000-000000000003", "destination", "Destination Service"),
        off(CALM_OFFERING_ID, "SAPCloudALMAPIs", "SAP Cloud ALM API", True, calm_t),
        off("aaaaaaaa-0000-4000-8000-000000000005", "cis", "Cloud Management Service"),
    ]
    plans = [
        plan("bbbbbbbb-0000-4000-8000-000000000001", "subaccount-admin", offs[0]["id"]),
        plan("bbbbbbbb-0000-4000-8000-000000000002", "subaccount-audit", offs[0]["id"]),
        plan("bbbbbbbb-0000-4000-8000-000000000003", "container", offs[0]["id"]),
        plan("bbbbbbbb-0000-4000-8000-000000000004", "application", offs[1]["id"]),
        plan("bbbbbbbb-0000-4000-8000-000000000005", "lite", offs[2]["id"]),
        plan(CALM_PLAN_ID, "standard", CALM_OFFERING_ID, True, calm_t),
        plan("bbbbbbbb-0000-4000-8000-000000000007", "local", offs[4]["id"]),
        plan("bbbbbbbb-0000-4000-8000-000000000008", "central", offs[4]["id"]),
    ]
    for i, o in enumerate(offs + plans):
        o["_seq"] = i + 1
    return offs, plans


def _visible(app, entity):
    return not entity.get("_gated") or bool(app.state.get("entitled"))


def _plan(app, pid):
    for p in app.state["plans"]:
        if p["id"] == pid:
            return p
    return None


# ----------------------------------------------------------------------------------------
# public representations


def _pick(d, fields):
    return {k: d[k] for k in fields if k in d}


def public_op(app, op):
    return _pick(op, OP_FIELDS)


def public_instance(app, inst, with_op=True):
    out = _pick(inst, INSTANCE_FIELDS)
    if with_op and inst.get("_last_op") in app.state["operations"]:
        out["last_operation"] = public_op(app, app.state["operations"][inst["_last_op"]])
    else:
        out.pop("last_operation", None)
    return out


def public_binding(app, b, credentials=True, with_op=True):
    out = _pick(b, BINDING_FIELDS)
    out.pop("credentials", None)
    if credentials and b.get("ready") and b.get("_credentials") is not None:
        out["credentials"] = b["_credentials"]
    if with_op and b.get("_last_op") in app.state["operations"]:
        out["last_operation"] = public_op(app, app.state["operations"][b["_last_op"]])
    return out


# ----------------------------------------------------------------------------------------
# listing: queries and paging


def _next_seq(app):
    app.state["_seq"] = app.state.get("_seq", 100) + 1
    return app.state["_seq"]


def _parse_q(app, req, name):
    raw = req.q(name)
    if raw is None or raw == "":
        return None
    try:
        crits = smquery.parse(raw)
    except smquery.QueryError as e:
        err(app, 400, "BadRequest", "error while parsing %s at column %d: %s" % (name, e.col, e.msg))
    if name == "labelQuery":
        seen = set()
        for k, op, v in crits:
            if op == "en":
                err(app, 400, "BadRequest", "nullable operations are supported only for field queries")
            if k in seen:
                err(app, 400, "BadRequest", "duplicate label query key: %s" % k)
            seen.add(k)
    return crits


def _list(app, req, items, fields, render):
    """items: internal dicts with _seq; fields: allowed fieldQuery top-level keys."""
    fq = _parse_q(app, req, "fieldQuery")
    lq = _parse_q(app, req, "labelQuery")
    if fq:
        for k, op, v in fq:
            if k.split("/")[0] not in fields:
                err(app, 400, "BadRequest", "unsupported field query key: %s" % k)
    raw_max = req.q("max_items")
    size = app.config.page_size
    if raw_max is not None:
        try:
            size = int(raw_max)
        except ValueError:
            size = -1
        if size < 0:
            err(app, 400, "InvalidMaxItems", "max_items should be between 0 and 200")
        size = min(size, 200)
    after = 0
    tok = req.q("token")
    if tok:
        try:
            dec = base64.b64decode(tok.encode(), validate=True).decode()
            if not dec.startswith("seq:"):
                raise ValueError(dec)
            after = int(dec[4:])
        except (ValueError, UnicodeDecodeError):
            err(app, 400, "TokenInvalid", "Invalid token provided")
    sel = []
    for it in sorted(items, key=lambda x: x["_seq"]):
        pub = _pick(it, fields)
        if fq and not smquery.match_field(pub, fq):
            continue
        if lq and not smquery.match_labels(it.get("labels"), lq):
            continue
        sel.append(it)
    if size == 0:
        return app.json(200, {"num_items": len(sel)})
    rest = [it for it in sel if it["_seq"] > after]
    page = rest[:size]
    body = {"num_items": len(sel), "items": [render(it) for it in page]}
    headers = {}
    if len(rest) > size:
        t = base64.b64encode(("seq:%d" % page[-1]["_seq"]).encode()).decode()
        body = {"token": t, "num_items": len(sel), "items": body["items"]}
        q = dict((k, v[-1]) for k, v in req.query.items())
        q["token"] = t
        headers["Link"] = '<%s%s?%s>; rel="next"' % (app.tenant.prefix, req.path, urllib_encode(q))
    return app.json(200, body, headers)


def urllib_encode(q):
    import urllib.parse
    return urllib.parse.urlencode(q, quote_via=urllib.parse.quote)


# ----------------------------------------------------------------------------------------
# auth for SM routes


def _auth(app, req, group):
    claims = app.tokens.check(req)
    need = "subaccount.%s.%s" % (group, "read" if req.method == "GET" else "manage")
    if group in ("service_offering", "service_plan"):
        need = "subaccount.%s.read" % group
    if not any(s.endswith("." + need) for s in claims.get("scope", [])):
        err(app, 403, "Forbidden", "insufficient scope: %s required" % need)
    return claims


def _check_json(app, req):
    ctype = req.headers.get("Content-Type")
    if ctype is not None and ctype.split(";")[0].strip().lower() != "application/json":
        err(app, 400, "BadRequest", "unsupported media type: %s" % ctype)
    body = req.json()
    if not isinstance(body, dict):
        err(app, 400, "BadRequest", "request body must be a JSON object")
    return body


def _async(app, req, kind):
    a = req.q("async")
    if a == "true":
        return True
    if a == "false":
        return False
    mode = app.config.async_mode
    if mode == "sync":
        return False
    if mode == "async":
        return True
    return kind == "instance"


# ----------------------------------------------------------------------------------------
# operations


def _errors_value(app, text):
    e = {"error": "BrokerError", "description": text}
    style = app.config.errors_style
    if style == "alternate":
        app.state["_err_flip"] = not app.state.get("_err_flip", False)
        style = "object" if app.state["_err_flip"] else "array"
    return e if style == "object" else [e]


def _new_op(app, req, otype, rtype, rid, fate="succeed", fail_text=None):
    now = ts()
    corr = None
    for h in ("X-CorrelationID", "X-Correlation-ID", "X-Request-ID", "X-Vcap-Request-Id"):
        if req.headers.get(h):
            corr = req.headers.get(h)
            break
    op = {"id": app.uuid(), "type": otype, "state": "in progress",
          "description": {"create": "Provisioning in progress", "update": "Update in progress",
                          "delete": "Deprovisioning in progress"}[otype] if rtype.endswith("instances")
          else "%s in progress" % otype.capitalize(),
          "resource_id": rid, "resource_type": rtype, "platform_id": "service-manager",
          "correlation_id": corr or app.uuid(), "reschedule": False,
          "deletion_scheduled": "0001-01-01T00:00:00Z", "ready": True, "labels": {},
          "created_at": now, "updated_at": now,
          "_polls": 0, "_fate": fate, "_fail_text": fail_text, "_seq": _next_seq(app),
          "_effects": None}
    app.state["operations"][op["id"]] = op
    return op


def _op_fate(app, req, rules=None):
    rule = app.faults.take_op_fault(req)
    if rules is not None:
        rules.append(rule or {})
    if rule is None:
        return "succeed", None
    if rule["action"] == "op_stuck":
        return "stuck", None
    return "fail", rule.get("errors") or rule.get("description") or \
        "Service broker calm failed with: provisioning failed (injected fault)"


def _finish(app, op):
    """Complete an operation according to its fate and apply its effects."""
    op["updated_at"] = ts()
    if op["_fate"] == "fail":
        op["state"] = "failed"
        op["description"] = "operation failed"
        op["errors"] = _errors_value(app, op["_fail_text"])
        eff = op.get("_on_fail")
    else:
        op["state"] = "succeeded"
        op["description"] = "operation succeeded"
        eff = op.get("_effects")
    if eff:
        eff()


def _advance(app, op):
    """One poll of an operation."""
    if op["state"] != "in progress" or op["_fate"] == "stuck":
        return
    op["_polls"] += 1
    if op["_polls"] > app.config.op_polls:
        _finish(app, op)


def _in_progress(app, entity):
    op = app.state["operations"].get(entity.get("_last_op"))
    return op if op is not None and op["state"] == "in progress" else None


def _respond_mutation(app, req, op, is_async, rtype, entity_render, sync_status):
    """202 + Location, or run the operation to completion and answer sync."""
    if is_async or op["_fate"] == "stuck":
        loc = "%s/v1/%s/%s/operations/%s" % (app.tenant.prefix, rtype, op["resource_id"], op["id"])
        return app.json(202, {}, {"Location": loc})
    _finish(app, op)
    if op["state"] == "failed":
        text = op["_fail_text"]
        err(app, 502, "ServiceBrokerErr", text)
    body = entity_render()
    return app.json(sync_status, body)


# ----------------------------------------------------------------------------------------
# Cloud ALM broker: xsappname, credentials


def _xs_security(params):
    xs = (params or {}).get("xs-security")
    return xs if isinstance(xs, dict) else None


def _cred_types(xs):
    oc = (xs or {}).get("oauth2-configuration")
    if isinstance(oc, dict) and isinstance(oc.get("credential-types"), list):
        return [str(x) for x in oc["credential-types"]]
    return None


def _broker_error(app, text):
    raise app.HTTPError(400, {"error": "BadRequest",
                              "description": "Service broker error: %s" % text,
                              "broker_error": {"StatusCode": 400, "ErrorMessage": "BadRequest",
                                               "Description": text}})


def _validate_calm_params(app, params, inst=None):
    if params is None:
        return
    if not isinstance(params, dict):
        _broker_error(app, "parameters must be a JSON object")
    xs = _xs_security(params)
    if xs is None:
        if "xs-security" in params:
            _broker_error(app, "xs-security must be a JSON object")
        return
    xsa = xs.get("xsappname")
    if xsa is not None:
        if not isinstance(xsa, str) or not XSAPPNAME_RE.fullmatch(xsa):
            _broker_error(app, "Invalid xsappname \"%s\": only a-z A-Z 0-9 - _ / \\ allowed, "
                               "at most 128 characters" % xsa)
        if inst is not None and xsa != inst["_xsappname"]:
            _broker_error(app, "Service broker xsuaa failed: the xsappname cannot be changed "
                               "(current \"%s\", requested \"%s\")" % (inst["_xsappname"], xsa))
    auth = xs.get("authorities")
    if auth is not None and (not isinstance(auth, list) or
                             not all(isinstance(a, str) for a in auth)):
        _broker_error(app, "authorities must be an array of strings")
    ct = _cred_types(xs)
    if ct is not None:
        bad = [c for c in ct if c not in ("binding-secret", "instance-secret", "x509")]
        if bad or not ct:
            _broker_error(app, "invalid credential-types %s" % json.dumps(ct))


def _apply_calm_params(app, inst, params):
    """Set the broker-side config of a Cloud ALM instance from (create or update) parameters."""
    xs = _xs_security(params)
    if xs is None:
        return
    if isinstance(xs.get("authorities"), list):
        inst["_authorities"] = list(xs["authorities"])
    ct = _cred_types(xs)
    if ct is not None:
        inst["_cred_types"] = ct


def _revoke_removed_types(app, inst, types):
    """SAP's "Service Instance Secrets" / migration pages: removing a credential type from
    credential-types invalidates the bindings of that type (update every binding first).
    The bindings stay listed; their credentials stop working."""
    if types is None:
        return
    for b in app.state["bindings"].values():
        if b["service_instance_id"] != inst["id"]:
            continue
        kind = ((b.get("_credentials") or {}).get("uaa") or {}).get("credential-type")
        if kind and kind not in types:
            revoke_binding(app, b["id"])


def _calm_scopes(authorities):
    scopes = ["%s.%s" % (CALM_MASTER, s) for s in CALM_READ_SCOPES]
    for a in authorities or []:
        if a.startswith("$XSMASTERAPPNAME."):
            s = CALM_MASTER + "." + a[len("$XSMASTERAPPNAME."):]
            if s not in scopes:
                scopes.append(s)
    return scopes + ["uaa.resource"]


def _uaa_common(app, inst):
    sub = app.state["subaccount"]
    sd = sub["subdomain"]
    full = "%s!b%d|%s" % (inst["_xsappname"], inst["_bnum"], CALM_MASTER)
    return {
        "clientid": "sb-" + full,
        "url": app.url("%s.authentication.localhost" % sd),
        "uaadomain": "authentication.localhost",
        "identityzone": sd,
        "identityzoneid": sub["id"],
        "tenantid": sub["id"],
        "subaccountid": sub["id"],
        "zoneid": sub["id"],
        "tenantmode": "dedicated",
        "sburl": app.url("internal-xsuaa.authentication.localhost"),
        "apiurl": app.url("api.authentication.localhost"),
        "xsappname": full,
        "serviceInstanceId": inst["id"],
        "verificationkey": app.state["_verificationkey"],
    }


def _credential_kind(app, inst, params):
    """'x509' | 'binding-secret' | 'instance-secret' for a new binding, or broker error.
    Since 19 January 2026 XSUAA gives every new binding a binding secret or x509 and
    `credential-types` defaults to ["binding-secret"] (SAP BTP security docs, "Service
    Instance Secrets"): an instance without credential-types no longer hands out instance
    secrets; old instance-secret keys (preset variant `instance-secret`) keep working."""
    p = params or {}
    if isinstance(p.get("xsuaa"), dict):
        p = p["xsuaa"]
    elif "x509-wrapped-only" in getattr(app.config, "variants", ()):
        p = {}      # a broker that reads only {"xsuaa": {...}} ignores the plain shape
    want = p.get("credential-type")
    cts = inst.get("_cred_types")
    if want is not None:
        if want not in ("x509", "binding-secret", "instance-secret"):
            _broker_error(app, "unsupported credential-type \"%s\"" % want)
        allowed = cts if cts is not None else ["binding-secret"]
        if want not in allowed:
            _broker_error(app, "credential-type \"%s\" is not allowed by the instance "
                               "(oauth2-configuration.credential-types %s)" % (want, json.dumps(allowed)))
        return want, p
    if cts is None:
        return "binding-secret", p
    return cts[0], p


def _x509_days(app, p):
    """The validity of a certificate XSUAA generates: SAP's page "Parameters for X.509
    Certificates Managed by SAP Authorization and Trust Management Service" documents
    validity-type DAYS only (the default) and 1 to 30 DAYS (default 7); anything else is
    a broker error before the binding exists."""
    x = p.get("x509") if p.get("x509") is not None else {}
    if not isinstance(x, dict):
        _broker_error(app, "x509 must be a JSON object")
    vt = x.get("validity-type", "DAYS")
    v = x.get("validity", 7)
    if vt != "DAYS":
        _broker_error(app, "Service broker xsuaa failed: unsupported x509 validity-type %s "
                           "(supported: DAYS)" % json.dumps(vt))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not 1 <= v <= 30:
        _broker_error(app, "Service broker xsuaa failed: x509 validity %s DAYS is out of range "
                           "(1 to 30 DAYS)" % json.dumps(v))
    return int(v)


def _make_calm_credentials(app, inst, binding, params, kind=None):
    if kind is None:
        kind, p = _credential_kind(app, inst, params)
    else:
        p = params or {}
    uaa = _uaa_common(app, inst)
    uaa["credential-type"] = kind
    cred = {"client_id": uaa["clientid"], "binding_id": binding["id"],
            "scopes": _calm_scopes(inst.get("_authorities")), "zid": app.state["subaccount"]["id"],
            "seq": binding["_seq"], "secret": None, "cert_cn": None, "cert_sha256": None}
    if kind == "x509":
        days = _x509_days(app, p)
        cn = app.uuid()
        chain, key, der = app.ca.issue_client(cn, days)
        app.record_secret(key)
        import hashlib
        uaa["certificate"] = chain
        uaa["key"] = key
        uaa["certurl"] = app.cert_url("%s.authentication.cert.localhost"
                                      % app.state["subaccount"]["subdomain"])
        cred["cert_cn"] = cn
        cred["cert_sha256"] = hashlib.sha256(der).hexdigest()
    elif kind == "binding-secret":
        uaa["clientsecret"] = binding["id"] + "$" + app.new_secret()
        cred["secret"] = uaa["clientsecret"]
    else:
        if not inst.get("_instance_secret"):
            inst["_instance_secret"] = app.new_secret()
        uaa["clientsecret"] = inst["_instance_secret"]
        cred["secret"] = uaa["clientsecret"]
    sd = app.state["subaccount"]["subdomain"]
    creds = {"endpoints": {"Api": app.url("%s.eu10.alm.localhost" % sd) + "/api"}, "uaa": uaa}
    return creds, cred


def _make_generic_credentials(app, inst, binding):
    sd = app.state["subaccount"]["subdomain"]
    cid = "sb-%s!b%d|generic!b1" % (inst["id"], inst["_bnum"])
    sec = binding["id"] + "$" + app.new_secret()
    creds = {"clientid": cid, "clientsecret": sec,
             "url": app.url("%s.authentication.localhost" % sd), "credential-type": "binding-secret"}
    cred = {"client_id": cid, "binding_id": binding["id"], "scopes": ["uaa.resource"],
            "zid": app.state["subaccount"]["id"], "seq": binding["_seq"], "secret": sec,
            "cert_cn": None, "cert_sha256": None}
    return creds, cred


def lookup_credentials(app, client_id):
    """Binding credentials for a client id, newest first (used by the token endpoint)."""
    return sorted([c for c in app.state["_credentials"] if c["client_id"] == client_id],
                  key=lambda c: -c["seq"])


def revoke_binding(app, bid):
    b = app.state["bindings"].get(bid)
    if b is None:
        return False
    app.state["_credentials"] = [c for c in app.state["_credentials"] if c["binding_id"] != bid]
    return True


# ----------------------------------------------------------------------------------------
# handlers: catalog


def list_offerings(app, req, m):
    _auth(app, req, "service_offering")
    with app.lock:
        items = [o for o in app.state["offerings"] if _visible(app, o)]
        return _list(app, req, items, OFFERING_FIELDS, lambda o: _pick(o, OFFERING_FIELDS))


def get_offering(app, req, m):
    _auth(app, req, "service_offering")
    with app.lock:
        for o in app.state["offerings"]:
            if o["id"] == m.group(1) and _visible(app, o):
                return app.json(200, _pick(o, OFFERING_FIELDS))
    err(app, 404, "NotFound", "could not find such service_offering")


def list_plans(app, req, m):
    _auth(app, req, "service_plan")
    with app.lock:
        items = [p for p in app.state["plans"] if _visible(app, p)]
        return _list(app, req, items, PLAN_FIELDS, lambda p: _pick(p, PLAN_FIELDS))


def get_plan(app, req, m):
    _auth(app, req, "service_plan")
    with app.lock:
        p = _plan(app, m.group(1))
        if p and _visible(app, p):
            return app.json(200, _pick(p, PLAN_FIELDS))
    err(app, 404, "NotFound", "could not find such service_plan")


# ----------------------------------------------------------------------------------------
# handlers: instances


def list_instances(app, req, m):
    _auth(app, req, "service_instance")
    attach = req.q("attach_last_operations") == "true"
    with app.lock:
        return _list(app, req, list(app.state["instances"].values()), INSTANCE_FIELDS,
                     lambda i: public_instance(app, i, with_op=attach))


def _get_instance(app, iid, sm_only=False):
    inst = app.state["instances"].get(iid)
    if inst is None:
        err(app, 404, "NotFound", "could not find such service_instance")
    if sm_only and inst["platform_id"] != "service-manager":
        raise app.HTTPError(404, dict(NOT_ACCESSIBLE))
    return inst


def get_instance(app, req, m):
    _auth(app, req, "service_instance")
    with app.lock:
        inst = _get_instance(app, m.group(1))
        op = _in_progress(app, inst)
        if op:
            _advance(app, op)
        return app.json(200, public_instance(app, inst))


def get_instance_params(app, req, m):
    _auth(app, req, "service_instance")
    if req.q("async") == "true":
        err(app, 400, "InvalidRequest", "async is not supported for parameters")
    with app.lock:
        _get_instance(app, m.group(1))
    err(app, 400, "BadRequest", "this service does not support fetching service instance parameters")


def new_instance_record(app, name, plan_id, created, params=None, labels=None,
                        platform_id="service-manager", context_extra=None, instance_id=None):
    sub = app.state["subaccount"]
    iid = instance_id or app.uuid()
    labels = dict(labels or {})
    labels["subaccount_id"] = [sub["id"]]
    ctx = {"subaccount_id": sub["id"], "instance_name": name, "env_type": "sapcp",
           "platform": "sapcp" if platform_id == "service-manager" else "cloudfoundry",
           "origin": "sapcp" if platform_id == "service-manager" else "cloudfoundry",
           "global_account_id": sub.get("global_account_id", "ga-fake"),
           "subdomain": sub["subdomain"], "zone_id": sub["id"], "crm_customer_id": ""}
    ctx.update(context_extra or {})
    xs = _xs_security(params)
    inst = {"id": iid, "name": name, "service_plan_id": plan_id, "platform_id": platform_id,
            "context": ctx, "labels": labels, "ready": False, "usable": True, "shared": False,
            "maintenance_info": {}, "created_at": ts(created), "updated_at": ts(created),
            "_seq": _next_seq(app), "_last_op": None, "_params": params,
            "_xsappname": (xs or {}).get("xsappname") or iid,
            "_bnum": random.randint(1000, 99999), "_authorities": [], "_cred_types": None}
    if plan_id == CALM_PLAN_ID:
        _apply_calm_params(app, inst, params)
    return inst


def create_instance(app, req, m):
    _auth(app, req, "service_instance")
    body = _check_json(app, req)
    with app.lock:
        if "id" in body:
            err(app, 400, "BadRequest", "providing specific resource id is forbidden")
        if body.get("platform_id") not in (None, "service-manager"):
            err(app, 400, "InvalidTransfer", "platform_id must be service-manager")
        name = body.get("name")
        if not isinstance(name, str) or not name:
            err(app, 400, "BadRequest", "missing or invalid field: name")
        pid = body.get("service_plan_id")
        if pid is not None and (body.get("service_offering_name") or body.get("service_plan_name")):
            err(app, 400, "BadRequest", "service_plan_id and service_offering_name/service_plan_name "
                                        "are mutually exclusive")
        if pid is None:
            on, pn = body.get("service_offering_name"), body.get("service_plan_name")
            if not on or not pn:
                err(app, 400, "BadRequest", "missing field: service_plan_id")
            offs = [o for o in app.state["offerings"] if o["name"] == on and _visible(app, o)]
            plans = [p for p in app.state["plans"] if offs and p["name"] == pn and
                     p["service_offering_id"] == offs[0]["id"]]
            if not plans:
                err(app, 400, "BadRequest", "could not find service plan %s of offering %s" % (pn, on))
            pid = plans[0]["id"]
        plan = _plan(app, pid)
        if plan is None or not _visible(app, plan):
            err(app, 404, "NotFound", "could not find such service_plan")
        labels = body.get("labels") or {}
        if not isinstance(labels, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) and x for x in v)
                for v in labels.values()):
            err(app, 400, "BadRequest", "labels must be an object of arrays of non-empty strings")
        params = body.get("parameters")
        if pid == CALM_PLAN_ID:
            _validate_calm_params(app, params)
        for i in app.state["instances"].values():
            if i["name"] == name and i["platform_id"] == "service-manager":
                err(app, 409, "Conflict", "found conflicting /v1/service_instances")
        inst = new_instance_record(app, name, pid, None, params, labels)
        app.state["instances"][inst["id"]] = inst
        fate, text = _op_fate(app, req)
        op = _new_op(app, req, "create", "/v1/service_instances", inst["id"], fate, text)
        inst["_last_op"] = op["id"]

        def ok():
            inst["ready"] = True
            inst["updated_at"] = ts()

        def failed():
            inst["ready"] = False
            inst["updated_at"] = ts()
        op["_effects"], op["_on_fail"] = ok, failed
        resp = _respond_mutation(app, req, op, _async(app, req, "instance"), "service_instances",
                                 lambda: public_instance(app, inst), 201)
        if op["state"] == "failed":
            pass
        return resp


LABEL_KEY_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")


def _check_label_values(app, key, vals):
    """Labels Object (Peripli/specification api.md; reference service-manager-api.md §2.10):
    keys of at most 100 letters, digits, '.', '-', '_'; values non-empty, at most 255
    characters, no newline."""
    if not LABEL_KEY_RE.fullmatch(str(key)):
        err(app, 400, "BadRequest", "label key %s is invalid" % json.dumps(key))
    if not isinstance(vals, list) or not all(
            isinstance(v, str) and v and len(v) <= 255 and "\n" not in v for v in vals):
        err(app, 400, "BadRequest", "label %s: values must be non-empty strings of at most 255 "
                                    "characters without newlines" % key)


def _apply_label_ops(app, labels, ops):
    if not isinstance(ops, list):
        err(app, 400, "BadRequest", "labels in PATCH must be an array of label changes")
    out = {k: list(v) for k, v in labels.items()}
    seen = set()
    for ch in ops:
        if not isinstance(ch, dict) or ch.get("op") not in ("add", "remove", "add_values",
                                                            "remove_values"):
            err(app, 400, "BadRequest", "invalid label change %s" % json.dumps(ch))
        k = ch.get("key")
        if not k or k == "subaccount_id":
            err(app, 400, "BadRequest", "label %s cannot be changed" % k)
        # there is no replace, and a remove and an add of one key in one request is not
        # supported (the SAP BTP service operator sends two PATCHes: RenameBinding)
        if k in seen:
            err(app, 400, "BadRequest", "label %s is changed twice in one request: remove it, "
                                        "then add it in a second request" % k)
        seen.add(k)
        vals = ch.get("values") or []
        _check_label_values(app, k, vals)
        if ch["op"].startswith("add"):
            cur = out.setdefault(k, [])
            cur.extend(v for v in vals if v not in cur)
        else:
            if not vals:
                out.pop(k, None)
            else:
                out[k] = [v for v in out.get(k, []) if v not in vals]
                if not out[k]:
                    out.pop(k)
    return out


def patch_instance(app, req, m):
    _auth(app, req, "service_instance")
    body = _check_json(app, req)
    with app.lock:
        inst = _get_instance(app, m.group(1), sm_only=True)
        if "id" in body and body["id"] != inst["id"]:
            err(app, 400, "BadRequest", "id cannot be changed")
        if _in_progress(app, inst):
            err(app, 422, "ConcurrentOperationInProgress",
                "Another concurrent operation in progress for this resource")
        name = body.get("name", inst["name"])
        if name != inst["name"]:
            for i in app.state["instances"].values():
                if i["name"] == name and i["platform_id"] == "service-manager" and i is not inst:
                    err(app, 409, "Conflict", "found conflicting /v1/service_instances")
        pid = body.get("service_plan_id", inst["service_plan_id"])
        if pid != inst["service_plan_id"]:
            p = _plan(app, pid)
            if p is None or not _visible(app, p):
                err(app, 404, "NotFound", "could not find such service_plan")
            err(app, 400, "BadRequest", "plan change is not supported (plan_updateable false)")
        labels = inst["labels"]
        if "labels" in body:
            labels = _apply_label_ops(app, inst["labels"], body["labels"])
        params = body.get("parameters")
        if inst["service_plan_id"] == CALM_PLAN_ID:
            _validate_calm_params(app, params, inst)
        rules = []
        fate, text = _op_fate(app, req, rules)
        op = _new_op(app, req, "update", "/v1/service_instances", inst["id"], fate, text)
        inst["_last_op"] = op["id"]

        def ok():
            inst["usable"] = True
            inst["name"] = name
            inst["context"]["instance_name"] = name
            inst["labels"] = labels
            if params is not None:
                inst["_params"] = params
                if inst["service_plan_id"] == CALM_PLAN_ID:
                    _apply_calm_params(app, inst, params)
                    _revoke_removed_types(app, inst, _cred_types(_xs_security(params)))
            inst["updated_at"] = ts()
        op["_effects"] = ok
        if rules[0].get("instance_usable") is False:
            # OSB instance_usable: false -- the broker says the failed update left the
            # instance unusable; Service Manager shows it as usable: false
            op["_on_fail"] = lambda: inst.update({"usable": False, "updated_at": ts()})
        return _respond_mutation(app, req, op, _async(app, req, "instance"), "service_instances",
                                 lambda: public_instance(app, inst), 200)


def delete_instance(app, req, m):
    _auth(app, req, "service_instance")
    with app.lock:
        inst = _get_instance(app, m.group(1), sm_only=True)
        running = _in_progress(app, inst)
        if running and running["type"] == "delete":
            err(app, 422, "ConcurrentOperationInProgress",
                "Deletion is currently in progress for this resource")
        if any(b["service_instance_id"] == inst["id"] for b in app.state["bindings"].values()):
            err(app, 409, "ExistingReferenceEntity",
                "Error deleting entity: could not delete entity because it is referenced by "
                "another entity (service bindings exist)")
        fate, text = _op_fate(app, req)
        op = _new_op(app, req, "delete", "/v1/service_instances", inst["id"], fate, text)
        inst["_last_op"] = op["id"]

        def ok():
            app.state["instances"].pop(inst["id"], None)
        op["_effects"] = ok
        return _respond_mutation(app, req, op, _async(app, req, "instance"), "service_instances",
                                 lambda: {}, 200)


def get_op(app, req, m, rtype):
    _auth(app, req, "service_instance" if rtype == "service_instances" else "service_binding")
    with app.lock:
        op = app.state["operations"].get(m.group(2))
        if op is None or op["resource_id"] != m.group(1) or \
                op["resource_type"] != "/v1/" + rtype:
            err(app, 404, "NotFound", "could not find such operation")
        _advance(app, op)
        return app.json(200, public_op(app, op))


def list_ops(app, req, m):
    _auth(app, req, "service_instance")
    with app.lock:
        return _list(app, req, list(app.state["operations"].values()), OP_FIELDS,
                     lambda o: public_op(app, o))


def get_op_plain(app, req, m):
    _auth(app, req, "service_instance")
    with app.lock:
        op = app.state["operations"].get(m.group(1))
        if op is None:
            err(app, 404, "NotFound", "could not find such operation")
        _advance(app, op)
        return app.json(200, public_op(app, op))


# ----------------------------------------------------------------------------------------
# handlers: bindings


def list_bindings(app, req, m):
    _auth(app, req, "service_binding")
    attach = req.q("attach_last_operations") == "true"
    with app.lock:
        return _list(app, req, list(app.state["bindings"].values()), BINDING_FIELDS,
                     lambda b: public_binding(app, b, with_op=attach))


def get_binding(app, req, m):
    _auth(app, req, "service_binding")
    with app.lock:
        b = app.state["bindings"].get(m.group(1))
        if b is None:
            err(app, 404, "NotFound", "could not find such service_binding")
        op = _in_progress(app, b)
        if op:
            _advance(app, op)
        return app.json(200, public_binding(app, b))


def new_binding_record(app, inst, name, created, params=None, labels=None, kind=None):
    sub = app.state["subaccount"]
    labels = dict(labels or {})
    labels["subaccount_id"] = [sub["id"]]
    b = {"id": app.uuid(), "name": name, "service_instance_id": inst["id"],
         "service_instance_name": inst["name"],
         "context": {"subaccount_id": sub["id"], "instance_name": inst["name"],
                     "env_type": "sapcp", "platform": "sapcp"},
         "bind_resource": {}, "labels": labels, "ready": False,
         "created_at": ts(created), "updated_at": ts(created), "_seq": _next_seq(app),
         "_last_op": None, "_params": params}
    if inst["service_plan_id"] == CALM_PLAN_ID:
        creds, cred = _make_calm_credentials(app, inst, b, params, kind)
    else:
        creds, cred = _make_generic_credentials(app, inst, b)
    b["_credentials"] = creds
    b["_cred"] = cred
    return b


def _activate_binding(app, b, when=None):
    b["ready"] = True
    b["updated_at"] = ts(when)
    app.state["_credentials"].append(b["_cred"])


def create_binding(app, req, m):
    _auth(app, req, "service_binding")
    body = _check_json(app, req)
    with app.lock:
        for f in ("id", "credentials"):
            if f in body:
                err(app, 400, "BadRequest", "field %s is not allowed in the request" % f)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            err(app, 400, "BadRequest", "missing or invalid field: name")
        iid = body.get("service_instance_id")
        if not isinstance(iid, str) or not iid:
            err(app, 400, "BadRequest", "missing field: service_instance_id")
        inst = app.state["instances"].get(iid)
        if inst is None or inst["platform_id"] != "service-manager":
            raise app.HTTPError(404, dict(NOT_ACCESSIBLE))
        if _in_progress(app, inst):
            err(app, 422, "ConcurrentOperationInProgress",
                "Another concurrent operation in progress for this resource")
        if not inst["ready"]:
            err(app, 422, "UnprocessableEntity", "service instance %s is not ready" % iid)
        if inst.get("usable") is False:
            err(app, 422, "UnprocessableEntity", "service instance %s is not usable" % iid)
        for b in app.state["bindings"].values():
            if b["service_instance_id"] == iid and b["name"] == name:
                err(app, 409, "Conflict", "binding with same name exists for instance with id %s" % iid)
        labels = body.get("labels") or {}
        if not isinstance(labels, dict):
            err(app, 400, "BadRequest", "labels must be an object")
        params = body.get("parameters")
        if params is not None and not isinstance(params, dict):
            err(app, 400, "BadRequest", "parameters must be an object")
        b = new_binding_record(app, inst, name, None, params, labels)
        app.state["bindings"][b["id"]] = b
        fate, text = _op_fate(app, req)
        op = _new_op(app, req, "create", "/v1/service_bindings", b["id"], fate, text)
        b["_last_op"] = op["id"]

        def failed():
            b["ready"] = False
        op["_effects"] = lambda: _activate_binding(app, b)
        op["_on_fail"] = failed
        resp = _respond_mutation(app, req, op, _async(app, req, "binding"), "service_bindings",
                                 lambda: public_binding(app, b), 201)
        return resp


def patch_binding(app, req, m):
    _auth(app, req, "service_binding")
    body = _check_json(app, req)
    with app.lock:
        b = app.state["bindings"].get(m.group(1))
        if b is None:
            err(app, 404, "NotFound", "could not find such service_binding")
        if _in_progress(app, b):
            err(app, 422, "ConcurrentOperationInProgress",
                "Another concurrent operation in progress for this resource")
        for f in body:
            if f not in ("name", "labels"):
                err(app, 400, "BadRequest", "only name and labels can be changed on a binding")
        if "name" in body and body["name"] != b["name"]:
            for o in app.state["bindings"].values():
                if o["service_instance_id"] == b["service_instance_id"] and o["name"] == body["name"]:
                    err(app, 409, "Conflict", "binding with same name exists for instance with id %s"
                        % b["service_instance_id"])
            b["name"] = body["name"]
        if "labels" in body:
            b["labels"] = _apply_label_ops(app, b["labels"], body["labels"])
        b["updated_at"] = ts()
        return app.json(200, public_binding(app, b))


def delete_binding(app, req, m):
    _auth(app, req, "service_binding")
    with app.lock:
        b = app.state["bindings"].get(m.group(1))
        if b is None:
            err(app, 404, "NotFound", "could not find such service_binding")
        running = _in_progress(app, b)
        if running and running["type"] == "delete":
            err(app, 422, "ConcurrentOperationInProgress",
                "Deletion is currently in progress for this resource")
        fate, text = _op_fate(app, req)
        op = _new_op(app, req, "delete", "/v1/service_bindings", b["id"], fate, text)
        b["_last_op"] = op["id"]

        def ok():
            revoke_binding(app, b["id"])
            app.state["bindings"].pop(b["id"], None)
        op["_effects"] = ok
        return _respond_mutation(app, req, op, _async(app, req, "binding"), "service_bindings",
                                 lambda: {}, 200)


def get_binding_params(app, req, m):
    _auth(app, req, "service_binding")
    with app.lock:
        if m.group(1) not in app.state["bindings"]:
            err(app, 404, "NotFound", "could not find such service_binding")
    err(app, 400, "BadRequest", "this service does not support fetching service binding parameters")


def info(app, req, m):
    sd = app.state["subaccount"]["subdomain"]
    return app.json(200, {"token_issuer_url": app.url("%s.authentication.localhost" % sd),
                          "token_basic_auth": False,
                          "service_manager_tenant_id": app.state["subaccount"]["id"]})


# ----------------------------------------------------------------------------------------
# registration, presets, files


def _global_account_id(app):
    """Every tenant is a subaccount of one global account (global_account.py)."""
    if getattr(app, "_global_account_id", None) is None:
        app._global_account_id = app.uuid()
    return app._global_account_id


def init_state(app):
    """The SM state of the current tenant (before its preset)."""
    offs, plans = _catalog(app)
    preset = getattr(app, "preset", "empty")
    created = PRESET_DATES.get(preset, PRESET_DATES["empty"])
    subdomain = app.tenant.subdomain or "calm-demo-%s" % random.randint(1000, 9999)
    app.state.update({
        "offerings": offs, "plans": plans, "instances": {}, "bindings": {}, "operations": {},
        "_credentials": [], "entitled": False,
        "subaccount": {"id": app.uuid(), "subdomain": subdomain,
                       "created": created, "global_account_id": _global_account_id(app),
                       "display_name": "Cloud ALM (%s)" % preset, "region": "eu10"},
    })
    app.state["_verificationkey"] = app.ca.public_key_pem().strip()


def register(app):
    init_state(app)
    app.lookup_credentials = lambda cid: lookup_credentials(app, cid)

    def r(method, rx, fn, *extra):
        app.route(method, rx, lambda req, m: fn(app, req, m, *extra))
    g = r"([0-9A-Za-z\-]+)"
    r("GET", r"/v1/info", info)
    r("GET", r"/v1/service_offerings", list_offerings)
    r("GET", r"/v1/service_offerings/" + g, get_offering)
    r("GET", r"/v1/service_plans", list_plans)
    r("GET", r"/v1/service_plans/" + g, get_plan)
    r("GET", r"/v1/service_instances", list_instances)
    r("POST", r"/v1/service_instances", create_instance)
    r("GET", r"/v1/service_instances/" + g, get_instance)
    r("PATCH", r"/v1/service_instances/" + g, patch_instance)
    r("DELETE", r"/v1/service_instances/" + g, delete_instance)
    r("GET", r"/v1/service_instances/%s/parameters" % g, get_instance_params)
    r("GET", r"/v1/service_instances/%s/operations/%s" % (g, g), get_op, "service_instances")
    r("GET", r"/v1/service_bindings", list_bindings)
    r("POST", r"/v1/service_bindings", create_binding)
    r("GET", r"/v1/service_bindings/" + g, get_binding)
    r("PATCH", r"/v1/service_bindings/" + g, patch_binding)
    r("DELETE", r"/v1/service_bindings/" + g, delete_binding)
    r("GET", r"/v1/service_bindings/%s/parameters" % g, get_binding_params)
    r("GET", r"/v1/service_bindings/%s/operations/%s" % (g, g), get_op, "service_bindings")
    r("GET", r"/v1/operations", list_ops)
    r("GET", r"/v1/operations/" + g, get_op_plain)


def _done_op(app, otype, rtype, rid, created):
    t = ts(created)
    op = {"id": app.uuid(), "type": otype, "state": "succeeded", "description": "operation succeeded",
          "resource_id": rid, "resource_type": rtype, "platform_id": "service-manager",
          "correlation_id": app.uuid(), "reschedule": False,
          "deletion_scheduled": "0001-01-01T00:00:00Z", "ready": True, "labels": {},
          "created_at": t, "updated_at": t, "_polls": 0, "_fate": "succeed", "_fail_text": None,
          "_seq": _next_seq(app), "_effects": None}
    app.state["operations"][op["id"]] = op
    return op["id"]


def add_instance(app, name, plan_id, created, params=None, labels=None, authorities=None,
                 platform_id="service-manager", context_extra=None, cred_types=None):
    """A ready instance in the preset state (bypasses the API)."""
    inst = new_instance_record(app, name, plan_id, created, params, labels, platform_id,
                               context_extra)
    if authorities is not None:
        inst["_authorities"] = list(authorities)
    if cred_types is not None:
        inst["_cred_types"] = list(cred_types)
    inst["ready"] = True
    inst["_last_op"] = _done_op(app, "create", "/v1/service_instances", inst["id"], created)
    app.state["instances"][inst["id"]] = inst
    return inst


def add_binding(app, inst, name, created, params=None, labels=None, kind=None):
    """kind forces the credential type (a key made before the broker's default changed)."""
    b = new_binding_record(app, inst, name, created, params, labels, kind)
    b["_last_op"] = _done_op(app, "create", "/v1/service_bindings", b["id"], created)
    app.state["bindings"][b["id"]] = b
    _activate_binding(app, b, created)
    return b


def apply_preset(app, preset):
    sub = app.state["subaccount"]
    created = PRESET_DATES[preset]
    sub["created"] = created
    app.state["entitled"] = preset in ("after-2023-10-16", "mid-2023", "cf-legacy")

    # The SM instance behind sm-key.json (it is listed like any other instance).
    sm_inst = add_instance(app, "calmbind-sm", "bbbbbbbb-0000-4000-8000-000000000001", created)
    sm_xsapp = "%s!b1234|%s" % (sm_inst["id"], SM_MASTER)
    sm_client = "sb-" + sm_xsapp
    sm_bind = add_binding(app, sm_inst, "calmbind-sm-key", created)
    revoke_binding(app, sm_bind["id"])          # its credentials are the SM client below
    sm_secret = sm_bind["id"] + "$" + app.new_secret()
    cn = app.uuid()
    # Multi-tenant mode issues X.509 SM keys only with --tenant-x509 (an RSA key each).
    x509 = not app.tenants.multi or app.config.tenant_x509
    chain, key, der = app.ca.issue_client(cn, 30, "service-manager") if x509 else (None, None, b"")
    app.record_secret(key)
    import hashlib
    app.clients[sm_client] = {"secret": sm_secret, "cert_cn": cn if x509 else None,
                              "cert_sha256": hashlib.sha256(der).hexdigest() if x509 else None,
                              "scopes": ["%s.%s" % (sm_xsapp, s) for s in SM_SCOPE_NAMES],
                              "zid": sub["id"]}
    sm_url = app.url("service-manager.localhost")
    app.state["_sm_key"] = {"clientid": sm_client, "clientsecret": sm_secret,
                            "url": app.url("%s.authentication.localhost" % sub["subdomain"]),
                            "sm_url": sm_url, "xsappname": sm_xsapp}
    app.state["_sm_key_x509"] = None if not x509 else {
        "clientid": sm_client, "certificate": chain, "key": key,
        "certurl": app.cert_url("%s.authentication.cert.localhost" % sub["subdomain"]),
        "sm_url": sm_url, "xsappname": sm_xsapp, "credential-type": "x509"}
    sm_bind["_credentials"] = dict(app.state["_sm_key"])

    # Noise: an unrelated xsuaa instance with a key, so clients must filter.
    other = add_instance(app, "my-app-xsuaa", "bbbbbbbb-0000-4000-8000-000000000004", created)
    add_binding(app, other, "my-app-key", created)

    calm_auth = ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
                 "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]
    variants = getattr(app.config, "variants", frozenset())
    if preset in ("after-2023-10-16", "mid-2023"):
        inst = add_instance(app, "SAPCloudALMAPIs-auto", CALM_PLAN_ID, created,
                            authorities=calm_auth if preset == "after-2023-10-16" else [])
        if "generated-xsappname-name" in variants:
            inst["_xsappname"] = "calm-api-" + inst["id"][:8]
        # an old key made before 19 January 2026 may still be an instance-secret key
        add_binding(app, inst, "calm-api-key-auto", created,
                    kind="instance-secret" if "instance-secret" in variants else None)
        if "abap-x509-key" in variants:
            # an admin allowed x509 and made an mTLS key for an ABAP system
            inst["_cred_types"] = ["binding-secret", "x509"]
            add_binding(app, inst, "abap-mtls-key", created + datetime.timedelta(days=3),
                        params={"credential-type": "x509"})
    if "hand-deployment" in variants and preset != "before-2023-06-12":
        later = created + datetime.timedelta(days=40)
        params = {"xs-security": {"xsappname": "calm-deploy-by-hand",
                                  "authorities": calm_auth + ["$XSMASTERAPPNAME.calm-api.analytics.read"],
                                  "oauth2-configuration": {"credential-types": ["binding-secret"]}}}
        hand = add_instance(app, "calm.deploy.by-hand", CALM_PLAN_ID, later, params=params)
        add_binding(app, hand, "transport-key", later + datetime.timedelta(minutes=5))
    if "kyma-owned" in variants:
        add_instance(app, "calm-api-kyma", CALM_PLAN_ID, created, platform_id="kubernetes-" + app.uuid()[:8],
                     context_extra={"env_type": "kubernetes", "platform": "kubernetes",
                                    "origin": "kubernetes", "namespace": "calm"})
    elif preset == "cf-legacy":
        org, space = app.uuid(), app.uuid()
        pid = "cf-" + app.uuid()
        app.state["cf_platform_id"] = pid
        inst = add_instance(app, "cloudalm-api-service", CALM_PLAN_ID, created,
                            platform_id=pid,
                            context_extra={"organization_guid": org, "space_guid": space,
                                           "organization_name": "calm-org",
                                           "space_name": "dev", "env_type": "cloudfoundry",
                                           "platform": "cloudfoundry"})
        app.state["cf_legacy_instance_id"] = inst["id"]


def write_files(app, state_dir):
    from fakebtp import write_json, write_text
    write_json(state_dir + "/sm-key.json", app.state["_sm_key"])
    if app.state["_sm_key_x509"] is not None:
        write_json(state_dir + "/sm-key-x509.json", app.state["_sm_key_x509"])
    write_text(state_dir + "/subaccount", app.state["subaccount"]["id"] + "\n")
