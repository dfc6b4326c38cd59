"""fake_cis: SAP Cloud Management service (cis) plug-in for fakebtp.

Serves the Accounts, Entitlements, SaaS Provisioning (and a minimal Provisioning) APIs that
`cis` keys point at, with the scopes of SAP's service plans (BTPDOC "SAP Cloud Management
Service - Service Plans"): a `central` key reads subaccounts and assigns entitlements, only a
`local` key of the subaccount reads its SaaS subscriptions and environments.  Shapes follow cf-uaa-accounts-api.md section C and the
E.12-E.19 examples; see README.md here for what is simplified.

Seam: PLUGINS.md (register / apply_preset / write_files).
"""
import datetime
import json
import os

import sys

import global_account

# Hosts the cis key's endpoints point at (host-independent routing, but a request that
# arrives for *another* fake host is answered like a CF router answers an unknown route).
ACCOUNTS_HOST = "accounts-service.localhost"
ENTITLEMENTS_HOST = "entitlements-service.localhost"
SAAS_HOST = "saas-manager.localhost"
PROVISIONING_HOST = "provisioning-service.localhost"
EVENTS_HOST = "events-service.localhost"

CIS_XSAPPNAME = "cis-central!b14"
CIS_LOCAL_XSAPPNAME = "cis-local!b4"
# Scopes per plan (SAP's plan table; the entitlement read scope as real central tokens show
# it).  The fake checks them by suffix; the prefix is the plan's xsappname, as in real XSUAA
# tokens.
PLAN_SCOPES = {
    "central": (
        "global-account.read", "global-account.update",
        "global-account.subaccount.read", "global-account.subaccount.create",
        "global-account.subaccount.update", "global-account.subaccount.delete",
        "global-account.account-directory.read", "global-account.entitlement.read",
        "global-account.entitlement.subaccount.update", "global-account.region.read",
        "directory.entitlement.read", "directory.entitlement.update", "job.read",
    ),
    "local": (
        "subaccount.entitlement.read", "subaccount.environment.read",
        "subaccount.environment.create", "subaccount.environment.delete",
        "subaccount.application.subscription.read", "subaccount.application.subscription.update",
        "job.read",
    ),
}
CIS_SCOPES = PLAN_SCOPES["central"]

CALM_SERVICE = "SAPCloudALMAPIs"
CALM_PLAN = "standard"

# Preset -> (subaccount created, Cloud ALM subscription created), UTC.
PRESET_DATES = {
    "after-2023-10-16": datetime.datetime(2024, 3, 5, 9, 15, tzinfo=datetime.timezone.utc),
    "mid-2023": datetime.datetime(2023, 8, 21, 9, 15, tzinfo=datetime.timezone.utc),
    "before-2023-06-12": datetime.datetime(2022, 11, 14, 9, 15, tzinfo=datetime.timezone.utc),
    "cf-legacy": datetime.datetime(2022, 5, 10, 9, 15, tzinfo=datetime.timezone.utc),
    "empty": datetime.datetime(2025, 1, 1, 9, 15, tzinfo=datetime.timezone.utc),
}
# The Cloud ALM subscription is created a few minutes after the subaccount (same day).
SUBSCRIPTION_DELAY = datetime.timedelta(minutes=25)

UTC = datetime.timezone.utc
FAKE_PEM = "-----BEGIN PUBLIC KEY-----\nFAKEBTP-NOT-A-KEY\n-----END PUBLIC KEY-----"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# ---------------------------------------------------------------------------------------
# helpers


