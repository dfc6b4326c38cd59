#!/usr/bin/env python3
"""Command-line conventions: durations (90, 90s, 10m, 1h, 7d) wherever a duration is
taken; bundled short flags (-vq refused only as contradictory); every --trace line marked
`trace: ` with > sent and < received; export --format dotenv; the env export's header naming
the binding as it is; bash completion (commands as words, files for the inventory and key
arguments, the user's commands); `completion` in help."""
import json
import os
import shutil
import subprocess
import tempfile

from itest import CALMBIND, Suite, run
from harness import FakeBTP

S = Suite("conventions")
TMP = tempfile.mkdtemp(prefix="conventions-")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}

with FakeBTP(preset="after-2023-10-16") as fake:
    sm = fake.sm_key_path

    # durations
    for v in ("90", "90s", "10m", "1h", "7d", "1.5h"):
        rc, out, err = run(["plan", "--sm-key", sm, "--timeout", v], env=ENV)
        S.eq("--timeout %s is a duration" % v, (rc, err[-200:] if rc else ""), (0, ""))
    rc, out, err = run(["plan", "--sm-key", sm, "--timeout", "10x"], env=ENV)
    S.check("--timeout 10x: exit 2 naming the option and the forms", rc == 2 and "--timeout" in err
            and "10m" in err, (rc, err))
    inv = os.path.join(TMP, "inv.csv")
    with open(inv, "w") as f:
        f.write("name,sm_key,timeout\none,%s,2m\n" % sm)
    rc, out, err = run(["fleet", inv, "--out-dir", os.path.join(TMP, "o"), "--tenant-timeout", "1m"], env=ENV)
    S.eq("fleet --tenant-timeout 1m and an inventory timeout of 2m", (rc, err[-300:] if rc else ""), (0, ""))
    with open(inv, "w") as f:
        f.write("name,sm_key,timeout\none,%s,soon\n" % sm)
    rc, out, err = run(["fleet", inv, "--out-dir", os.path.join(TMP, "o")], env=ENV)
    S.check("an inventory timeout that is no duration: exit 2 naming the field", rc == 2 and "timeout" in err
            and "10m" in err, (rc, err))

    # short flags combine; -v with -q is refused for what it is
    rc, out, err = run(["-vq", "plan", "--sm-key", sm], env=ENV)
    S.check("-vq: exit 2, 'contradict', not 'unknown option'", rc == 2 and "contradict" in err
            and "unknown" not in err, (rc, err))
    rc, out, err = run(["plan", "-q", "--sm-key", sm, "-v"], env=ENV)
    S.check("-q ... -v: the same reason", rc == 2 and "contradict" in err, (rc, err))
    rc, out, err = run(["plan", "-vh"], env=ENV)
    S.check("-vh: the help", rc == 0 and "usage: calmbind plan" in out, (rc, out[:100], err))

    # --trace: every line of an exchange says what it is
    rc, out, err = run(["plan", "--trace", "--sm-key", sm], env=ENV)
    lines = err.splitlines()
    traced = [l for l in lines if l.startswith("trace: ")]
    S.check("--trace: response headers are marked 'trace: < '",
            any(l.startswith("trace: < Content-Type:") for l in traced), traced[:8])
    S.check("--trace: sent lines are marked 'trace: > '", any(l.startswith("trace: > POST ") for l in traced),
            traced[:4])
    stray = [l for l in lines if not l.startswith(("trace: ", "debug: ", "warning: ", "error: "))
             and (l.startswith("HTTP/") or (":" in l and l.split(":")[0].replace("-", "").isalnum()
                                            and l.split(":")[0][:1].isupper() and " " not in l.split(":")[0]))]
    S.check("--trace: no unmarked header or status line", not stray, stray[:5])
    S.check("--trace: no blank trace line", "trace: < " not in lines and "trace: <" not in lines, "")

    # keys: dotenv, and the env export's header
    key = os.path.join(TMP, "k.json")
    rc, out, err = run(["get", "--sm-key", sm, "--out", key], env=ENV)
    envf = os.path.join(TMP, "k.env")
    rc, out, err = run(["get", "--sm-key", sm, "--format", "env", "--out", envf], env=ENV)
    head = open(envf).readline() if os.path.exists(envf) else ""
    S.check("the env export's header names the binding as it is", "binding '" in head and "?" not in head, head)
    rc, out, err = run(["export", key, "--format", "dotenv"], env=ENV)
    k = json.load(open(key))
    pairs = dict(l.split("=", 1) for l in out.splitlines() if l and not l.startswith("#"))
    S.check("export --format dotenv: KEY=value lines, values literal", rc == 0
            and pairs.get("CALM_CLIENT_SECRET") == k["uaa"]["clientsecret"]
            and pairs.get("CALM_CLIENT_ID") == k["uaa"]["clientid"], (rc, err, list(pairs)))
    x = json.loads(json.dumps(k))
    x["uaa"]["credential-type"] = "x509"
    x["uaa"].pop("clientsecret", None)
    x["uaa"]["certificate"] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    x["uaa"]["key"] = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
    x["uaa"]["certurl"] = x["uaa"]["url"]
    xk = os.path.join(TMP, "x509.json")
    json.dump(x, open(xk, "w"))
    rc, out, err = run(["export", xk, "--format", "dotenv"], env=ENV)
    S.check("dotenv refuses a value with a line break, naming the variable (exit 2)", rc == 2 and out == ""
            and "CALM_CLIENT_CERTIFICATE" in err and "line break" in err and "MIIE" not in err, (rc, out, err))

# help and completion
rc, out, err = run(["help"])
S.check("help lists calmbind completion", "completion" in out and "bash|zsh" in out, out)
rc, script, err = run(["completion", "bash"])
comp = os.path.join(TMP, "calmbind.bash")
open(comp, "w").write(script)
work = os.path.join(TMP, "work")
os.makedirs(os.path.join(work, "fleet"))
open(os.path.join(work, "tenants.csv"), "w").write("name\n")
user = os.path.join(TMP, "user")
os.makedirs(os.path.join(user, "commands"))
open(os.path.join(user, "commands", "hello.lua"), "w").write("return function() return 0 end\n")


def complete(*words):
    """COMPREPLY for the command line `calmbind words...` (the last word being completed)."""
    cw = ["calmbind"] + list(words)
    prog = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _calmbind; printf "%%s\\n" "${COMPREPLY[@]}"; '
            'complete -p calmbind' % (comp, " ".join("'%s'" % w for w in cw), len(cw) - 1))
    env = dict(os.environ, CALMBIND_PATH=user, PATH=os.path.dirname(CALMBIND) + os.pathsep + os.environ["PATH"])
    p = subprocess.run(["bash", "-c", prog], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    lines = p.stdout.splitlines()
    return lines[:-1], (lines[-1] if lines else "")


got, spec = complete("fle")
S.eq("calmbind fle<Tab>: the command fleet (a fleet/ directory is there)", got, ["fleet"])
S.check("... completion is not registered with -o filenames", "-o filenames" not in spec, spec)
got, _ = complete("fleet", "ten")
S.eq("calmbind fleet ten<Tab>: the inventory file", got, ["tenants.csv"])
got, _ = complete("get", "--sm-key", "ten")
S.eq("calmbind get --sm-key ten<Tab>: a file", got, ["tenants.csv"])
got, _ = complete("hel")
S.check("calmbind hel<Tab>: the user's command hello and help", sorted(got) == ["hello", "help"], got)
got, _ = complete("comp")
S.eq("calmbind comp<Tab>: completion", got, ["completion"])

shutil.rmtree(TMP, ignore_errors=True)
S.done()
