#!/usr/bin/env python3
"""The conventions admins know from git, kubectl, gh and terraform: -h/--help on
every command and `help CMD`, `version`, global options before or after the
command, "did you mean", -q, --json for check and verify; the man page and the
shell completion made from the same option specs as the parser."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from itest import CALMBIND, ROOT, Suite, run
from harness import FakeBTP

S = Suite("cli")
COMMANDS = ["get", "plan", "check", "verify", "export", "fleet", "discover", "rotate"]
TMP = tempfile.mkdtemp(prefix="calmbind-cli-")
ENV = {"CALMBIND_POLL_INTERVAL": "0.05"}


def options_in_help(text):
    """The option names a command's help lists (its own and the global ones)."""
    return set(re.findall(r"^  (?:-\w, )?--([a-z][a-z0-9-]*)", text, re.M))


def help_and_version():
    for cmd in COMMANDS:
        rc, out, err = run([cmd, "-h"])
        S.check("%s -h: exit 0, its usage on stdout" % cmd,
                rc == 0 and out.startswith("usage: calmbind %s" % cmd) and err == "", (rc, out[:80], err))
        rc2, out2, _ = run([cmd, "--help"])
        rc3, out3, _ = run(["help", cmd])
        S.check("%s --help and help %s print the same" % (cmd, cmd), (rc2, out2) == (rc3, out3) == (0, out),
                (rc2, rc3))
    rc, out, err = run(["scripts", "-h"])
    S.check("scripts -h: its usage on stdout, exit 0", rc == 0 and out.startswith("usage: calmbind scripts"),
            (rc, err))
    S.eq("help scripts prints the same", run(["help", "scripts"])[:2], (rc, out))
    rc, out, err = run(["-q", "--timeout", "5", "scripts"])
    S.check("scripts after global options: lists the scripts", rc == 0 and "calm/lib/cli.lua" in out, (rc, err))
    rc, out, err = run(["help"])
    S.check("help: the overview on stdout, exit 0", rc == 0 and "commands:" in out and "get" in out, (rc, err))
    S.eq("-h and --help: the same overview", [run(["-h"])[1], run(["--help"])[1]], [out, out])
    rc, out, err = run([])
    S.check("no command: the overview on stderr, exit 2", rc == 2 and out == "" and "usage:" in err, (rc, out))
    rc, out, err = run(["version"])
    S.check("version: 'calmbind X.Y.Z (Lua ..., libcurl/...)', exit 0",
            rc == 0 and re.match(r"calmbind \d+\.\d+\.\d+ \(Lua 5\.4", out), out)
    S.eq("--version prints the same", run(["--version"])[:2], (rc, out))


def did_you_mean():
    cases = [
        (["gte"], "unknown command 'gte' (did you mean 'get'?"),
        (["verfy", "k.json"], "did you mean 'verify'?"),
        (["get", "--sm-kye", "x"], "unknown option --sm-kye (did you mean --sm-key?)"),
        (["check", "--jsno", "x"], "did you mean --json?"),
        (["plan", "--detailed-exit-code"], "did you mean --detailed-exitcode?"),
        (["--verbos", "get"], "unknown option --verbos (did you mean --verbose?)"),
        (["get", "-verbose"], "did you mean --verbose?"),
    ]
    for args, want in cases:
        rc, out, err = run(args)
        S.check("did you mean: %s" % " ".join(args), rc == 2 and want in err and err.count("\n") == 1, (rc, err))
    rc, out, err = run(["frobnicate"])
    S.check("no suggestion for a word far from every command",
            rc == 2 and "did you mean" not in err and "see calmbind help" in err, err)


def global_options_anywhere(key):
    base = run(["check", key])
    for args in (["-v", "check", key], ["check", "-v", key], ["--timeout", "5", "check", key],
                 ["--timeout=5", "-q", "check", key], ["--cacert", key, "check", key], ["check", key, "--trace"]):
        rc, out, err = run(args)
        S.check("global options before or after the command: %s" % " ".join(args).replace(key, "KEY"),
                rc == 0 and out == base[1], (rc, err[-300:]))
    rc, out, err = run(["--timeout", "abc", "check", key])
    S.check("a bad global option before the command is still a usage error", rc == 2 and "--timeout" in err, err)
    rc, out, err = run(["-v"])
    S.check("global options without a command: exit 2, one line", rc == 2 and err.count("\n") == 1, err)


