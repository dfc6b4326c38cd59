#!/bin/sh
# tests/run.sh: runs every suite and prints one closing line "N passed, N failed".
# Each suite prints TAP-like lines: "ok - suite: what" / "not ok - suite: what".
# A suite that exits non-zero without reporting a failure counts as one failure.
# Needs CALMBIND (the binary) and UNIT_DIR (built C unit tests); make test sets both.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${CALMBIND:?set CALMBIND to the calmbind binary}"
: "${UNIT_DIR:?set UNIT_DIR to the built unit tests}"
export CALMBIND
out=$(mktemp -d "${TMPDIR:-/tmp}/calmbind-tests.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM
PY=${PYTHON:-python3}

run_suite() { # name, command...
    name=$1; shift
    "$@" > "$out/$name.log" 2> "$out/$name.err"
    rc=$?
    cat "$out/$name.log"
    if [ $rc -ne 0 ] && ! grep -q '^not ok' "$out/$name.log"; then
        echo "not ok - $name: suite exited $rc"
        sed 's/^/#   /' "$out/$name.err" | tail -n 20
    elif [ -n "${VERBOSE:-}" ]; then
        sed 's/^/#   /' "$out/$name.err"
    fi
}

{
    for t in "$UNIT_DIR"/test_*; do
        [ -x "$t" ] && run_suite "unit-$(basename "$t")" "$t"
    done
    run_suite lua "$CALMBIND" "$here/lua/run.lua" "$here/lua"
    for t in "$here"/fakebtp/test_*.py; do
        [ -f "$t" ] && run_suite "fakebtp-$(basename "$t" .py)" $PY "$t"
    done
    [ -f "$here/integration/run.py" ] && run_suite integration $PY "$here/integration/run.py"
} | tee "$out/all.log" | grep -v '^ok - ' 

passed=$(grep -c '^ok - ' "$out/all.log")
failed=$(grep -c '^not ok' "$out/all.log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
