"""Control endpoints /_fake/... (never logged, never faulted)."""
import datetime
import json


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return obj.isoformat()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def register(app):
    import sm
    from fakebtp import redact

    def add_fault(req, m):
        body = req.json()
        rules = body if isinstance(body, list) else [body]
        try:
            added = [app.faults.add(r) for r in rules]
        except (ValueError, TypeError) as e:
            raise app.HTTPError(400, {"error": "BadRequest", "description": str(e)})
        return app.json(201, {"rules": added})

    def clear_faults(req, m):
        app.faults.clear()
        return app.json(200, {})

    def list_faults(req, m):
        return app.json(200, {"rules": app.faults.list()})

    def expire(req, m):
        app.tokens.expire_all()
        return app.json(200, {})

    def revoke(req, m):
        with app.lock:
            ok = sm.revoke_binding(app, m.group(1))
        if not ok:
            raise app.HTTPError(404, {"error": "NotFound", "description": "no such binding"})
        return app.json(200, {})

    def state(req, m):
        with app.lock:
            s = _jsonable(app.state)
            s["instances"] = [sm.public_instance(app, i) for i in app.state["instances"].values()]
            s["bindings"] = [sm.public_binding(app, b, credentials=False)
                             for b in app.state["bindings"].values()]
            s["operations"] = list(_jsonable(app.state["operations"]).values())
            s["port"] = app.port
            s["cert_port"] = app.cert_port
        return app.json(200, redact(json.loads(json.dumps(s, default=str))))

    def set_state(req, m):
        # Small test hook: {"entitled": bool}
        body = req.json() or {}
        with app.lock:
            if "entitled" in body:
                app.state["entitled"] = bool(body["entitled"])
        return app.json(200, {})

    app.control("POST", r"/_fake/faults", add_fault)
    app.control("DELETE", r"/_fake/faults", clear_faults)
    app.control("GET", r"/_fake/faults", list_faults)
    app.control("POST", r"/_fake/expire_tokens", expire)
    app.control("POST", r"/_fake/revoke/([^/]+)", revoke)
    def stats(req, m):
        return app.json(200, {"in_flight": app.in_flight, "max_in_flight": app.max_in_flight})

    def reset_stats(req, m):
        with app._flight_lock:
            app.max_in_flight = app.in_flight
        return app.json(200, {})

    app.control("GET", r"/_fake/state", state)
    app.control("GET", r"/_fake/stats", stats)
    app.control("DELETE", r"/_fake/stats", reset_stats)
    app.control("PATCH", r"/_fake/state", set_state)