def epoch_ms(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def saas_date(dt, fmt):
    """SaaS createdDate: "text" = 'Mar 5, 2024, 9:40:00 AM' (the btp CLI / TF layout),
    "text-nnbsp" = same with U+202F before AM/PM (newer CLDR), "epoch_ms" = number."""
    if fmt == "epoch_ms":
        return epoch_ms(dt)
    dt = dt.astimezone(UTC)
    hour = dt.hour % 12 or 12
    ampm = "AM" if dt.hour < 12 else "PM"
    sep = "\u202f" if fmt == "text-nnbsp" else " "
    return "%s %d, %d, %d:%02d:%02d%s%s" % (MONTHS[dt.month - 1], dt.day, dt.year, hour,
                                           dt.minute, dt.second, sep, ampm)


def cis_error(app, status, code, message, req=None, details=None):
    """Raise the cis error body of C.7 / E.19."""
    err = {"code": code, "message": message,
           "target": req.path if req is not None else "",
           "correlationID": app.uuid()}
    if details:
        err["details"] = details
    raise app.HTTPError(status, {"error": err}, {"x-correlationid": err["correlationID"]})


def check_host(app, req, expected):
    """A request for another fake *.localhost host is a wrong base URL in the client."""
    h = req.host
    if h.endswith(".localhost") and h != expected:
        raise app.HTTPError(404, "404 Not Found: Requested route ('%s') does not exist.\n" % h,
                            {"X-Cf-Routererror": "unknown_route"})


def auth(app, req, scope, m=None):
    """Bearer token of the cis client with scope '<xsappname>.<scope>'; then the rate limit
    of the route m matched (global_account.Limiter), counted per client."""
    try:
        claims = app.tokens.check(req, "." + scope)
    except app.HTTPError as e:
        if e.status == 403:
            cis_error(app, 403, 11003,
                      "Access denied: the token lacks the scope $XSAPPNAME.%s" % scope, req)
        raise
    if m is not None:
        app.cis_limiter.check(app, req, claims, m.re.pattern)
    return claims


def st(app):
    return app.state.setdefault("cis", {})


def subaccount(app):
    return app.state.get("subaccount") or {}


def sub_created(app):
    c = subaccount(app).get("created")
    if isinstance(c, datetime.datetime):
        return c if c.tzinfo else c.replace(tzinfo=UTC)
    return PRESET_DATES["after-2023-10-16"]


def ensure_state(app):
    """Fills app.state["cis"] defaults; idempotent. Call with app.lock held."""
    s = st(app)
    s.setdefault("global_account", {"guid": subaccount(app).get("global_account_id")
                                    or app.uuid(), "subdomain": "acme-ga",
                                    "displayName": "SAP Cloud ALM 0000000000 (fake)"})
    s.setdefault("plan_category", "SERVICE")     # QUOTA_CATEGORIES -> amount, others -> enable
    s.setdefault("assign_reads", 1)              # GET assignments reads answered PROCESSING
    s.setdefault("assign_fail", False)           # next assignment ends PROCESSING_FAILED
    s.setdefault("saas_date_format", "text")     # text | text-nnbsp | epoch_ms
    s.setdefault("assign_status", 202)           # PUT subaccountServicePlans: 202 | 204 | 200
    s.setdefault("empty_assignments_status", 200)  # GET assignments, Cloud ALM unassigned: 200 | 204
    s.setdefault("assignment", None)
    s.setdefault("subscription_created", sub_created(app) + SUBSCRIPTION_DELAY)
    return s


# ---------------------------------------------------------------------------------------
# Accounts


def subaccount_obj(app):
    sub = subaccount(app)
    s = ensure_state(app)
    ga = s["global_account"]["guid"]
    created = sub_created(app)
    return {
        "guid": sub.get("id"),
        "technicalName": sub.get("id"),
        "displayName": "SAP Cloud ALM",
        "description": "",
        "globalAccountGUID": ga,
        "parentGUID": ga,
        "parentFeatures": ["DEFAULT"],
        "subdomain": sub.get("subdomain"),
        "region": "eu10",
        "state": "OK",
        "stateMessage": "Subaccount created.",
        "betaEnabled": False,
        "usedForProduction": "UNSET",
        "createdBy": "provisioning@sap.example",
        "createdDate": epoch_ms(created),
        "modifiedDate": epoch_ms(created + datetime.timedelta(minutes=3)),
        "labels": {},
    }


def sub_obj_of(app):
    """A global account record -> its SubaccountResponseObject (a tenant's from its state)."""
    def of(rec):
        if rec["tenant"] is None:
            return global_account.subaccount_obj(app, rec)
        base = global_account.in_tenant(app, rec["tenant"], lambda: subaccount_obj(app))
        return global_account.subaccount_obj(app, rec, base)
    return of


def h_subaccount(app):
    def handler(req, m):
        check_host(app, req, ACCOUNTS_HOST)
        auth(app, req, "global-account.subaccount.read", m)
        with app.lock:
            rec = global_account.find(app, m.group(1))
            if rec is None:
                cis_error(app, 404, 20004,
                          "Subaccount %s not found in the global account" % m.group(1), req)
            return app.json(200, sub_obj_of(app)(rec))
    return handler


def h_subaccounts(app):
    def handler(req, m):
        check_host(app, req, ACCOUNTS_HOST)
        auth(app, req, "global-account.subaccount.read", m)
        want = req.q("directoryGUID")
        with app.lock:
            of = sub_obj_of(app)
            recs = global_account.get(app)["subaccounts"]
            return app.json(200, {"value": [of(r) for r in recs
                                            if want is None or r["parent"] == want]})
    return handler


def h_global_account(app):
    def handler(req, m):
        check_host(app, req, ACCOUNTS_HOST)
        auth(app, req, "global-account.read", m)
        expand = (req.q("expand") or "").lower() == "true"
        with app.lock:
            ga = global_account.get(app)
            created = ga["created"]
            body = {
                "guid": ga["guid"], "globalAccountGUID": ga["guid"],
                "displayName": ga["displayName"], "description": "",
                "subdomain": ga["subdomain"], "createdDate": epoch_ms(created),
                "modifiedDate": epoch_ms(created), "geoAccess": "STANDARD",
                "licenseType": "CUSTOMER", "commercialModel": "Subscription",
                "consumptionBased": False, "entityState": "OK", "contractStatus": "ACTIVE",
                "parentGUID": ga["guid"], "parentType": "ROOT"}
            if expand:
                body.update(global_account.tree(app, sub_obj_of(app)))
            return app.json(200, body)
    return handler


# ---------------------------------------------------------------------------------------
# Entitlements

# Global-account entitlements the fake knows (service -> plan -> category).  The Cloud ALM
# plan's category comes from state (plan_category) so tests can flip amount/enable.
OTHER_ENTITLEMENTS = [
    ("destination", "Destination Service", "lite", "ELASTIC_SERVICE"),
    ("cis", "Cloud Management Service", "central", "ELASTIC_SERVICE"),
]


def catalog(app):
    s = ensure_state(app)
    out = [(CALM_SERVICE, "SAP Cloud ALM API", CALM_PLAN, s["plan_category"])]
    return out + OTHER_ENTITLEMENTS


def tick_assignment(app):
    """Advances PROCESSING -> OK (or PROCESSING_FAILED) once the configured reads are used."""
    s = ensure_state(app)
    a = s["assignment"]
    if a is None or a["state"] != "PROCESSING":
        return
    if a["reads_left"] <= 0:
        now = datetime.datetime.now(UTC)
        a["modified"] = now
        if a.get("fail"):
            a["state"] = "PROCESSING_FAILED"
            a["stateMessage"] = "Assignment failed: fake broker rejected the entitlement"
        else:
            a["state"] = "OK"
            a["stateMessage"] = ""
            app.state["entitled"] = True


def current_assignment(app):
    """The Cloud ALM assignment row, synthesised from app.state["entitled"] if needed."""
    s = ensure_state(app)
    a = s["assignment"]
    if a is not None and a["state"] == "OK" and not app.state.get("entitled"):
        # Someone (e.g. PATCH /_fake/state) withdrew the entitlement.
        a = s["assignment"] = None
    if a is None and app.state.get("entitled"):
        created = sub_created(app)
        a = {"state": "OK", "stateMessage": "", "amount": 1, "created": created,
             "modified": created, "reads_left": 0}
        s["assignment"] = a
    return a


# Plan categories with a numeric quota: the Entitlements API's category enum (SERVICE:
# "use the 'amount' option instead of 'enable'"; QUOTA_BASED_APPLICATION: "have a numeric
# quota", as opposed to APPLICATION); ELASTIC_SERVICE, ELASTIC_LIMITED, APPLICATION take
# `enable`.
QUOTA_CATEGORIES = ("SERVICE", "QUOTA_BASED_APPLICATION")


def assignment_info(app, a, category):
    row = {"entityId": subaccount(app).get("id"), "entityType": "SUBACCOUNT",
           "entityState": a["state"], "stateMessage": a.get("stateMessage", ""),
           "autoAssigned": False, "autoAssign": False,
           "parentId": ensure_state(app)["global_account"]["guid"],
           "parentType": "GLOBAL_ACCOUNT",
           "createdDate": epoch_ms(a["created"]), "modifiedDate": epoch_ms(a["modified"])}
    if category in QUOTA_CATEGORIES:
        row["amount"] = a.get("amount", 1)
        row["requestedAmount"] = a.get("amount", 1)
    else:
        row["unlimitedAmountAssigned"] = False
        row["amount"] = 1
    return row


def tenant_assignments(app, svc, plan, assigned_svc, only_entitled, own=True):
    """The current tenant's answer: (entitled, assigned, its Cloud ALM row or None);
    own=False: the global account's entitlements only (an unrelated subaccount's view)."""
    if own:
        tick_assignment(app)
    a = current_assignment(app) if own else None
    entitled, assigned = {}, {}
    for name, disp, pname, cat in catalog(app):
        if svc and name != svc:
            continue
        if plan and pname != plan:
            continue
        e = entitled.setdefault(name, {"name": name, "displayName": disp,
                                       "description": disp, "ownerType": "VENDOR",
                                       "servicePlans": []})
        e["servicePlans"].append({
            "name": pname, "displayName": pname, "description": pname,
            "uniqueIdentifier": "%s-%s" % (name, pname), "category": cat,
            "amount": 1, "remainingAmount": 0 if (name == CALM_SERVICE and a) else 1,
            "unlimited": False, "provisioningMethod": "SERVICE_BROKER",
            "beta": False})
        if only_entitled or (assigned_svc and name != assigned_svc):
            continue
        if name == CALM_SERVICE:
            if a is None:
                continue
            info = [assignment_info(app, a, cat)]
        elif name == "cis":
            # The cis instance that issued the caller's key is assigned, of course.
            c = sub_created(app)
            info = [assignment_info(app, {"state": "OK", "created": c,
                                          "modified": c}, cat)]
        else:
            continue
        asg = assigned.setdefault(name, {"name": name, "displayName": disp,
                                         "servicePlans": []})
        asg["servicePlans"].append({"name": pname, "displayName": pname,
                                    "uniqueIdentifier": "%s-%s" % (name, pname),
                                    "category": cat, "unlimited": False,
                                    "beta": False, "assignmentInfo": info})
    if a is not None and a["state"] == "PROCESSING":
        a["reads_left"] -= 1
    return entitled, assigned, a


def merge_assigned(into, more):
    """Adds one tenant's assignedServices to the global account's (rows per plan)."""
    for name, svc in more.items():
        have = into.setdefault(name, {"name": svc["name"], "displayName": svc["displayName"],
                                      "servicePlans": []})
        for p in svc["servicePlans"]:
            same = [q for q in have["servicePlans"] if q["name"] == p["name"]]
            if same:
                same[0]["assignmentInfo"].extend(p["assignmentInfo"])
            else:
                have["servicePlans"].append(dict(p, assignmentInfo=list(p["assignmentInfo"])))


def h_assignments(app):
    """Without subaccountGUID: the whole global account's assignments (every tenant's
    rows); with it: that subaccount's (a tenant's state, or an unrelated subaccount's:
    nothing of Cloud ALM assigned)."""
    def handler(req, m):
        check_host(app, req, ENTITLEMENTS_HOST)
        auth(app, req, "global-account.entitlement.read", m)
        q = lambda n: (req.query.get(n) or [None])[-1]  # noqa: E731
        sub_guid, svc, plan = q("subaccountGUID"), q("serviceName"), q("planName")
        args = (svc, plan, q("assignedServiceName"),
                (q("entitledServicesOnly") or "").lower() == "true")
        with app.lock:
            if sub_guid is None:
                assigned, entitled = {}, {}
                for rec in global_account.get(app)["subaccounts"]:
                    if rec["tenant"] is not None:
                        e, asg, _a = global_account.in_tenant(
                            app, rec["tenant"], lambda: tenant_assignments(app, *args))
                        entitled = entitled or e
                        merge_assigned(assigned, asg)
                return app.json(200, {"entitledServices": list(entitled.values()),
                                      "assignedServices": list(assigned.values())})
            rec = global_account.find(app, sub_guid)
            if rec is None:
                cis_error(app, 404, 30004, "Subaccount %s not found" % sub_guid, req)
            if rec["tenant"] is None:
                e, _asg, _a = tenant_assignments(app, *args, own=False)
                return app.json(200, {"entitledServices": list(e.values()),
                                      "assignedServices": []})
            entitled, assigned, a = global_account.in_tenant(
                app, rec["tenant"], lambda: tenant_assignments(app, *args))
            body = {"entitledServices": list(entitled.values()),
                    "assignedServices": list(assigned.values())}
            empty_status = global_account.in_tenant(
                app, rec["tenant"], lambda: ensure_state(app)["empty_assignments_status"])
            if empty_status == 204 and svc == CALM_SERVICE and a is None:
                # knob: "nothing assigned" answered 204 No Content, no body
                return app.empty(204)
            return app.json(200, body)
    return handler


def bad_payload(app, req, message):
    cis_error(app, 400, 11002, "Invalid request payload: " + message, req)


def h_assign(app):
    def handler(req, m):
        check_host(app, req, ENTITLEMENTS_HOST)
        auth(app, req, "global-account.entitlement.subaccount.update", m)
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("subaccountServicePlans"), list) \
                or not body["subaccountServicePlans"]:
            bad_payload(app, req, "'subaccountServicePlans' must be a non-empty array")
        with app.lock:
            cats = {(n, p): c for n, _d, p, c in catalog(app)}
            todo = []
            for i, item in enumerate(body["subaccountServicePlans"]):
                where = "subaccountServicePlans[%d]" % i
                if not isinstance(item, dict):
                    bad_payload(app, req, where + " must be an object")
                svc, plan = item.get("serviceName"), item.get("servicePlanName")
                if not isinstance(svc, str) or not svc or not isinstance(plan, str) or not plan:
                    bad_payload(app, req, where + ": 'serviceName' and 'servicePlanName' are required")
                infos = item.get("assignmentInfo")
                if not isinstance(infos, list) or not infos:
                    bad_payload(app, req, where + ": 'assignmentInfo' must be a non-empty array")
                cat = cats.get((svc, plan))
                if cat is None:
                    cis_error(app, 400, 30010,
                              "Service plan %s/%s is not entitled to the global account"
                              % (svc, plan), req)
                for j, ai in enumerate(infos):
                    w = "%s.assignmentInfo[%d]" % (where, j)
                    if not isinstance(ai, dict) or not isinstance(ai.get("subaccountGUID"), str):
                        bad_payload(app, req, w + ": 'subaccountGUID' is required")
                    has_amount, has_enable = "amount" in ai, "enable" in ai
                    if has_amount == has_enable:
                        bad_payload(app, req, w + ": exactly one of 'amount' or 'enable' is required")
                    if has_amount:
                        amt = ai["amount"]
                        if isinstance(amt, bool) or not isinstance(amt, (int, float)) \
                                or amt < 0 or int(amt) != amt:
                            bad_payload(app, req, w + ": 'amount' must be a non-negative integer")
                        if cat not in QUOTA_CATEGORIES:
                            cis_error(app, 400, 30011,
                                      "Plan %s/%s has no numeric quota; use 'enable' instead of "
                                      "'amount'" % (svc, plan), req)
                        if amt > 1:
                            cis_error(app, 400, 30012,
                                      "Requested amount %d exceeds the remaining quota 1 of "
                                      "%s/%s" % (amt, svc, plan), req)
                    else:
                        if not isinstance(ai["enable"], bool):
                            bad_payload(app, req, w + ": 'enable' must be a boolean")
                        if cat in QUOTA_CATEGORIES:
                            cis_error(app, 400, 30011,
                                      "Plan %s/%s has a numeric quota; use 'amount' instead of "
                                      "'enable'" % (svc, plan), req)
                    rec = global_account.find(app, ai["subaccountGUID"])
                    if rec is None:
                        cis_error(app, 404, 30004,
                                  "Subaccount %s not found" % ai["subaccountGUID"], req)
                    if svc == CALM_SERVICE and plan == CALM_PLAN:
                        if rec["tenant"] is None:
                            cis_error(app, 400, 30010, "Service plan %s/%s is not entitled to "
                                      "subaccount %s" % (svc, plan, rec["guid"]), req)
                        on = bool(ai["enable"]) if has_enable else ai["amount"] > 0
                        todo.append((rec["tenant"], on, int(ai["amount"]) if has_amount else 1))
            status = ensure_state(app)["assign_status"]
            for tenant, on, amount in todo:
                global_account.in_tenant(app, tenant, lambda: apply_assignment(app, on, amount))
            # 202, empty body: whether the real service sets a Location header is not
            # documented (reference C.4); clients verify through GET assignments.
            # Knob assign_status: the API may also answer 204 (or 200) without a body.
            return app.empty(status)
    return handler


