#!/usr/bin/env python3
"""Key expiry (issue 19, point 2). calm.x509.not_after against certificates the
fake's CA issues (tests/fakebtp/certs.py), compared with Python's own reading of
notAfter; then check and verify on x509 keys that `get --x509-validity N` makes
at the fake (XSUAA's 1 to 30 DAYS): the certificate's date and days left in
text and --json, --warn-days N failing (exit 6) with one line, a secret key
that does not expire (no date made up, the token's end shown instead)."""
import calendar
import json
import os
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itest import Suite, run  # noqa: E402

from certs import CA  # noqa: E402
from harness import FakeBTP  # noqa: E402

S = Suite("integration/expiry")
TMP = tempfile.mkdtemp(prefix="calmbind-expiry-")
DAY = 86400


def py_not_after(pem_path):
    """notAfter in epoch seconds, read by Python's ssl module (not by calmbind)."""
    info = ssl._ssl._test_decode_cert(pem_path)
    return calendar.timegm(time.strptime(info["notAfter"], "%b %d %H:%M:%S %Y %Z"))


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# A user script with calmbind's library: calm.x509 as check and verify use it.
NOT_AFTER_LUA = write("not_after.lua", """
local x509 = require "calm.x509"
local fs = require "calm.fs"
for _, p in ipairs({...}) do
  local at, msg, code = x509.not_after(assert(fs.read(p)))
  print(p .. "\\t" .. tostring(at) .. "\\t" .. tostring(msg) .. "\\t" .. tostring(code))
end
local ok, err = pcall(x509.not_after)
print("no argument\\t" .. tostring(ok) .. "\\t" .. tostring(err))
""")


def test_binding():
    ca = CA(TMP)
    ca.create()
    files, want = [], {}
    for days in (1, 7, 30):
        chain, key, _ = ca.issue_client("expiry-%d" % days, days)
        leaf = write("leaf-%d.pem" % days, chain.split("-----END CERTIFICATE-----")[0]
                     + "-----END CERTIFICATE-----\n")
        path = write("chain-%d.pem" % days, chain)
        want[path] = py_not_after(leaf)
        files.append(path)
    key_only = write("key.pem", key)
    bad = write("bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    rc, out, err = run([NOT_AFTER_LUA] + files + [key_only, bad, write("empty.pem", "")])
    S.eq("calm.x509 script: exit 0", rc, 0)
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}
    for path in files:
        got = rows.get(path, ["?"])[0]
        S.eq("not_after of %s (the leaf of BTP's chain, not its CA) is the notAfter Python reads"
             % os.path.basename(path), got, str(want[path]))
    now = time.time()
    S.check("a 1-day certificate ends within a day", 0 < want[files[0]] - now <= DAY + 60, want[files[0]] - now)
    for path, what in ((key_only, "a private key"), (bad, "a damaged PEM"), (os.path.join(TMP, "empty.pem"), "empty")):
        S.eq("not_after of %s: nil, message, BAD_CERTIFICATE" % what, rows.get(path),
             ["nil", "no PEM certificate that OpenSSL can read", "BAD_CERTIFICATE"])
    S.check("not_after() without a string raises naming the argument",
            rows.get("no argument", [""])[0] == "false" and "string expected" in rows["no argument"][1], out)
    S.check("no certificate text in any message", "BEGIN" not in out + err, out + err)


def x509_key(fake, days, name):
    out = os.path.join(TMP, name)
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509",
                      "--x509-validity", str(days), "--binding-name", name.replace(".json", ""),
                      "--out", out], env={"SSL_CERT_FILE": fake.ca_path})
    S.eq("get --credential-type x509 --x509-validity %d: exit 0" % days, rc, 0)
    if rc != 0:
        print("# " + err.replace("\n", "\n# "))
        return out
    return out


def cert_file(key_path):
    with open(key_path) as f:
        return write(os.path.basename(key_path) + ".pem", json.load(f)["uaa"]["certificate"])


def cmd(fake, *args):
    return run(list(args), env={"SSL_CERT_FILE": fake.ca_path})


