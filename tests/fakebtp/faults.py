"""Fault injection rules for fakebtp (POST /_fake/faults).

Rule: {"method": "GET"|"*", "path": regex (re.search on the path), "host": regex (optional),
       "tenant": name (optional, multi-tenant mode),
       "count": n (default 1), "action": ..., "status": n, "retry_after": ..., "delay_ms": n,
       "body": "json"|"html"|text}

Hostile answers (issue 13), applied to the route's real answer unless said otherwise:
  rewrite      re.sub(find, replace, body, count=times or 1) on the body read as Latin-1,
               so "\u00ff" in `replace` is the byte FF (invalid UTF-8, duplicate members,
               1e400 numbers); Content-Length fits the new body
  deep         instead of the route: 200, `depth` (default 100000) nested arrays
  header_flood the real answer with `headers` (default 100000) extra header lines
  long_header  the real answer with one extra header line of `bytes` (default 1 MiB)
  trickle      the real answer (headers and body) at `rate` bytes per second (default 1)
"""
import datetime
import email.utils
import http.client
import json
import re
import threading
import time

REQUEST_ACTIONS = ("status", "reset", "truncate", "close_truncate", "delay", "html", "nonjson",
                   "late_create", "rewrite", "deep", "header_flood", "long_header", "trickle")
OP_ACTIONS = ("op_stuck", "op_fail")
HTTP_REASONS = http.client.responses
ACTIONS = REQUEST_ACTIONS + OP_ACTIONS

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>SAP Router / gorouter"
            b"</center>\r\n</body>\r\n</html>\r\n")


def validate(rule):
    if not isinstance(rule, dict):
        raise ValueError("rule must be a JSON object")
    action = rule.get("action", "status")
    if action not in ACTIONS:
        raise ValueError("unknown action %r (one of %s)" % (action, ", ".join(ACTIONS)))
    r = dict(rule)
    r["action"] = action
    r["method"] = str(r.get("method") or "*").upper()
    r["path"] = r.get("path") or ".*"
    re.compile(r["path"])
    if r.get("host"):
        re.compile(r["host"])
    r["count"] = int(r.get("count", 1))
    if action == "status":
        r["status"] = int(r.get("status", 503))
    if action == "rewrite":
        if not isinstance(r.get("find"), str) or not isinstance(r.get("replace"), str):
            raise ValueError("rewrite needs 'find' (a regex) and 'replace' (text)")
        re.compile(r["find"])
        r["replace"].encode("latin-1")
    return r


def retry_after_value(spec, default_seconds=2):
    """Header value for a rule's retry_after, or None for no header.

    "5" / 5        -> "5" (delta seconds)
    "http-date"    -> an IMF-fixdate default_seconds from now
    "go"           -> "YYYY-MM-DD HH:MM:SS +0000 UTC" default_seconds from now
    other strings  -> sent verbatim
    """
    if spec is None:
        return None
    if isinstance(spec, (int, float)):
        return str(int(spec))
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=default_seconds)
    if spec == "http-date":
        return email.utils.format_datetime(when, usegmt=True)
    if spec == "go":
        return when.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    return str(spec)


class Faults:
    def __init__(self):
        self.rules = []
        self.lock = threading.Lock()

    def add(self, rule):
        r = validate(rule)
        with self.lock:
            self.rules.append(r)
        return r

    def clear(self):
        with self.lock:
            self.rules = []

    def list(self):
        with self.lock:
            return [dict(r) for r in self.rules]

    def _take(self, req, actions):
        with self.lock:
            for r in self.rules:
                if r["action"] not in actions or r["count"] == 0:
                    continue
                if r["method"] != "*" and r["method"] != req.method:
                    continue
                if not re.search(r["path"], req.path):
                    continue
                if r.get("host") and not re.search(r["host"], req.host):
                    continue
                if r.get("tenant") and r["tenant"] != req.tenant:
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                self.rules = [x for x in self.rules if x["count"] != 0]
                return dict(r)
        return None

    def match(self, req):
        """The request-level rule for this request (consumed), or None."""
        return self._take(req, REQUEST_ACTIONS)

    def take_op_fault(self, req):
        """An op_stuck/op_fail rule matching the request that creates an operation, or None."""
        return self._take(req, OP_ACTIONS)


