#!/usr/bin/env python3
"""The real consumers of calmbind's outputs read them as they are and get a token from the
fake's XSUAA (over HTTPS with its own CA; x509 keys over mutual TLS):

- `--format vcap`: @sap/xsenv finds the SAPCloudALMAPIs entry, @sap/xssec takes a token with
  its uaa part; @sap-cloud-sdk/connectivity resolves the xsuaa entry by name
  (getDestination) and by label (serviceToken('xsuaa')) and points the destination at the
  Cloud ALM API;
- `--format env` (sourced by sh) and `dotenv` (node --env-file): the CALM_* variables,
  CALM_TENANT and CALM_REGION among them, are enough for @sap/xssec;
- `--format k8s-secret`: kubectl apply --dry-run=client takes the manifest (discovery from
  tests/fakebtp/kubeapi.py; --validate=false, since schema validation needs a real server's
  OpenAPI document), and the Secret, mounted as the kubelet mounts it, is read by @sap/xsenv.

The npm packages come from tests/consumers/package-lock.json (`npm ci` there; this test runs
it when node_modules is missing). Where node, npm's packages or kubectl cannot be had, the
checks that need them print "SKIP: ... not installable" (a line the summary shows); under
CI=true that is a failure instead: CI installs them (.ci/run)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

from itest import Suite, run, ROOT   # puts tests/fakebtp on sys.path
from harness import FakeBTP
from kubeapi import KubeAPI

S = Suite("consumers")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
CI = os.environ.get("CI") == "true"
HERE = os.path.join(ROOT, "tests", "consumers")
MODULES = os.path.join(HERE, "node_modules")
PACKAGES = ("@sap/xsenv", "@sap/xssec", "@sap-cloud-sdk/connectivity")


def unavailable(what, why):
    """A consumer that cannot be had: a loud line, or under CI=true a failure."""
    if CI:
        S.check("%s: installed (under CI=true a missing consumer fails)" % what, False, why)
    else:
        print("SKIP: consumers: %s not installable: %s" % (what, why), flush=True)
        sys.stderr.write("SKIP: %s not installable: %s\n" % (what, why))


def node_ready():
    """node and the locked npm packages, installed with `npm ci` if missing: None or why not."""
    if not shutil.which("node"):
        return "no node on PATH (Debian: apt-get install nodejs npm)"
    if not all(os.path.exists(os.path.join(MODULES, p, "package.json")) for p in PACKAGES):
        if not shutil.which("npm"):
            return "no npm on PATH (Debian: apt-get install npm)"
        try:
            p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True,
                               text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return "npm ci in tests/consumers timed out"
        if p.returncode != 0:
            return "npm ci in tests/consumers failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return None


def node_version_text():
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def node_has_env_file():
    v = node_version_text().lstrip("v").split(".")
    try:
        return (int(v[0]), int(v[1])) >= (20, 6)
    except (ValueError, IndexError):
        return False


def claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def consume(mode, env, *args, shell_source=None, env_file=None):
    """Runs tests/consumers/consume.js MODE under node; returns (rc, parsed output or None, stderr)."""
    node = ["node", "-r", os.path.join(HERE, "localhost.js")]
    if env_file:
        node.append("--env-file=" + env_file)
    cmd = node + [os.path.join(HERE, "consume.js"), mode] + list(args)
    if shell_source:
        cmd = ["sh", "-c", '. "$0" && exec "$@"', shell_source] + cmd
    full = {k: v for k, v in os.environ.items() if not k.startswith("CALM_") and k != "VCAP_SERVICES"}
    full.update(env)
    p = subprocess.run(cmd, cwd=HERE, env=full, capture_output=True, text=True, timeout=120)
    out = None
    if p.returncode == 0:
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
    return p.returncode, out, p.stderr


def token_check(what, fake, key, rc, out, err):
    """The consumer got a token from the fake's XSUAA, for this key's client."""
    ok = rc == 0 and out is not None and isinstance(out.get("token"), str)
    S.check(what + ": exit 0 with a token", ok, "rc %s: %s" % (rc, err[-1200:]))
    if not ok:
        return
    S.check(what + ": the token is one the fake's XSUAA issued", out["token"] in fake.issued_secrets(),
            "a token the fake did not hand out")
    S.eq(what + ": ... to the key's client", claims(out["token"]).get("client_id"), key["uaa"]["clientid"])


def export(key_path, fmt, *extra):
    rc, text, err = run(["export", key_path, "--format", fmt] + list(extra))
    S.eq("export --format %s %s: exit 0" % (fmt, " ".join(extra)), rc, 0)
    if rc != 0:
        print("#   " + err.strip().replace("\n", "\n#   "))
    return text


def vcap_checks(fake, key_path, key, label):
    text = export(key_path, "vcap", "--name", "calm-api")
    if not text:
        return
    doc = json.loads(text)
    entry = doc.get("xsuaa", [{}])[0]
    S.eq(label + "vcap: the SDK's entry is label xsuaa, named <name>-xsuaa, tagged",
         (entry.get("label"), entry.get("name"), entry.get("tags")), ("xsuaa", "calm-api-xsuaa",
                                                                     ["xsuaa", "SAPCloudALMAPIs"]))
    S.eq(label + "vcap: the SAPCloudALMAPIs entry is still the key as it is",
         doc.get("SAPCloudALMAPIs", [{}])[0].get("credentials"), key)
    env = {"VCAP_SERVICES": json.dumps(doc), "NODE_EXTRA_CA_CERTS": fake.ca_path}
    rc, out, err = consume("vcap-xsenv", env)
    token_check(label + "@sap/xsenv + @sap/xssec read the SAPCloudALMAPIs entry", fake, key, rc, out, err)
    if out:
        S.eq(label + "... and its Cloud ALM API URL", out.get("url"), key["endpoints"]["Api"])
    rc, out, err = consume("vcap-sdk", env, "calm-api-xsuaa")
    token_check(label + "@sap-cloud-sdk/connectivity getDestination('calm-api-xsuaa')", fake, key, rc, out, err)
    if out:
        S.eq(label + "... an OAuth2ClientCredentials destination to the Cloud ALM API",
             (out.get("authentication"), out.get("url")), ("OAuth2ClientCredentials", key["endpoints"]["Api"]))
        S.check(label + "... and serviceToken('xsuaa') resolves the same entry by label",
                out.get("label_token") in fake.issued_secrets()
                and claims(out["label_token"]).get("client_id") == key["uaa"]["clientid"], "no token by label")


def env_checks(fake, key_path, key, tmp, label, x509):
    # the fake's Cloud ALM host is <subdomain>.eu10.alm.localhost (tests/fakebtp/README.md)
    want_vars = {"CALM_TENANT": key["uaa"]["identityzone"], "CALM_REGION": "eu10",
                 "CALM_API_URL": key["endpoints"]["Api"], "CALM_CLIENT_ID": key["uaa"]["clientid"]}
    sh_file = os.path.join(tmp, "calm.env")
    with open(sh_file, "w") as f:
        f.write(export(key_path, "env"))
    rc, out, err = consume("env", {"NODE_EXTRA_CA_CERTS": fake.ca_path}, shell_source=sh_file)
    token_check(label + "env (sh . file): @sap/xssec with the CALM_* variables", fake, key, rc, out, err)
    if out:
        got = {k: out["vars"].get(k) for k in want_vars}
        S.eq(label + "... CALM_TENANT and CALM_REGION come from the key's URLs", got, want_vars)
    if x509:
        rc, _, err = run(["export", key_path, "--format", "dotenv"])
        S.check(label + "dotenv refuses the x509 key's multi-line PEM (exit 2, naming the variable)",
                rc == 2 and "CALM_CLIENT_CERTIFICATE" in err, "rc %s: %s" % (rc, err))
        return
    if not node_has_env_file():
        unavailable("node --env-file (Node.js 20.6 or later)", "node " + node_version_text())
        return
    dotenv = os.path.join(tmp, "calm.dotenv")
    with open(dotenv, "w") as f:
        f.write(export(key_path, "dotenv"))
    rc, out, err = consume("env", {"NODE_EXTRA_CA_CERTS": fake.ca_path}, env_file=dotenv)
    token_check(label + "dotenv (node --env-file): @sap/xssec with the CALM_* variables", fake, key, rc, out, err)
    if out:
        got = {k: out["vars"].get(k) for k in want_vars}
        S.eq(label + "... CALM_TENANT and CALM_REGION", got, want_vars)


def mount(secret, root):
    """What the kubelet does with a Secret volume: one file per entry, named by its key, in a
    directory; the binding's directory name is what the service binding spec calls its name."""
    d = os.path.join(root, secret["metadata"]["name"])
    os.makedirs(d)
    for k, v in (secret.get("data") or {}).items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(base64.b64decode(v))
    for k, v in (secret.get("stringData") or {}).items():
        with open(os.path.join(d, k), "w") as f:
            f.write(v)
    return d