def json_outputs(fake):
    key = os.path.join(TMP, "calm-key.json")
    rc, out, err = run(["get", "--sm-key", fake.sm_key_path, "--out", key], env=ENV)
    S.check("get for the --json checks", rc == 0, err[-400:])
    secrets = [s for s in fake.issued_secrets()] if hasattr(fake, "issued_secrets") else []
    rc, out, err = run(["check", "--json", key])
    doc = json.loads(out) if out.startswith("{") else None
    S.check("check --json: the result as JSON, exit 0",
            rc == 0 and doc and doc["ok"] is True and doc["exit"] == 0 and doc["problems"] == []
            and doc["key"]["type"] in ("binding-secret", "instance-secret"), (rc, out[:300]))
    with open(key) as f:
        secret = json.load(f)["uaa"]["clientsecret"]
    S.check("check --json: no secret", secret not in out and secret.split("$")[-1] not in out, out)
    rc, out, err = run(["verify", "--json", key], env=ENV)
    doc = json.loads(out) if out.startswith("{") else None
    S.check("verify --json: scopes, zone and a verdict as JSON",
            doc and doc["exit"] == rc and "scopes" in doc and "zone" in doc and isinstance(doc["problems"], list),
            (rc, out[:300]))
    S.check("verify --json: no secret, no token", secret not in out and "eyJ" not in out, out)
    broken = os.path.join(TMP, "broken.json")
    with open(broken, "w") as f:
        f.write('{"uaa": ')
    rc, out, err = run(["check", "--json", broken])
    doc = json.loads(out) if out.startswith("{") else None
    S.check("check --json on a broken file: exit 2, JSON with the error, one error line",
            rc == 2 and doc and doc["ok"] is False and doc["exit"] == 2 and doc["error"]
            and err.count("error:") == 1, (rc, out, err))
    rc, out, err = run(["verify", "--json", os.path.join(TMP, "nope.json")])
    doc = json.loads(out) if out.startswith("{") else None
    S.check("verify --json on a missing file: exit 2, JSON says so", rc == 2 and doc and doc["exit"] == 2,
            (rc, out))
    return key


def get_output_and_quiet():
    with FakeBTP(preset="after-2023-10-16") as fake:
        out_key = os.path.join(TMP, "k1.json")
        rc, out, err = run(["get", "--sm-key", fake.sm_key_path, "--out", out_key], env=ENV)
        lines = err.splitlines()
        S.check("a successful get prints a few lines (the path, where the key went)",
                rc == 0 and 1 <= len(lines) <= 5 and any(l.startswith("path: ") for l in lines)
                and "evidence:" not in err and out_key in err, err)
        rc, out, err = run(["-v", "get", "--sm-key", fake.sm_key_path, "--out", out_key], env=ENV)
        S.check("get -v shows the evidence and the reasons", rc == 0 and "evidence:" in err and "because" in err,
                err[-600:])
        rc, out, err = run(["-q", "get", "--sm-key", fake.sm_key_path, "--out", out_key], env=ENV)
        S.check("get -q: nothing on stderr when it works", rc == 0 and err == "", err)
        rc, out, err = run(["get", "-q", "--sm-key", os.path.join(TMP, "nope.json")], env=ENV)
        S.check("get -q: an error is still one line", rc == 2 and err.count("\n") == 1 and "error:" in err, err)
        rc, out, err = run(["plan", "-q", "--sm-key", fake.sm_key_path], env=ENV)
        S.check("plan -q: the plan is the result (stdout), stderr quiet", rc == 0 and "path:" in out and err == "",
                (rc, err))
        global_options_anywhere(json_outputs(fake))


