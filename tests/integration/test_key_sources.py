#!/usr/bin/env python3
"""Secrets from where CI keeps them: every key option takes `-` (standard input, one option
a run) and any readable file, FIFOs and /dev/fd/N included; CALMBIND_SM_KEY and
CALMBIND_CIS_KEY take a path or the key's JSON itself, with the same redaction and the same
"this is not a key" checks as a file."""
import json
import os
import subprocess
import tempfile
import threading
import time

from itest import CALMBIND, Suite
from harness import FakeBTP

S = Suite("key_sources")
TMP = tempfile.mkdtemp(prefix="keysrc-")
BASE = {"CALMBIND_POLL_INTERVAL": "0.05"}


def sh(cmd, env=None, stdin=None):
    """Runs a bash command line (process substitution needs bash); $CB is calmbind."""
    e = dict(os.environ)
    e.pop("SSLKEYLOGFILE", None)
    for k in ("CALMBIND_SM_KEY", "CALMBIND_CIS_KEY", "CALMBIND_CIS_KEY2"):
        e.pop(k, None)
    e.update(BASE)
    e["CB"] = CALMBIND
    e.update(env or {})
    p = subprocess.run(["bash", "-c", cmd], env=e, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


with FakeBTP(preset="after-2023-10-16") as fake:
    sm_path = fake.sm_key_path
    sm_text = open(sm_path).read()
    sm_secret = json.loads(sm_text)["clientsecret"]
    secrets = [s for s in fake.issued_secrets() + [sm_secret] if s]

    def no_secret(what, text):
        S.check(what + ": no secret in the output", not any(s in text for s in secrets),
                [s[:4] for s in secrets if s in text])

    rc, out, err = sh('"$CB" plan --sm-key <(cat "%s")' % sm_path)
    S.eq("--sm-key <(...): the key is read from the pipe", (rc, err[-200:] if rc else ""), (0, ""))

    rc, out, err = sh('"$CB" plan --sm-key -', stdin=sm_text)
    S.eq("--sm-key -: the key from standard input", (rc, err[-200:] if rc else ""), (0, ""))

    n = len(fake.requests())
    rc, out, err = sh('"$CB" plan --sm-key - --cis-key -', stdin=sm_text)
    S.check("two options given -: usage error (exit 2) naming both, before any request",
            rc == 2 and "--cis-key -" in err and "--sm-key" in err and "standard input" in err
            and len(fake.requests()) == n, (rc, err))

    fifo = os.path.join(TMP, "sm.fifo")
    os.mkfifo(fifo)

    def late_writer():
        time.sleep(0.5)
        with open(fifo, "w") as f:
            f.write(sm_text)
    th = threading.Thread(target=late_writer)
    th.start()
    rc, out, err = sh('"$CB" plan --sm-key "%s"' % fifo)
    th.join()
    S.eq("--sm-key on a named FIFO whose writer comes late", (rc, err[-200:] if rc else ""), (0, ""))

    rc, out, err = sh('"$CB" plan --sm-key /dev/fd/3 3<"%s"' % sm_path)
    S.eq("--sm-key /dev/fd/3", (rc, err[-200:] if rc else ""), (0, ""))

    rc, out, err = sh('"$CB" plan --sm-key "%s"' % TMP)
    S.check("a directory is still refused (exit 2, naming it)", rc == 2 and TMP in err and "directory" in err,
            (rc, err))

    # the variable holds the key's JSON (a GitHub secret)
    rc, out, err = sh('"$CB" plan --trace', env={"CALMBIND_SM_KEY": sm_text})
    S.eq("CALMBIND_SM_KEY holding the key's JSON", (rc, err[-300:] if rc else ""), (0, ""))
    no_secret("... under --trace", out + err)

    rc, out, err = sh('"$CB" plan', env={"CALMBIND_SM_KEY": sm_path})
    S.eq("CALMBIND_SM_KEY holding a path, as before", (rc, err[-200:] if rc else ""), (0, ""))

    rc, out, err = sh('"$CB" plan', env={"CALMBIND_SM_KEY": sm_text[: len(sm_text) // 2]})
    S.check("CALMBIND_SM_KEY with truncated JSON: exit 2 naming the variable, no part of it echoed",
            rc == 2 and "CALMBIND_SM_KEY" in err and "clientsecret" not in err, (rc, err))
    no_secret("truncated JSON", out + err)

    rc, out, err = sh('"$CB" plan', env={"CALMBIND_SM_KEY": "-----BEGIN PRIVATE KEY-----\nMIIE\n"})
    S.check("CALMBIND_SM_KEY holding a PEM: 'not a key', exit 2", rc == 2 and "CALMBIND_SM_KEY" in err
            and "PEM private key" in err and "MIIE" not in err, (rc, err))

    rc, out, err = sh('"$CB" plan', env={"CALMBIND_CIS_KEY": sm_text, "CALMBIND_SM_KEY": sm_path})
    S.check("CALMBIND_CIS_KEY holding a Service Manager key: the wrong-kind refusal, naming the variable",
            rc == 2 and "CALMBIND_CIS_KEY" in err and "Service Manager binding" in err
            and "pass it as --sm-key" in err, (rc, err))
    no_secret("wrong kind", out + err)

    # get with the key from the variable: the report names the variable, never the JSON
    out_key, rep = os.path.join(TMP, "k.json"), os.path.join(TMP, "r.json")
    rc, out, err = sh('"$CB" get --out "%s" --report "%s"' % (out_key, rep), env={"CALMBIND_SM_KEY": sm_text})
    S.eq("get with CALMBIND_SM_KEY's JSON writes the key", (rc, err[-300:] if rc else ""), (0, ""))
    report = open(rep).read() if os.path.exists(rep) else ""
    no_secret("get's report and output", out + err + report)
    S.check("... the report holds no part of the key's JSON", "clientid" not in report and sm_text not in report,
            report[:300])

    # check, verify and export: FILE may be -, /dev/fd/N, <(...)
    calm_key = open(out_key).read() if os.path.exists(out_key) else "{}"
    rc, out, err = sh('"$CB" check -', stdin=calm_key)
    S.eq("check -: the key from standard input", (rc, err[-200:] if rc else ""), (0, ""))
    rc, out, err = sh('"$CB" verify <(cat "%s")' % out_key)
    S.eq("verify <(...)", (rc, err[-200:] if rc else ""), (0, ""))
    rc, out, err = sh('"$CB" export --format env /dev/fd/4 4<"%s"' % out_key)
    S.check("export /dev/fd/4", rc == 0 and "=" in out, (rc, err))

S.done()
