#!/usr/bin/env python3
"""calmbind check / export against key files: good keys of each kind, hostile
ones (the verdict and exit code every time, no secret in any message), the four
formats (env evaluated by sh gives back every value byte for byte, vcap and
json parse back to the same key), --out (0600, replaces), and the refusal to
print a secret to a terminal."""
import copy
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itest import CALMBIND, Suite, run, run_tty  # noqa: E402

S = Suite("integration/key_commands")

SECRET = "88888888-aaaa-4bbb-8ccc-000000000008$FAKE-SECRET-VALUE="
CERT = "-----BEGIN CERTIFICATE-----\nMIIFAKECERTIFICATE\n-----END CERTIFICATE-----\n"
PKEY = "-----BEGIN PRIVATE KEY-----\nMIIFAKEPRIVATEKEY\n-----END PRIVATE KEY-----\n"


def secret_key():
    return {
        "endpoints": {"Api": "https://example-tenant.eu10.alm.cloud.sap/api"},
        "uaa": {
            "clientid": "sb-calm-api-demo!b9999|calm!b111",
            "clientsecret": SECRET,
            "credential-type": "binding-secret",
            "url": "https://example-tenant.authentication.eu10.hana.ondemand.com",
            "uaadomain": "authentication.eu10.hana.ondemand.com",
            "identityzone": "example-tenant",
            "identityzoneid": "66666666-aaaa-4bbb-8ccc-000000000006",
            "tenantid": "66666666-aaaa-4bbb-8ccc-000000000006",
            "tenantmode": "dedicated",
            "xsappname": "calm-api-demo!b9999|calm!b111",
            "verificationkey": "-----BEGIN PUBLIC KEY-----\nFAKE\n-----END PUBLIC KEY-----",
            "aFutureField": {"x": [1, 2]},
        },
    }


def instance_key():
    k = secret_key()
    k["uaa"]["credential-type"] = "instance-secret"
    k["uaa"]["clientsecret"] = "FAKE-SECRET-0000-instance"
    return k


def x509_key():
    k = secret_key()
    del k["uaa"]["clientsecret"]
    k["uaa"]["credential-type"] = "x509"
    k["uaa"]["certificate"] = CERT
    k["uaa"]["key"] = PKEY
    k["uaa"]["certurl"] = "https://example-tenant.authentication.cert.eu10.hana.ondemand.com"
    return k


TMP = tempfile.mkdtemp(prefix="calmbind-keycmd-")
_n = [0]


def write(content, name=None):
    _n[0] += 1
    path = os.path.join(TMP, name or f"key{_n[0]}.json")
    data = content if isinstance(content, (str, bytes)) else json.dumps(content)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def secrets_of(key):
    uaa = key.get("uaa") if isinstance(key, dict) else None
    if not isinstance(uaa, dict):
        return []
    return [v for f in ("clientsecret", "key", "certificate")
            if isinstance((v := uaa.get(f)), str) and len(v) >= 6]


def no_secret(what, texts, secrets):
    leaked = [s for s in secrets for t in texts if s in t]
    # also a recognisable inner part of multi-line secrets
    leaked += [p for p in ("MIIFAKEPRIVATEKEY", "MIIFAKECERTIFICATE", "FAKE-SECRET")
               if any(p in s for s in secrets) and any(p in t for t in texts)]
    S.check(what + ": no secret in the output", not leaked, f"leaked {leaked!r}")


# ------------------------------------------------------------------ check

def check_case(what, content, want_rc, want_text, args=(), secrets=None):
    path = write(content)
    rc, out, err = run(["check", path] + list(args))
    S.eq(f"check {what}: exit", rc, want_rc)
    S.check(f"check {what}: says {want_text!r}", want_text in out + err, f"stdout={out!r} stderr={err!r}")
    S.check(f"check {what}: no traceback", "traceback" not in (out + err).lower(), err)
    if secrets is None:
        secrets = secrets_of(content) if isinstance(content, dict) else []
        if isinstance(content, dict) and "credentials" in content:
            secrets = secrets_of(content["credentials"])
    no_secret(f"check {what}", [out, err], secrets + [SECRET])
    return out, err


def mutate(fn, base=secret_key):
    k = base()
    fn(k)
    return k


