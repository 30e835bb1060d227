#!/usr/bin/env bash
# Runs issue 11's performance scenarios against coedit, ShareDB 7 (in memory)
# and the bare relay, driven by the same load generator (`coedit bench`), one
# fresh server process per run, and writes docs/performance.md with tables
# and PNG plots (docs/perf/). Takes about 8 minutes with the defaults.
#
# Usage: scripts/bench.sh [--quick] [--note "text for the top of the page"]
#
#   --quick   short runs and fewer steps (about 2 minutes): to try the pipeline
#
# Environment: DURATION (measured seconds per run, 10), WARMUP (2),
# STEP_DURATION (seconds per step of scenario 3, 5), IDLE (connections in
# scenario 5, 10000), RESULTS (where the JSON results go; default
# artifacts/bench-DATE, kept).
#
# Needs go, node with the repository's node_modules (npm ci), and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
note=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --note) note="$2"; shift ;;
    *) echo "usage: scripts/bench.sh [--quick] [--note TEXT]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  DURATION=${DURATION:-3} WARMUP=${WARMUP:-1} STEP_DURATION=${STEP_DURATION:-2} IDLE=${IDLE:-2000}
  rates=(1000 4000 16000)
else
  DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} STEP_DURATION=${STEP_DURATION:-5} IDLE=${IDLE:-10000}
  rates=(500 1000 2000 4000 6000 8000 12000 16000 24000 32000)
fi
RESULTS=${RESULTS:-$root/artifacts/bench-$(date -u +%Y%m%d-%H%M%S)}

for tool in go node curl; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed" >&2; exit 1; }
done
if [ ! -d node_modules/sharedb ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
# Scenario 5 holds IDLE connections open in the generator and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building coedit, barerelay and the report tool"
go build -o "$work/coedit" ./cmd/coedit
go build -o "$work/barerelay" ./cmd/barerelay
(cd bench/report && go build -o "$work/report" .)
mkdir -p "$RESULTS"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# start_server TARGET: starts a fresh server, sets server_pid and server_url.
start_server() {
  local target=$1 port log
  port=$(free_port)
  log="$work/$target-$port.log"
  case "$target" in
    coedit|coedit-sync-none)
      local sync=always
      [ "$target" = coedit-sync-none ] && sync=none
      "$work/coedit" serve --addr "127.0.0.1:$port" --data "$work/data-$port" --sync "$sync" \
        --ops-per-second 1000000 --max-conns 1000000 --max-conns-per-addr 1000000 \
        --log-level warn >"$log" 2>&1 &
      ;;
    sharedb) node bench/sharedb-server.mjs --port "$port" >"$log" 2>&1 & ;;
    relay) "$work/barerelay" --addr "127.0.0.1:$port" >"$log" 2>&1 & ;;
  esac
  server_pid=$!
  server_url="ws://127.0.0.1:$port/ws"
  for _ in $(seq 200); do
    if ! kill -0 "$server_pid" 2>/dev/null; then echo "bench.sh: $target exited:" >&2; cat "$log" >&2; exit 1; fi
    case "$target" in
      coedit*) curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return ;;
      *) grep -q listening "$log" && return ;;
    esac
    sleep 0.05
  done
  echo "bench.sh: $target did not start:" >&2; cat "$log" >&2; exit 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  rm -rf "$work"/data-*
}

# bench NAME TARGET [coedit bench flags]: one run against a fresh server;
# the result goes to $RESULTS/NAME.TARGET.json (NAME.TARGET.STEP.json when
# $step is set). A failed run is reported and the script goes on.
step=""
bench() {
  local name=$1 target=$2
  shift 2
  local file="$RESULTS/$name.$target${step:+.$step}"
  local extra=()
  [ "$target" = relay ] && extra+=(--relay)
  start_server "$target"
  echo "-- $name $target${step:+ $step}: $*"
  if ! "$work/coedit" bench --pid "$server_pid" --out "$file.json" "${extra[@]}" "$@" "$server_url" \
      2>"$file.progress" | sed 's/^/   /'; then
    echo "   (run failed; see $file.progress)"
  fi
  stop_server
}

# held FILE: whether a step kept up (the same rule as bench/report).
held() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const ok = r.ops_per_s >= 0.95 * r.offered_ops_per_s && r.ack_latency.p99_ms <= 50 && !r.unsent && !r.errors;
    process.exit(ok ? 0 : 1);' "$1" 2>/dev/null
}

targets=(coedit sharedb relay)
timing=(--warmup "${WARMUP}s" --duration "${DURATION}s")

echo "== scenario 1: open loop 2,000 ops/s, 100 x 4"
for t in "${targets[@]}"; do bench s1 "$t" --docs 100 --clients 4 --rate 2000 "${timing[@]}"; done

echo "== scenario 2: closed loop 100 x 4 and 1 x 10"
for t in "${targets[@]}"; do bench s2a "$t" --docs 100 --clients 4 "${timing[@]}"; done
for t in "${targets[@]}"; do bench s2b "$t" --docs 1 --clients 10 "${timing[@]}"; done

echo "== scenario 3: latency against offered load, 100 x 4"
# Step up until two steps in a row are not held: one bad step on a noisy
# machine should not end the curve.
for t in "${targets[@]}"; do
  misses=0
  for rate in "${rates[@]}"; do
    step=$rate bench s3 "$t" --docs 100 --clients 4 --rate "$rate" --warmup 1s --duration "${STEP_DURATION}s"
    if held "$RESULTS/s3.$t.$rate.json"; then misses=0; else misses=$((misses + 1)); fi
    [ "$misses" -lt 2 ] || break
  done
done

echo "== scenario 4: one hot document, 400 clients x 1 op/s"
for t in "${targets[@]}"; do bench s4 "$t" --docs 1 --clients 400 --rate 400 "${timing[@]}"; done

echo "== scenario 5: $IDLE idle subscribed connections over 1,000 documents"
for t in "${targets[@]}"; do bench s5 "$t" --docs 1000 --clients 0 --idle "$IDLE" --warmup 0s --duration 1s; done

echo "== scenario 6: --sync none, closed loop 100 x 4 (--sync always is scenario 2)"
bench s6 coedit-sync-none --docs 100 --clients 4 "${timing[@]}"

elapsed=$(( $(date +%s) - started ))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== writing docs/performance.md (results in $RESULTS)"
(cd bench/report && "$work/report" -results "$RESULTS" -out "$root/docs/performance.md" -plots "$root/docs/perf" \
  -load-start "$load_start" -load-end "$load_end" -elapsed "$((elapsed / 60)) min $((elapsed % 60)) s" -note "$note" \
  -params "warm-up ${WARMUP} s and ${DURATION} s measured per run (scenario 3: 1 s and ${STEP_DURATION} s per step), ${IDLE} idle connections")
echo "done in ${elapsed}s"
