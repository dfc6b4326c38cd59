#!/usr/bin/env python3
"""The fault matrix: `calmbind get` against the fake BTP's fault controls.

Each case is one row of CASES: a preset, fault rules, extra arguments, the expected exit
code and a pattern the one-line error (or, on success, stderr) must match. Every case then
checks the common invariants:

  * the exit code, and the run stayed inside --timeout (plus a little slack);
  * stderr: exactly one "error:" line on failure, none on success, never a Lua traceback;
  * the fake's state: no duplicate instance or binding name, no instance or binding left
    ready:false (unless its operation is still running in a case that says so);
  * the --out directory: empty on failure (no partial file, no temp file); on success just
    the key file, mode 0600, a complete key;
  * no canary (see test_secrets.py) in stdout, stderr, the --report file, the --out
    directory (the key file itself excepted) or the run's TMPDIR.

Cases that need a rerun (a crash, a create answered too late, a failed operation) rerun
without faults and check the invariants again.

`python3 test_fault_matrix.py --markdown` prints the table kept in docs/reliability.md;
the suite checks that the docs copy is in sync.

Fast settings, all documented: CALMBIND_POLL_INTERVAL=0.05 (first operation-poll interval),
short --timeout values, Retry-After values of 1-2 s. calm.net.rest's backoff is the product's."""
import collections
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import itest  # noqa: E402
from harness import FakeBTP  # noqa: E402
import test_secrets as canary  # noqa: E402

MATRIX_DOC = os.path.join(ROOT, "docs", "reliability.md")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
SLACK = 3.0          # seconds a run may overshoot --timeout (process start, last answer)
from faultlib import (Case, GB, GI, SB, SI, TOKEN, both, count, bad_sm_key, expire_after,  # noqa: E402
                      one_instance, requests_of, set_field, waited)
import fault_hostile  # noqa: E402


# ------------------------------------------------------------------------------ cases --

R429 = dict(method="GET", path=GI, action="status", status=429)

