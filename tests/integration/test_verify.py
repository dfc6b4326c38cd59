#!/usr/bin/env python3
"""calmbind verify against the fake BTP: a Deployment key passes (0), a
monitoring-only key fails the Deployment scopes (6), a revoked binding or a
wrong secret is "credentials refused" (3), an unreachable token endpoint is 1,
a token of another zone is 6, and an x509 key works over mutual TLS. No run
prints a secret the fake issued. Keys are fetched from the fake's Service
Manager with plain urllib (independent of calmbind's own clients)."""
import json
import os
import socket
import ssl
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itest import CALMBIND, Suite, run  # noqa: E402

S = Suite("integration/verify")

try:
    from harness import FakeBTP  # noqa: E402
except ImportError as e:  # the fake is a sibling area; say so instead of crashing
    FakeBTP = None
    IMPORT_ERROR = str(e)

# curl resolves *.localhost to loopback by itself; Python's resolver may not.
_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, *args, **kw):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kw)


socket.getaddrinfo = _loopback_getaddrinfo

CALM_AUTHORITIES = ["$XSMASTERAPPNAME.imp-cdm-feature-display-ui",
                    "$XSMASTERAPPNAME.imp-cdm-feature-manage-ui"]


class SM:
    """Just enough of a Service Manager client to fetch and create keys."""

    def __init__(self, fake):
        self.fake = fake
        with open(fake.sm_key_path) as f:
            self.key = json.load(f)
        self.ctx = ssl.create_default_context(cafile=fake.ca_path)
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_id": self.key["clientid"],
                                       "client_secret": self.key["clientsecret"]}).encode()
        tok = self._call("POST", self.key["url"].rstrip("/") + "/oauth/token", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
        self.token = tok["access_token"]

    def _call(self, method, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        ctx = self.ctx if url.startswith("https:") else None
        with urllib.request.urlopen(req, timeout=20, context=ctx) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def api(self, method, path, body=None, **query):
        url = self.key["sm_url"].rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        data = json.dumps(body).encode() if body is not None else None
        return self._call(method, url, data, {"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})

    def one(self, path, field_query):
        items = self.api("GET", path, fieldQuery=field_query)["items"]
        assert len(items) == 1, f"{path} {field_query}: {len(items)} items"
        return items[0]

    def binding(self, name):
        return self.one("/v1/service_bindings", f"name eq '{name}'")

    def calm_plan_id(self):
        off = self.one("/v1/service_offerings", "catalog_name eq 'SAPCloudALMAPIs'")
        return self.one("/v1/service_plans",
                        f"catalog_name eq 'standard' and service_offering_id eq '{off['id']}'")["id"]

    def create_instance(self, name, credential_types):
        params = {"xs-security": {"xsappname": name, "authorities": CALM_AUTHORITIES,
                                  "oauth2-configuration": {"credential-types": credential_types}}}
        return self.api("POST", "/v1/service_instances",
                        {"name": name, "service_plan_id": self.calm_plan_id(), "parameters": params},
                        **{"async": "false"})

    def create_binding(self, name, instance_id, params=None):
        body = {"name": name, "service_instance_id": instance_id}
        if params:
            body["parameters"] = params
        self.api("POST", "/v1/service_bindings", body, **{"async": "false"})
        return self.binding(name)  # the GET shows the credentials once ready


TMP = tempfile.mkdtemp(prefix="calmbind-verify-")


def write_key(obj, name):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    os.chmod(path, 0o600)
    return path


def verify(fake, path, *extra):
    rc, out, err = run(["verify", path, "--cacert", fake.ca_path, "--timeout", "60"] + list(extra))
    leaked = [s for s in fake.issued_secrets() if len(s) >= 8 and (s in out or s in err)]
    S.check(f"verify {os.path.basename(path)} {' '.join(extra)}: no issued secret in the output",
            not leaked, f"{len(leaked)} secret(s) leaked")
    return rc, out, err


def expect(fake, what, path, want_rc, want_text, *extra):
    rc, out, err = verify(fake, path, *extra)
    S.eq(f"{what}: exit {want_rc}", rc, want_rc)
    S.check(f"{what}: says {want_text!r}", want_text in out + err, f"stdout={out!r} stderr={err!r}")
    S.check(f"{what}: no traceback", "traceback" not in (out + err).lower(), err)
    return out, err


def test_after_preset():
    with FakeBTP(preset="after-2023-10-16", https=True) as fake:
        sm = SM(fake)
        auto = sm.binding("calm-api-key-auto")
        path = write_key(auto, "auto-binding.json")  # the SM binding object, as btp prints it
        out, _ = expect(fake, "Deployment key (after 2023-10-16)", path, 0, "result: the key works for Deployment")
        S.check("Deployment key: both scopes reported",
                "imp-cdm-feature-display-ui yes, imp-cdm-feature-manage-ui yes" in out, out)
        expect(fake, "Deployment key, --scenario monitoring", path, 0, "(monitoring)", "--scenario", "monitoring")
        bare = write_key(auto["credentials"], "auto-bare.json")
        expect(fake, "bare key", bare, 0, "works for Deployment")

        # a token of another zone than the key says
        other = json.loads(json.dumps(auto["credentials"]))
        other["uaa"]["identityzoneid"] = "00000000-0000-4000-8000-000000000000"
        other["uaa"].pop("tenantid", None)
        expect(fake, "zone id mismatch", write_key(other, "other-zone.json"), 6,
               "is not uaa.identityzoneid 00000000-0000-4000-8000-000000000000")

        # wrong secret: refused
        wrong = json.loads(json.dumps(auto["credentials"]))
        wrong["uaa"]["clientsecret"] = "not-the-secret-" + "x" * 20
        out, err = expect(fake, "wrong secret", write_key(wrong, "wrong.json"), 3, "refused")
        S.check("wrong secret: the wrong secret is not echoed", "not-the-secret-" not in out + err, err)

        # x509 key: a new instance that allows x509, a binding with a certificate; mTLS at certurl
        inst = sm.create_instance("calm-x509-test", ["binding-secret", "x509"])
        xb = sm.create_binding("calm-x509-key", inst["id"],
                               {"credential-type": "x509",
                                "x509": {"key-length": 2048, "validity": 7, "validity-type": "DAYS"}})
        S.eq("x509 binding: credential-type", xb["credentials"]["uaa"].get("credential-type"), "x509")
        xpath = write_key(xb["credentials"], "x509.json")
        # a 7-day certificate is within the default --warn-days 30 (test_expiry.py): not judged here
        out, _ = expect(fake, "x509 key over mutual TLS", xpath, 0, "(mutual TLS)", "--warn-days", "6")
        S.check("x509 key: works for Deployment", "works for Deployment" in out, out)
        S.check("x509 key: token from certurl", ".authentication.cert.localhost:" in out, out)
        # the certificate of another binding does not open this client
        xb2 = sm.create_binding("calm-x509-key-2", inst["id"],
                                {"credential-type": "x509", "x509": {"validity": 7, "validity-type": "DAYS"}})
        mixed = json.loads(json.dumps(xb["credentials"]))
        mixed["uaa"]["certificate"] = xb2["credentials"]["uaa"]["certificate"]
        mixed["uaa"]["key"] = xb2["credentials"]["uaa"]["key"]
        fake.revoke(xb2["id"])
        expect(fake, "x509 key with a revoked certificate", write_key(mixed, "x509-mixed.json"), 3, "refused")

        # a binding-secret Deployment key, then revoked
        sb = sm.create_binding("calm-secret-key", inst["id"], {"credential-type": "binding-secret"})
        spath = write_key(sb, "secret-binding.json")
        expect(fake, "binding-secret key", spath, 0, "works for Deployment")
        fake.revoke(sb["id"])
        expect(fake, "revoked binding", spath, 3, "refused")

        # the key's own token endpoint is unreachable
        gone = json.loads(json.dumps(auto["credentials"]))
        sub = gone["uaa"]["identityzone"]
        gone["uaa"]["url"] = f"https://{sub}.authentication.localhost:1"
        expect(fake, "token endpoint unreachable", write_key(gone, "unreachable.json"), 1, "cannot get a token")

        # a broken key never reaches the network
        broken = json.loads(json.dumps(auto["credentials"]))
        del broken["uaa"]["clientsecret"]
        expect(fake, "broken key", write_key(broken, "broken.json"), 2, "uaa.clientsecret is missing")


def test_mid_preset():
    with FakeBTP(preset="mid-2023", https=True) as fake:
        sm = SM(fake)
        auto = sm.binding("calm-api-key-auto")
        path = write_key(auto["credentials"], "mid-auto.json")
        out, _ = expect(fake, "monitoring-only key (mid-2023), deployment", path, 6,
                        "token scope imp-cdm-feature-display-ui missing")
        S.check("monitoring-only key: manage-ui missing too", "imp-cdm-feature-manage-ui missing" in out, out)
        expect(fake, "monitoring-only key, --scenario monitoring", path, 0, "(monitoring)", "--scenario", "monitoring")
        # the VCAP export of it verifies the same
        rc, vcap, err = run(["export", path, "--format", "vcap"])
        S.eq("export vcap of the mid key: exit 0", rc, 0)
        expect(fake, "monitoring-only key from vcap", write_key(json.loads(vcap), "mid-vcap.json"), 6, "missing")


def main():
    if FakeBTP is None:
        S.check("fake BTP harness importable", False, IMPORT_ERROR)
        S.done()
    if not os.path.exists(CALMBIND):
        S.check("calmbind binary exists", False, CALMBIND)
        S.done()
    for t in (test_after_preset, test_mid_preset):
        try:
            t()
        except Exception as e:  # one broken fixture must not hide the other preset
            S.check(f"{t.__name__}: ran", False, f"{type(e).__name__}: {e}")
    S.done()


if __name__ == "__main__":
    main()