def test_check():
    out, _ = check_case("binding-secret key", secret_key(), 0, "result: passes the Landscape Management upload rules")
    for line in ("type:        binding-secret", "tenant:      example-tenant", "client:      sb-calm-api-demo!b9999|calm!b111",
                 "token URL:   https://example-tenant.authentication.eu10.hana.ondemand.com/oauth/token"):
        S.check(f"check summary has {line!r}", line in out, out)
    check_case("instance-secret key in a CF envelope", {"credentials": instance_key()}, 0, "type:        instance-secret")
    check_case("an instance-secret key is called an old key, replaced by rotate", {"credentials": instance_key()}, 0,
               "new bindings get binding secrets since 19 January 2026: calmbind rotate replaces it")
    check_case("SM binding object", {"id": "b1", "name": "calm-key", "service_instance_id": "i1",
                                     "credentials": secret_key()}, 0, "binding:     calm-key")
    check_case("VCAP_SERVICES", {"SAPCloudALMAPIs": [{"label": "SAPCloudALMAPIs", "name": "v",
                                                      "credentials": secret_key()}]}, 0, "(VCAP_SERVICES)")
    check_case("endpoints.API spelling", mutate(lambda k: k.update(endpoints={"API": k["endpoints"]["Api"]})), 0,
               "spelled 'API'")
    check_case("x509 for Landscape Management", x509_key(), 6,
               "uaa.credential-type is x509: fine for /SDF/ALM_SETUP (mutual TLS via uaa.certurl), "
               "but Landscape Management accepts only binding-secret or instance-secret keys")
    check_case("x509 for /SDF/ALM_SETUP", x509_key(), 0, "passes the checks for /SDF/ALM_SETUP", ["--for", "alm-setup"])
    check_case("--tenant match", secret_key(), 0, "passes", ["--tenant", "example-tenant"])
    check_case("--tenant mismatch", secret_key(), 6, "is not the tenant 'acme'", ["--tenant", "acme"])

    # not a key at all: bad input (exit 2), as in every command
    for what, content, text in [
            ("invalid JSON", '{"uaa": {"clientsecret": "' + SECRET + '",}}', "invalid JSON"),
            ("truncated JSON", '{"uaa": {"clientsecret": "' + SECRET + '"', "truncated"),
            ("empty file", "", "empty"),
            ("top-level array", "[1,2]", "not an object")]:
        check_case(what, content, 2, text)
    hostile = [
        ("no uaa", '{"endpoints": {"Api": "https://x.example/api"}}', "uaa is missing"),
        ("missing clientsecret", mutate(lambda k: k["uaa"].pop("clientsecret")), "uaa.clientsecret is missing"),
        ("null clientsecret", json.dumps(secret_key()).replace(json.dumps(SECRET), "null"), "uaa.clientsecret is missing"),
        ("empty clientsecret", mutate(lambda k: k["uaa"].update(clientsecret="")), "uaa.clientsecret is empty"),
        ("numeric clientsecret", mutate(lambda k: k["uaa"].update(clientsecret=12345)), "uaa.clientsecret must be a string, not a number"),
        ("missing clientid", mutate(lambda k: k["uaa"].pop("clientid")), "uaa.clientid is missing"),
        ("clientid array", mutate(lambda k: k["uaa"].update(clientid=["a"])), "uaa.clientid must be a string, not an array"),
        ("uaa a string", mutate(lambda k: k.update(uaa="x")), "uaa must be an object, not a string"),
        ("missing identityzone", mutate(lambda k: k["uaa"].pop("identityzone")), "uaa.identityzone is missing"),
        ("zone not matching url", mutate(lambda k: k["uaa"].update(identityzone="other-tenant")),
         "uaa.identityzone 'other-tenant' does not match uaa.url"),
        ("missing credential-type", mutate(lambda k: k["uaa"].pop("credential-type")), "uaa.credential-type is missing"),
        ("unknown credential-type", mutate(lambda k: k["uaa"].update(**{"credential-type": "magic"})), "'magic' is unknown"),
        ("http uaa.url", mutate(lambda k: k["uaa"].update(url="http://example-tenant.authentication.eu10.hana.ondemand.com")),
         "uaa.url must use https, not http"),
        ("http Api", mutate(lambda k: k["endpoints"].update(Api="http://example-tenant.eu10.alm.cloud.sap/api")),
         "endpoints.Api must use https, not http"),
        ("Api without /api", mutate(lambda k: k["endpoints"].update(Api="https://example-tenant.eu10.alm.cloud.sap")),
         "endpoints.Api must end in /api"),
        ("Api with $(...)", mutate(lambda k: k["endpoints"].update(Api="https://x.example/$(id)/api")),
         "endpoints.Api has characters"),
        ("Api with a newline", mutate(lambda k: k["endpoints"].update(Api="https://x.example/api\nEVIL=1")),
         "endpoints.Api contains a line break"),
        ("missing Api", mutate(lambda k: k.pop("endpoints")), "endpoints.Api is missing"),
        ("secret with a newline", mutate(lambda k: k["uaa"].update(clientsecret="S3CRET-line1\nline2")),
         "uaa.clientsecret contains a line break"),
        ("clientid with a newline", mutate(lambda k: k["uaa"].update(clientid="sb-x\nEVIL=1")),
         "uaa.clientid contains a line break"),
        ("x509 without key", mutate(lambda k: k["uaa"].pop("key"), x509_key), "uaa.key is missing"),
    ]
    for what, content, text in hostile:
        check_case(what, content, 6, text)

    # values that are odd but legal pass, and are never echoed when secret
    for what, val in [("quotes", "S3CRET-it's \"q\""), ("$(...)", "S3CRET-$(touch /tmp/x)"),
                      ("backticks", "S3CRET-`id`"), ("non-ASCII", "S3CRET-ünï€秘")]:
        k = mutate(lambda k: k["uaa"].update(clientsecret=val))
        check_case(f"secret with {what}", k, 0, "passes", secrets=[val, "S3CRET-"])

    # file problems: exit 2
    rc, out, err = run(["check", os.path.join(TMP, "does-not-exist.json")])
    S.eq("check missing file: exit 2", rc, 2)
    S.check("check missing file: names it", "does-not-exist.json" in err, err)
    rc, out, err = run(["check", TMP])
    S.eq("check a directory: exit 2", rc, 2)
    rc, out, err = run(["check"])
    S.eq("check without FILE: exit 2", rc, 2)
    # a broken file gets one line
    path = write('{"uaa": {"clientsecret": "' + SECRET + '",}}')
    rc, out, err = run(["check", path])
    lines = [l for l in err.splitlines() if l.strip()]
    S.check("check invalid JSON: one line on stderr", len(lines) == 1 and "invalid JSON" in lines[0], err)
    S.eq("check invalid JSON: exit 2 (not a key)", rc, 2)
    # stdin
    rc, out, err = run(["check", "-"], stdin=json.dumps(secret_key()))
    S.eq("check - (stdin): exit 0", rc, 0)


