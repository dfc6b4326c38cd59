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
local fs, json, sm = require "calm.fs", require "calm.lib.json", require "calm.btp.sm"
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
    s.check("a request not in the recording stops the run in one line naming it, the next recorded one "
            "and the field", r[0] == 1 and r[1] == "" and r[2].splitlines() == [
                "error: replay: GET http://service-manager.localhost:1/v1/not_recorded is not in the recording %s: "
                "the next unused exchange, #1 POST %s, differs at 'url'"
                % (rec_path, json.load(open(rec_path))["exchanges"][0]["url"])], (r[0], r[2][-400:]))
    r = itest.run([script, "--replay", rec_path, "--replay-loose"], env=ENV)
    s.check("--replay-loose: a request not in the recording fails as a script error naming the next one",
            r[0] == 1 and "replay: GET http://service-manager.localhost:1/v1/not_recorded is not in the recording"
            in r[2] and "next unused exchange: #1 POST" in r[2] and r[1] == "", (r[0], r[2][-300:]))


NAMING = os.path.join(ROOT, "examples", "policies", "naming")


def replay_get(rec_path, policy=None, extra=()):
    work = os.path.dirname(rec_path)
    out = os.path.join(work, "replayed-key.json")
    if os.path.exists(out):
        os.unlink(out)
    env = dict(ENV, CALMBIND_PATH=policy) if policy else ENV
    r = itest.run(["get", "--sm-key", os.path.join(work, "sm-key.json"), "--out", out,
                   "--replay", rec_path] + list(extra), env=env)
    return r, os.path.exists(out)


def stopped_at(r, wrote, index, method, path, field):
    """The run stopped with exit 1 at its one replay line, naming exchange, request and field."""
    lines = r[2].splitlines()
    last = lines[-1] if lines else ""
    return (r[0] == 1 and not wrote and sum("replay:" in x for x in lines) == 1
            and last.startswith("error: replay: %s http://" % method) and path in last
            and ("differs from exchange #%d of the recording" % index) in last
            and last.split(" at ", 1)[-1].startswith("'%s'" % field))


def strict(s):
    # mid-2023: calmbind creates the instance, so a naming policy changes what it sends
    _, _, stock = record_then_replay(s, "stock get mid-2023", "mid-2023",
                                     ["get", "--sm-key", "{dir}/sm-key.json", "--out", "{dir}/key.json"])
    named = record_then_replay(s, "naming policy get mid-2023 replayed against its own recording", "mid-2023",
                               ["get", "--sm-key", "{dir}/sm-key.json", "--out", "{dir}/key.json"],
                               env={"CALMBIND_PATH": NAMING})
    if not stock or not named[2]:
        s.check("strict replay: both recordings written", False)
        return
    s.check("naming policy: its own recording replays to a written key", named[1][0] == 0
            and "creating instance 'acme-basis-calm-deployment'" in named[1][2], named[1][2][-300:])
    doc = json.load(open(stock[0]))
    index = next(i for i, x in enumerate(doc["exchanges"], 1)
                 if x["method"] == "POST" and x["url"].endswith("/v1/service_instances"))
    r, wrote = replay_get(stock[0], NAMING)
    s.check("naming policy against the stock recording: exit 1, one line naming exchange #%d and 'name'" % index,
            stopped_at(r, wrote, index, "POST", "/v1/service_instances", "name")
            and '"calm-api-deployment", requested "acme-basis-calm-deployment"' in r[2].splitlines()[-1],
            (r[0], wrote, r[2][-500:]))
    s.check("the run stopped there: no binding created, nothing verified",
            "creating binding" not in r[2] and "verified" not in r[2], r[2][-500:])
    r, wrote = replay_get(named[2][0])
    s.check("stock scripts against the naming policy's recording: exit 1 naming 'name'",
            stopped_at(r, wrote, index, "POST", "/v1/service_instances", "name"), (r[0], wrote, r[2][-500:]))
    r, wrote = replay_get(stock[0], NAMING, ["--replay-loose"])
    s.check("--replay-loose: the naming policy against the stock recording is answered by method and URL",
            r[0] == 0 and wrote and "creating instance 'acme-basis-calm-deployment'" in r[2]
            and "binding 'calm-api-deployment-key' (instance 'calm-api-deployment') works" in r[2],
            (r[0], wrote, r[2][-500:]))
    r = itest.run(["get", "--sm-key", "x.json", "--replay-loose"], env=ENV)
    s.check("--replay-loose without --replay: usage error", r[0] == 2 and "goes with --replay" in r[2], r[2])


BODIES = """local http = require "calm.http"
local a = assert(http.request { method = "POST", url = "http://127.0.0.1:1/things",
  body = '{ "tag" : "b",\\n  "labels": {"y": [1, 2], "x": true}, "n": 2 }' })
local b = assert(http.request { method = "POST", url = "http://127.0.0.1:1/things",
  json = { n = 1, tag = "a" } })
print(a.body, b.body)
return 0
"""


def json_bodies(s):
    # two exchanges on one URL: the replay asks in the other order, each body
    # reordered and re-spaced; matched as data, each gets its own answer
    work = tempfile.mkdtemp(prefix="calmbind-rr-")
    rec_path = os.path.join(work, "rec.json")

    def exchange(body, answer):
        return {"method": "POST", "url": "http://127.0.0.1:1/things",
                "request": {"headers": {"Content-Type": "application/json"}, "body": body},
                "response": {"status": 200, "headers": {}, "body": answer}}
    with open(rec_path, "w") as f:
        json.dump({"calmbind_recording": 1, "exchanges": [
            exchange('{"n":1,"tag":"a"}', "answer-a"),
            exchange('{"labels":{"x":true,"y":[1,2]},"n":2,"tag":"b"}', "answer-b")]}, f)
    script = os.path.join(work, "bodies.lua")
    with open(script, "w") as f:
        f.write(BODIES)
    r = itest.run([script, "--replay", rec_path], env=ENV)
    s.check("JSON bodies match as data: key order and white space do not matter",
            r[0] == 0 and r[1] == "answer-b\tanswer-a\n", (r[0], r[1], r[2][-300:]))
    with open(script, "w") as f:
        f.write(BODIES.replace('"y": [1, 2]', '"y": [1, 3]'))
    r = itest.run([script, "--replay", rec_path], env=ENV)
    s.check("a body that differs in one array entry stops the run naming it and the closest exchange",
            r[0] == 1 and r[1] == "" and r[2].splitlines()[-1:] == [
                "error: replay: POST http://127.0.0.1:1/things differs from exchange #2 of the recording %s "
                "at 'labels.y[2]': recorded 2, requested 3" % rec_path], (r[0], r[2][-300:]))


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
    strict(s)
    json_bodies(s)
    bad_usage(s)
    s.done()


if __name__ == "__main__":
    main()
