"""Small helpers shared by the integration tests: run the built binary, report
checks as "ok - suite: what" / "not ok - suite: what: why" lines."""
import os
import pty
import select
import subprocess
import sys
import time

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


def run(args, env=None, stdin=None, timeout=120, cwd=None, new_session=False):
    """Runs calmbind with args; returns (exit code, stdout, stderr). new_session:
    in a session of its own, without a controlling terminal (as in a CI job or
    cron, also when the tests run from a terminal: /dev/tty cannot be opened)."""
    full_env = dict(os.environ)
    full_env.pop("SSLKEYLOGFILE", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([CALMBIND] + list(args), env=full_env, input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True, cwd=cwd, start_new_session=new_session)
    return proc.returncode, proc.stdout, proc.stderr


def run_answering(args, answer, prompt="[y/N]", env=None, timeout=60):
    """Runs calmbind in a session of its own whose controlling terminal is a
    pseudo terminal (a person at a shell: /dev/tty, stdin, stdout and stderr are
    that terminal) and types answer once prompt has appeared. Returns (exit
    code, all the terminal showed, whether the prompt appeared)."""
    full_env = dict(os.environ)
    full_env.pop("SSLKEYLOGFILE", None)
    if env:
        full_env.update(env)
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(CALMBIND, [CALMBIND] + list(args), full_env)
        finally:
            os._exit(127)
    out, asked = b"", False
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(0, left))[0] if left > 0 else []
        if not ready:
            os.kill(pid, 9)
            break
        try:
            data = os.read(fd, 4096)
        except OSError:   # EIO once the child has closed the terminal
            break
        if not data:
            break
        out += data
        if not asked and prompt.encode() in out:
            os.write(fd, answer.encode())
            asked = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), asked


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
