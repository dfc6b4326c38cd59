#!/usr/bin/env python3
"""--record FILE / --replay FILE: a run against the fake BTP is recorded, the fake is stopped,
and the replay (no network left to reach) must give the same exit code, the same stderr and the
same stdout except that secrets come out as their stand-ins. Every recording is scanned for
every secret the fake issued (raw, URL- and base64-encoded, JWT signatures, PEM lines: the
needles of test_secrets.py). A customised command replays the same recording; a script that
asks for something else fails naming the request."""
import json
import os
import re
import shutil
import stat
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import itest  # noqa: E402
import test_secrets  # noqa: E402
from harness import FakeBTP  # noqa: E402

ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}
ROOT = os.path.dirname(os.path.dirname(HERE))
STANDIN = "calmbind-redacted-"


def is_standin(v):
    return isinstance(v, str) and (v.startswith(STANDIN) or "\n" + "Y2FsbWJpbmQtcmVkYWN0ZWQt" in v)


def differences(rec, rep, path="$"):
    """Leaves where the recorded run's output and the replay's differ: [(path, recorded, replayed)]."""
    if isinstance(rec, dict) and isinstance(rep, dict):
        if set(rec) != set(rep):
            return [(path, sorted(rec), sorted(rep))]
        out = []
        for k in rec:
            out += differences(rec[k], rep[k], path + "." + k)
        return out
    if isinstance(rec, list) and isinstance(rep, list) and len(rec) == len(rep):
        out = []
        for i, (a, b) in enumerate(zip(rec, rep)):
            out += differences(a, b, "%s[%d]" % (path, i))
        return out
    return [] if rec == rep else [(path, rec, rep)]


def _sorted_json(m):
    return m.group(1) + json.dumps(json.loads(m.group(2)), sort_keys=True)


def normal(err):
    """stderr without the elapsed-time figures of progress lines, and with the parameters
    JSON (whose key order lua-cjson leaves to chance) sorted."""
    err = re.sub(r"(?m)^(  parameters: )(\{.*\})$", _sorted_json, err)
    return re.sub(r"\b\d+(\.\d+)? s\b", "N s", err)


def holds_issued(value, issued):
    return isinstance(value, str) and any(len(x) >= 8 and x in value for x in issued)


def record_then_replay(s, tag, preset, args, env=None, scan=True):
    """Records args against a fresh fake, stops it, replays. Returns (rec, rep, recording path)."""
    work = tempfile.mkdtemp(prefix="calmbind-rr-")
    rec_path = os.path.join(work, "rec.json")
    e = dict(ENV)
    e.update(env or {})
    with FakeBTP(preset=preset) as fake:
        for name in ("sm_key_path", "cis_key_path"):
            shutil.copy(getattr(fake, name), os.path.join(work, os.path.basename(getattr(fake, name))))
        full = [a.format(dir=work, subaccount=fake.subaccount) for a in args]
        rec = itest.run(full + ["--record", rec_path], env=e)
        pats = test_secrets.patterns(fake)
        issued = set(fake.issued_secrets())
    rep = itest.run(full + ["--replay", rec_path], env=e)
    if not os.path.exists(rec_path):
        s.check(tag + ": recording written", False, rec[2][-400:])
        return rec, rep, None
    mode = stat.S_IMODE(os.stat(rec_path).st_mode)
    s.eq(tag + ": recording is mode 0600", oct(mode), oct(0o600))
    with open(rec_path) as f:
        text = f.read()
    if scan:
        found = test_secrets.hits(text, pats)
        s.check(tag + ": the recording holds no secret the fake issued (%d needles)" % len(pats),
                not found and len(pats) > 1, found[:3])
    s.eq(tag + ": replay exits as the recorded run", rep[0], rec[0])
    s.eq(tag + ": replay prints the same on stderr", normal(rep[2]), normal(rec[2]))
    return rec, rep, (rec_path, issued)


