#!/usr/bin/env bash
# Side-by-side runs of coedit builds: builds `coedit serve` from each REV
# (a git revision, or a directory holding a checkout) and runs the chosen
# scenarios against a fresh server of each, alternating, with this
# checkout's `coedit bench` as the load generator and scripts/bench.sh's
# server flags. One line per run: acked ops/s, server CPU per op, ack p50
# and p99, fan-out p99, the server's context switches per op, and the store's
# write batches per op (one fsync each with --sync always). docs/decisions.md
# calls it ab.sh.
#
# Usage: scripts/ab.sh [-n ROUNDS] REV [REV...] -- [SCENARIO...]
#   e.g. scripts/ab.sh -n 2 HEAD~1 HEAD -- s2a s2b
#
# Scenarios: s1 (open loop 2,000 ops/s, 100 x 4), s1n (the same, --sync
# none), s2a (closed loop 100 x 4), s6 (s2a with --sync none), s2b
# (closed loop 1 x 10), s2bn (s2b with --sync none), s4 (one document,
# 400 clients x 1 op/s). Default: s1 s2a s2b. PPROF=PREFIX saves a 6 s CPU
# profile of each run's server as PREFIX.REV.SCENARIO.pb.gz.
# Environment: DURATION (measured seconds, 10). A REV may carry
# environment for its server after commas, e.g. `HEAD,GOMAXPROCS=3`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

rounds=1
if [ "${1:-}" = "-n" ]; then rounds=$2; shift 2; fi
revs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do revs+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
scen=("$@")
[ ${#scen[@]} -eq 0 ] && scen=(s1 s2a s2b)
[ ${#revs[@]} -gt 0 ] || { echo "usage: scripts/ab.sh [-n ROUNDS] REV [REV...] -- [SCENARIO...]" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "$work"/src-*; do [ -d "$d" ] && git worktree remove --force "$d" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/gen" ./cmd/coedit
envs=()
for i in "${!revs[@]}"; do
  IFS=, read -r -a parts <<<"${revs[$i]}"
  rev=${parts[0]}
  envs+=("${parts[*]:1}")
  if [ -d "$rev" ]; then
    (cd "$rev" && go build -o "$work/coedit-$i" ./cmd/coedit)
  else
    git worktree add -q --detach "$work/src-$i" "$rev"
    (cd "$work/src-$i" && go build -o "$work/coedit-$i" ./cmd/coedit)
  fi
done

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ctx() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2}END{print s+0}'; }
# batches PORT: the store's write batches so far (one sync each with --sync always).
batches() { { curl -fs "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } | awk '/^coedit_store_write_batches_total /{print $2+0}' | head -1; }

for _ in $(seq "$rounds"); do
  for i in "${!revs[@]}"; do
    for s in "${scen[@]}"; do
      sync=always; args=(--docs 100 --clients 4)
      case $s in
        s1) args+=(--rate 2000) ;;
        s1n) sync=none; args+=(--rate 2000) ;;
        s2a) ;;
        s6) sync=none ;;
        s2b) args=(--docs 1 --clients 10) ;;
        s2bn) sync=none; args=(--docs 1 --clients 10) ;;
        s4) args=(--docs 1 --clients 400 --rate 400) ;;
        *) echo "unknown scenario $s" >&2; exit 2 ;;
      esac
      port=$(free_port)
      extra=()
      if [ -n "${PPROF:-}" ]; then pport=$(free_port); extra=(--pprof "127.0.0.1:$pport"); fi
      rm -rf "$work/data"
      # shellcheck disable=SC2086
      env ${envs[$i]} "$work/coedit-$i" serve --addr "127.0.0.1:$port" --data "$work/data" --sync "$sync" \
        --ops-per-second 1000000 --max-conns 1000000 --max-conns-per-addr 1000000 \
        --log-level warn "${extra[@]}" >"$work/log" 2>&1 &
      pid=$!
      pids+=("$pid")
      for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.05; done
      prof=""
      if [ -n "${PPROF:-}" ]; then
        (sleep 4; curl -s "http://127.0.0.1:$pport/debug/pprof/profile?seconds=6" >"$PPROF.$i.$s.pb.gz") &
        prof=$!
      fi
      c0=$(ctx "$pid"); b0=$(batches "$port")
      "$work/gen" bench --quiet --pid "$pid" --warmup 2s --duration "${DURATION:-10}s" --out "$work/r.json" \
        "${args[@]}" "ws://127.0.0.1:$port/ws" >/dev/null 2>"$work/err" || { echo "$s: run failed"; cat "$work/err"; }
      c1=$(ctx "$pid"); b1=$(batches "$port")
      [ -n "$prof" ] && wait "$prof"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const [rev, s, c0, c1, b0, b1] = process.argv.slice(2);
        const acked = r.acked || 1, f = (x) => x.toFixed(2);
        console.log(`${rev} ${s}: ${Math.round(r.ops_per_s)} ops/s  cpu/op ${Math.round(r.server.cpu_per_op_us)} us  ` +
          `ack p50 ${f(r.ack_latency.p50_ms)} p99 ${f(r.ack_latency.p99_ms)} ms  fan-out p99 ${f(r.fanout_latency.p99_ms)} ms  ` +
          `ctx/op ${((c1 - c0) / (acked * (1 + (r.warmup_s || 0) / r.duration_s))).toFixed(1)}  ` +
          `batches/op ${((b1 - b0) / (acked * (1 + (r.warmup_s || 0) / r.duration_s))).toFixed(2)}  errors ${JSON.stringify(r.errors || {})}`);
      ' "$work/r.json" "${revs[$i]}" "$s" "$c0" "$c1" "${b0:-0}" "${b1:-0}"
    done
  done
done