def apply_assignment(app, on, amount):
    """One Cloud ALM assignment change in the current tenant."""
    s = ensure_state(app)
    now = datetime.datetime.now(UTC)
    a = current_assignment(app)
    if not on:
        s["assignment"] = None
        app.state["entitled"] = False
    elif a is not None and a["state"] in ("OK", "PROCESSING"):
        a["amount"] = amount
    else:
        s["assignment"] = {"state": "PROCESSING", "stateMessage": "",
                           "amount": amount, "created": now, "modified": now,
                           "reads_left": int(s["assign_reads"]),
                           "fail": bool(s["assign_fail"])}
        s["assign_fail"] = False


# ---------------------------------------------------------------------------------------
# SaaS Provisioning


def saas_apps(app):
    s = ensure_state(app)
    sub = subaccount(app)
    fmt = s["saas_date_format"]
    ga = s["global_account"]["guid"]
    created = s["subscription_created"]
    ctms = sub_created(app) + datetime.timedelta(days=17, hours=4, minutes=47)
    base = {"subscribedSubaccountId": sub.get("id"), "subscribedTenantId": sub.get("id"),
            "globalAccountId": ga, "createdBy": "provisioning@sap.example"}
    apps = [
        dict(base, appName="alm-ts", commercialAppName="alm-ts",
             displayName="Cloud Transport Management", planName="standard",
             state="SUBSCRIBED",
             subscriptionUrl=app.url("%s.ts.cfapps.localhost" % sub.get("subdomain")),
             subscriptionGUID=s.setdefault("ctms_guid", app.uuid()),
             createdDate=saas_date(ctms, fmt), modifiedDate=saas_date(ctms, fmt)),
        dict(base, appName="calm-fake-appname", commercialAppName="SAP Cloud ALM",
             displayName="SAP Cloud ALM", planName="standard", state="SUBSCRIBED",
             subscriptionUrl=app.url("%s.eu10.alm.localhost" % sub.get("subdomain")),
             subscriptionGUID=s.setdefault("calm_guid", app.uuid()),
             createdDate=saas_date(created, fmt),
             modifiedDate=saas_date(created + datetime.timedelta(minutes=12), fmt)),
        {"appName": "workzone-fake", "commercialAppName": "SAPLaunchpad",
         "displayName": "SAP Build Work Zone, standard edition", "planName": "standard",
         "state": "NOT_SUBSCRIBED", "globalAccountId": ga},
    ]
    return apps