CASES = [
    # --- 429 and Retry-After in every form --------------------------------------------
    Case("429-retry-after-seconds", "GET instances: 429, `Retry-After: 1`", "waits ≥ 1 s, exit 0",
         faults=[dict(R429, retry_after="1")], err=r"rate limited by .*retrying in 1s",
         checks=waited("GET", GI, 429, 0.9)),
    Case("429-retry-after-http-date", "GET instances: 429, `Retry-After` IMF-fixdate 2 s ahead",
         "waits until then (≥ 1 s), exit 0",
         faults=[dict(R429, retry_after="http-date", retry_seconds=2)],
         checks=waited("GET", GI, 429, 0.9, 4)),
    Case("429-retry-after-sm-date", "GET instances: 429, `Retry-After: YYYY-MM-DD HH:MM:SS +0000 UTC` 2 s ahead",
         "waits until then (≥ 1 s), exit 0",
         faults=[dict(R429, retry_after="go", retry_seconds=2)], checks=waited("GET", GI, 429, 0.9, 4)),
    Case("429-no-retry-after", "GET instances: 429 without `Retry-After`", "own backoff (≥ 2 s after a 429), exit 0",
         faults=[dict(R429, retry_after=None)], checks=waited("GET", GI, 429, 1.9, 4)),
    Case("429-retry-after-past", "GET instances: 429, `Retry-After` HTTP-date in 1994",
         "minimum backoff, never a zero-time spin, exit 0",
         faults=[dict(R429, retry_after="Sun, 06 Nov 1994 08:49:37 GMT")],
         checks=waited("GET", GI, 429, 0.09, 2)),
    Case("429-retry-after-garbage", "GET instances: 429, `Retry-After: abc`", "falls back to backoff (≥ 2 s), exit 0",
         faults=[dict(R429, retry_after="abc")], checks=waited("GET", GI, 429, 1.9, 4)),
    Case("429-burst", "GET bindings: three 429s in a row (`Retry-After: 1`)", "three waits, exit 0",
         faults=[dict(method="GET", path=GB, action="status", status=429, retry_after="1", count=3)],
         checks=requests_of("GET", GB, 3, 429)),
    Case("429-beyond-deadline", "GET bindings: 429, `Retry-After: 3600`, `--timeout 10`",
         "fails at once: exit 5, 'asks to wait 3600s, beyond the --timeout deadline'",
         faults=[dict(method="GET", path=GB, action="status", status=429, retry_after="3600")],
         timeout=10, exit=5, err=r"asks to wait 3600s, beyond the --timeout deadline"),
    Case("429-forever", "GET instances: 429 forever (`Retry-After: 1`), `--timeout 4`",
         "retries within the deadline, then exit 5",
         faults=[dict(R429, retry_after="1", count=-1)], timeout=4, exit=5,
         err=r"(--timeout deadline|gave up after \d+ attempts)"),
    Case("429-token", "token endpoint: 429 `Retry-After: 1`",
         "token request retried, exit 0 (then one token with SAP's key to read its scopes)",
         faults=[dict(method="POST", path=TOKEN, action="status", status=429, retry_after="1")],
         checks=requests_of("POST", TOKEN, 3)),
    # --- 5xx and proxies --------------------------------------------------------------
    Case("503-twice", "GET offerings: 503 twice", "retried with backoff, exit 0",
         faults=[dict(method="GET", path=r"^/v1/service_offerings", action="status", status=503, count=2)],
         checks=requests_of("GET", r"^/v1/service_offerings", 3)),
    Case("500-once", "GET plans: 500 once", "retried, exit 0",
         faults=[dict(method="GET", path=r"^/v1/service_plans", action="status", status=500)]),
    Case("504-token", "token endpoint: 504 once", "retried, exit 0",
         faults=[dict(method="POST", path=TOKEN, action="status", status=504)]),
    Case("503-forever", "GET bindings: 503 forever, `--timeout 5`",
         "backoff until the next wait would pass the deadline: exit 5, one line naming HTTP 503",
         faults=[dict(method="GET", path=GB, action="status", status=503, count=-1)], timeout=5, exit=5,
         err=r"HTTP 503"),
    Case("proxy-html-502", "GET offerings: HTML 502 page from a proxy, twice", "retried, exit 0",
         faults=[dict(method="GET", path=r"^/v1/service_offerings", action="html", count=2)]),
    Case("proxy-html-502-forever", "GET instances: HTML 502 page forever, `--timeout 4`",
         "exit 5; the page is never quoted ('HTML error page')",
         faults=[dict(method="GET", path=GI, action="html", count=-1)], timeout=4, exit=5,
         err=r"HTML error page"),
    Case("400-not-retried", "GET instances: 400", "final: exit 1, one request",
         faults=[dict(method="GET", path=GI, action="status", status=400)], exit=1, err=r"HTTP 400",
         checks=requests_of("GET", GI, 1)),
    # --- transport ---------------------------------------------------------------------
    Case("reset-get", "GET instances: TCP reset", "retried, exit 0",
         faults=[dict(method="GET", path=GI, action="reset")], checks=requests_of("GET", GI, 2)),
    Case("reset-token", "token endpoint: TCP reset", "retried (token requests are idempotent), exit 0",
         faults=[dict(method="POST", path=TOKEN, action="reset")]),
    Case("reset-forever", "GET bindings: TCP reset forever, `--timeout 4`", "exit 5",
         faults=[dict(method="GET", path=GB, action="reset", count=-1)], timeout=4, exit=5,
         err=r"(RECV_ERROR|GOT_NOTHING|SEND_ERROR|reset|deadline)"),
    Case("slow-answer", "GET instances: answered after 1 s", "exit 0",
         faults=[dict(method="GET", path=GI, action="delay", delay_ms=1000)]),
    Case("timeout", "GET bindings: no answer for 8 s, `--timeout 2`", "stops at the deadline: exit 5",
         faults=[dict(method="GET", path=GB, action="delay", delay_ms=8000)], timeout=2, exit=5,
         err=r"(deadline|timed out|--timeout)"),
    Case("truncated-content-length", "GET instances: body 100 bytes short of `Content-Length`",
         "curl PARTIAL_FILE, retried, exit 0",
         faults=[dict(method="GET", path=GI, action="truncate")], checks=requests_of("GET", GI, 2)),
    Case("truncated-close-delimited", "GET bindings: half a body, no `Content-Length`, `Connection: close`",
         "the JSON layer rejects it, retried, exit 0",
         faults=[dict(method="GET", path=GB, action="close_truncate")], err=r"truncated or invalid JSON",
         checks=requests_of("GET", GB, 2)),
    Case("truncated-close-delimited-forever", "GET instances: close-delimited truncated bodies forever, `--timeout 4`",
         "never accepted: exit 5, 'truncated or invalid JSON'",
         faults=[dict(method="GET", path=GI, action="close_truncate", count=-1)], timeout=4, exit=5,
         err=r"truncated or invalid JSON"),
    Case("non-json-200", "GET offerings: 200 with a text body", "rejected, retried, exit 0",
         faults=[dict(method="GET", path=r"^/v1/service_offerings", action="nonjson")]),
    Case("nan-number", "GET instances: 200 `{\"num_items\": NaN, ...}`", "rejected (no NaN), retried, exit 0",
         faults=[dict(method="GET", path=GI, action="status", status=200,
                      body='{"num_items": NaN, "items": []}')], err=r"truncated or invalid JSON",
         checks=requests_of("GET", GI, 2)),
    Case("hex-number-forever", "GET instances: 200 `{\"num_items\": 0x10, ...}` forever, `--timeout 4`",
         "never accepted: exit 5, 'invalid JSON'",
         faults=[dict(method="GET", path=GI, action="status", status=200, count=-1,
                      body='{"num_items": 0x10, "items": []}')], timeout=4, exit=5, err=r"invalid JSON"),
    # --- mutations: never a blind resend --------------------------------------------------
    Case("create-502-not-created", "mid-2023: create instance answered 502 (HTML) before SM acted",
         "no resend; looked up by name, nothing there: exit 1 'rerun to try again'; the rerun converges",
         preset="mid-2023", faults=[dict(method="POST", path=SI, action="status", status=502, body="html")],
         exit=1, err=r"nothing named 'calm-api-deployment' exists; rerun", rerun=0,
         checks=requests_of("POST", SI, 1)),
    Case("create-reset-after-acting", "mid-2023: create instance acted on, then TCP reset",
         "looked up by name and adopted: one instance, exit 0", preset="mid-2023",
         faults=[dict(method="POST", path=SI, action="late_create")], checks=one_instance()),
    Case("create-answered-too-late", "mid-2023: create instance acted on, answer after 6 s, `--timeout 2`",
         "exit 5; the rerun adopts the instance: one instance, exit 0", preset="mid-2023",
         faults=[dict(method="POST", path=SI, action="late_create", delay_ms=6000)], timeout=2, exit=5,
         err=r"(deadline|--timeout)", rerun=0, checks=one_instance()),
    Case("bind-truncated", "mid-2023: create binding answered with a short body (`Content-Length`)",
         "looked up by name and adopted: one binding, exit 0", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="truncate")], checks=requests_of("POST", SB, 1)),
    Case("bind-truncated-close-delimited", "mid-2023: create binding answered with half a close-delimited body",
         "looked up by name and adopted, exit 0", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="close_truncate")], checks=requests_of("POST", SB, 1)),
    Case("bind-503", "mid-2023: create binding answered 503 before SM acted",
         "no resend: exit 1; the rerun converges", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="status", status=503)], exit=1,
         err=r"calm-api-deployment-key", rerun=0, checks=requests_of("POST", SB, 1)),
    Case("update-422", "mid-2023, `--update-instance SAPCloudALMAPIs-auto`: PATCH answered 422 (operation in progress)",
         "waits for the running operation, patches again, exit 0", preset="mid-2023",
         args=["--update-instance", "SAPCloudALMAPIs-auto"],
         faults=[dict(method="PATCH", path=r"^/v1/service_instances/", action="status", status=422)],
         checks=requests_of("PATCH", r"^/v1/service_instances/", 2)),
    Case("bind-422", "mid-2023: create binding answered 422 (operation in progress on the instance)",
         "waits for the running operation, binds again, exit 0", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="status", status=422)],
         checks=requests_of("POST", SB, 2)),
    Case("bind-422-forever", "mid-2023: create binding answered 422 every time",
         "backs off between 5 attempts, then exit 1 saying it stayed busy; the rerun converges",
         preset="mid-2023", timeout=60,
         faults=[dict(method="POST", path=SB, action="status", status=422, count=-1)],
         exit=1, err=r"still busy after 5 attempts", rerun=0,
         checks=requests_of("POST", SB, 5, status=422)),
    # --- async operations --------------------------------------------------------------------
    Case("instance-op-fails", "mid-2023: the create-instance operation ends `failed`",
         "SM's text, the ready:false leftover deleted: exit 1; the rerun converges", preset="mid-2023",
         faults=[dict(method="POST", path=SI, action="op_fail", description="fake broker failure text")],
         exit=1, err=r"fake broker failure text.*was deleted", rerun=0),
    Case("binding-op-fails", "mid-2023: the create-binding operation ends `failed`",
         "SM's text, the leftover binding deleted: exit 1; the rerun converges", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="op_fail", description="binding broker says no")],
         exit=1, err=r"binding broker says no", rerun=0),
    Case("instance-op-never-ends", "mid-2023: the create-instance operation stays `in progress`, `--timeout 2`",
         "exit 5 naming the operation and 'rerun'", preset="mid-2023",
         faults=[dict(method="POST", path=SI, action="op_stuck")], timeout=2, exit=5,
         err=r"deadline passed while waiting for creating instance .*rerun", allow_pending=True),
    Case("binding-op-never-ends", "mid-2023: the create-binding operation stays `in progress`, `--timeout 2`",
         "exit 5 naming the operation and 'rerun'", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="op_stuck")], timeout=2, exit=5,
         err=r"deadline passed while waiting for creating binding .*rerun", allow_pending=True),
    # --- tokens ------------------------------------------------------------------------------
    Case("token-short-lifetime", "mid-2023: tokens live 2 s, the run lasts ~4 s",
         "renewed before expiry, no 401, exit 0", preset="mid-2023", fake=dict(token_lifetime=2, op_polls=9),
         checks=lambda fake, res: [("renewed before expiry", count(fake, "POST", TOKEN) >= 2,
                                    "token requests %d" % count(fake, "POST", TOKEN)),
                                   ("no 401", not any(r["status"] == 401 for r in fake.requests()),
                                    "a 401 was answered")]),
    Case("token-revoked-mid-run", "mid-2023: every token expires (401 invalid_token) 1 s into the run",
         "one renewal after the 401, exit 0", preset="mid-2023", fake=dict(op_polls=9),
         during=expire_after(1.0),
         # the SM key's token, SAP's key probed, one renewal after the 401, the new key verified
         checks=lambda fake, res: [("renewed once after the 401", count(fake, "POST", TOKEN) == 4
                                    and any(r["status"] == 401 for r in fake.requests()),
                                    "token requests %d" % count(fake, "POST", TOKEN))]),
    Case("401-twice", "GET instances: 401 twice", "one renewal, then exit 3 naming the refused key",
         faults=[dict(method="GET", path=GI, action="status", status=401, count=2)], exit=3,
         err=r"Service Manager key \(.*sm-key\.json\) was refused \(HTTP 401\)",
         checks=requests_of("POST", TOKEN, 2)),
    Case("wrong-secret", "`--sm-key` with a wrong client secret", "exit 3 naming the key file; not retried",
         key=bad_sm_key(set_field("clientsecret", "wrong-secret-value")), exit=3,
         err=r"sm-key-bad\.json\) was refused by .*oauth/token \(HTTP 401\)", checks=requests_of("POST", TOKEN, 1)),
    # --- crash and rerun ----------------------------------------------------------------------
    Case("crash-while-provisioning", "mid-2023: `kill -9` while the instance is being created",
         "the rerun adopts it: one instance, one binding, exit 0", preset="mid-2023",
         fake=dict(op_polls=9), crash_after=1.2, rerun=0, checks=one_instance()),
    Case("crash-while-binding", "mid-2023: `kill -9` while the create-binding POST is in flight",
         "the rerun adopts the binding SM made: one binding, exit 0", preset="mid-2023",
         faults=[dict(method="POST", path=SB, action="delay", delay_ms=2500)], crash_after=1.2,
         wait_before_rerun=2.0, rerun=0, checks=one_instance()),
    # --- transport and input rules (C core, calm.lib.json) -------------------------------------------
    Case("null-clientsecret", "`--sm-key` with `\"clientsecret\": null`", "counts as missing: exit 2, no request",
         key=bad_sm_key(set_field("clientsecret", None)), exit=2, err=r"has no clientsecret",
         checks=lambda fake, res: [("no request sent", fake.requests() == [], "%d requests" % len(fake.requests()))]),
    Case("http-non-loopback", "`--sm-key` whose token `url` is `http://` on a non-loopback host",
         "bad input, before any request: exit 2 naming the key and field, 'plain http is only allowed to loopback hosts'",
         key=bad_sm_key(set_field("url", "http://calm.authentication.example.com")), exit=2,
         err=r"sm-key-bad\.json: url is http://calm\.authentication\.example\.com: plain http is only allowed to "
             r"loopback hosts"),
    Case("sslkeylogfile", "HTTPS fake, `SSLKEYLOGFILE` set", "cleared: exit 0, no key log written",
         fake=dict(https=True), env={"SSLKEYLOGFILE": "@STATE@/keylog.txt"},
         checks=lambda fake, res: [("no TLS key log file", not os.path.exists(os.path.join(fake.dir, "keylog.txt")),
                                    "keylog.txt exists")]),
] + fault_hostile.CASES