def get_paths(s):
    sm = "{dir}/sm-key.json"
    for preset, extra in (("after-2023-10-16", []),
                          ("mid-2023", []),
                          ("before-2023-06-12", ["--cis-key", "{dir}/cis-key.json", "--subaccount", "{subaccount}"])):
        tag = "get " + preset
        rec, rep, info = record_then_replay(s, tag, preset, ["get", "--sm-key", sm] + extra)
        if not s.eq(tag + ": recorded run exits 0", rec[0], 0) or not info:
            print("#   " + rec[2][-800:].replace("\n", "\n#   "))
            continue
        try:
            diffs = differences(json.loads(rec[1]), json.loads(rep[1]))
        except ValueError:
            s.check(tag + ": both print a JSON key", False, rep[2][-500:])
            continue
        secret_only = all(holds_issued(a, info[1]) and is_standin(b) for _, a, b in diffs)
        s.check(tag + ": replay prints the same key, secrets as stand-ins", secret_only and diffs,
                [(p, str(a)[:12], str(b)[:40]) for p, a, b in diffs if not (holds_issued(a, info[1]) and is_standin(b))][:4])


def failures(s):
    # a refused secret (exit 3) and a transport failure replay as they happened
    work = tempfile.mkdtemp(prefix="calmbind-rr-")
    rec_path = os.path.join(work, "rec.json")
    with FakeBTP(preset="after-2023-10-16") as fake:
        key = json.load(open(fake.sm_key_path))
        key["clientsecret"] = "not-the-secret-at-all"
        bad = os.path.join(work, "sm.json")
        with open(bad, "w") as f:
            json.dump(key, f)
        fake.fault(action="reset", method="GET", path=r"^/v1/service_offerings", count=2)
        r1 = itest.run(["get", "--sm-key", bad, "--timeout", "20", "--record", rec_path], env=ENV)
        with open(fake.sm_key_path) as f:
            good = f.read()
        with open(bad, "w") as f:
            f.write(good)
        r2 = itest.run(["get", "--sm-key", bad, "--record", rec_path + "2"], env=ENV)
    p1 = itest.run(["get", "--sm-key", bad, "--timeout", "20", "--replay", rec_path], env=ENV)
    s.check("refused secret: exit 3 recorded and replayed", r1[0] == 3 and p1[0] == 3, (r1[0], p1[0], p1[2][-300:]))
    p2 = itest.run(["get", "--sm-key", bad, "--replay", rec_path + "2"], env=ENV)
    s.check("connection resets, then success: recorded and replayed alike",
            r2[0] == 0 and p2[0] == 0 and p2[1] == r2[1].replace(json.loads(r2[1])["uaa"]["clientsecret"],
                                                                json.loads(p2[1] or "{}").get("uaa", {}).get("clientsecret", "?")),
            (r2[0], p2[0], p2[2][-300:]))
    with open(rec_path + "2") as f:
        doc = json.load(f)
    s.check("a transport failure is recorded as an error with its code",
            any((x.get("error") or {}).get("code") == "RECV_ERROR" or (x.get("error") or {}).get("code") == "GOT_NOTHING"
                for x in doc["exchanges"]), [x.get("error") for x in doc["exchanges"]][:3])


CUSTOM = """-- calmbind instances: the example, customised: names only, upper case
local fs, json, sm = require "calm.fs", require "calm.json", require "calm.sm"
return function(args)
  local key = json.decode(assert(fs.read(args[2])))
  local client = assert(sm.from_key(key))
  local _, plan = client:offering_and_plan()
  local items = assert(client:list("service_instances", { fieldQuery = sm.eq("service_plan_id", plan.id) }))
  for _, i in ipairs(items) do print(i.name:upper()) end
  return 0
end
"""

ASKS_MORE = """local http = require "calm.http"
local resp, msg = http.request { url = "http://service-manager.localhost:1/v1/not_recorded" }
print(resp, msg)
return 0
"""