def h_saas_list(app):
    def handler(req, m):
        check_host(app, req, SAAS_HOST)
        auth(app, req, "subaccount.application.subscription.read")
        with app.lock:
            return app.json(200, {"applications": saas_apps(app)})
    return handler


def h_saas_one(app):
    def handler(req, m):
        check_host(app, req, SAAS_HOST)
        auth(app, req, "subaccount.application.subscription.read")
        with app.lock:
            for a in saas_apps(app):
                if a["appName"] == m.group(1):
                    return app.json(200, a)
        cis_error(app, 404, 90004, "Application %s not found" % m.group(1), req)
    return handler


# ---------------------------------------------------------------------------------------
# Provisioning (CF environment of the subaccount, from fake_cf's state if present)


def h_environments(app):
    def handler(req, m):
        check_host(app, req, PROVISIONING_HOST)
        auth(app, req, "subaccount.environment.read")
        with app.lock:
            env = (app.state.get("cf") or {}).get("environment")
            out = []
            if env:
                sub = subaccount(app)
                out.append({
                    "id": env["id"], "environmentType": "cloudfoundry", "state": "OK",
                    "subaccountGUID": sub.get("id"), "landscapeLabel": "cf-eu10",
                    "planName": "standard", "serviceName": "cloudfoundry",
                    "createdDate": epoch_ms(env["created"]),
                    "modifiedDate": epoch_ms(env["created"]),
                    "labels": json.dumps({"API Endpoint": env["api"], "Org Name": env["org_name"],
                                          "Org ID": env["org_id"]})})
            return app.json(200, {"environmentInstances": out})
    return handler


