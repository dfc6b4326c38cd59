#!/bin/sh
# make demo: run `calmbind get` against the fake BTP for the three provisioning-date paths,
# then `calmbind discover` on a fake global account of four tenants and `fleet` on what it wrote.
# Usage: sh tests/fakebtp/demo.sh BINARY
# Prints a short summary per path (found / created / exported; never secrets) and exits
# non-zero if any `get` failed.
set -u
BIN=${1:?usage: demo.sh BINARY}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
FAILS=0
FAKE_PID=

stop_fake() {
    if [ -n "$FAKE_PID" ]; then
        kill "$FAKE_PID" 2>/dev/null
        wait "$FAKE_PID" 2>/dev/null
        FAKE_PID=
    fi
}
trap 'stop_fake' EXIT INT TERM

summary() {  # DIR EXIT
    "$PY" - "$1" "$2" <<'EOF'
import json, os, sys
d, code = sys.argv[1], int(sys.argv[2])
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
rep = load(os.path.join(d, "report.json")) or {}
res = rep.get("result") or {}
dec = rep.get("decision") or {}
print("  exit %d%s" % (code, (": " + str(res.get("error"))) if res.get("error") else ""))
if dec:
    print("  path: %s (provisioned %s, from %s)" % (dec.get("path"), dec.get("date") or "?",
                                                  dec.get("source") or "?"))
for line in (rep.get("evidence") or [])[:6]:
    if isinstance(line, dict):
        line = " ".join("%s" % line.get(k) for k in ("source", "what") if line.get(k))
    print("  evidence: %s" % line)
for a in rep.get("actions") or []:
    if isinstance(a, dict):
        print("  action: %s %s %s" % (a.get("action", "?"), a.get("resource", ""),
                                      a.get("name") or a.get("id") or ""))
    else:
        print("  action: %s" % a)
# What the fake saw: mutating requests (token requests excluded).
muts, gets = [], 0
try:
    with open(os.path.join(d, "requests.jsonl")) as f:
        for l in f:
            r = json.loads(l)
            if r["path"].endswith("/oauth/token"):
                continue
            if r["method"] == "GET":
                gets += 1
            else:
                muts.append("%s %s -> %s" % (r["method"], r["path"], r["status"]))
except (OSError, ValueError):
    pass
for c in rep.get("checks") or []:
    if c.get("name") == "verify":
        dep = c.get("deployment") or {}
        print("  verified before writing: token for zone %s; Deployment scopes: %s" % (
            (c.get("zone") or {}).get("subdomain", "?"),
            ", ".join("%s %s" % (k, "yes" if v else "NO") for k, v in sorted(dep.items())) or "none"))
print("  fake BTP saw %d reads and %d writes" % (gets, len(muts)))
for m in muts:
    print("    " + m)
out = os.path.join(d, "out.txt")
if os.path.exists(out):
    fields = []
    with open(out) as f:
        for l in f:
            l = l.strip()
            for sep in (":", "="):
                if sep in l:
                    fields.append(l.split(sep, 1)[0].strip())
                    break
    print("  exported (alm-setup, values hidden): %s" % (", ".join(fields[:12]) or "nothing"))
EOF
}

for preset in after-2023-10-16 mid-2023 before-2023-06-12; do
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/calmbind-demo.XXXXXX")
    "$PY" "$HERE/fakebtp.py" --state-dir "$DIR" --preset "$preset" >"$DIR/fakebtp.log" 2>&1 &
    FAKE_PID=$!
    i=0
    while [ ! -f "$DIR/ready" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$FAKE_PID" 2>/dev/null; then
            echo "demo: the fake BTP did not start for $preset:" >&2
            cat "$DIR/fakebtp.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "== $preset =="
    "$BIN" get --sm-key "$DIR/sm-key.json" --cis-key "$DIR/cis-key.json" \
        --cis-key2 "$DIR/cis-local-key.json" \
        --report "$DIR/report.json" --format alm-setup \
        >"$DIR/out.txt" 2>"$DIR/get.stderr"
    code=$?
    summary "$DIR" "$code"
    if [ "$code" -ne 0 ]; then
        FAILS=$((FAILS + 1))
        echo "  stderr (last lines):"
        tail -n 5 "$DIR/get.stderr" | sed 's/^/    /'
    fi
    stop_fake
    if [ "${DEMO_KEEP:-}" = "" ]; then
        rm -rf "$DIR"
    else
        echo "  state kept in $DIR"
    fi
done

# One central cis key -> the Cloud ALM tenants, their SM keys, an inventory -> fleet.
DIR=$(mktemp -d "${TMPDIR:-/tmp}/calmbind-demo.XXXXXX")
"$PY" "$HERE/fakebtp.py" --state-dir "$DIR" --tenants 4 --cis-rate-limit 5/3 \
    --tenant-presets after-2023-10-16,mid-2023,before-2023-06-12 >"$DIR/fakebtp.log" 2>&1 &
FAKE_PID=$!
i=0
while [ ! -f "$DIR/ready" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$FAKE_PID" 2>/dev/null; then
        echo "demo: the fake global account did not start:" >&2
        cat "$DIR/fakebtp.log" >&2
        exit 1
    fi
    sleep 0.1
done
mkdir -p "$DIR/sm" "$DIR/out"
echo "== discover (global account of 4 SAP Cloud ALM tenants and 3 other subaccounts) =="
"$BIN" discover --cis-key "$DIR/cis-key.json" --inventory "$DIR/fleet.json" \
    --bootstrap-sm-keys "$DIR/sm" >"$DIR/discover.out" 2>"$DIR/discover.stderr"
code=$?
sed 's/^/  /' "$DIR/discover.out"
[ -s "$DIR/fleet.json" ] || code=1
echo "== fleet on the inventory discover wrote =="
"$BIN" fleet "$DIR/fleet.json" --out-dir "$DIR/out" >"$DIR/fleet.out" 2>"$DIR/fleet.stderr"
fcode=$?
sed 's/^/  /' "$DIR/fleet.out"
if [ "$code" -ne 0 ] || [ "$fcode" -ne 0 ] || [ "$(ls "$DIR/out" | wc -l)" -ne 4 ]; then
    FAILS=$((FAILS + 1))
    echo "  discover or fleet failed:"
    tail -n 5 "$DIR/discover.stderr" "$DIR/fleet.stderr" | sed 's/^/    /'
fi
stop_fake
if [ "${DEMO_KEEP:-}" = "" ]; then rm -rf "$DIR"; else echo "  state kept in $DIR"; fi

if [ "$FAILS" -ne 0 ]; then
    echo "demo: $FAILS of 4 runs failed"
    exit 1
fi
echo "demo: all 3 paths and discover + fleet done"