def man_page():
    man = os.path.join(ROOT, "docs", "calmbind.1")
    mandoc = shutil.which("mandoc")
    if mandoc or os.environ.get("CI") == "true":
        proc = subprocess.run([mandoc or "mandoc", "-T", "lint", "-W", "warning", man],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        S.check("man page: mandoc -T lint -W warning is clean", proc.returncode == 0 and proc.stdout == "",
                proc.stdout)
    with open(man) as f:
        text = f.read()
    for cmd in COMMANDS:
        _, out, _ = run([cmd, "-h"])
        missing = sorted(o for o in options_in_help(out) if ("Fl -" + o) not in text)
        S.check("man page documents every option of %s" % cmd, out and not missing, missing)


def complete(script, words):
    """Runs the generated bash completion for the words (the last is being typed)."""
    prog = ". %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_calmbind\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n" % (
        script, " ".join("'%s'" % w for w in words), len(words) - 1)
    proc = subprocess.run(["bash", "-c", prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=TMP)
    return proc.stdout.split()


def completion():
    bash = os.path.join(TMP, "calmbind.bash")
    rc, out, err = run(["completion", "bash"])
    with open(bash, "w") as f:
        f.write(out)
    S.check("completion bash: exit 0, a script bash accepts",
            rc == 0 and subprocess.run(["bash", "-n", bash]).returncode == 0, err)
    S.eq("bash: commands", complete(bash, ["calmbind", "ve"]), ["verify", "version"])
    S.eq("bash: an option after global options", complete(bash, ["calmbind", "-v", "--timeout", "5", "get", "--for"]),
         ["--format"])
    S.eq("bash: the choices of --format", complete(bash, ["calmbind", "get", "--format", ""]),
         ["json", "alm-setup", "env", "dotenv", "vcap", "k8s-secret"])
    S.eq("bash: help completes command names", complete(bash, ["calmbind", "help", "pl"]), ["plan"])
    open(os.path.join(TMP, "sm-key.json"), "w").close()
    S.eq("bash: a FILE option completes file names", complete(bash, ["calmbind", "plan", "--sm-key", "sm-"]),
         ["sm-key.json"])
    for cmd in COMMANDS:
        _, out, _ = run([cmd, "-h"])
        want = sorted("--" + o for o in options_in_help(out))
        got = sorted(w for w in complete(bash, ["calmbind", cmd, "--"]))
        S.eq("bash: %s completes exactly the options its parser accepts" % cmd, got, want)
    rc, zsh_text, err = run(["completion", "zsh"])
    S.check("completion zsh: exit 0, #compdef calmbind", rc == 0 and zsh_text.startswith("#compdef calmbind"), err)
    zsh = shutil.which("zsh")
    if zsh or os.environ.get("CI") == "true":
        path = os.path.join(TMP, "_calmbind")
        with open(path, "w") as f:
            f.write(zsh_text)
        proc = subprocess.run([zsh or "zsh", "-n", path], stderr=subprocess.PIPE, text=True)
        S.check("completion zsh: zsh -n accepts it", proc.returncode == 0, proc.stderr)
    for cmd in COMMANDS:
        _, out, _ = run([cmd, "-h"])
        missing = sorted(o for o in options_in_help(out) if ("--" + o + "[") not in zsh_text and ("--" + o + "}'[") not in zsh_text)
        S.check("zsh: %s offers every option its parser accepts" % cmd, not missing, missing)
    # the completion follows the spec: a command's new option is completed without editing anything else
    over = os.path.join(TMP, "override", "commands")
    os.makedirs(over)
    with open(os.path.join(ROOT, "scripts", "commands", "check.lua")) as f:
        src = f.read()
    with open(os.path.join(over, "check.lua"), "w") as f:
        f.write(src.replace('tenant = {', 'brand_new = { flag = true, help = "new" },\n    tenant = {'))
    _, out, _ = run(["completion", "bash"], env={"CALMBIND_PATH": os.path.join(TMP, "override")})
    with open(bash, "w") as f:
        f.write(out)
    S.check("bash: an option added to a spec is completed at once", "--brand_new" in
            complete(bash, ["calmbind", "check", "--br"]), out[:200])
    rc, out, err = run(["completion", "fish"])
    S.check("completion fish: exit 2, says bash or zsh", rc == 2 and "bash or zsh" in err, err)


def make_install():
    dest = os.path.join(TMP, "dest")
    env = dict(os.environ, DESTDIR=dest, PREFIX="/usr", B=os.path.dirname(CALMBIND))
    proc = subprocess.run(["make", "-s", "--no-print-directory", "install"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    want = ["usr/bin/calmbind", "usr/share/man/man1/calmbind.1", "usr/share/bash-completion/completions/calmbind",
            "usr/share/zsh/site-functions/_calmbind"]
    got = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
    S.eq("make install DESTDIR PREFIX: binary, man page, bash and zsh completion", (proc.returncode, got),
         (0, sorted(want)))
    with open(os.path.join(dest, "usr/share/bash-completion/completions/calmbind")) as f:
        S.check("installed bash completion is the generated one", f.read() == run(["completion", "bash"])[1])
    proc = subprocess.run(["make", "-s", "--no-print-directory", "uninstall"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    left = [f for _, _, fs in os.walk(dest) for f in fs]
    S.eq("make uninstall removes them", (proc.returncode, left), (0, []))


help_and_version()
did_you_mean()
get_output_and_quiet()
man_page()
completion()
make_install()
shutil.rmtree(TMP, ignore_errors=True)
S.done()