# ---------------------------------------------------------------------------------------
# control (test knobs): POST /_fake/plugins/cis {"plan_category": ..., "assign_reads": n,
#   "assign_fail": bool, "saas_date_format": ..., "entitled": bool}; GET returns them.

KNOBS = {"plan_category": ("SERVICE", "ELASTIC_SERVICE", "QUOTA_BASED_APPLICATION", "APPLICATION"),
         "saas_date_format": ("text", "text-nnbsp", "epoch_ms"),
         "assign_status": (202, 204, 200), "empty_assignments_status": (200, 204)}


def h_control(app):
    def handler(req, m):
        with app.lock:
            s = ensure_state(app)
            if req.method == "POST":
                body = req.json()
                if not isinstance(body, dict):
                    raise app.HTTPError(400, {"error": "body must be an object"})
                for k, v in body.items():
                    if k in KNOBS:
                        if v not in KNOBS[k]:
                            raise app.HTTPError(400, {"error": "%s must be one of %s"
                                                      % (k, list(KNOBS[k]))})
                        s[k] = v
                    elif k == "assign_reads" and isinstance(v, int) and v >= 0:
                        s[k] = v
                    elif k == "assign_fail" and isinstance(v, bool):
                        s[k] = v
                    elif k == "entitled" and isinstance(v, bool):
                        app.state["entitled"] = v
                        s["assignment"] = None
                    elif global_account.knob(app, k, v):
                        pass
                    else:
                        raise app.HTTPError(400, {"error": "unknown or bad knob %s" % k})
            a = s.get("assignment")
            return app.json(200, {k: s[k] for k in ("plan_category", "assign_reads",
                                                    "assign_fail", "saas_date_format",
                                                    "assign_status", "empty_assignments_status")}
                            | {"entitled": bool(app.state.get("entitled")),
                               "assignment_state": a["state"] if a else None}
                            | global_account.knobs(app))
    return handler


