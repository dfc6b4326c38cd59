#!/usr/bin/env python3
"""Messages an admin can act on: one line, each fact once, the source named as
given (CALMBIND_SM_KEY or --sm-key), TLS and proxy failures say what to do,
help text survives the redactor, a script error is not a BTP failure, a key
on stdout in a file others can read gets a warning, Ctrl-C is one line and 130."""
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile
import time

from itest import CALMBIND, Suite, run
from harness import FakeBTP

S = Suite("messages")
TMP = tempfile.mkdtemp(prefix="calmbind-msg-")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}


def error_lines(err):
    return [l for l in err.splitlines() if l.startswith("error:")]


def repeats(text):
    """A run of 2+ words said twice in a row ("waiting for waiting for")."""
    return re.search(r"\b((?:\w+ ){1,3}\w+) \1\b", text)


def one_clear_line(what, rc, err, want_rc, *must):
    lines = error_lines(err)
    S.check(what, rc == want_rc and len(lines) == 1 and all(m in lines[0] for m in must)
            and not repeats(lines[0]), (rc, err[-500:]))
    return lines[0] if lines else ""


def sources_named_as_given():
    rc, _, err = run(["get", "--sm-key", "nope.json"])
    line = one_clear_line("--sm-key missing file: names --sm-key and the file, once", rc, err, 2,
                          "--sm-key", "nope.json")
    S.check("... 'cannot read' and the file name once each", line.count("cannot read") == 1
            and line.count("nope.json") == 1, line)
    rc, _, err = run(["get"], env={"CALMBIND_SM_KEY": "nope.json"})
    line = one_clear_line("CALMBIND_SM_KEY missing file: names CALMBIND_SM_KEY, not --sm-key", rc, err, 2,
                          "CALMBIND_SM_KEY", "nope.json")
    S.check("... and not --sm-key", "--sm-key" not in line, line)
    junk = os.path.join(TMP, "junk.json")
    with open(junk, "w") as f:
        f.write("not json\n")
    rc, _, err = run(["plan"], env={"CALMBIND_SM_KEY": junk})
    one_clear_line("CALMBIND_SM_KEY not a key: names CALMBIND_SM_KEY", rc, err, 2, "CALMBIND_SM_KEY", junk)
    rc, _, err = run(["check", "nope.json"])
    line = one_clear_line("check on a missing file: one line, 'cannot read' once", rc, err, 2, "nope.json")
    S.check("... 'cannot read' once", line.count("cannot read") == 1, line)


def no_double_waiting():
    """An operation an earlier run left running is waited for; the deadline
    message says what it waited for, once."""
    with FakeBTP(preset="mid-2023") as fake:
        fake.fault(method="POST", path="/v1/service_instances", action="op_stuck")
        rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--timeout", "2"], env=ENV)
        S.eq("a create that never ends: exit 5", rc, 5)
        rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--timeout", "2"], env=ENV)
        one_clear_line("the rerun waits for it: exit 5, 'waiting for' once", rc, err, 5,
                       "deadline passed while waiting for the running operation of instance")
        S.check("... never 'waiting for waiting for'", "waiting for waiting for" not in err, err)


def tls_and_proxy():
    with FakeBTP(preset="after-2023-10-16", https=True) as fake:
        env = dict(ENV, SSL_CERT_FILE="", CURL_CA_BUNDLE="", CALMBIND_CACERT="")
        rc, _, err = run(["plan", "--sm-key", fake.sm_key_path, "--timeout", "10"], env=env)
        one_clear_line("TLS not trusted: exit 1, suggests --cacert and SSL_CERT_FILE", rc, err, 1,
                       "--cacert", "SSL_CERT_FILE", "verification stays on")
        rc, _, err = run(["plan", "--sm-key", fake.sm_key_path, "--cacert", fake.ca_path], env=env)
        S.check("... with --cacert it works", rc == 0, err[-300:])
    # a proxy that refuses: the message names the variable it came from, never its password
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    key = os.path.join(TMP, "https-key.json")
    with open(key, "w") as f:
        f.write('{"endpoints": {"Api": "https://t.eu10.alm.cloud.sap/api"}, "uaa": {"clientid": "sb-x!b1|calm!b111",'
                ' "clientsecret": "s3cr3t-VALUE-1234", "url": "https://t.authentication.eu10.hana.ondemand.com",'
                ' "identityzone": "t", "credential-type": "binding-secret"}}')
    proxy = "http://proxyuser:Pr0xyPassw0rd@127.0.0.1:%d" % port
    for var in ("https_proxy", "HTTPS_PROXY"):
        env = {"https_proxy": "", "HTTPS_PROXY": "", "all_proxy": "", "ALL_PROXY": "", "no_proxy": "",
               "NO_PROXY": ""}
        env[var] = proxy
        rc, _, err = run(["verify", key, "--timeout", "10"], env=env)
        line = one_clear_line("proxy refusing (%s): exit 1, names %s and the proxy" % (var, var), rc, err, 1,
                              "from " + var, "127.0.0.1:%d" % port)
        S.check("... never the proxy's user or password", "Pr0xyPassw0rd" not in err and "proxyuser" not in err,
                err)
    rc, _, err = run(["verify", key, "--timeout", "3"],
                     env={"https_proxy": proxy, "no_proxy": ".hana.ondemand.com", "HTTPS_PROXY": "",
                          "NO_PROXY": ""})
    S.check("no_proxy names the host: no proxy in the message", "proxy 127.0.0.1" not in err, err[-300:])


