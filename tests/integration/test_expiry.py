#!/usr/bin/env python3
"""Key expiry (issue 19, point 2). calm.x509.not_after against certificates the
fake's CA issues (tests/fakebtp/certs.py), compared with Python's own reading of
notAfter; then check and verify on x509 keys that `get --x509-validity N` makes
at the fake (XSUAA's 1 to 30 DAYS): the certificate's date and days left in
text and --json, --warn-days N failing (exit 6) with one line, a secret key
that does not expire (no date made up, the token's end shown instead); get's
summary and --report, and fleet's table (EXPIRES), report (expires, days_left)
and --command verify listing the tenants whose keys end within --warn-days;
rotate --if-expires-within replacing only a key that ends within the window."""
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
    report = out + ".report"
    rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--credential-type", "x509",
                      "--x509-validity", str(days), "--binding-name", name.replace(".json", ""),
                      "--out", out, "--report", report], env={"SSL_CERT_FILE": fake.ca_path})
    S.eq("get --credential-type x509 --x509-validity %d: exit 0" % days, rc, 0)
    if rc != 0:
        print("# " + err.replace("\n", "\n# "))
        return out
    at = py_not_after(cert_file(out))
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    # whole days left, rounded down: a second after the bind, a 7-day key has 6
    left = int((at - time.time()) // DAY)
    said = ["(mode 0600); it expires %s (%s left, the certificate's notAfter)" % (iso, n) for n in
            ("%d day%s" % (d, "" if d == 1 else "s") if d else "less than a day" for d in (left, left + 1))]
    S.check("get (%d days): its summary says when the key expires" % days, any(x in err for x in said), err)
    with open(report) as f:
        res = json.load(f)["result"]
    S.check("get --report (%d days): result.expires, days_left, expiry_source" % days,
            res.get("expires") == iso and res.get("days_left") in (left, left + 1)
            and res.get("expiry_source") == "certificate", res)
    S.check("get --report: the token's end too (verified before writing)", bool(res.get("token_expires")), res)
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
        rc, _, err = cmd(fake, "get", "--sm-key", fake.sm_key_path, "--binding-name", "secret-key", "--out", secret)
        S.check("get of a secret key: its summary says it does not expire",
                rc == 0 and "(mode 0600); it does not expire (a secret key; the tokens it gets do)" in err, err)
        fleet_verify(fake, {"week": (week, iso, days), "month": (month, None, None), "secret": (secret, None, None)})


def fleet_verify(fake, keys):
    inv = write("fleet.json", json.dumps({"defaults": {"warn_days": 10}, "tenants": [
        {"name": n, "key": keys[n][0]} for n in ("week", "month", "secret")] + [
        {"name": "month-3", "key": keys["month"][0], "warn_days": "31"}]}))
    rep_path = os.path.join(TMP, "fleet-report.json")
    rc, out, err = cmd(fake, "fleet", inv, "--command", "verify", "--report", rep_path)
    S.eq("fleet --command verify, defaults warn_days 10: exit 1 (a tenant failed)", rc, 1)
    rows = {l.split()[0]: l for l in out.splitlines() if l.split()}
    S.check("fleet table: an EXPIRES column", "EXPIRES" in rows.get("TENANT", ""), out)
    iso, days = keys["week"][1], keys["week"][2]
    S.check("fleet table: the 7-day key fails (6) with its date and days left",
            rows.get("week", "").split()[1:2] == ["6"] and ("%s %dd" % (iso[:10], days)) in rows.get("week", ""), out)
    S.check("fleet table: the 30-day key passes, a secret key 'never' expires",
            rows.get("month", "").split()[1:2] == ["0"] and rows.get("secret", "").split()[1:2] == ["0"]
            and " never " in rows.get("secret", ""), out)
    S.check("fleet table: a tenant's own warn_days 31 fails the 30-day key", rows.get("month-3", "").split()[1:2] == ["6"], out)
    S.check("fleet: the tenants whose keys expire within --warn-days are listed",
            "2 keys expire within --warn-days" in out and "week, month-3" in out, out)
    with open(rep_path) as f:
        doc = json.load(f)
    S.eq("fleet report: summary.expiring", doc["summary"].get("expiring"), ["week", "month-3"])
    t = {x["name"]: x for x in doc["tenants"]}
    S.eq("fleet report: the week tenant's expires, days_left, expiring",
         (t["week"].get("expires"), t["week"].get("days_left"), t["week"].get("expiring")), (iso, days, True))
    S.eq("fleet report: a secret key has no date", (t["secret"].get("expires"), t["secret"].get("expiry_source")),
         (None, "none"))
    for bad in ("7.5", "-1", "soon", True):
        bad_inv = write("fleet-bad.json", json.dumps({"tenants": [{"name": "week", "key": keys["week"][0],
                                                                  "warn_days": bad}]}))
        rc, out, err = cmd(fake, "fleet", bad_inv, "--command", "verify")
        S.check("fleet: warn_days %r is exit 2 naming the field" % (bad,),
                rc == 2 and "warn_days must be a whole number of days" in err, (rc, err))
    rc, out, err = cmd(fake, "fleet", inv, "--command", "verify", "--warn-days", "0")
    S.check("fleet --warn-days 0 on the command line: over the defaults, under the tenant's own warn_days",
            rc == 1 and "1 key expires within --warn-days" in out and out.rstrip().endswith(": month-3"), out + err)


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


def test_rotate():
    """rotate --if-expires-within: only a key that ends within the window is replaced."""
    with FakeBTP(preset="mid-2023", https=True) as fake:
        x509_key(fake, 7, "r7.json")
        env = {"SSL_CERT_FILE": fake.ca_path, "CALMBIND_POLL_INTERVAL": "0.05"}

        def rotate(out, *args):
            before = {b["name"] for b in fake.state()["bindings"]}
            rc, _, err = run(["rotate", "--sm-key", fake.sm_key_path, "--out", os.path.join(TMP, out),
                              "--timeout", "60"] + list(args), env=env)
            return rc, err, {b["name"] for b in fake.state()["bindings"]} - before

        rc, err, new = rotate("r-3d.json", "--credential-type", "x509", "--if-expires-within", "3d")
        S.check("rotate --if-expires-within 3d of a 7-day key: exit 0, nothing created, says when it ends",
                rc == 0 and not new and "later than 3d, so nothing was rotated" in err, (rc, new, err[-400:]))
        with open(os.path.join(TMP, "r-3d.json")) as f, open(os.path.join(TMP, "r7.json")) as g:
            S.check("... the newest key is delivered (the same certificate)",
                    json.load(f)["uaa"]["certificate"] == json.load(g)["uaa"]["certificate"])
        rc, err, new = rotate("r-8d.json", "--credential-type", "x509", "--if-expires-within", "8d")
        S.check("rotate --if-expires-within 8d of a 7-day key: a new x509 key, the line says why",
                rc == 0 and len(new) == 1 and "within 8d" in err, (rc, new, err[-400:]))
        rc, err, new = rotate("r-s1.json", "--credential-type", "binding-secret", "--if-expires-within", "3650d")
        S.eq("the first secret key (calmbind has none): made", (rc, len(new)), (0, 1))
        rc, err, new = rotate("r-s2.json", "--credential-type", "binding-secret", "--if-expires-within", "3650d")
        S.check("rotate --if-expires-within 3650d of a secret key: nothing, a secret key does not expire",
                rc == 0 and not new and "is a secret key: it does not expire" in err, (rc, new, err[-400:]))
        rc, _, err = run(["rotate", "--sm-key", fake.sm_key_path, "--if-expires-within", "soon"], env=env)
        S.check("--if-expires-within soon: exit 2 naming the option", rc == 2 and "--if-expires-within" in err, err)


def main():
    for t in (test_binding, test_commands, test_ended, test_rotate):
        try:
            t()
        except Exception as e:  # one broken part must not hide the others
            S.check(f"{t.__name__}: ran", False, f"{type(e).__name__}: {e}")
    S.done()


if __name__ == "__main__":
    main()
