"""Start/stop the fake BTP from Python tests.

    from harness import FakeBTP
    with FakeBTP(preset="after-2023-10-16") as fake:
        ... fake.url, fake.sm_key_path, fake.requests(), fake.fault(action="reset", path="/v1/") ...

    # multi-tenant: N subaccounts behind one port, presets cycled over the tenants
    with FakeBTP(tenants=3, presets=["after-2023-10-16", "mid-2023", "before-2023-06-12"]) as fake:
        for t in fake.tenants:            # Tenant: name, subaccount, preset, sm_key_path, ...
            ... t.sm_key_path, t.cis_key_path, fake.requests(tenant=t.name) ...
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKEBTP = os.path.join(HERE, "fakebtp.py")


class Tenant:
    """One subaccount of a multi-tenant fake (from its tenants.json)."""

    def __init__(self, rec):
        self.name = rec["name"]
        self.subdomain = rec["subdomain"]
        self.subaccount = rec["subaccount"]
        self.preset = rec["preset"]
        self.dir = rec["dir"]
        self.url_prefix = rec["url_prefix"]
        self.sm_key_path = rec["sm_key"]
        self.sm_key_x509_path = rec.get("sm_key_x509")     # only with tenant_x509=True
        self.cis_key_path = rec.get("cis_key")
        self.cf_env_path = rec.get("cf_env")

    def sm_key(self):
        with open(self.sm_key_path) as f:
            return json.load(f)

    def __repr__(self):
        return "<Tenant %s %s>" % (self.name, self.preset)


class FakeBTP:
    def __init__(self, preset="after-2023-10-16", https=False, token_lifetime=None, latency_ms=0,
                 page_size=None, async_mode=None, op_polls=None, errors_style=None,
                 state_dir=None, keep=False, ready_timeout=None, tenants=0, presets=None,
                 tenant_x509=False, variants=(), ga_unrelated=None, cis_rate_limit=None):
        self.preset = preset
        self.https = https
        self.args = []
        self.tenant_count = int(tenants or 0)
        if self.tenant_count:
            self.args += ["--tenants", str(self.tenant_count)]
            if presets:
                self.args += ["--tenant-presets", ",".join(presets)]
            if tenant_x509:
                self.args.append("--tenant-x509")
        elif presets or tenant_x509:
            raise ValueError("presets and tenant_x509 need tenants=N")
        if ready_timeout is None:   # about 2 ms per tenant to set up, more with x509 keys
            ready_timeout = 10.0 + self.tenant_count * (0.3 if tenant_x509 else 0.01)
        if https:
            self.args.append("--https")
        for flag, val in (("--token-lifetime", token_lifetime), ("--latency-ms", latency_ms or None),
                          ("--page-size", page_size), ("--async-mode", async_mode),
                          ("--op-polls", op_polls), ("--errors-style", errors_style),
                          ("--ga-unrelated", ga_unrelated), ("--cis-rate-limit", cis_rate_limit)):
            if val is not None:
                self.args += [flag, str(val)]
        for v in variants:
            self.args += ["--variant", v]
        self._own_dir = state_dir is None
        self.dir = state_dir or tempfile.mkdtemp(prefix="fakebtp-")
        self.keep = keep
        self.ready_timeout = ready_timeout
        self.proc = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self):
        cmd = [sys.executable, FAKEBTP, "--state-dir", self.dir, "--preset", self.preset] + self.args
        self._stderr = open(os.path.join(self.dir, "fakebtp.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self._stderr, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + self.ready_timeout
        ready = os.path.join(self.dir, "ready")
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise RuntimeError("fakebtp exited with %s: %s" % (self.proc.returncode,
                                                                   self._read_stderr()))
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("fakebtp not ready after %.0f s: %s" % (self.ready_timeout,
                                                                           self._read_stderr()))
            time.sleep(0.05)
        with open(os.path.join(self.dir, "port")) as f:
            self.port = int(f.read().strip())
        with open(os.path.join(self.dir, "cert-port")) as f:
            self.cert_port = int(f.read().strip())
        self.scheme = "https" if self.https else "http"
        self.url = "%s://service-manager.localhost:%d" % (self.scheme, self.port)
        self.control_url = "%s://localhost:%d" % (self.scheme, self.port)
        self.sm_key_path = os.path.join(self.dir, "sm-key.json")
        self.sm_key_x509_path = os.path.join(self.dir, "sm-key-x509.json")
        self.cis_key_path = os.path.join(self.dir, "cis-key.json")            # plan central
        self.cis_local_key_path = os.path.join(self.dir, "cis-local-key.json")  # plan local
        # a local-plan key of another subaccount of the global account
        self.cis_local_key_other_path = os.path.join(self.dir, "cis-local-key-other.json")
        self.ca_path = os.path.join(self.dir, "ca.pem")
        with open(os.path.join(self.dir, "subaccount")) as f:
            self.subaccount = f.read().strip()
        self.tenants = []
        if self.tenant_count:
            with open(os.path.join(self.dir, "tenants.json")) as f:
                self.tenants = [Tenant(r) for r in json.load(f)["tenants"]]
        self.cf_env = {}
        cf_env = os.path.join(self.dir, "cf.env")
        if os.path.exists(cf_env):
            with open(cf_env) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#") and "=" in line:
                        k, v = line.split("=", 1)
                        if k.startswith("export "):
                            k = k[7:]
                        self.cf_env[k.strip()] = v.strip().strip("'\"")
        return self

    def _read_stderr(self):
        try:
            with open(os.path.join(self.dir, "fakebtp.stderr")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir and not self.keep and not os.environ.get("FAKEBTP_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    # --- control ---------------------------------------------------------------------------
    def _ssl(self):
        if not self.https:
            return None
        return ssl.create_default_context(cafile=self.ca_path)

    def tenant(self, name):
        for t in self.tenants:
            if t.name == name:
                return t
        raise KeyError("no tenant %r" % name)

    def control(self, method, path, body=None, tenant=None):
        """A /_fake/ request; with tenant= it acts on that tenant's state."""
        data = json.dumps(body).encode() if body is not None else None
        if tenant is not None:
            path = self.tenant(tenant).url_prefix + path
        req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=self._ssl()) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def fault(self, **rule):
        """Add a fault rule (see tests/fakebtp/README.md); returns the stored rule.
        tenant="t0002" limits it to one tenant's requests (faults are shared otherwise)."""
        return self.control("POST", "/_fake/faults", rule)["rules"][0]

    def clear_faults(self):
        self.control("DELETE", "/_fake/faults")

    def expire_tokens(self):
        self.control("POST", "/_fake/expire_tokens", {})

    def revoke(self, binding_id, tenant=None):
        self.control("POST", "/_fake/revoke/" + binding_id, {}, tenant=tenant)

    def state(self, tenant=None):
        return self.control("GET", "/_fake/state", tenant=tenant)

    def stats(self):
        """{"in_flight": n, "max_in_flight": m}: API requests (all tenants) answered at once."""
        return self.control("GET", "/_fake/stats")

    def cis_knobs(self, **knobs):
        """POST /_fake/plugins/cis (e.g. rate_limit="5/3", sm_bindings="v1"); returns them all."""
        return self.control("POST", "/_fake/plugins/cis", knobs)

    def set_entitled(self, flag, tenant=None):
        self.control("PATCH", "/_fake/state", {"entitled": bool(flag)}, tenant=tenant)

    # --- records ---------------------------------------------------------------------------
    def requests(self, tenant=None):
        """Logged requests (dicts); with tenant= only that tenant's."""
        out = self._requests()
        if tenant is not None:
            out = [r for r in out if r.get("tenant") == tenant]
        return out

    def _requests(self):
        path = os.path.join(self.dir, "requests.jsonl")
        if not os.path.exists(path):
            return []
        out = []
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        return out

    def mutations(self, tenant=None):
        """Non-GET requests to SM, CF and the cis services (token requests excluded)."""
        out = []
        for r in self.requests(tenant):
            if r["method"] in ("GET", "HEAD", "OPTIONS"):
                continue
            if r["path"].endswith("/oauth/token"):
                continue
            h = r.get("host", "")
            if (h.startswith("service-manager.") or h.startswith("api.cf.") or
                    h.startswith("accounts-service.") or h.startswith("entitlements-service.") or
                    h.startswith("saas-manager.") or r["path"].startswith("/v1/service_") or
                    r["path"].startswith("/v3/")):
                out.append(r)
        return out

    def issued_secrets(self):
        path = os.path.join(self.dir, "issued-secrets.txt")
        if not os.path.exists(path):
            return []
        out = []
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                if line.startswith('"'):
                    try:
                        line = json.loads(line)
                    except ValueError:
                        pass
                out.append(line)
        return out

    def sm_key(self):
        with open(self.sm_key_path) as f:
            return json.load(f)