def script_error_and_help():
    boom = os.path.join(TMP, "boom.lua")
    with open(boom, "w") as f:
        f.write('local t = nil\nreturn t.field\n')
    rc, _, err = run([boom])
    one_clear_line("a script error says so, not a BTP failure", rc, err, 1, "script error", "not a BTP failure",
                   "boom.lua:2:")
    # help text passes the redactor unchanged (logged by a script, as an admin's command might)
    show = os.path.join(TMP, "show.lua")
    with open(show, "w") as f:
        f.write('local cli, log = require "calm.lib.cli", require "calm.log"\n'
                'for _, c in ipairs{"get", "plan", "check", "verify", "export"} do\n'
                '  local spec = require("calm.lib.completion").spec_of(c)\n'
                '  local u = cli.usage(spec)\n'
                '  if log.redact(u) ~= u then print("changed: " .. c) end\n'
                'end\n'
                'local h = "set CF_PASSWORD=... in the environment; --show-secrets prints the secret"\n'
                'if log.redact(h) ~= h then print("changed: prose") end\n')
    rc, out, err = run([show])
    S.check("every command's help text passes the redactor unchanged", rc == 0 and out == "", (rc, out, err))


def stdout_file_warning(fake_key):
    for mode, warn in ((0o644, True), (0o640, True), (0o600, False)):
        path = os.path.join(TMP, "out-%o.json" % mode)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)
        proc = subprocess.run([CALMBIND, "export", fake_key], stdout=fd, stderr=subprocess.PIPE, text=True)
        os.close(fd)
        said = "others can read" in proc.stderr
        S.check("export > file of mode %04o: %s" % (mode, "a warning" if warn else "no warning"),
                proc.returncode == 0 and said == warn and os.path.getsize(path) > 0, proc.stderr)
    rc, out, err = run(["export", fake_key])
    S.check("export | pipe: no warning", rc == 0 and "others can read" not in err, err)


def interrupted():
    with FakeBTP(preset="mid-2023", latency_ms=400) as fake:
        outdir = os.path.join(TMP, "out")
        os.makedirs(outdir)
        env = dict(os.environ, **ENV)
        env.pop("SSLKEYLOGFILE", None)
        proc = subprocess.Popen([CALMBIND, "get", "--sm-key", fake.sm_key_path, "--out",
                                 os.path.join(outdir, "k.json")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
        time.sleep(1.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        S.check("Ctrl-C: exit 130 and one line saying what it means",
                proc.returncode == 130 and err.splitlines()[-1] == "interrupted; nothing half-written; rerun resumes"
                and err.count("interrupted") == 1, (proc.returncode, err[-400:]))
        S.eq("Ctrl-C: nothing half-written in the --out directory", os.listdir(outdir), [])
        rc, _, err = run(["get", "--sm-key", fake.sm_key_path, "--out", os.path.join(outdir, "k.json")], env=ENV)
        S.check("Ctrl-C: the rerun finishes the job", rc == 0 and os.listdir(outdir) == ["k.json"]
                and stat.S_IMODE(os.stat(os.path.join(outdir, "k.json")).st_mode) == 0o600, err[-400:])


sources_named_as_given()
no_double_waiting()
tls_and_proxy()
script_error_and_help()
with FakeBTP(preset="after-2023-10-16") as f:
    k = os.path.join(TMP, "calm-key.json")
    rc, _, e = run(["get", "--sm-key", f.sm_key_path, "--out", k], env=ENV)
    S.check("a key for the stdout checks", rc == 0, e[-300:])
    stdout_file_warning(k)
interrupted()
S.done()