def customised(s):
    examples = os.path.join(ROOT, "examples")
    rec, rep, info = record_then_replay(s, "instances example", "after-2023-10-16",
                                        ["instances", "--sm-key", "{dir}/sm-key.json"],
                                        env={"CALMBIND_PATH": examples})
    s.check("instances example: replay prints the same list",
            rec[0] == 0 and rep[1] == rec[1] and "SAPCloudALMAPIs-auto" in rep[1], rep[2][-300:])
    if not info:
        return
    rec_path = info[0]
    work = os.path.dirname(rec_path)
    over = os.path.join(work, "override", "commands")
    os.makedirs(over)
    with open(os.path.join(over, "instances.lua"), "w") as f:
        f.write(CUSTOM)
    r = itest.run(["instances", "--sm-key", os.path.join(work, "sm-key.json"), "--replay", rec_path],
                  env=dict(ENV, CALMBIND_PATH=os.path.join(work, "override")))
    s.check("a customised command runs offline against the recording",
            r[0] == 0 and r[1].strip().splitlines() == ["SAPCLOUDALMAPIS-AUTO"], (r[0], r[1], r[2][-300:]))
    script = os.path.join(work, "asks-more.lua")
    with open(script, "w") as f:
        f.write(ASKS_MORE)
    r = itest.run([script, "--replay", rec_path], env=ENV)
    s.check("a request not in the recording fails, naming it and the next recorded one",
            r[0] == 1 and "replay: GET http://service-manager.localhost:1/v1/not_recorded is not in the recording"
            in r[2] and "next unused exchange: #1 POST" in r[2] and r[1] == "", (r[0], r[2][-300:]))


def bad_usage(s):
    work = tempfile.mkdtemp(prefix="calmbind-rr-")
    notrec = os.path.join(work, "x.json")
    with open(notrec, "w") as f:
        f.write('{"a": 1}')
    r = itest.run(["check", notrec, "--replay", notrec])
    s.check("--replay of a file that is no recording: exit 2 naming it",
            r[0] == 2 and "--replay %s: not a calmbind recording" % notrec in r[2], r[2])
    r = itest.run(["check", notrec, "--replay", os.path.join(work, "missing.json")])
    s.check("--replay of a missing file: exit 2", r[0] == 2 and "missing.json" in r[2], r[2])
    r = itest.run(["check", notrec, "--record", notrec + "1", "--replay", notrec])
    s.check("--record with --replay: usage error", r[0] == 2 and "one at a time" in r[2], r[2])
    r = itest.run(["check", notrec, "--record", os.path.join(work, "no", "dir", "rec.json")])
    s.check("--record into a missing directory: the run's own exit, then an error naming the file",
            r[0] == 2 and "not a service key" in r[2] and "--record: cannot write" in r[2]
            and "rec.json" in r[2], (r[0], r[2]))
    with open(os.path.join(work, "ok.lua"), "w") as f:
        f.write("return 0\n")
    r = itest.run([os.path.join(work, "ok.lua"), "--record", os.path.join(work, "no", "dir", "rec.json")])
    s.check("--record into a missing directory after a successful run: exit 2",
            r[0] == 2 and "--record: cannot write" in r[2], (r[0], r[2]))
    rec = os.path.join(work, "before.json")
    r = itest.run(["--record", rec, os.path.join(work, "ok.lua")])
    s.check("--record before a script of one's own is honoured", r[0] == 0 and os.path.exists(rec), r[2])
    r = itest.run(["--replay", notrec, os.path.join(work, "ok.lua")])
    s.check("--replay before a script of one's own is honoured", r[0] == 2 and "not a calmbind recording" in r[2], r[2])
    r = itest.run(["check", "--help"])
    s.check("--record and --replay are global options in every command's help",
            "--record FILE" in r[1] and "--replay FILE" in r[1], r[1])


def main():
    s = itest.Suite("integration/record_replay")
    get_paths(s)
    failures(s)
    customised(s)
    bad_usage(s)
    s.done()


if __name__ == "__main__":
    main()