# ----------------------------------------------------------------------------- runner --

def state_problems(fake, allow_pending):
    st = fake.state()
    probs = []
    for kind in ("instances", "bindings"):
        names = collections.Counter(x["name"] for x in st[kind])
        for n, k in names.items():
            if k > 1:
                probs.append("%d %s named %r" % (k, kind, n))
        for x in st[kind]:
            if x.get("ready") is False:
                lo = x.get("last_operation") or {}
                if allow_pending and str(lo.get("state", "")).lower() in ("in progress", "pending"):
                    continue
                probs.append("%s %r (%s) left ready:false (%s)" % (kind[:-1], x["name"], x["id"], lo.get("state")))
    return probs


class Result:
    pass


def execute(case, fake, work, label):
    out_dir = os.path.join(work, "out-" + label)
    tmp_dir = os.path.join(work, "tmp-" + label)
    os.makedirs(out_dir)
    os.makedirs(tmp_dir)
    res = Result()
    res.out_dir, res.tmp_dir = out_dir, tmp_dir
    res.out = os.path.join(out_dir, "key.json")
    res.report = os.path.join(work, "report-%s.json" % label)
    key = case.key(fake) if case.key else fake.sm_key_path
    args = ["get", "--sm-key", key, "--out", res.out, "--report", res.report,
            "--timeout", str(case.timeout)] + case.args
    if fake.https:
        args += ["--cacert", fake.ca_path]
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    env.update(ENV)
    env["TMPDIR"] = tmp_dir
    for k, v in case.env.items():
        env[k] = v.replace("@STATE@", fake.dir)
    crash = case.crash_after if label == "run" else None
    t0 = time.monotonic()
    proc = subprocess.Popen([itest.CALMBIND] + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    th = None
    if case.during and label == "run":
        th = threading.Thread(target=case.during, args=(fake,), daemon=True)
        th.start()
    if crash:
        time.sleep(crash)
        proc.send_signal(signal.SIGKILL)
    try:
        res.stdout, res.stderr = proc.communicate(timeout=float(case.timeout) + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        res.stdout, res.stderr = proc.communicate()
    res.rc = proc.returncode
    res.elapsed = time.monotonic() - t0
    res.crashed = bool(crash)
    if th:
        th.join(10)
    return res


def check_run(s, case, fake, res, label, want_exit):
    name = case.id if label == "run" else "%s (rerun)" % case.id
    ok_all = True

    def chk(what, cond, why=""):
        nonlocal ok_all
        ok_all &= bool(s.check("%s: %s" % (name, what), cond, why))

    if res.crashed:
        chk("killed mid-run", res.rc == -signal.SIGKILL, "exit %r" % res.rc)
    elif case.bug and label == "run" and res.rc == case.bug_exit and res.rc != want_exit:
        # documented known bug: the safe fallback still has to hold
        print("ok - faults: %s: exit %d # known bug %s (reported; want exit %d)"
              % (name, res.rc, case.bug, want_exit), flush=True)
    else:
        chk("exit %d" % want_exit, res.rc == want_exit,
            "exit %r; stderr: %s" % (res.rc, res.stderr.strip()[-400:]))
    if not res.crashed:
        chk("within --timeout", res.elapsed <= float(case.timeout) + SLACK, "took %.1f s" % res.elapsed)
        lines = res.stderr.splitlines()
        errors = [ln for ln in lines if ln.startswith("error:")]
        trace = "stack traceback" in res.stderr or re.search(r"\.lua:\d+:", res.stderr)
        if res.rc == 0:
            one = not errors and not trace
            chk("stderr: no error line, no traceback", one, res.stderr.strip()[-300:])
        else:
            one = len(errors) == 1 and not trace
            chk("stderr: one error line, no traceback", one, res.stderr.strip()[-400:])
        pat = case.err if (label == "run" and case.err) else None
        if pat:
            where = "\n".join(errors) if res.rc != 0 else res.stderr
            chk("message matches /%s/" % pat, re.search(pat, where) is not None,
                (errors or lines[-1:] or ["(empty)"])[-1][:400])
    # the --out directory: complete 0600 key or nothing at all
    names = sorted(os.listdir(res.out_dir))
    if res.rc == 0:
        good = names == ["key.json"]
        why = "files %r" % names
        if good:
            mode = stat.S_IMODE(os.stat(res.out).st_mode)
            try:
                with open(res.out) as f:
                    k = json.load(f)
                good = mode == 0o600 and isinstance(k.get("uaa"), dict) and \
                    isinstance(k["uaa"].get("clientsecret"), str) and "endpoints" in k
                why = "mode %o, keys %r" % (mode, sorted(k))
            except ValueError as e:
                good, why = False, "not JSON: %s" % e
        chk("--out: one complete key, mode 0600", good, why)
    else:
        chk("--out: nothing written (no partial or temp file)", names == [], "files %r" % names)
    # before a rerun, an operation the killed or timed-out run left running is expected;
    # the rerun must then leave everything ready
    probs = state_problems(fake, case.allow_pending or (label == "run" and case.rerun is not None))
    chk("fake state: no duplicate, nothing ready:false", not probs, "; ".join(probs))
    pats = canary.patterns(fake)
    texts = [("stdout", res.stdout), ("stderr", res.stderr)]
    if os.path.exists(res.report):
        with open(res.report, errors="replace") as f:
            texts.append(("report", f.read()))
    texts += [(p, b) for p, b in canary.files_under(res.out_dir, res.tmp_dir, skip=[res.out])]
    found = canary.scan(texts, pats)
    chk("no canary in stdout, stderr, report, temp files", not found, "; ".join(found[:5]))
    return ok_all


def run_case(s, case, work_root):
    with FakeBTP(preset=case.preset, **case.fake) as fake:
        for rule in case.faults:
            fake.fault(**rule)
        work = tempfile.mkdtemp(prefix=case.id + "-", dir=work_root)
        res = execute(case, fake, work, "run")
        check_run(s, case, fake, res, "run", case.exit)
        if case.checks and not res.crashed:
            for what, cond, why in case.checks(fake, res):
                s.check("%s: %s" % (case.id, what), cond, why)
        if case.rerun is not None:
            if case.wait_before_rerun:
                time.sleep(case.wait_before_rerun)
            fake.clear_faults()
            res2 = execute(case, fake, work, "rerun")
            check_run(s, case, fake, res2, "rerun", case.rerun)
            if case.checks and res.crashed:
                for what, cond, why in case.checks(fake, res2):
                    s.check("%s (rerun): %s" % (case.id, what), cond, why)


def markdown():
    rows = ["| case | fault injected | expected outcome | exit |", "|---|---|---|---|"]
    for c in CASES:
        ex = str(c.exit) + ("" if c.rerun is None else ", rerun %d" % c.rerun)
        if c.crash_after:
            ex = "killed, rerun %d" % c.rerun
        outcome = c.outcome + (" — **known bug %s** (today: exit %d)" % (c.bug, c.bug_exit) if c.bug else "")
        rows.append("| `%s` | %s | %s | %s |" % (c.id, c.fault.replace("|", "\\|"), outcome.replace("|", "\\|"), ex))
    return "\n".join(rows) + "\n"


def main():
    if "--markdown" in sys.argv:
        sys.stdout.write(markdown())
        return
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    s = itest.Suite("faults")
    ids = [c.id for c in CASES]
    s.check("at least 30 cases, unique ids", len(ids) >= 30 and len(set(ids)) == len(ids),
            "%d cases, %d unique" % (len(ids), len(set(ids))))
    try:
        with open(MATRIX_DOC) as f:
            readme = f.read()
    except OSError:
        readme = ""
    s.check("docs/reliability.md carries the current matrix", markdown() in readme,
            "regenerate with: python3 tests/integration/test_fault_matrix.py --markdown")
    work_root = tempfile.mkdtemp(prefix="calmbind-faults-")
    t0 = time.monotonic()
    for c in CASES:
        if only and not any(o in c.id for o in only):
            continue
        try:
            run_case(s, c, work_root)
        except Exception as e:  # a harness failure is a failed case, not a crashed suite
            s.check("%s: harness" % c.id, False, "%s: %s" % (type(e).__name__, e))
    print("# fault matrix took %.0f s" % (time.monotonic() - t0), file=sys.stderr)
    if not os.environ.get("FAKEBTP_KEEP"):
        import shutil
        shutil.rmtree(work_root, ignore_errors=True)
    s.done()


if __name__ == "__main__":
    main()
