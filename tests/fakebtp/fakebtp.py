#!/usr/bin/env python3
"""fakebtp: a fake SAP BTP (Service Manager, XSUAA, plus plug-ins for CF and CIS) for tests.

Python 3 stdlib only; certificates via the openssl CLI.  One process, one HTTP(S) port for
every API (host-independent routing) and a second, always-HTTPS, mutual-TLS port for X.509
token requests.  See README.md and PLUGINS.md (the seam).

    python3 tests/fakebtp/fakebtp.py --state-dir DIR [--preset NAME] [--https] ...
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import importlib
import io
import json
import os
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import certs  # noqa: E402
import fasthead  # noqa: E402
import faults  # noqa: E402
import tenants  # noqa: E402

PRESETS = ("after-2023-10-16", "mid-2023", "before-2023-06-12", "cf-legacy", "empty")

# Keys whose values are secrets in request/response bodies and forms (lower case).
SECRET_FIELDS = {"clientsecret", "client_secret", "password", "key", "access_token",
                 "refresh_token", "token", "secret", "certificate", "private_key",
                 "privatekey", "id_token", "client_assertion", "assertion", "passcode"}
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie",
                  "x-api-key"}


class HTTPError(Exception):
    """Raise anywhere in a handler to answer with this status and body."""

    def __init__(self, status, body=None, headers=None):
        super().__init__("HTTP %d" % status)
        self.status = status
        self.body = body if body is not None else {"error": http_reason(status)}
        self.headers = headers or {}


def http_reason(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Response:
    def __init__(self, status, body=b"", ctype=None, headers=None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        if ctype:
            self.headers.setdefault("Content-Type", ctype)


def to_response(err):
    body = err.body
    if isinstance(body, (bytes, bytearray)):
        return Response(err.status, bytes(body), "text/plain; charset=utf-8", err.headers)
    if isinstance(body, str):
        return Response(err.status, body.encode(), "text/plain; charset=utf-8", err.headers)
    return Response(err.status, json.dumps(body).encode(), "application/json", err.headers)


def redact(obj):
    """Copy of a JSON value with secret fields replaced by "<redacted>"."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() in SECRET_FIELDS and v not in (None, ""):
                out[k] = "<redacted>"
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "CANARY" in obj:
        return "<redacted>"
    return obj


