#!/bin/sh
# make bench: the host benchmark, the get benchmark (issue: few round trips), the
# core under many flows, the fleet benchmark (issue 11) and discover (issue 19). Not part of make test or CI.
set -e
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: bench/run.sh CALMBIND}
python3 "$here/bench_host.py" "$bin"
if [ -f "$here/get_bench.py" ]; then python3 "$here/get_bench.py" "$bin"; fi
if [ -f "$here/get_bench.sh" ]; then sh "$here/get_bench.sh" "$bin"; fi
python3 "$here/core_bench.py" "$bin"
if [ -f "$here/fleet_bench.py" ]; then python3 "$here/fleet_bench.py" "$bin"; fi
if [ -f "$here/discover_bench.py" ]; then python3 "$here/discover_bench.py" "$bin"; fi
