"""Fault-matrix rows for hostile and broken server answers (issue 13): what I-JSON
(RFC 7493) forbids, answers that can never succeed, and servers that trickle.

Each is refused once, clearly, with exit 1 (exit 2 for a local key file), and no bad
byte reaches a key. The figures before and after the fix are in docs/reliability.md."""
import json
import os
import re

from faultlib import Case, GB, GI, TOKEN, both, requests_of

# bytes that are not UTF-8: FF FE, an overlong "/", a UTF-16 surrogate in CESU form
BAD_UTF8 = "\u00ff\u00fe\u00c0\u00af\u00ed\u00a0\u0080"


def rewrite(method, path, find, replace, n=1):
    return dict(method=method, path=path, action="rewrite", find=find, replace=replace, count=n)


def raw_sm_key(edit):
    """A --sm-key file: the fake's key as JSON text, then edit(text) -> bytes."""
    def make(fake):
        text = json.dumps(fake.sm_key())
        p = os.path.join(fake.dir, "sm-key-bad.json")
        with open(p, "wb") as f:
            f.write(edit(text))
        return p
    return make


def no_request(fake, res):
    return [("no request sent", fake.requests() == [], "%d requests" % len(fake.requests()))]


def sm_tokens(fake):
    """Token requests of the Service Manager key (the verify step gets one for the new key)."""
    return len([r for r in fake.requests() if r["method"] == "POST" and re.search(TOKEN, r["path"])
                and "service-manager" in str(r.get("body"))])


def faster_than(seconds):
    def check(fake, res):
        return [("ended within %g s" % seconds, res.elapsed <= seconds, "took %.1f s" % res.elapsed)]
    return check


CASES = [
    # --- I-JSON in server answers: refused at once, never retried, never in a key -----------
    Case("bad-utf8-clientsecret", "GET bindings: `clientsecret` with bytes `FF FE C0 AF ED A0 80`",
         "refused, not retried: exit 1 'invalid UTF-8 at byte N'; no key written",
         faults=[rewrite("GET", GB, r'"clientsecret": "', '"clientsecret": "' + BAD_UTF8, n=-1)],
         exit=1, err=r"not I-JSON.*invalid UTF-8 at byte \d+", checks=requests_of("GET", GB, 1)),
    Case("duplicate-clientsecret", "GET bindings: `clientsecret` twice in the credentials",
         "refused, not retried: exit 1 \"duplicate member 'clientsecret'\"",
         faults=[rewrite("GET", GB, r'"clientsecret": "', '"clientsecret": "decoy", "clientsecret": "', n=-1)],
         exit=1, err=r"duplicate member 'clientsecret' at byte \d+", checks=requests_of("GET", GB, 1)),
    Case("duplicate-access-token", "token endpoint: `access_token` twice",
         "refused, not retried: exit 1 \"duplicate member 'access_token'\"",
         faults=[rewrite("POST", TOKEN, r'"access_token": "', '"access_token": "decoy", "access_token": "')],
         exit=1, err=r"duplicate member 'access_token'", checks=requests_of("POST", TOKEN, 1)),
    Case("nonfinite-expires-in", "token endpoint: `\"expires_in\": 1e400`",
         "refused, not retried: exit 1 'number out of range'",
         faults=[rewrite("POST", TOKEN, r'"expires_in": \d+', '"expires_in": 1e400')],
         exit=1, err=r"number out of range", checks=requests_of("POST", TOKEN, 1)),
    Case("nonfinite-expires-in-string", "token endpoint: `\"expires_in\": \"1e400\"` (a string)",
         "default lifetime (600 s), never a NaN margin: one token for the SM key, exit 0",
         faults=[rewrite("POST", TOKEN, r'"expires_in": \d+', '"expires_in": "1e400"', n=-1)],
         checks=lambda fake, res: [("one token for the SM key, as without the fault",
                                    sm_tokens(fake) == 1, "%d SM token requests" % sm_tokens(fake))]),
    # --- answers that can never succeed: exit 1 at once, not "safe to rerun" ----------------
    Case("deep-json", "GET instances: 200 with JSON nested 100 000 deep",
         "refused at once, not retried: exit 1 'nested deeper than 1000 levels'",
         faults=[dict(method="GET", path=GI, action="deep", depth=100000, count=-1)], timeout=60,
         exit=1, err=r"nested deeper than 1000 levels", checks=both(requests_of("GET", GI, 1), faster_than(5))),
    Case("header-flood", "GET instances: 100 000 response header lines",
         "refused at once, not retried: exit 1 'more than 256 header lines'",
         faults=[dict(method="GET", path=GI, action="header_flood", headers=100000, count=-1)], timeout=60,
         exit=1, err=r"more than 256 header lines", checks=both(requests_of("GET", GI, 1), faster_than(5))),
    Case("long-header", "GET instances: one 1 MiB header line",
         "refused at once, not retried: exit 1 'header line is over 100 KiB' (not 'Out of memory')",
         faults=[dict(method="GET", path=GI, action="long_header", bytes=1 << 20, count=-1)], timeout=60,
         exit=1, err=r"header line is over 100 KiB", checks=both(requests_of("GET", GI, 1), faster_than(5))),
    # --- slow servers ------------------------------------------------------------------------
    Case("think-8s", "GET instances: answered in one piece after 8 s of silence",
         "not cut (the speed floor counts from the first byte): one request, exit 0",
         faults=[dict(method="GET", path=GI, action="delay", delay_ms=8000)], timeout=30,
         checks=requests_of("GET", GI, 1)),
    Case("trickle-once", "GET instances: the answer at 1 byte/s, once",
         "cut 5 s after its first byte (under 1 KiB/s), retried, exit 0",
         faults=[dict(method="GET", path=GI, action="trickle", rate=1)], timeout=60,
         checks=both(requests_of("GET", GI, 2), faster_than(15))),
    Case("trickle-forever", "GET instances: every answer at 1 byte/s, `--timeout 60`",
         "cut after 5 s, retried once, then the host is given up: exit 1 'keeps trickling' in ~11 s",
         faults=[dict(method="GET", path=GI, action="trickle", rate=1, count=-1)], timeout=60,
         exit=1, err=r"keeps trickling", checks=both(requests_of("GET", GI, 2), faster_than(20))),
    # --- I-JSON in local key files: exit 2 before any request ---------------------------------
    Case("sm-key-duplicate-clientsecret", "`--sm-key` with `clientsecret` twice",
         "exit 2 \"duplicate member 'clientsecret'\", no request",
         key=raw_sm_key(lambda t: t.replace('"clientsecret": ', '"clientsecret": "decoy", "clientsecret": ', 1)
                        .encode()),
         exit=2, err=r"duplicate member 'clientsecret'", checks=no_request),
    Case("sm-key-bad-utf8", "`--sm-key` whose `clientsecret` holds bytes `FF FE C0 AF`",
         "exit 2 'invalid UTF-8 at byte N', no request",
         key=raw_sm_key(lambda t: t.replace('"clientsecret": "', '"clientsecret": "\u00ff\u00fe\u00c0\u00af', 1)
                        .encode("latin-1")),
         exit=2, err=r"invalid UTF-8 at byte \d+", checks=no_request),
    Case("sm-key-nonfinite", "`--sm-key` with a member `\"n\": 1e400`",
         "exit 2 'number out of range', no request",
         key=raw_sm_key(lambda t: t.replace("{", '{"n": 1e400, ', 1).encode()),
         exit=2, err=r"number out of range", checks=no_request),
]
