#!/usr/bin/env python3
"""The fake's fault actions for hostile and broken answers (issue 13), on the wire:
rewrite (bytes into the real answer), deep, header_flood, long_header, trickle. Read with
a raw socket, since http.client itself refuses 100 000 headers or a 1 MiB line."""
import json
import os
import socket
import sys
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeBTP  # noqa: E402
from test_fakebtp import FAILED, PASSED, Env, check  # noqa: E402

GB = "^/v1/service_bindings$"


def raw_get(env, path, timeout=10, limit=None, first_bytes=None):
    """GET on the SM host: (seconds, bytes received). first_bytes: stop after that many."""
    u = urllib.parse.urlsplit(env.key["sm_url"])
    s = socket.create_connection(("127.0.0.1", u.port), timeout)
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: application/json\r\n"
           "Connection: close\r\n\r\n" % (path, u.netloc, env.sm_token())).encode()
    t0 = time.time()
    s.sendall(req)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if first_bytes and len(data) >= first_bytes:
                break
    finally:
        s.close()
    return time.time() - t0, data


def split(data):
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def test_hostile(fake):
    e = Env(fake)
    _, plain = raw_get(e, "/v1/service_bindings")
    lines, body = split(plain)
    check("plain answer parses as JSON", json.loads(body).get("num_items", 0) >= 1, plain[:200])

    fake.fault(method="GET", path=GB, action="rewrite", find=r'"clientsecret": "',
               replace='"clientsecret": "\u00ff\u00fe\u00c0\u00af')
    _, data = raw_get(e, "/v1/service_bindings")
    lines, body = split(data)
    clen = [ln for ln in lines if ln.lower().startswith(b"content-length:")]
    check("rewrite: the bytes FF FE C0 AF land in the body", b'"clientsecret": "\xff\xfe\xc0\xaf' in body, body[:200])
    check("rewrite: Content-Length fits the new body", clen == [b"Content-Length: %d" % len(body)], repr(clen))
    try:
        body.decode("utf-8")
        check("rewrite: the body is not UTF-8", False, "decoded")
    except UnicodeDecodeError:
        check("rewrite: the body is not UTF-8", True)

    fake.fault(method="GET", path=GB, action="rewrite", find=r'"clientsecret": "',
               replace='"clientsecret": "decoy", "clientsecret": "')
    _, data = raw_get(e, "/v1/service_bindings")
    pairs = json.loads(split(data)[1], object_pairs_hook=lambda p: p)
    flat = json.dumps(pairs)
    check("rewrite: a member twice", '["clientsecret", "decoy"], ["clientsecret"' in flat, flat[:300])

    fake.fault(method="GET", path=GB, action="deep", depth=100000)
    _, data = raw_get(e, "/v1/service_bindings")
    lines, body = split(data)
    check("deep: 200 with 100000 nested arrays", lines[0].startswith(b"HTTP/1.1 200") and
          body == b"[" * 100000 + b"]" * 100000, repr(lines[0]))

    fake.fault(method="GET", path=GB, action="header_flood", headers=100000)
    _, data = raw_get(e, "/v1/service_bindings")
    lines, body = split(data)
    check("header_flood: 100000 extra header lines, then the real body",
          sum(1 for ln in lines if ln.startswith(b"X-Fill-")) == 100000 and json.loads(body).get("items"),
          "%d lines" % len(lines))

    fake.fault(method="GET", path=GB, action="long_header", bytes=1 << 20)
    _, data = raw_get(e, "/v1/service_bindings")
    lines, body = split(data)
    longest = max(len(ln) for ln in lines)
    check("long_header: one header line of 1 MiB", longest == len(b"X-Long: ") + (1 << 20), str(longest))

    fake.fault(method="GET", path=GB, action="trickle", rate=1)
    took, data = raw_get(e, "/v1/service_bindings", first_bytes=3)
    check("trickle: 1 byte per second", len(data) == 3 and 1.5 <= took <= 4 and data == b"HTT",
          "%r after %.1f s" % (data, took))
    _, data = raw_get(e, "/v1/service_bindings")
    check("trickle is consumed; the next answer is whole", json.loads(split(data)[1]).get("items"), data[:100])


def main():
    t0 = time.time()
    try:
        with FakeBTP(preset="after-2023-10-16") as fake:
            test_hostile(fake)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        check("test run completes", False, "exception (see stderr)")
    print("# fakebtp hostile faults: %d passed, %d failed in %.1f s" % (len(PASSED), len(FAILED), time.time() - t0))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