def test_commands():
    with FakeBTP(preset="mid-2023", https=True) as fake:
        week = x509_key(fake, 7, "week.json")
        month = x509_key(fake, 30, "month.json")
        # a second past the bind, so that every reading below has 6 whole days left, not 7
        time.sleep(1.1)
        at = py_not_after(cert_file(week))
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        days = int((at - time.time()) // DAY)

        # check: offline, the default --warn-days 30 fails a 7-day certificate
        rc, out, err = cmd(fake, "check", week, "--for", "alm-setup")
        S.eq("check of a 7-day x509 key (default --warn-days 30): exit 6", rc, 6)
        problems = [l for l in out.splitlines() if l.startswith("problem:")]
        S.check("check: one problem line naming the date and --warn-days",
                len(problems) == 1 and iso in problems[0] and "--warn-days 30" in problems[0]
                and "expires in %d days" % days in problems[0], out)
        S.check("check: 'expires:' shows the certificate's notAfter and days left",
                "expires:     %s (%d days left; the certificate's notAfter)" % (iso, days) in out, out)
        rc, out, _ = cmd(fake, "check", week, "--for", "alm-setup", "--warn-days", "3", "--json")
        doc = json.loads(out)
        S.eq("check --warn-days 3 --json: exit 0", rc, 0)
        S.eq("check --json: expires, days_left, expiry_source",
             (doc.get("expires"), doc.get("days_left"), doc.get("expiry_source"), doc.get("expiring")),
             (iso, days, "certificate", False))
        rc, out, _ = cmd(fake, "check", month, "--for", "alm-setup", "--warn-days", "7")
        S.eq("check of a 30-day key with --warn-days 7: exit 0", rc, 0)
        rc, _, err = cmd(fake, "check", week, "--warn-days", "-1")
        S.check("check --warn-days -1: exit 2 naming the option", rc == 2 and "--warn-days" in err, err)

        # verify: live, the same rule, and the token's own end
        rc, out, _ = cmd(fake, "verify", week)
        S.eq("verify of a 7-day x509 key: exit 6", rc, 6)
        S.check("verify: the expiry is the one problem",
                [l for l in out.splitlines() if l.startswith("problem:")] == problems, out)
        rc, out, _ = cmd(fake, "verify", week, "--warn-days", "6", "--json")
        doc = json.loads(out)
        S.eq("verify --warn-days 6 --json of a 7-day key: exit 0", (rc, doc.get("ok")), (0, True))
        S.eq("verify --json: expires, days_left", (doc.get("expires"), doc.get("days_left")), (iso, days))
        tok_end = doc.get("token_expires") or ""
        S.check("verify --json: token_expires is the token's end, hours away, not the key's",
                tok_end and tok_end < iso and doc.get("expires_in", 0) > 0, doc)
        rc, out, _ = cmd(fake, "verify", week, "--warn-days", "8", "--json")
        S.eq("verify --warn-days 8 --json: exit 6, expiring", (rc, json.loads(out).get("expiring")), (6, True))

        # a secret key: it does not expire; say so and show what does
        secret = os.path.join(TMP, "secret.json")
        rc, _, err = cmd(fake, "get", "--sm-key", fake.sm_key_path, "--binding-name", "secret-key", "--out", secret)
        S.eq("get of a binding-secret key: exit 0", rc, 0)
        rc, out, _ = cmd(fake, "check", secret, "--warn-days", "36500")
        S.eq("check of a secret key, --warn-days 36500: exit 0", rc, 0)
        S.check("check: a secret key 'never' expires; its tokens do",
                "expires:     never: a secret key does not expire" in out and "tokens" in out, out)
        rc, out, _ = cmd(fake, "verify", secret, "--json")
        doc = json.loads(out)
        S.eq("verify --json of a secret key: no date for the key",
             (rc, doc.get("expires", "absent"), doc.get("days_left", "absent"), doc.get("expiry_source")),
             (0, None, None, "none"))
        S.check("verify --json of a secret key: the token's end instead", bool(doc.get("token_expires")), doc)
        rc, out, _ = cmd(fake, "verify", secret)
        S.check("verify text of a secret key: the token's end on the token line",
                "s (%s" % doc.get("token_expires", "?")[:13] in out and "never:" in out, out)


# An ended certificate, with calmbind's own check and the clock moved past
# notAfter (the fake's CA, like XSUAA, issues no certificate that has ended).
ENDED_LUA = write("ended.lua", """
local check = require "calm.key.check"
local parse = require "calm.key.parse"
local x509 = require "calm.x509"
local k = assert(parse.load(...))
local at = assert(x509.not_after(k.uaa.certificate))
local res = check.check(k, { warn_days = 0, now = at + 3 * 86400 })
print(res.ok, res.problems[1])
res = check.check(k, { warn_days = 0, now = at - 3600 })
print(res.ok, res.problems[1])
res = check.check(k, { now = at + 3 * 86400 })
print(res.ok, res.problems[1])
""")


def test_ended():
    with FakeBTP(preset="mid-2023", https=True) as fake:
        key = x509_key(fake, 1, "day.json")
        rc, out, err = run([ENDED_LUA, key])
        lines = out.splitlines()
        S.eq("ended.lua: exit 0", rc, 0)
        S.check("three days past notAfter, --warn-days 0: fails, 'has expired ... 3 days ago'",
                lines and lines[0].startswith("false\tthe key has expired") and "3 days ago" in lines[0], out + err)
        S.check("an hour before notAfter, --warn-days 0: passes", len(lines) > 1 and lines[1].startswith("true"), out)
        S.check("without warn_days (export, get): the date is not judged",
                len(lines) > 2 and lines[2].startswith("true"), out)


def main():
    for t in (test_binding, test_commands, test_ended):
        try:
            t()
        except Exception as e:  # one broken part must not hide the others
            S.check(f"{t.__name__}: ran", False, f"{type(e).__name__}: {e}")
    S.done()


if __name__ == "__main__":
    main()