class Request:
    def __init__(self, app, method, target, headers, body, port_kind, peer_cert):
        self.app = app
        self.method = method
        parts = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(parts.path) or "/"
        self.raw_query = parts.query
        self.query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body or b""
        host = headers.get("Host", "") or ""
        if host.startswith("["):
            host = host[1:].split("]")[0]
        else:
            host = host.rsplit(":", 1)[0] if ":" in host else host
        self.host = host.lower()
        self.port_kind = port_kind          # "main" or "cert"
        # DER bytes and getpeercert() dict of the verified client certificate (cert port)
        self.peer_cert, self.peer_cert_info = peer_cert or (None, None)
        self.fault = None                   # matched fault rule (dict) or None
        self.tenant = None                  # tenant name in multi-tenant mode
        self._json = None

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[-1] if v else default

    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body.decode("utf-8") or "null")
            except (ValueError, UnicodeDecodeError) as e:
                raise HTTPError(400, {"error": "BadRequest",
                                      "description": "Failed to decode request body: %s" % e})
        return self._json

    def form(self):
        try:
            pairs = urllib.parse.parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HTTPError(400, {"error": "invalid_request"})
        return {k: v for k, v in pairs}

    def bearer(self):
        a = self.headers.get("Authorization") or ""
        if a[:7].lower() == "bearer ":
            return a[7:].strip()
        return None

    def basic(self):
        a = self.headers.get("Authorization") or ""
        if a[:6].lower() != "basic ":
            return None
        try:
            raw = base64.b64decode(a[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        if ":" not in raw:
            return None
        user, pw = raw.split(":", 1)
        return user, pw


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Tokens:
    """HS256 JWTs. Every issued token's jti is remembered; expire_all forgets them."""

    def __init__(self, app):
        self.app = app
        self.key = secrets.token_bytes(32)
        self.live = {}          # jti -> exp
        self.lock = threading.Lock()

    def issue(self, client_id, scopes, zid, lifetime=None, extra_claims=None):
        now = int(time.time())
        if lifetime is None:
            lifetime = self.app.config.token_lifetime
        jti = uuid.uuid4().hex
        sub = self.app.state.get("subaccount", {})
        zdn = sub.get("subdomain", "fake")
        claims = {
            "jti": jti, "sub": client_id, "client_id": client_id, "cid": client_id,
            "azp": client_id, "grant_type": "client_credentials",
            "scope": list(scopes), "zid": zid, "iat": now, "exp": now + int(lifetime),
            "iss": self.app.url("%s.authentication.localhost" % zdn) + "/oauth/token",
            "ext_attr": {"enhancer": "XSUAA", "subaccountid": zid, "zdn": zdn},
            "aud": sorted({s.split(".")[0] for s in scopes if "." in s}),
            "rev_sig": jti[:8],
        }
        if extra_claims:
            claims.update(extra_claims)
        header = {"alg": "HS256", "typ": "JWT", "kid": "fakebtp-key-1",
                  "jku": self.app.url("%s.authentication.localhost" % zdn) + "/token_keys"}
        signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
            b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.key, signing.encode(), hashlib.sha256).digest()
        tok = signing + "." + b64url(sig)
        with self.lock:
            self.live[jti] = claims["exp"]
        self.app.record_secret(tok)
        return tok

    def decode(self, tok):
        """Claims of a valid, live token, or None."""
        try:
            h, p, s = tok.split(".")
            sig = hmac.new(self.key, (h + "." + p).encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(sig, b64url_dec(s)):
                return None
            claims = json.loads(b64url_dec(p))
        except (ValueError, TypeError):
            return None
        with self.lock:
            if claims.get("jti") not in self.live:
                return None
        if claims.get("exp", 0) <= time.time():
            return None
        return claims

    def check(self, req, need_scope_suffix=None):
        tok = req.bearer()
        if not tok:
            raise HTTPError(401, {"error": "unauthorized",
                                  "description": "authorization header is missing"},
                            {"WWW-Authenticate": 'Bearer realm="fakebtp"'})
        claims = self.decode(tok)
        if claims is None or not self._same_zone(claims):
            raise HTTPError(401, {"error": "invalid_token",
                                  "error_description": "token is expired, revoked or unknown"},
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if need_scope_suffix:
            if not any(s.endswith(need_scope_suffix) for s in claims.get("scope", [])):
                raise HTTPError(403, {"error": "insufficient_scope",
                                      "error_description": "missing scope *%s" % need_scope_suffix})
        return claims

    def _same_zone(self, claims):
        """Multi-tenant mode: a token is good only at the tenant (zone) that issued it."""
        if not self.app.tenants.multi:
            return True
        zdn = (claims.get("ext_attr") or {}).get("zdn")
        return zdn == self.app.state.get("subaccount", {}).get("subdomain")

    def expire_all(self):
        with self.lock:
            self.live.clear()


class Config:
    def __init__(self, args):
        self.https = args.https
        self.latency_ms = args.latency_ms
        self.token_lifetime = args.token_lifetime
        self.page_size = args.page_size
        self.async_mode = args.async_mode
        self.op_polls = args.op_polls
        self.errors_style = args.errors_style
        self.preset = args.preset
        self.tenant_x509 = args.tenant_x509
        self.variants = frozenset(args.variant or ())
        self.ga_unrelated = args.ga_unrelated
        self.cis_rate_limit = args.cis_rate_limit


class App:
    HTTPError = HTTPError
    Response = Response

    def __init__(self, config, state_dir):
        self.config = config
        self.state_dir = state_dir
        self.lock = threading.RLock()
        self.tenants = tenants.Registry(getattr(config, "preset", "after-2023-10-16"))
        self.routes = []
        self.control_routes = []
        self.tokens = Tokens(self)
        self.faults = faults.Faults()
        self.port = None
        self.cert_port = None
        self.plugins = []
        self._fds = {}          # file name in state_dir -> O_APPEND descriptor
        self._fds_lock = threading.Lock()
        self.in_flight = 0      # API requests being answered now, and the most at once
        self.max_in_flight = 0
        self._flight_lock = threading.Lock()
        self.ca = None          # certs.CA

    # --- per-tenant data (the tenant of the running request; tenants.py) ---------------
    @property
    def tenant(self):
        return self.tenants.current()

    @property
    def state(self):
        return self.tenants.current().state

    @property
    def users(self):
        return self.tenants.current().users

    @property
    def clients(self):
        return self.tenants.current().clients

    @property
    def preset(self):
        return self.tenants.current().preset

    @preset.setter
    def preset(self, value):
        self.tenants.current().preset = value

    # --- seam -----------------------------------------------------------------------
    def route(self, method, regex, handler):
        self.routes.append((method.upper(), re.compile(regex), handler))

    def control(self, method, regex, handler):
        self.control_routes.append((method.upper(), re.compile(regex), handler))

    @staticmethod
    def json(status, obj, headers=None):
        return Response(status, json.dumps(obj, indent=None).encode(), "application/json",
                        headers)

    @staticmethod
    def text(status, text, ctype="text/plain; charset=utf-8", headers=None):
        if isinstance(text, str):
            text = text.encode()
        return Response(status, text, ctype, headers)

    @staticmethod
    def empty(status, headers=None):
        return Response(status, b"", None, headers)

    def new_secret(self, prefix=""):
        s = prefix + "CANARY" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        self.record_secret(s)
        return s

    def record_secret(self, value):
        if not value:
            return
        # One secret per line; multi-line secrets (PEM keys) are stored JSON-escaped.
        self.append_line("issued-secrets.txt", value if "\n" not in value else json.dumps(value))

    def append_line(self, name, line):
        """Append one line to state_dir/name: one write(2) on an O_APPEND descriptor kept open,
        so concurrent lines never interleave and no Python lock is held across the system
        call (holding one there made every request thread queue behind the GIL)."""
        fd = self._fds.get(name)
        if fd is None:
            with self._fds_lock:
                fd = self._fds.get(name)
                if fd is None:
                    fd = os.open(os.path.join(self.state_dir, name),
                                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
                    self._fds[name] = fd
        data = (line + "\n").encode()
        while data:
            data = data[os.write(fd, data):]

    def flight(self, delta):
        """Counts API requests being answered (GET /_fake/stats: how many were at once)."""
        with self._flight_lock:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def scheme(self):
        return "https" if self.config.https else "http"

    def url(self, host):
        return "%s://%s:%d%s" % (self.scheme(), host, self.port, self.tenants.url_suffix(host))

    def cert_url(self, host):
        return "https://%s:%d%s" % (host, self.cert_port, self.tenants.url_suffix(host))

    @staticmethod
    def uuid():
        return str(uuid.uuid4())

    # --- request log ------------------------------------------------------------------
    def log_request(self, req, status):
        headers = {}
        for k, v in req.headers.items():
            headers[k] = "<redacted>" if k.lower() in SECRET_HEADERS else v
        body = None
        if req.body:
            ctype = (req.headers.get("Content-Type") or "").lower()
            try:
                body = redact(json.loads(req.body.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                if "x-www-form-urlencoded" in ctype or req.path.endswith("/oauth/token"):
                    try:
                        body = {k: ("<redacted>" if k.lower() in SECRET_FIELDS else v)
                                for k, v in req.form().items()}
                    except HTTPError:
                        body = "<undecodable>"
                else:
                    body = "<%d bytes>" % len(req.body)
        query = {k: (v[0] if len(v) == 1 else v) for k, v in req.query.items()}
        rec = {"ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
               "method": req.method, "host": req.host, "port": req.port_kind, "path": req.path,
               "query": query, "headers": headers, "body": body, "status": status}
        # which connection, when it arrived and when its answer leaves (epoch seconds): what a
        # test needs to count round trips that depend on each other
        if getattr(req, "arrived", None) is not None:
            rec["conn"] = req.conn
            rec["arrived"] = round(req.arrived, 6)
            rec["answered"] = round(max(getattr(req, "answer_at", None) or 0.0, time.time()), 6)
        if req.fault:
            rec["fault"] = req.fault.get("action")
        if req.tenant:
            rec["tenant"] = req.tenant
        self.append_line("requests.jsonl", json.dumps(rec))

    # --- dispatch ---------------------------------------------------------------------
    def dispatch(self, req, routes):
        allowed = False
        for method, rx, handler in routes:
            m = rx.fullmatch(req.path)
            if not m:
                continue
            if method != "*" and method != req.method:
                allowed = True
                continue
            try:
                resp = handler(req, m)
            except HTTPError as e:
                return to_response(e)
            if resp is None:
                resp = Response(204)
            return resp
        if allowed:
            return to_response(HTTPError(405, {"error": "MethodNotAllowed",
                                               "description": "method not allowed"}))
        return to_response(HTTPError(404, {"error": "NotFound",
                                           "description": "no route for %s %s" % (req.method, req.path)}))


# ----------------------------------------------------------------------------------------
# HTTP server


def _sleep_until(t):
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


# SO_TIMESTAMPNS (Linux; Python has no name for it): the kernel stamps each segment with
# the time it was received, and recvmsg hands the stamp over, so that --latency-ms counts
# from the request's arrival, not from when a handler thread got round to reading it
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class StampedReader(io.RawIOBase):
    """A plain connection's reads, each keeping the kernel's receive time (time.time()
    scale) of what it returned in .stamp."""

    def __init__(self, sock):
        self.sock = sock
        self.stamp = None

    def readable(self):
        return True

    def readinto(self, b):
        self.stamp = None
        n, anc, _, _ = self.sock.recvmsg_into([b], socket.CMSG_SPACE(16))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack("qq", data[:16])
                self.stamp = sec + nsec / 1e9
        return n


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakebtp/1.0"
    timeout = 120
    # TCP_NODELAY, as servers set it: an answer is written as its head, then its body, and
    # with Nagle the body waited for the client's delayed ACK of the head (40 ms) on a kept
    # connection
    disable_nagle_algorithm = True

    def setup(self):
        ctx = getattr(self.server, "ssl_ctx", None)
        if ctx is not None:
            self.request.settimeout(15)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(self.timeout)
        super().setup()
        self._stamped = None
        if ctx is None and getattr(self.server, "stamps", False):
            self._stamped = StampedReader(self.connection)
            self.rfile.close()
            self.rfile = io.BufferedReader(self._stamped, self.rbufsize if self.rbufsize > 0 else 8192)

    def log_message(self, fmt, *args):  # quiet; we have requests.jsonl
        pass

    def parse_request(self):    # the stdlib's, without the email package (fasthead.py)
        return fasthead.parse_request(self)

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _peer_cert(self):
        try:
            der = self.request.getpeercert(binary_form=True)
            return (der, self.request.getpeercert()) if der else None
        except (AttributeError, ValueError):
            return None

    def _dispatch(self):
        app = self.server.app
        # --latency-ms counts from the request's arrival: the kernel's receive time of the
        # read that brought its head (a plain connection), else the moment the head was read
        stamp = self._stamped.stamp if self._stamped is not None else None
        now = time.time()
        late = min(max(0.0, now - stamp), 5.0) if stamp is not None else 0.0
        self._arrived = time.monotonic() - late
        body = self._read_body()
        req = Request(app, self.command, self.path, self.headers, body,
                      self.server.kind, self._peer_cert())
        req.conn = self.client_address[1] if isinstance(self.client_address, tuple) else None
        req.arrived = now - late
        if not app.tenants.resolve(req):
            self._send(to_response(HTTPError(404, {"error": "NotFound",
                                                   "description": "no such tenant"})))
            return
        if self.headers.get("Expect", "").lower() == "100-continue":
            pass  # body already read; BaseHTTPRequestHandler answered 100 for us
        if req.path.startswith("/_fake/"):
            resp = app.dispatch(req, app.control_routes)
            self._send(resp)
            return
        app.flight(1)
        try:
            self._answer(app, req)
        finally:
            app.flight(-1)

    def _answer(self, app, req):
        # --latency-ms: the answer leaves that long after the request arrived. A request no
        # fault rule matches is handled first and waits out the rest, so that the fake's own
        # Python time (a few ms for four requests at once, queued on the GIL) is inside the
        # latency rather than added to it; a faulted one waits first, as faults always did.
        due = self._arrived + app.config.latency_ms / 1000.0 if app.config.latency_ms else None
        rule = app.faults.match(req)
        req.fault = rule
        if due is not None and rule is not None:
            _sleep_until(due)
            due = None
        if due is not None:
            req.answer_at = req.arrived + app.config.latency_ms / 1000.0
        try:
            if rule is not None and faults.handle_before(self, app, req, rule):
                return
            try:
                resp = app.dispatch(req, app.routes)
            except Exception:  # a bug in a handler: answer 500, keep serving
                traceback.print_exc()
                resp = to_response(HTTPError(500, {"error": "InternalError",
                                                   "description": "fakebtp handler crashed"}))
            if rule is not None and faults.handle_after(self, app, req, rule, resp):
                return
            app.log_request(req, resp.status)
            if due is not None:
                _sleep_until(due)
            self._send(resp)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _send(self, resp, head_only=False):
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    # --- raw socket tricks for faults ----------------------------------------------------
    def reset_connection(self):
        """Close with SO_LINGER 0 so the peer sees a TCP RST."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        sock = self.connection
        raw = sock
        try:
            if isinstance(sock, ssl.SSLSocket):
                raw = socket.socket(fileno=os.dup(sock.fileno()))
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if raw is not sock:
                raw.close()
        except OSError:
            pass
        self.close_connection = True
        try:
            sock.close()
        except OSError:
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096   # the kernel caps it at net.core.somaxconn
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


def make_server(app, kind, ssl_ctx):
    srv = Server(("127.0.0.1", 0), Handler)
    try:    # accepted connections inherit it
        srv.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        srv.stamps = True
    except OSError:
        srv.stamps = False
    srv.app = app
    srv.kind = kind
    srv.ssl_ctx = ssl_ctx
    return srv


# ----------------------------------------------------------------------------------------
# main


def write_json(path, obj, mode=0o600):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_text(path, text, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_plugins(app):
    for name in ("fake_cf", "fake_cis"):
        if not os.path.exists(os.path.join(HERE, name + ".py")):
            continue
        try:
            mod = importlib.import_module(name)
        except Exception:
            traceback.print_exc()
            print("fakebtp: plug-in %s failed to import; continuing without it" % name,
                  file=sys.stderr)
            continue
        if hasattr(mod, "register"):
            mod.register(app)
        app.plugins.append(mod)


# Where SAP's documentation leaves room, the fake allows each variant:
#   generated-xsappname-name: the instance generated since 2023-10-16 has an xsappname
#     that is not its GUID (SAP does not document it; it is created WITH the authorities);
#   hand-deployment: an admin already made an instance with the imp-cdm-feature-*
#     authorities (plus calm-api.* ones for another integration) and a key after it;
#   cf-authorities: the Cloud Foundry instance of cf-legacy already has the authorities
#     and a key made after them;
#   kyma-owned: an extra Cloud ALM API instance owned by a Kyma cluster (platform kubernetes);
#   x509-wrapped-only: the broker reads bind parameters only in the {"xsuaa": {...}} shape
#     and silently ignores the plain one (SAP documents both shapes);
#   abap-x509-key: the generated instance also allows x509 and has an x509 key
#     `abap-mtls-key` (an ABAP system's mTLS connection).
#   instance-secret: the generated key (cf-legacy: the Cloud Foundry key) is an old
#     instance-secret key (made before XSUAA's default became binding secrets on 19 January 2026).
VARIANTS = ("generated-xsappname-name", "hand-deployment", "cf-authorities", "kyma-owned",
            "x509-wrapped-only", "abap-x509-key", "instance-secret")


def parse_args(argv):
    p = argparse.ArgumentParser(description="fake SAP BTP for calmbind tests")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--preset", default="after-2023-10-16", choices=PRESETS)
    p.add_argument("--https", action="store_true", help="serve the main port over HTTPS (test CA)")
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--token-lifetime", type=int, default=3600)
    p.add_argument("--page-size", type=int, default=2)
    p.add_argument("--async-mode", choices=("sync", "async", "mixed"), default="mixed")
    p.add_argument("--op-polls", type=int, default=2,
                   help="polls of an operation answered 'in progress' before it succeeds")
    p.add_argument("--errors-style", choices=("alternate", "object", "array"), default="alternate",
                   help="shape of a failed operation's 'errors'")
    p.add_argument("--variant", action="append", choices=VARIANTS,
                   help="a documented variant of the preset's state (repeatable; see README)")
    p.add_argument("--ga-unrelated", type=int, default=3,
                   help="subaccounts of the global account that are not SAP Cloud ALM's "
                        "(global_account.py)")
    p.add_argument("--cis-rate-limit", default=None, metavar="N/S",
                   help="Cloud Management APIs: at most N requests per S seconds per endpoint "
                        "and client, then 429 (default: no limit)")
    tenants.add_args(p, PRESETS)
    args = p.parse_args(argv)
    if args.ga_unrelated < 0:
        p.error("--ga-unrelated must be >= 0")
    if args.cis_rate_limit:
        import global_account
        try:
            global_account.parse_rule(args.cis_rate_limit)
        except ValueError as e:
            p.error("--cis-rate-limit: %s" % e)
    args.tenant_preset_list = tenants.check_args(p, args, PRESETS)
    return args


def main(argv=None):
    # Modules that `import fakebtp` (plug-ins, control.py) must get this module, not a copy.
    sys.modules.setdefault("fakebtp", sys.modules[__name__])
    args = parse_args(argv if argv is not None else sys.argv[1:])
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    for f in ("ready", "port", "cert-port"):
        try:
            os.unlink(os.path.join(state_dir, f))
        except FileNotFoundError:
            pass
    app = App(Config(args), state_dir)
    if args.tenants:
        app.tenants.create(args.tenants, args.tenant_preset_list)
    app.ca = certs.CA(state_dir)
    app.ca.create()

    main_ctx = app.ca.server_context() if args.https else None
    srv = make_server(app, "main", main_ctx)
    cert_srv = make_server(app, "cert", app.ca.server_context(client_auth=True))
    app.port = srv.server_address[1]
    app.cert_port = cert_srv.server_address[1]

    import control  # noqa: E402  (core control endpoints)
    import sm       # noqa: E402
    import xsuaa    # noqa: E402
    control.register(app)
    xsuaa.register(app)
    sm.register(app)
    load_plugins(app)

    if args.tenants:
        tenants.setup(app, state_dir, sm.init_state, [sm] + app.plugins)
    else:
        sm.apply_preset(app, args.preset)
        for mod in app.plugins:
            if hasattr(mod, "apply_preset"):
                mod.apply_preset(app, args.preset)
        sm.write_files(app, state_dir)
        for mod in app.plugins:
            if hasattr(mod, "write_files"):
                mod.write_files(app, state_dir)

    for s in (srv, cert_srv):
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    write_text(os.path.join(state_dir, "port"), "%d\n" % app.port)
    write_text(os.path.join(state_dir, "cert-port"), "%d\n" % app.cert_port)
    write_text(os.path.join(state_dir, "ready"), "%d %d\n" % (app.port, app.cert_port))
    print("fakebtp: %s on %s (cert port %d), state %s" %
          ("%d tenants" % args.tenants if args.tenants else "preset " + args.preset, app.url("service-manager.localhost"), app.cert_port, state_dir),
          file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    srv.shutdown()
    cert_srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
