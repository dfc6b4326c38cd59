#!/bin/sh
# valgrind on representative commands: flows + HTTP(S) + JSON + logging through
# the host, and (when the fake BTP is there) `check` and `get`. Fails on any
# memory error or definite/indirect leak.
set -eu
bin=${1:?usage: tests/valgrind.sh CALMBIND}
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/valgrind_run.py" "$bin"
