#!/usr/bin/env python3
"""Secret hygiene: canary scans across every command and output channel.

Every secret the fake BTP hands out (client secrets carry the literal CANARY; tokens and
private keys are listed in issued-secrets.txt) is looked for raw, URL-encoded, base64-encoded
at each of the three byte alignments (so a secret inside a Basic header or any base64 blob is
found), and by its distinctive parts (a JWT's signature, each body line of a PEM key, the part
after '$' of a binding secret), in stdout (unless the key itself was asked for there), stderr,
-v and --trace output, --report files, --out directories and the run's TMPDIR. The argv of
the running process (procfs cmdline, what `ps` shows) is sampled while the fake stalls.

The scan helpers at the top are shared with test_fault_matrix.py."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402


MIN_PART = 16  # shorter fragments would match by chance


def _b64_windows(value):
    """Substrings that appear in any base64 encoding containing value."""
    raw = value.encode()
    out = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + raw).decode()
        core = enc[(4 if k else 0):-4]
        if len(core) >= MIN_PART:
            out.append(core)
        url = core.replace("+", "-").replace("/", "_")
        if url != core and len(url) >= MIN_PART:
            out.append(url)
    return out


def patterns_for(value):
    """(needle, how) pairs that betray value."""
    pats = []
    if not value:
        return pats
    pats.append((value, "raw"))
    for how, enc in (("url-encoded", urllib.parse.quote(value, safe="")),
                     ("form-encoded", urllib.parse.quote_plus(value, safe=""))):
        if enc != value:
            pats.append((enc, how))
    for w in _b64_windows(value):
        pats.append((w, "base64"))
    parts = value.split(".")
    if len(parts) == 3 and all(parts):        # a JWT: its signature alone is a leak
        pats.append((parts[2], "JWT signature"))
        pats.append((parts[1][-MIN_PART * 2:], "JWT payload tail"))
    if "-----BEGIN" in value:                  # a PEM key: any body line is a leak
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= 40 and not line.startswith("-----"):
                pats.append((line, "PEM body line"))
    if "$" in value:                           # <binding-id>$<secret>: the secret part alone
        tail = value.split("$", 1)[1]
        if len(tail) >= MIN_PART:
            pats.append((tail, "secret part"))
    return pats


def patterns(fake, extra=()):
    """All needles for the secrets fake has issued so far, plus the literal CANARY."""
    pats = [("CANARY", "literal CANARY")]
    seen = set()
    for v in list(fake.issued_secrets()) + list(extra):
        if v in seen:
            continue
        seen.add(v)
        pats.extend(patterns_for(v))
    return pats


def hits(text, pats):
    """Descriptions of the needles found in text (never the secret itself)."""
    if not text:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for needle, how in pats:
        if needle and needle in text:
            found.append("%s (%d chars) at offset %d" % (how, len(needle), text.index(needle)))
    return found


def scan(named_texts, pats):
    """named_texts: [(name, text)]. Returns ["name: how ..."] for every hit."""
    out = []
    for name, text in named_texts:
        for h in hits(text, pats):
            out.append("%s: %s" % (name, h))
    return out


def files_under(*dirs, skip=()):
    """(path, bytes) for every regular file under dirs, except paths in skip."""
    out = []
    skip = {os.path.realpath(p) for p in skip}
    for d in dirs:
        if not d or not os.path.isdir(d):
            continue
        for root, _, names in os.walk(d):
            for n in names:
                p = os.path.join(root, n)
                if os.path.realpath(p) in skip or not os.path.isfile(p):
                    continue
                try:
                    with open(p, "rb") as f:
                        out.append((p, f.read(4 << 20)))
                except OSError:
                    pass
    return out


# ---- tests (below) ----
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
S = itest.Suite("secrets")


class Run:
    """One calmbind run with its own TMPDIR and out dir; remembers what to scan."""

    def __init__(self, fake, args, env=None, key_on_stdout=False, timeout=60, stall=None):
        self.work = tempfile.mkdtemp(prefix="run-", dir=fake.dir)
        self.tmp = os.path.join(self.work, "tmp")
        self.outdir = os.path.join(self.work, "out")
        os.makedirs(self.tmp)
        os.makedirs(self.outdir)
        self.key_on_stdout = key_on_stdout
        args = [a.replace("@OUT@", self.outdir).replace("@WORK@", self.work) for a in args]
        e = dict(os.environ)
        e.pop("SSLKEYLOGFILE", None)
        e.update(ENV)
        e["TMPDIR"] = self.tmp
        e.update(env or {})
        proc = subprocess.Popen([itest.CALMBIND] + args, env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.proc_views = []
        if stall:
            # while the fake stalls an answer: what `ps` and procfs show of the process
            time.sleep(stall)
            for what in ("cmdline", "environ"):
                try:
                    with open("/proc/%d/%s" % (proc.pid, what), "rb") as f:
                        self.proc_views.append(("/proc/pid/" + what, f.read().replace(b"\0", b" ")))
                except OSError as ex:
                    self.proc_views.append(("/proc/pid/" + what, b"<unreadable: %s>" % str(ex).encode()))
            ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(proc.pid)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.proc_views.append(("ps", ps.stdout))
        self.out, self.err = proc.communicate(timeout=timeout)
        self.rc = proc.returncode

    def texts(self, skip=()):
        t = [("stderr", self.err)]
        if not self.key_on_stdout:
            t.append(("stdout", self.out))
        t += [(os.path.relpath(p, self.work), b) for p, b in files_under(self.work, skip=skip)]
        t += self.proc_views
        return t


def no_canary(what, fake, run, skip=(), extra=()):
    pats = patterns(fake, extra)
    found = scan(run.texts(skip), pats)
    return S.check("%s: no canary anywhere" % what, not found, "; ".join(found[:6]))


def get_args(fake, *extra, key=None, timeout="30"):
    return ["get", "--sm-key", key or fake.sm_key_path, "--timeout", timeout] + list(extra)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def test_get_outputs():
    with FakeBTP(preset="mid-2023") as fake:
        # the key on stdout (asked for): only stderr and files are scanned
        r = Run(fake, get_args(fake, "--report", "@WORK@/report.json"), key_on_stdout=True)
        S.eq("get to stdout: exit 0", r.rc, 0)
        S.check("get to stdout: the key is there (the scan is not vacuous)",
                any(s in r.out for s in fake.issued_secrets()), r.out[:200])
        no_canary("get to stdout", fake, r)
        # -v --trace, --report, --out: nothing but the key file may hold a secret
        r = Run(fake, get_args(fake, "-v", "--trace", "--out", "@OUT@/key.json", "--report", "@WORK@/report.json"))
        S.eq("get -v --trace --out: exit 0", r.rc, 0)
        S.check("get -v --trace: trace shows the HTTP exchanges", "trace: >" in r.err and "trace: < {" in r.err,
                r.err[:300])
        S.check("get -v --trace: report written", os.path.exists(os.path.join(r.work, "report.json")), "")
        key_file = os.path.join(r.outdir, "key.json")
        no_canary("get -v --trace --out --report", fake, r, skip=[key_file])
        for fmt in ("env", "alm-setup", "vcap"):
            r = Run(fake, get_args(fake, "-v", "--format", fmt, "--out", "@OUT@/key." + fmt))
            S.eq("get --format %s --out: exit 0" % fmt, r.rc, 0)
            no_canary("get --format %s --out" % fmt, fake, r, skip=[os.path.join(r.outdir, "key." + fmt)])
        # plan prints decisions only
        r = Run(fake, ["plan", "--sm-key", fake.sm_key_path, "-v", "--trace", "--report", "@WORK@/plan.json"])
        S.eq("plan -v --trace: exit 0", r.rc, 0)
        no_canary("plan -v --trace (stdout included)", fake, r)


def test_error_paths():
    with FakeBTP(preset="mid-2023") as fake:
        # wrong client secret (the token endpoint's 401), with the trace on
        bad = dict(fake.sm_key())
        bad["clientsecret"] = bad["clientsecret"].split("$")[0] + "$" + "WRONGsecretVALUE0123456789"
        bad_path = write_json(os.path.join(fake.dir, "sm-key-wrong.json"), bad)
        r = Run(fake, get_args(fake, "-v", "--trace", "--report", "@WORK@/r.json", key=bad_path))
        S.eq("wrong secret: exit 3", r.rc, 3)
        no_canary("wrong secret -v --trace", fake, r, extra=[bad["clientsecret"]])
        # the server reflects the secret into its error body (S6)
        sm = fake.sm_key()
        fake.fault(method="POST", path=r"/oauth/token$", action="status", status=401,
                   body='{"error":"unauthorized","error_description":"invalid client_secret %s"}' % sm["clientsecret"])
        r = Run(fake, get_args(fake, "--report", "@WORK@/r.json"))
        S.eq("secret reflected in a 401 body: exit 3", r.rc, 3)
        no_canary("secret reflected in a 401 body", fake, r)
        fake.fault(method="GET", path=r"^/v1/service_instances", action="status", status=503,
                   body="upstream said: client_secret=%s" % sm["clientsecret"], count=-1)
        r = Run(fake, get_args(fake, "-v", "--trace", timeout="3"))
        S.check("secret reflected in a 503 text body: fails (exit 5)", r.rc == 5, (r.rc, r.err[-200:]))
        no_canary("secret reflected in a 503 text body, -v --trace", fake, r)
        fake.clear_faults()
        # 401 twice on a read, and a failed operation, with the trace on
        fake.fault(method="GET", path=r"^/v1/service_instances", action="status", status=401, count=2)
        r = Run(fake, get_args(fake, "-v", "--trace", "--report", "@WORK@/r.json"))
        S.eq("401 twice -v --trace: exit 3", r.rc, 3)
        no_canary("401 twice -v --trace", fake, r)
        fake.clear_faults()
        fake.fault(method="POST", path=r"^/v1/service_bindings$", action="op_fail", description="no")
        r = Run(fake, get_args(fake, "-v", "--trace", "--out", "@OUT@/k.json", "--report", "@WORK@/r.json"))
        S.eq("failed binding operation -v --trace: exit 1", r.rc, 1)
        no_canary("failed binding operation -v --trace", fake, r)
        fake.clear_faults()
        # a secret-looking option is refused without echoing the value
        r = Run(fake, get_args(fake, "--client-secret", "CANARYfromTheCommandLine123"))
        S.check("--client-secret VALUE: refused (exit 2) without echoing it",
                r.rc == 2 and "CANARYfromTheCommandLine123" not in r.err + r.out, (r.rc, r.err[-200:]))


def test_check_verify_export():
    with FakeBTP(preset="mid-2023") as fake:
        r = Run(fake, get_args(fake, "--out", "@OUT@/key.json"))
        S.eq("key for check/verify/export: exit 0", r.rc, 0)
        key_path = os.path.join(r.outdir, "key.json")
        with open(key_path) as f:
            key = json.load(f)
        r = Run(fake, ["check", key_path])
        S.check("check: runs (exit 0 or 6)", r.rc in (0, 6), (r.rc, r.err[-200:]))
        no_canary("check (stdout included)", fake, r)
        r = Run(fake, ["verify", "-v", "--trace", "--scenario", "deployment", key_path])
        S.eq("verify -v --trace: exit 0", r.rc, 0)
        no_canary("verify -v --trace (stdout included)", fake, r)
        wrong = json.loads(json.dumps(key))
        wrong["uaa"]["clientsecret"] = "not-the-right-secret-1234567890"
        wrong_path = write_json(os.path.join(fake.dir, "key-wrong.json"), wrong)
        r = Run(fake, ["verify", "-v", "--trace", wrong_path])
        S.eq("verify with a wrong secret: exit 3", r.rc, 3)
        no_canary("verify with a wrong secret", fake, r, extra=[wrong["uaa"]["clientsecret"]])
        fake.revoke(key["uaa"]["clientsecret"].split("$")[0])
        r = Run(fake, ["verify", key_path])
        S.eq("verify of a revoked binding: exit 3", r.rc, 3)
        no_canary("verify of a revoked binding", fake, r)
        for fmt in ("json", "env", "alm-setup", "vcap"):
            r = Run(fake, ["export", "--format", fmt, "--out", "@OUT@/x", key_path])
            S.eq("export --format %s --out: exit 0" % fmt, r.rc, 0)
            no_canary("export --format %s --out (stdout included)" % fmt, fake, r,
                      skip=[os.path.join(r.outdir, "x")])
        nan = dict(key)
        text = json.dumps(nan).replace('"tenantmode"', '"n": NaN, "tenantmode"')
        nan_path = os.path.join(fake.dir, "key-nan.json")
        with open(nan_path, "w") as f:
            f.write(text)
        r = Run(fake, ["verify", nan_path])
        S.check("verify of a key with NaN: refused as bad input (exit 2), no value echoed",
                r.rc == 2 and "invalid JSON" in r.err, (r.rc, r.err[-200:]))
        no_canary("verify of a key with NaN", fake, r)
        r = Run(fake, ["check", nan_path])
        S.eq("check of a key with NaN: not JSON, bad input (exit 2)", r.rc, 2)
        no_canary("check of a key with NaN", fake, r)


def test_argv_and_environ():
    with FakeBTP(preset="mid-2023") as fake:
        fake.fault(method="GET", path=r"^/v1/service_bindings", action="delay", delay_ms=2500)
        r = Run(fake, ["get", "--timeout", "30", "--out", "@OUT@/k.json"],
                env={"CALMBIND_SM_KEY": fake.sm_key_path}, stall=1.0)
        S.eq("key from the environment (CALMBIND_SM_KEY): exit 0", r.rc, 0)
        views = dict(r.proc_views)
        S.check("argv sampled while the fake stalled", b"get" in views.get("/proc/pid/cmdline", b""),
                views.get("/proc/pid/cmdline"))
        pats = patterns(fake)
        found = scan(r.proc_views, pats)
        S.check("no secret in argv (procfs cmdline, ps) or environ", not found, "; ".join(found))
        fake.clear_faults()
        fake.fault(method="GET", path=r"^/v1/service_bindings", action="delay", delay_ms=2500)
        r = Run(fake, get_args(fake, "-v", "--trace", "--out", "@OUT@/k.json"), stall=1.0)
        found = scan(r.proc_views, pats)
        S.check("no secret in argv with --sm-key FILE -v --trace", not found and r.rc == 0, (r.rc, found))
        no_canary("get with a stalled answer", fake, r, skip=[os.path.join(r.outdir, "k.json")])


def test_scanner():
    """The scan itself: it must find a secret in every disguise it claims to cover."""
    secret = "0b4f1e2a-1111-4222-8333-944444444444$CANARYq7Zx0PpLmN4tRw8yVb2K"
    tail = secret.split("$", 1)[1].replace("CANARY", "")
    pats = [p for p in patterns_for(secret)]
    for what, text in (("raw", "x " + secret + " y"),
                       ("url-encoded", urllib.parse.quote(secret, safe="")),
                       ("in a Basic header", "Basic " + base64.b64encode(("sb-id%21b1:" + secret).encode()).decode()),
                       ("base64url", base64.urlsafe_b64encode(("{\"s\":\"%s\"}" % secret).encode()).decode()),
                       ("secret part only", "secret " + secret.split("$", 1)[1])):
        S.check("scanner finds a secret %s" % what, hits(text, pats), text[:60])
    S.check("scanner ignores unrelated text", not hits("sb-id!b1 " + tail[:8], pats), "")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzYi1jYWxtIiwic2NvcGUiOlsiYSJdfQ.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2VuLTEyMzQ"
    S.check("scanner finds a JWT's signature alone", hits("sig=" + jwt.split(".")[2], patterns_for(jwt)), "")


def main():
    test_scanner()
    test_get_outputs()
    test_error_paths()
    test_check_verify_export()
    test_argv_and_environ()
    S.done()


if __name__ == "__main__":
    main()
