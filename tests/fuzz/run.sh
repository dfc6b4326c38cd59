#!/bin/sh
# tests/fuzz/run.sh [SECONDS]: builds and runs every libFuzzer target.
#
# Each tests/fuzz/fuzz_<name>.c is one target. Its first line names the core
# sources it links with:   /* needs: src/redact.c src/buf.c */
# ("core" in that list stands for every src/*.c except src/main.c.)
# It is built with clang's libFuzzer plus ASan and UBSan, then run for SECONDS
# (default 60) on a scratch copy of tests/fuzz/corpus/<name>/ (the committed
# corpus never grows; new inputs are thrown away). Binaries, logs and corpus
# copies live in a private temporary directory, so parallel runs and a
# `make clean` meanwhile do not collide. One line per target:
#   ok - fuzz: <name>: <N> execs, 0 crashes
#   not ok - fuzz: <name>: <why>     (log and crash inputs kept in build/fuzz/<name>/)
# Exit status: 0 when every target passed, 1 otherwise.
# Environment: FUZZ_CC (default clang-14, else clang), FUZZ_FLAGS (extra flags).
set -u

cd "$(dirname "$0")/../.." || exit 2
secs=${1:-60}
case $secs in ''|*[!0-9]*) echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2 ;; esac

cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
    if command -v clang-14 >/dev/null 2>&1; then cc=clang-14; else cc=clang; fi
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/calm-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
pkg_cflags=$(pkg-config --cflags lua5.4 libcurl libcrypto 2>/dev/null)
pkg_libs="$(pkg-config --libs lua5.4 libcurl lua5.4-cjson libcrypto 2>/dev/null) -lm"
flags="-g -O1 -std=c99 -D_GNU_SOURCE -fno-omit-frame-pointer \
 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# keep NAME FILE...: saves evidence of a failure where the tmp dir won't eat it
keep() {
    k=build/fuzz/$1
    shift
    mkdir -p "$k" && cp -R "$@" "$k/"
}

failed=0
found=0
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    found=1
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    work=$tmp/$name
    bin=$work/fuzz_$name
    log=$work/$name.log
    mkdir -p "$work/corpus" "$work/artifacts"

    # "/* needs: a.c b.c */" on the first line: the sources to link with
    needs=$(head -n 1 "$src" | sed -n 's|^/\* *needs: *\(.*[^ ]\) *\*/.*$|\1|p')
    # "core" stands for every src/*.c but main.c, so a split file needs no edit here
    srcs=
    for w in $needs; do
        if [ "$w" = core ]; then
            for c in src/*.c; do [ "$c" = src/main.c ] || srcs="$srcs $c"; done
        else
            srcs="$srcs $w"
        fi
    done
    # shellcheck disable=SC2086  # word splitting of flag lists is intended
    if ! $cc $flags ${FUZZ_FLAGS:-} -Iinclude $pkg_cflags -o "$bin" "$src" $srcs $pkg_libs \
            >"$log" 2>&1; then
        keep "$name" "$log"
        echo "not ok - fuzz: $name: build failed (see build/fuzz/$name/$name.log)"
        failed=1
        continue
    fi

    # Either corpus/<name>/ or corpus/fuzz_<name>/ holds the seeds.
    for seeds in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/fuzz_$name"; do
        if [ -d "$seeds" ]; then
            cp -R "$seeds/." "$work/corpus/"
            break
        fi
    done

    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >>"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    crashes=$(find "$work/artifacts" -type f | wc -l | tr -d ' ')
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
        echo "ok - fuzz: $name: ${execs:-0} execs, 0 crashes"
    else
        keep "$name" "$log" "$work/artifacts"
        why=$(grep -m 1 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:|deadly signal' \
              "$log" | cut -c1-160)
        echo "not ok - fuzz: $name: exit $rc, $crashes crash input(s) in build/fuzz/$name/: ${why:-see log}"
        failed=1
    fi
    rm -rf "$work"
done

if [ "$found" -eq 0 ]; then
    echo "not ok - fuzz: no tests/fuzz/fuzz_*.c targets"
    exit 1
fi
exit "$failed"
