"""The fault matrix's vocabulary: a Case (one row) and the helpers rows use to check the
fake's request log. test_fault_matrix.py runs the rows; fault_hostile.py holds the rows for
hostile and broken server answers (issue 13)."""
import datetime
import json
import os
import re
import time

SI, SB = r"^/v1/service_instances$", r"^/v1/service_bindings$"
GI, GB = r"^/v1/service_instances", r"^/v1/service_bindings"
TOKEN = r"/oauth/token$"


class Case:
    def __init__(self, cid, fault, outcome, preset="after-2023-10-16", faults=(), args=(),
                 timeout=20, exit=0, err=None, fake=None, env=None, key=None, during=None,
                 crash_after=None, rerun=None, checks=None, allow_pending=False, bug=None,
                 bug_exit=None, wait_before_rerun=0.0):
        self.id = cid
        self.fault = fault            # docs: what is injected
        self.outcome = outcome        # docs: what must happen
        self.preset = preset
        self.faults = list(faults)
        self.args = list(args)
        self.timeout = timeout
        self.exit = exit
        self.err = err
        self.fake = fake or {}
        self.env = env or {}
        self.key = key                # fn(fake) -> path of the --sm-key to use
        self.during = during          # fn(fake) run in a thread while calmbind runs
        self.crash_after = crash_after  # seconds: SIGKILL calmbind, then rerun
        self.rerun = rerun            # expected exit of a rerun without faults
        self.checks = checks          # fn(fake, res) -> [(what, ok, why)]
        self.allow_pending = allow_pending
        self.bug = bug                # known product bug (reported to the lead)
        self.bug_exit = bug_exit      # the exit code the bug gives today
        self.wait_before_rerun = wait_before_rerun


# ---------------------------------------------------------------------------- helpers --

def ts(r):
    return datetime.datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()


def gap_after(fake, method, path_re, status):
    """Seconds between the first `status` answer to method+path and the next such request."""
    reqs = [r for r in fake.requests() if r["method"] == method and re.search(path_re, r["path"])]
    for i, r in enumerate(reqs[:-1]):
        if r["status"] == status:
            return ts(reqs[i + 1]) - ts(r)
    return None


def count(fake, method, path_re, status=None):
    return len([r for r in fake.requests() if r["method"] == method and re.search(path_re, r["path"])
                and (status is None or r["status"] == status)])


def waited(method, path_re, status, at_least, at_most=None):
    def check(fake, res):
        g = gap_after(fake, method, path_re, status)
        ok = g is not None and g >= at_least and (at_most is None or g <= at_most)
        return [("waited %s..%s s before the retry" % (at_least, at_most or "-"), ok, "gap %r" % g)]
    return check


def requests_of(method, path_re, n, status=None):
    def check(fake, res):
        c = count(fake, method, path_re, status)
        return [("%d %s %s%s request(s)" % (n, method, path_re, "" if status is None else " -> %d" % status),
                 c == n, "got %d" % c)]
    return check


def instances_named(fake, name):
    return [i for i in fake.state()["instances"] if i["name"] == name]


def one_instance(name="calm-api-deployment"):
    def check(fake, res):
        n = len(instances_named(fake, name))
        return [("exactly one instance '%s'" % name, n == 1, "got %d" % n)]
    return check


def both(*fns):
    def check(fake, res):
        out = []
        for f in fns:
            out += f(fake, res)
        return out
    return check


def bad_sm_key(mutate):
    def make(fake):
        k = fake.sm_key()
        mutate(k)
        p = os.path.join(fake.dir, "sm-key-bad.json")
        with open(p, "w") as f:
            json.dump(k, f)
        return p
    return make


def set_field(name, value):
    def m(k):
        k[name] = value
    return m


def expire_after(seconds):
    def during(fake):
        time.sleep(seconds)
        fake.expire_tokens()
    return during
