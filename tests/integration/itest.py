"""Small helpers shared by the integration tests: run the built binary, report
checks as "ok - suite: what" / "not ok - suite: what: why" lines."""
import os
import pty
import select
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakebtp"))
CALMBIND = os.environ.get("CALMBIND", os.path.join(ROOT, "build", "calmbind"))


class Suite:
    def __init__(self, name):
        self.name = name
        self.failed = 0

    def check(self, what, cond, why=""):
        if cond:
            print(f"ok - {self.name}: {what}", flush=True)
        else:
            self.failed += 1
            print(f"not ok - {self.name}: {what}: {why}", flush=True)
        return cond

    def eq(self, what, got, want):
        return self.check(what, got == want, f"got {got!r}, want {want!r}")

    def done(self):
        sys.exit(1 if self.failed else 0)


def run(args, env=None, stdin=None, timeout=120, cwd=None):
    """Runs calmbind with args; returns (exit code, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("SSLKEYLOGFILE", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([CALMBIND] + list(args), env=full_env, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def run_tty(args, env=None, timeout=60):
    """Runs calmbind with stdout on a pseudo terminal (what a person at a shell
    has); returns (exit code, terminal output, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("SSLKEYLOGFILE", None)
    if env:
        full_env.update(env)
    master, slave = pty.openpty()
    proc = subprocess.Popen([CALMBIND] + list(args), stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=full_env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:   # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    rc = proc.wait(timeout=timeout)
    err = proc.stderr.read().decode(errors="replace")
    os.close(master)
    return rc, b"".join(chunks).decode(errors="replace"), err
