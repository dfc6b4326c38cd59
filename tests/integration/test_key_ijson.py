#!/usr/bin/env python3
"""Key files that are not I-JSON (RFC 7493), issue 13: a member twice, bytes that are not
UTF-8, a number beyond a double. `check`, `verify`, `export` and `get --sm-key` all refuse
them with one line naming what is wrong and where, before any request, with exit 2 (a
file that is not valid JSON), and never echo the secret. Before the fix, `check` passed all three (exit 0) and `export` wrote the
bytes into its output."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from itest import CALMBIND, Suite, run  # noqa: E402

S = Suite("integration/key_ijson")
SECRET = "88888888-aaaa-4bbb-8ccc-000000000008$FAKE-SECRET-VALUE="
TMP = tempfile.mkdtemp(prefix="calmbind-keyijson-")


def key_text():
    return json.dumps({
        "endpoints": {"Api": "https://example-tenant.eu10.alm.cloud.sap/api"},
        "uaa": {"clientid": "sb-calm-api-demo!b9999|calm!b111", "clientsecret": SECRET,
                "credential-type": "binding-secret",
                "url": "https://example-tenant.authentication.eu10.hana.ondemand.com",
                "uaadomain": "authentication.eu10.hana.ondemand.com", "identityzone": "example-tenant",
                "xsappname": "calm-api-demo!b9999|calm!b111"}})


def sm_key_text():
    # a Service Manager key whose URLs lead nowhere: a request would fail with exit 1
    return json.dumps({"clientid": "sb-sm!b1|service-manager!b5", "clientsecret": SECRET,
                       "url": "http://127.0.0.1:9", "sm_url": "http://127.0.0.1:9",
                       "xsappname": "sm!b1|service-manager!b5"})


CS = '"clientsecret": "'
BAD = {
    # name: (edit of the JSON text -> bytes, the words the error must carry)
    "duplicate clientsecret": (lambda t: t.replace(CS, '"clientsecret": "decoy", ' + CS, 1).encode(),
                               r"duplicate member 'clientsecret' at byte "),
    "invalid UTF-8 in the secret": (lambda t: t.replace(CS, CS + "\u00ff\u00fe\u00c0\u00af", 1).encode("latin-1"),
                                    "invalid UTF-8 at byte "),
    "CESU surrogate in the secret": (lambda t: t.replace(CS, CS + "\u00ed\u00a0\u0080", 1).encode("latin-1"),
                                     "invalid UTF-8 at byte "),
    "escaped lone surrogate": (lambda t: t.replace(CS, CS + "\\ud800", 1).encode(),
                               "unpaired surrogate escape at byte "),
    "1e400": (lambda t: t.replace("{", '{"n": 1e400, ', 1).encode(), "number out of range"),
}


_n = [0]


def write(data):
    # neutral names: a file name with "secret" in it would itself be redacted in messages
    _n[0] += 1
    path = os.path.join(TMP, "k%d.json" % _n[0])
    with open(path, "wb") as f:
        f.write(data)
    return path


def one_line(what, rc, want_rc, out, err, words):
    S.eq(f"{what}: exit {want_rc}", rc, want_rc)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    S.check(f"{what}: one line naming the fault", len(lines) == 1 and words in lines[0], err)
    S.check(f"{what}: no secret, no traceback", SECRET not in out + err and "FAKE-SECRET" not in out + err
            and "traceback" not in err.lower() and ".lua:" not in err, err)


def main():
    if not os.path.exists(CALMBIND):
        S.check("calmbind binary exists", False, CALMBIND)
        S.done()
    try:
        good = write(key_text().encode())
        rc, out, err = run(["check", good])
        S.eq("check a good key: exit 0 (the edits below are what breaks it)", rc, 0)
        for name, (edit, words) in BAD.items():
            path = write(edit(key_text()))
            rc, out, err = run(["check", path])
            one_line(f"check, {name}", rc, 2, out, err, words)
            rc, out, err = run(["verify", path])
            one_line(f"verify, {name}", rc, 2, out, err, words)
            for fmt in ("json", "env"):
                outp = os.path.join(TMP, "out-%d-%s" % (_n[0], fmt))
                rc, out, err = run(["export", path, "--format", fmt, "--out", outp])
                one_line(f"export --format {fmt}, {name}", rc, 2, out, err, words)
                S.check(f"export --format {fmt}, {name}: nothing written", not os.path.exists(outp), outp)
            sm = write(edit(sm_key_text()))
            rc, out, err = run(["get", "--sm-key", sm, "--timeout", "5"])
            one_line(f"get --sm-key, {name}", rc, 2, out, err, words)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    S.done()


if __name__ == "__main__":
    main()
