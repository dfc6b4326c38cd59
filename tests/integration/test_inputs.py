#!/usr/bin/env python3
"""Input is judged once, the same way in every command (issue 9, point 9): files that
are not keys, the wrong kind of key, raw `cf service-key` output, option values checked
before any request, and an unreachable host (exit 1 at once, not six retries)."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import itest  # noqa: E402

S = itest.Suite("integration/inputs")
TMP = tempfile.mkdtemp(prefix="calmbind-inputs-")


def write(name, text, mode=0o600):
    p = os.path.join(TMP, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def unreachable():
    """A key whose token host refuses connections: exit 1 in every command, quickly, with
    at most two tries (not six with backoff ending in exit 5)."""
    sm = write("sm-unreachable.json", json.dumps({
        "clientid": "sb-x!b1|service-manager!b1", "clientsecret": "s3cr3t-unreachable",
        "url": "http://127.0.0.1:1", "sm_url": "http://127.0.0.1:1", "xsappname": "x!b1"}))
    calm = write("calm-unreachable.json", json.dumps({
        "endpoints": {"Api": "https://t.eu10.alm.cloud.sap/api"},
        "uaa": {"clientid": "sb-k!b1|sapcloudalm!b2", "clientsecret": "s3cr3t-unreachable",
                "url": "http://127.0.0.1:1", "identityzone": "t",
                "credential-type": "binding-secret"}}))
    for cmd, args in (("plan", ["plan", "--sm-key", sm]),
                      ("get", ["get", "--sm-key", sm, "--out", os.path.join(TMP, "k.json")]),
                      ("verify", ["verify", calm])):
        t0 = time.monotonic()
        rc, out, err = itest.run(args, timeout=60)
        took = time.monotonic() - t0
        S.eq("%s with an unreachable token host: exit 1" % cmd, rc, 1)
        S.check("%s with an unreachable token host: says it cannot reach it" % cmd,
                "cannot reach 127.0.0.1:1" in err, err[-400:])
        S.check("%s with an unreachable token host: at most one retry" % cmd,
                err.count("retrying") <= 1 and took < 10, (took, err[-400:]))
        S.check("%s: the secret is not shown" % cmd, "s3cr3t-unreachable" not in err + out, err[-300:])


def main():
    unreachable()
    S.done()


if __name__ == "__main__":
    main()