# ---------------------------------------------------------------------------------------
# seam


def register(app):
    app.route("GET", r"/accounts/v1/subaccounts/([^/]+)", h_subaccount(app))
    app.route("GET", r"/accounts/v1/subaccounts", h_subaccounts(app))
    app.route("GET", r"/accounts/v1/globalAccount", h_global_account(app))
    app.route("PUT", r"/entitlements/v1/subaccountServicePlans", h_assign(app))
    app.route("GET", r"/entitlements/v1/assignments", h_assignments(app))
    app.route("GET", r"/saas-manager/v1/applications", h_saas_list(app))
    app.route("GET", r"/saas-manager/v1/applications/([^/]+)", h_saas_one(app))
    app.route("GET", r"/provisioning/v1/environments", h_environments(app))
    global_account.register(app, sys.modules[__name__])
    if hasattr(app, "control"):
        app.control("*", r"/_fake/plugins/cis", h_control(app))


def apply_preset(app, name):
    with app.lock:
        sub = app.state.setdefault("subaccount", {})
        want = PRESET_DATES.get(name)
        # The core owns app.state["subaccount"]; it normally sets the same date already.
        if want is not None and not isinstance(sub.get("created"), datetime.datetime):
            sub["created"] = want
        sub.setdefault("id", app.uuid())
        sub.setdefault("subdomain", "calm-fake")
        s = st(app)
        s.pop("subscription_created", None)
        ensure_state(app)
        # The core decides app.state["entitled"] per preset (sm.apply_preset runs first);
        # the assignment row follows it: OK at the subaccount's creation, or none.
        s["assignment"] = None
        if app.state.get("entitled"):
            created = sub_created(app)
            s["assignment"] = {"state": "OK", "stateMessage": "", "amount": 1,
                               "created": created, "modified": created, "reads_left": 0}
        ensure_client(app)


