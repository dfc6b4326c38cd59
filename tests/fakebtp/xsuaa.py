"""Fake XSUAA / UAA token endpoint: POST /oauth/token on every host and both ports."""
import hashlib
import json
import ssl
import urllib.parse

CF_SCOPES = ["cloud_controller.read", "cloud_controller.write", "openid", "uaa.user"]


def _bad_client(app):
    raise app.HTTPError(401, {"error": "invalid_client", "error_description": "Bad credentials"},
                        {"WWW-Authenticate": 'Basic realm="UAA/client", error="unauthorized", '
                                            'error_description="Bad credentials"'})


def _client_auth(app, req, form):
    """(client_id, secret or None, how) from Basic or the form. XSUAA form-decodes a Basic
    id and secret (RFC 6749 2.3.1) only when the client sends X-CF-ENCODED-CREDENTIALS: true
    (SAP's troubleshooting page for XSUAA client authentication); without it they are
    taken as they are, so an encoded `!` or `|` no longer matches."""
    basic = req.basic()
    if basic is not None:
        cid, sec = basic[0], basic[1]
        if (req.headers.get("X-CF-ENCODED-CREDENTIALS") or "").strip().lower() == "true":
            cid = urllib.parse.unquote_plus(cid)
            sec = urllib.parse.unquote_plus(sec)
        return cid, sec, "basic"
    if "client_id" in form:
        return form["client_id"], form.get("client_secret"), "form"
    return None, None, None


def _peer_cn(req):
    info = getattr(req, "peer_cert_info", None) or {}
    for rdn in info.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def _zone_of_host(app, host):
    """Subdomain for *.authentication[.cert].localhost hosts, else None."""
    for suffix in (".authentication.cert.localhost", ".authentication.localhost"):
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return None


def _origin(app, req, form):
    """The identity provider a password grant names: login_hint {"origin": "..."} (the cf CLI
    sends it as a query parameter; UAA reads request parameters, so the form works too),
    else the platform default sap.ids. A malformed hint is 400."""
    raw = (req.query.get("login_hint") or [None])[-1] if hasattr(req, "query") else None
    raw = raw or form.get("login_hint")
    if not raw:
        return "sap.ids"
    try:
        hint = json.loads(raw)
        origin = hint["origin"]
        if not isinstance(origin, str) or not origin:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise app.HTTPError(400, {"error": "invalid_request",
                                  "error_description": "login_hint must be JSON {\"origin\": \"...\"}"})
    return origin


def _password_user(app, req, form):
    """The user a password grant logs in: username/password at the origin of login_hint, or
    a one-time SSO passcode (`cf login --sso`). Users live in app.users (sap.ids) and in
    app.state["cf"]["idp_users"] ({origin: {user: password}}); passcodes in
    app.state["cf"]["passcodes"] ({code: (user, origin)}), each used once."""
    origin = _origin(app, req, form)
    cf = app.state.get("cf") or {}
    if "passcode" in form:
        with app.lock:
            got = (cf.get("passcodes") or {}).pop(form["passcode"], None)
        if got is None:
            raise app.HTTPError(401, {"error": "invalid_grant",
                                      "error_description": "Invalid passcode"})
        return got
    user, pw = form.get("username"), form.get("password")
    with app.lock:
        if origin == "sap.ids":
            ok = user in app.users and app.users[user] == pw
        else:
            known = (cf.get("idp_users") or {}).get(origin)
            if known is None:
                raise app.HTTPError(401, {"error": "unauthorized", "error_description":
                                          "The origin provided in the login hint is invalid."})
            ok = user in known and known[user] == pw
    if not ok:
        raise app.HTTPError(401, {"error": "unauthorized", "error_description": "Bad credentials"})
    return user, origin


def token(app, req, m):
    if req.method != "POST":
        raise app.HTTPError(405, {"error": "method_not_allowed"})
    ctype = (req.headers.get("Content-Type") or "").lower()
    if req.body and "x-www-form-urlencoded" not in ctype:
        raise app.HTTPError(400, {"error": "invalid_request",
                                  "error_description": "form-urlencoded body expected"})
    form = req.form()
    grant = form.get("grant_type", "")
    cid, secret, how = _client_auth(app, req, form)
    if grant == "password":
        if cid != "cf" or (secret or "") != "":
            _bad_client(app)
        user, origin = _password_user(app, req, form)
        lifetime = app.config.token_lifetime
        tok = app.tokens.issue("cf", CF_SCOPES, "uaa", lifetime,
                               {"user_name": user, "origin": origin, "grant_type": "password",
                                "user_id": "u-" + hashlib.sha1(user.encode()).hexdigest()[:12]})
        refresh = app.new_secret("refresh-")
        return app.json(200, {"access_token": tok, "token_type": "bearer",
                              "refresh_token": refresh, "expires_in": lifetime,
                              "scope": " ".join(CF_SCOPES), "jti": tok[-12:]})
    if grant != "client_credentials":
        raise app.HTTPError(400, {"error": "unsupported_grant_type",
                                  "error_description": "Unsupported grant type: %s" % grant})
    if not cid:
        _bad_client(app)
    with app.lock:
        cands = []
        if cid in app.clients:
            cands.append(dict(app.clients[cid]))
        lookup = getattr(app, "lookup_credentials", None)
        if lookup is not None:
            cands.extend(dict(c) for c in lookup(cid))
    client = None
    for c in cands:
        if req.port_kind == "cert" and not secret:
            # mTLS: the verified peer certificate must be the one issued for this client.
            if not c.get("cert_cn") or req.peer_cert is None or _peer_cn(req) != c["cert_cn"]:
                continue
            want = c.get("cert_sha256")
            if want and hashlib.sha256(req.peer_cert).hexdigest() != want:
                continue
        elif secret is None or (secret != c.get("secret") and secret not in (c.get("secrets") or ())):
            # "secrets": the binding secrets of one client id (each key its own; a plug-in's
            # keys share the client id of their instance's generation)
            continue
        client = c
        break
    if client is None:
        _bad_client(app)
    zone = _zone_of_host(app, req.host)
    sub = app.state.get("subaccount", {})
    if zone is not None and client.get("zone_check", True) and zone != sub.get("subdomain"):
        raise app.HTTPError(401, {"error": "unauthorized",
                                  "error_description": "Unable to map issuer, %s, to a single "
                                  "registered provider" % req.host})
    scopes = list(client.get("scopes") or [])
    if form.get("scope"):
        want = set(form["scope"].split())
        scopes = [s for s in scopes if s in want]
    lifetime = app.config.token_lifetime
    extra = dict(client.get("claims") or {})
    tok = app.tokens.issue(cid, scopes, client.get("zid") or sub.get("id"), lifetime, extra)
    return app.json(200, {"access_token": tok, "token_type": "bearer", "expires_in": lifetime,
                          "scope": " ".join(scopes), "jti": tok[-12:]})


def token_keys(app, req, m):
    return app.json(200, {"keys": [{"kty": "oct", "kid": "fakebtp-key-1", "alg": "HS256",
                                    "use": "sig", "value": "HS256 (shared secret, not published)"}]})


def register(app):
    app.route("POST", r"/oauth/token", lambda req, m: token(app, req, m))
    app.route("GET", r"/token_keys", lambda req, m: token_keys(app, req, m))