# ----------------------------------------------------------------- export

def export(path, fmt, extra=(), **kw):
    return run(["export", path, "--format", fmt] + list(extra), **kw)


def export_bytes(path, fmt):
    """Like export, but stdout as bytes (text mode would turn CR LF into LF)."""
    proc = subprocess.run([CALMBIND, "export", path, "--format", fmt], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")


HOSTILE_VALUES = [
    "it's \"quoted\" 'twice'",
    "line1\nline2\n",
    "$(touch PWNED)",
    "`touch PWNED`",
    "ünïcødé €uro 秘密",
    "'; touch PWNED; echo '",
    "back\\slash \\n not a newline",
    "tab\there\r\ncrlf",
    "${HOME} $HOME !! * ? [a] ~ # & | < >",
    "\n",
    "'",
]


def sh_values(env_text, names, shell):
    """Sources env_text in shell and returns {name: bytes} exactly."""
    d = tempfile.mkdtemp(dir=TMP)
    envfile = os.path.join(d, "calm.env")
    with open(envfile, "wb") as f:
        f.write(env_text)
    script = '. "$1"; shift; for n in "$@"; do eval "printf %s \\"\\${$n}\\"" > "$n.val"; done'
    proc = subprocess.run(shell + ["-c", script, "sh", envfile] + names, cwd=d,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    vals = {}
    for n in names:
        p = os.path.join(d, n + ".val")
        vals[n] = open(p, "rb").read() if os.path.exists(p) else None
    return vals, os.path.exists(os.path.join(d, "PWNED")), proc


def test_env_round_trip():
    shells = [["sh"]]
    if shutil.which("bash"):
        shells.append(["bash", "--posix"])
    for i, val in enumerate(HOSTILE_VALUES):
        k = secret_key()
        k["uaa"]["clientsecret"] = "S3CRET-" + val
        k["uaa"]["identityzoneid"] = val
        k["uaa"]["tenantid"] = "t-" + val
        if "\n" not in val and "\r" not in val and "\t" not in val:
            k["uaa"]["clientid"] = "sb-" + val
        path = write(k)
        rc, out, err = export_bytes(path, "env")
        S.eq(f"env #{i}: exit 0", rc, 0)
        no_secret(f"env #{i} stderr", [err], ["S3CRET-"])
        want = {
            "CALM_CLIENT_SECRET": "S3CRET-" + val,
            "CALM_IDENTITY_ZONE_ID": val,
            "CALM_TENANT_ID": "t-" + val,
            "CALM_CLIENT_ID": k["uaa"]["clientid"],
            "CALM_API_URL": k["endpoints"]["Api"],
            "CALM_ROOT_URL": "https://example-tenant.eu10.alm.cloud.sap",
            "CALM_TOKEN_URL": k["uaa"]["url"] + "/oauth/token",
            "CALM_UAA_URL": k["uaa"]["url"],
            "CALM_IDENTITY_ZONE": "example-tenant",
            "CALM_CREDENTIAL_TYPE": "binding-secret",
        }
        for sh in shells:
            vals, pwned, proc = sh_values(out, list(want), sh)
            S.check(f"env #{i} {sh[0]}: nothing executed", not pwned and proc.returncode == 0,
                    f"rc={proc.returncode} stderr={proc.stderr!r}")
            bad = {n: (vals[n], w.encode()) for n, w in want.items() if vals[n] != w.encode()}
            S.check(f"env #{i} {sh[0]}: every value byte for byte", not bad, repr(bad))
    # x509: multi-line PEM values
    rc, out, err = export_bytes(write(x509_key()), "env")
    vals, _, _ = sh_values(out, ["CALM_CLIENT_CERTIFICATE", "CALM_CLIENT_KEY", "CALM_TOKEN_URL", "CALM_CERT_URL"], ["sh"])
    S.eq("env x509: certificate", vals["CALM_CLIENT_CERTIFICATE"], CERT.encode())
    S.eq("env x509: key", vals["CALM_CLIENT_KEY"], PKEY.encode())
    S.eq("env x509: token URL is certurl + /oauth/token", vals["CALM_TOKEN_URL"],
         b"https://example-tenant.authentication.cert.eu10.hana.ondemand.com/oauth/token")
    S.check("env x509: no CALM_CLIENT_SECRET", b"CALM_CLIENT_SECRET" not in out, out)


def test_json_and_vcap():
    for what, k, wrap in [("bare", secret_key(), lambda k: k),
                          ("binding", secret_key(), lambda k: {"id": "1", "name": "n", "credentials": k}),
                          ("x509", x509_key(), lambda k: {"credentials": k}),
                          ("instance", instance_key(), lambda k: k)]:
        for val in ("plain", "q\"uote's $(x) `y` ünï\n\t\\"):
            k2 = copy.deepcopy(k)
            k2["uaa"]["identityzoneid"] = val
            path = write(wrap(k2))
            rc, out, err = export(path, "json")
            S.eq(f"json {what}: exit 0", rc, 0)
            try:
                S.eq(f"json {what}: the bare key back", json.loads(out), k2)
            except ValueError as e:
                S.check(f"json {what}: parses", False, str(e))
            S.check(f"json {what}: endpoints first, no escaped slashes",
                    out.startswith('{\n  "endpoints": {\n    "Api": ') and "\\/" not in out, out[:80])
            rc2, out2, _ = run(["export", write(out), "--format", "json"])
            S.eq(f"json {what}: stable", out2, out)
            rc, out, err = export(path, "vcap")
            S.eq(f"vcap {what}: exit 0", rc, 0)
            doc = json.loads(out)
            entry = doc["SAPCloudALMAPIs"][0]
            S.eq(f"vcap {what}: label", entry["label"], "SAPCloudALMAPIs")
            S.eq(f"vcap {what}: credentials are the key", entry["credentials"], k2)
            rc, out3, _ = export(write(out), "json")
            S.eq(f"vcap {what}: parses back to the same key", json.loads(out3), k2)


def test_alm_setup():
    rc, out, err = export(write({"credentials": secret_key()}), "alm-setup")
    S.eq("alm-setup: exit 0", rc, 0)
    for line in ["OAuth token endpoint:          https://example-tenant.authentication.eu10.hana.ondemand.com/oauth/token",
                 "Client ID:                     sb-calm-api-demo!b9999|calm!b111",
                 "Client secret:                 " + SECRET,
                 "Root URL:                      https://example-tenant.eu10.alm.cloud.sap\n"]:
        S.check(f"alm-setup has {line.strip()!r}", line in out, out)
    rc, out, err = export(write(x509_key()), "alm-setup")
    S.check("alm-setup x509: certurl token endpoint",
            "OAuth token endpoint (mTLS):   https://example-tenant.authentication.cert.eu10.hana.ondemand.com/oauth/token" in out, out)
    S.check("alm-setup x509: explains the mTLS setup instead of printing PEM into fields it does not have",
            CERT not in out and PKEY not in out and "Client secret" not in out, out)
    S.check("alm-setup x509: says first that from ST-PI 7.40 SP29 Activate in /SDF/ALM_SETUP has SAP "
            "generate and rotate the certificate; no undocumented PKCS#12/STRUST steps",
            out.find("ST-PI 7.40 SP29") != -1 and out.find("ST-PI 7.40 SP29") < out.find("Client ID")
            and "Activate" in out and "PKCS#12" not in out and "STRUST" not in out, out)


def test_export_refusals_and_out():
    # broken keys: exit 2, one line, no secret
    bad = mutate(lambda k: k["uaa"].pop("url"))
    rc, out, err = export(write(bad), "env")
    S.eq("export broken key: exit 2", rc, 2)
    S.check("export broken key: names the field", "uaa.url is missing" in err, err)
    no_secret("export broken key", [out, err], [SECRET])
    rc, out, err = export(write("{nope"), "json")
    S.eq("export invalid JSON: exit 2", rc, 2)
    rc, out, err = export(write(secret_key()), "yaml")
    S.eq("export unknown format: exit 2", rc, 2)
    rc, out, err = run(["export", write(secret_key()), "--client-secret", "x"])
    S.eq("export refuses a secret option: exit 2", rc, 2)

    # --out: 0600, replaces an existing 0644 file, stdout empty
    target = os.path.join(TMP, "out", "calm-key.json")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as f:
        f.write("old")
    os.chmod(target, 0o644)
    old_umask = os.umask(0)
    try:
        rc, out, err = export(write(secret_key()), "json", ["--out", target])
    finally:
        os.umask(old_umask)
    S.eq("export --out: exit 0", rc, 0)
    S.eq("export --out: mode 0600", stat.S_IMODE(os.stat(target).st_mode), 0o600)
    S.eq("export --out: content", json.load(open(target)), secret_key())
    S.eq("export --out: nothing on stdout", out, "")
    no_secret("export --out", [err], [SECRET])
    link = os.path.join(TMP, "out", "link.json")
    os.symlink(os.path.join(TMP, "out", "elsewhere.json"), link)
    rc, out, err = export(write(secret_key()), "json", ["--out", link])
    S.check("export --out symlink: refused", rc != 0 and not os.path.exists(os.path.join(TMP, "out", "elsewhere.json")),
            f"rc={rc} err={err!r}")
    rc, out, err = export(write(secret_key()), "json", ["--out", os.path.join(TMP, "no", "such", "dir", "k.json")])
    S.eq("export --out into a missing directory: exit 2", rc, 2)


def test_terminal():
    path = write(secret_key())
    for fmt in ("json", "alm-setup", "env", "vcap"):
        rc, out, err = run_tty(["export", path, "--format", fmt])
        S.eq(f"export {fmt} to a terminal: exit 2", rc, 2)
        S.check(f"export {fmt} to a terminal: asks for --show-secrets", "--show-secrets" in err, err)
        no_secret(f"export {fmt} to a terminal", [out, err], [SECRET])
    rc, out, err = run_tty(["export", path, "--format", "alm-setup", "--show-secrets"])
    S.eq("export --show-secrets to a terminal: exit 0", rc, 0)
    S.check("export --show-secrets to a terminal: shows the secret", SECRET in out, out)
    rc, out, err = run_tty(["check", path])
    S.eq("check on a terminal: exit 0 (no secret printed)", rc, 0)
    no_secret("check on a terminal", [out, err], [SECRET])


def main():
    if not os.path.exists(CALMBIND):
        S.check("calmbind binary exists", False, CALMBIND)
        S.done()
    try:
        test_check()
        test_env_round_trip()
        test_json_and_vcap()
        test_alm_setup()
        test_export_refusals_and_out()
        test_terminal()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    S.done()


if __name__ == "__main__":
    main()