def ensure_client(app):
    """Creates and registers the cis keys' OAuth clients once: s["key"] (central),
    s["local_key"] (local, of the Cloud ALM subaccount) and s["local_key_other"] (local, of
    another subaccount of the global account)."""
    s = ensure_state(app)
    if "key" not in s:
        s["key"] = new_key(app, "central")
        s["local_key"] = new_key(app, "local")
        s["local_key_other"] = new_key(app, "local", other_subaccount=app.uuid())
    return s["key"]


def new_key(app, plan, other_subaccount=None):
    sub = subaccount(app)
    zdn = sub.get("subdomain")
    xsapp = CIS_XSAPPNAME if plan == "central" else CIS_LOCAL_XSAPPNAME
    n = 100000 + int(app.uuid().replace("-", "")[:5], 16) % 900000
    clientid = "sb-ut-%s!b%d|%s" % (app.uuid(), n, xsapp)
    secret = app.new_secret()
    client = {"secret": secret, "cert_cn": None, "zid": sub.get("id"),
              "scopes": ["%s.%s" % (xsapp, sc) for sc in PLAN_SCOPES[plan]] + ["uaa.resource"]}
    if other_subaccount:
        # a key made in another subaccount: its token says so (XSUAA's ext_attr)
        client["claims"] = {"ext_attr": {"enhancer": "XSUAA", "subaccountid": other_subaccount,
                                         "zdn": zdn + "-other"}}
    app.clients[clientid] = client
    return {
        "endpoints": {
            "accounts_service_url": app.url(ACCOUNTS_HOST),
            "entitlements_service_url": app.url(ENTITLEMENTS_HOST),
            "provisioning_service_url": app.url(PROVISIONING_HOST),
            "saas_registry_service_url": app.url(SAAS_HOST),
            "events_service_url": app.url(EVENTS_HOST),
        },
        "grant_type": "client_credentials",
        "sap.cloud.service": "com.sap.core.commercial.service." + plan,
        "uaa": {
            "apiurl": app.url("api.authentication.localhost"),
            "clientid": clientid,
            "clientsecret": secret,
            "credential-type": "binding-secret",
            "identityzone": zdn,
            "identityzoneid": sub.get("id"),
            "sburl": app.url("internal-xsuaa.authentication.localhost"),
            "subaccountid": sub.get("id"),
            "tenantid": sub.get("id"),
            "tenantmode": "dedicated",
            "uaadomain": "authentication.localhost",
            "url": app.url("%s.authentication.localhost" % zdn),
            "verificationkey": app.state.get("_verificationkey") or FAKE_PEM,
            "xsappname": xsapp,
            "zoneid": sub.get("id"),
        },
    }


def write_files(app, state_dir):
    with app.lock:
        ensure_client(app)
        s = st(app)
        files = {"cis-key.json": s["key"], "cis-local-key.json": s["local_key"],
                 "cis-local-key-other.json": s["local_key_other"]}
        texts = {name: json.dumps(k, indent=2) + "\n" for name, k in files.items()}
    for name, text in texts.items():
        path = os.path.join(state_dir, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