def _status_body(rule):
    st = rule["status"]
    kind = rule.get("body", "json")
    if kind == "html":
        return HTML_502 if st == 502 else (
            "<html><head><title>%d</title></head><body><h1>%d Error</h1></body></html>"
            % (st, st)).encode(), "text/html"
    if kind not in (None, "json"):
        return str(kind).encode(), "text/plain"
    names = {429: ("TooManyRequests", "too many requests, retry later"),
             500: ("InternalServerError", "internal server error"),
             502: ("BadGateway", "bad gateway"),
             503: ("ServiceUnavailable", "service unavailable"),
             504: ("GatewayTimeout", "gateway timeout")}
    err, desc = names.get(st, ("Error", "injected fault"))
    return json.dumps({"error": err, "description": desc}).encode(), "application/json"


def handle_before(h, app, req, rule):
    """Apply a rule before the route runs. True when the response was fully handled."""
    action = rule["action"]
    if rule.get("delay_ms") and action in ("delay", "status", "html", "nonjson", "reset"):
        time.sleep(rule["delay_ms"] / 1000.0)
    if action == "status":
        body, ctype = _status_body(rule)
        headers = {"Content-Type": ctype}
        if "retry_after" in rule:
            ra = retry_after_value(rule["retry_after"], int(rule.get("retry_seconds", 2)))
            if ra is not None:
                headers["Retry-After"] = ra
        elif rule["status"] == 429:
            headers["Retry-After"] = "1"
        app.log_request(req, rule["status"])
        h._send(app.Response(rule["status"], body, None, headers))
        return True
    if action == "html":
        app.log_request(req, 502)
        h._send(app.Response(502, HTML_502, "text/html"))
        return True
    if action == "nonjson":
        app.log_request(req, 200)
        h._send(app.Response(200, b"OK - this is not JSON\n", "text/plain"))
        return True
    if action == "reset":
        app.log_request(req, 0)
        h.reset_connection()
        return True
    if action == "deep":
        n = int(rule.get("depth", 100000))
        app.log_request(req, 200)
        h._send(app.Response(200, b"[" * n + b"]" * n, "application/json"))
        return True
    return False


def _raw_answer(resp, extra=b"", body=None):
    """The bytes of an HTTP/1.1 answer with `extra` header lines, closing the connection."""
    body = resp.body if body is None else body
    head = ["HTTP/1.1 %d %s" % (resp.status, HTTP_REASONS.get(resp.status, "Status"))]
    head += ["%s: %s" % (k, v) for k, v in resp.headers.items() if k.lower() != "content-length"]
    head += ["Content-Length: %d" % len(body), "Connection: close"]
    return ("\r\n".join(head) + "\r\n").encode("latin-1") + extra + b"\r\n" + body


def _write(h, data, rate=None):
    """Writes data (at `rate` bytes per second); a peer that hung up ends it quietly."""
    h.close_connection = True
    try:
        if not rate:
            h.wfile.write(data)
            h.wfile.flush()
            return
        step = max(1, int(rate))
        for i in range(0, len(data), step):
            h.wfile.write(data[i:i + step])
            h.wfile.flush()
            time.sleep(1.0)
    except OSError:
        pass


def _hostile_after(h, app, req, rule, resp):
    action = rule["action"]
    app.log_request(req, resp.status)
    if action == "rewrite":
        text = (resp.body or b"").decode("latin-1")
        text = re.sub(rule["find"], rule["replace"], text, count=int(rule.get("times", 1)))
        _write(h, _raw_answer(resp, body=text.encode("latin-1")))
    elif action == "header_flood":
        n = int(rule.get("headers", 100000))
        extra = b"".join(b"X-Fill-%d: x\r\n" % i for i in range(n))
        _write(h, _raw_answer(resp, extra))
    elif action == "long_header":
        _write(h, _raw_answer(resp, b"X-Long: " + b"a" * int(rule.get("bytes", 1 << 20)) + b"\r\n"))
    else:  # trickle
        _write(h, _raw_answer(resp), rate=float(rule.get("rate", 1)))
    return True


def handle_after(h, app, req, rule, resp):
    """Apply a rule after the route ran (its state changes are kept). True when handled."""
    action = rule["action"]
    if action in ("rewrite", "header_flood", "long_header", "trickle"):
        return _hostile_after(h, app, req, rule, resp)
    if action == "late_create":
        if rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
            return False
        app.log_request(req, 0)
        h.reset_connection()
        return True
    if action == "truncate":
        app.log_request(req, resp.status)
        body = resp.body or b"{}"
        h.send_response(resp.status)
        for k, v in resp.headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) + 100))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        h.close_connection = True   # the server then closes: peer misses 100 bytes
        return True
    if action == "close_truncate":
        app.log_request(req, resp.status)
        body = resp.body or b'{"items": []}'
        h.close_connection = True
        h.send_response(resp.status)
        for k, v in resp.headers.items():
            h.send_header(k, v)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body[: max(1, len(body) // 2)])
        h.wfile.flush()
        return True
    return False