def kubectl_apply(kube, manifest):
    p = subprocess.run(["kubectl", "apply", "--dry-run=client", "--validate=false", "-o", "json", "-f", manifest],
                       env=dict(os.environ, **kube.env()), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def k8s_checks(fake, key_path, key, tmp, label, kube):
    manifest = os.path.join(tmp, "secret.json")
    rc, _, err = run(["export", key_path, "--format", "k8s-secret", "--secret-name", "calm-api-key",
                      "--namespace", "calm", "--out", manifest])
    if not S.eq(label + "export --format k8s-secret --out: exit 0", rc, 0):
        print("#   " + err.strip())
        return
    S.eq(label + "... the manifest is 0600", os.stat(manifest).st_mode & 0o777, 0o600)
    text = open(manifest).read()
    doc = json.loads(text)
    S.eq(label + "... a v1 Opaque Secret with the name and namespace asked for",
         (doc.get("apiVersion"), doc.get("kind"), doc.get("type"), doc["metadata"].get("name"),
          doc["metadata"].get("namespace")), ("v1", "Secret", "Opaque", "calm-api-key", "calm"))
    S.check(label + "... every stringData value is a string (what the Secret schema takes)",
            all(isinstance(v, str) for v in doc.get("stringData", {}).values()), sorted(doc.get("stringData", {})))
    if kube is None:
        return
    rc, out, err = kubectl_apply(kube, manifest)
    S.eq(label + "kubectl apply --dry-run=client takes the manifest", rc, 0)
    if rc != 0:
        print("#   " + err.strip().replace("\n", "\n#   "))
        return
    applied = json.loads(out)
    S.eq(label + "... the object kubectl would send: Secret calm/calm-api-key",
         (applied.get("kind"), applied["metadata"].get("namespace"), applied["metadata"].get("name")),
         ("Secret", "calm", "calm-api-key"))
    S.eq(label + "... with the stringData calmbind wrote", applied.get("stringData"), doc["stringData"])
    S.check(label + "... after asking the (fake) API server for the object",
            ("GET", "/api/v1/namespaces/calm/secrets/calm-api-key") in kube.requests, kube.requests[-5:])
    root = os.path.join(tmp, "bindings")
    mount(applied, root)
    rc, out, err = consume("mounted", {"SERVICE_BINDING_ROOT": root, "NODE_EXTRA_CA_CERTS": fake.ca_path})
    token_check(label + "the Secret mounted as a volume: @sap/xsenv + @sap/xssec", fake, key, rc, out, err)
    if out:
        S.eq(label + "... a binding of type SAPCloudALMAPIs, plan standard, named after the Secret",
             (out.get("type"), out.get("plan"), out.get("name"), out.get("url")),
             ("SAPCloudALMAPIs", "standard", "calm-api-key", key["endpoints"]["Api"]))
    # what `kubectl get secret -o json` shows (data, base64) reads back to the same key
    listed = dict(applied)
    listed["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in applied["stringData"].items()}
    del listed["stringData"]
    back = os.path.join(tmp, "listed.json")
    with open(back, "w") as f:
        json.dump(listed, f)
    rc, again, err = run(["export", back, "--format", "json"])
    S.check(label + "the Secret as kubectl get shows it (data, base64) reads back to the key",
            rc == 0 and json.loads(again) == key, "rc %s: %s" % (rc, err[-300:]))


def fleet_checks(tmp, kube):
    """fleet --format k8s-secret: one Secret per tenant, named after it (or its secret_name
    field), in fleet's --namespace; fleet --command verify reads the Secrets back."""
    with FakeBTP(tenants=2) as fake:
        inv = os.path.join(tmp, "fleet.json")
        with open(inv, "w") as f:
            json.dump({"tenants": [{"name": "Cust01_Prod", "sm_key": fake.tenants[0].sm_key_path},
                                   {"name": "cust02", "sm_key": fake.tenants[1].sm_key_path,
                                    "secret_name": "calm-cust02", "namespace": "team2"}]}, f)
        out = os.path.join(tmp, "fleet-out")
        rc, _, err = run(["fleet", inv, "--format", "k8s-secret", "--namespace", "calm", "--out-dir", out], env=ENV)
        S.eq("fleet --format k8s-secret: exit 0", rc, 0)
        if rc != 0:
            print("#   " + err.strip().replace("\n", "\n#   "))
            return
        meta = [json.load(open(os.path.join(out, n + ".json")))["metadata"] for n in ("Cust01_Prod", "cust02")]
        S.eq("... a Secret per tenant: named after it, or as its secret_name field says",
             [(m["namespace"], m["name"]) for m in meta], [("calm", "cust01-prod"), ("team2", "calm-cust02")])
        rc, _, err = run(["fleet", inv, "--command", "verify", "--format", "k8s-secret", "--out-dir", out], env=ENV)
        S.eq("fleet --command verify reads the Secrets back: exit 0", rc, 0)
        if kube is not None:
            rc, _, err = kubectl_apply(kube, os.path.join(out, "cust02.json"))
            S.eq("... and kubectl apply --dry-run=client takes them", rc, 0)


def main():
    why = node_ready()
    node_ok = why is None
    if not node_ok:
        unavailable("the npm consumers (%s)" % ", ".join(PACKAGES), why)
    kube_ok = shutil.which("kubectl") is not None
    if not kube_ok:
        unavailable("kubectl (Debian: kubernetes-client)", "no kubectl on PATH")
    tmp = tempfile.mkdtemp(prefix="calm-consumers-")
    kube = KubeAPI(tmp).start() if kube_ok else None
    try:
        with FakeBTP(preset="after-2023-10-16", https=True) as fake:
            for ctype in ("binding-secret", "x509"):
                label = "%s: " % ctype
                d = os.path.join(tmp, ctype)
                os.makedirs(d)
                key_path = os.path.join(d, "key.json")
                rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--cacert", fake.ca_path,
                                  "--credential-type", ctype, "--out", key_path, "--timeout", "60",
                                  "--instance-name" if ctype == "x509" else "--scenario",
                                  "calm-x509" if ctype == "x509" else "deployment"], env=ENV)
                if not S.eq(label + "get: exit 0", rc, 0):
                    print("#   " + err.strip().replace("\n", "\n#   "))
                    continue
                key = json.load(open(key_path))
                k8s_checks(fake, key_path, key, d, label, kube)
                if node_ok:
                    vcap_checks(fake, key_path, key, label)
                    env_checks(fake, key_path, key, d, label, ctype == "x509")
            # bad names are usage errors naming the option, before any request
            before = len(fake.requests())
            for args, opt in ((["--format", "k8s-secret", "--namespace", "Calm"], "--namespace"),
                              (["--format", "k8s-secret", "--secret-name", "calm_key"], "--secret-name"),
                              (["--format", "k8s-secret", "--secret-name", "-calm"], "--secret-name"),
                              (["--secret-name", "calm-key"], "--secret-name"),
                              (["--format", "vcap", "--namespace", "ops"], "--namespace")):
                rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--cacert", fake.ca_path,
                                  "--out", os.path.join(tmp, "never.json")] + args, env=ENV)
                S.check("get %s: exit 2 naming %s" % (" ".join(args), opt),
                        rc == 2 and err.startswith("error: " + opt) and err.count("\n") == 1, "rc %s: %s" % (rc, err))
                rc, _, err = run(["export", fake.sm_key_path] + args)
                S.check("export %s: exit 2 naming %s" % (" ".join(args), opt),
                        rc == 2 and err.startswith("error: " + opt), "rc %s: %s" % (rc, err))
            S.eq("... and no request was sent", len(fake.requests()), before)
            # get writes the Secret itself, named and namespaced as asked
            out = os.path.join(tmp, "get-secret.json")
            rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--cacert", fake.ca_path, "--format", "k8s-secret",
                              "--secret-name", "calm-key", "--namespace", "ops", "--out", out, "--timeout", "60"],
                             env=ENV)
            S.eq("get --format k8s-secret --secret-name --namespace: exit 0", rc, 0)
            if rc == 0:
                doc = json.load(open(out))
                S.eq("... the Secret ops/calm-key, 0600",
                     (doc["metadata"].get("namespace"), doc["metadata"].get("name"), os.stat(out).st_mode & 0o777),
                     ("ops", "calm-key", 0o600))
                if kube is not None:
                    rc, _, err = kubectl_apply(kube, out)
                    S.eq("... which kubectl apply --dry-run=client takes", rc, 0)
        fleet_checks(tmp, kube)
    finally:
        if kube is not None:
            kube.stop()
        shutil.rmtree(tmp, ignore_errors=True)


main()
S.done()
