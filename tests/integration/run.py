#!/usr/bin/env python3
"""Runs every tests/integration/test_*.py as its own process (so one crash or
hang cannot take the others down) and passes its ok/not ok lines through."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PER_FILE_TIMEOUT = int(os.environ.get("ITEST_TIMEOUT", "600"))


def main():
    only = sys.argv[1:]
    failed = 0
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        if only and not any(o in name for o in only):
            continue
        try:
            proc = subprocess.run([sys.executable, os.path.join(HERE, name)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=PER_FILE_TIMEOUT, text=True)
        except subprocess.TimeoutExpired:
            print(f"not ok - integration/{name}: timed out after {PER_FILE_TIMEOUT}s")
            failed += 1
            continue
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed += 1
            if "not ok" not in proc.stdout:
                print(f"not ok - integration/{name}: exited {proc.returncode}")
            for line in proc.stderr.splitlines()[-15:]:
                print(f"#   {line}")
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
