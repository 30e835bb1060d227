#!/usr/bin/env bash
# Runs issue 11's performance scenarios against coedit, ShareDB 7 (in memory),
# Hocuspocus 3 (in memory, over its own protocol: `coedit bench --protocol
# hocuspocus`) and the bare relay, driven by the same load generator (`coedit bench`), one
# fresh server process per run, and writes docs/performance.md with tables
# and PNG plots (docs/perf/). Scenario 7 runs coedit as two nodes over a
# Redis the script starts on a free port (AOF with appendfsync always, as
# the README recommends); it is skipped when redis-server is not installed.
# Where a PostgreSQL server answers at BENCH_PG, scenarios 1 to 4 also run
# ShareDB on PostgreSQL (its sharedb-postgres adapter: durable, as coedit with
# --sync always is; not a target), each run on a fresh database the script
# creates and drops; its CPU counts every local PostgreSQL process.
# Takes about 19 minutes with the defaults.
#
# Usage: scripts/bench.sh [--quick] [--only N,N...] [--note "text for the top of the page"]
#
#   --quick   short runs and fewer steps (about 2 minutes): to try the pipeline
#   --only    run only these scenarios (1-7), keep their results in RESULTS,
#             and leave docs/performance.md alone (scenario 7 compares with
#             1 and 2a: --only 1,2,7)
#
# Environment: DURATION (measured seconds per run, 10), WARMUP (2), ROUNDS
# (how many times scenarios 1, 2 and 6 run, each round every server once:
# 3, or 1 with --quick; the page shows medians and every round),
# STEP_DURATION (seconds per step of scenario 3, 5), IDLE (connections in
# scenario 5, 10000), RESULTS (where the JSON results go; default
# artifacts/bench-DATE, kept), REDIS_APPENDFSYNC (scenario 7's Redis AOF
# fsync policy, always; everysec or no to see what Redis's fsync costs;
# with --only only, since the page states always), BENCH_PG (a PostgreSQL
# server's URL without a database or parameters, for ShareDB on PostgreSQL:
# postgres://postgres@127.0.0.1:5432; the user must be able to create
# databases).
#
# Needs go, node with the repository's node_modules (npm ci), and curl;
# redis-server for scenario 7; psql and a PostgreSQL server for ShareDB on
# PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
note=""
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --note) note="$2"; shift ;;
    --only) only=",$2,"; shift ;;
    *) echo "usage: scripts/bench.sh [--quick] [--only N,N...] [--note TEXT]" >&2; exit 2 ;;
  esac
  shift
done
# wanted N: whether scenario N runs.
wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }

if [ "$quick" = 1 ]; then
  DURATION=${DURATION:-3} WARMUP=${WARMUP:-1} STEP_DURATION=${STEP_DURATION:-2} IDLE=${IDLE:-2000} ROUNDS=${ROUNDS:-1}
  rates=(1000 4000 16000)
else
  DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} STEP_DURATION=${STEP_DURATION:-5} IDLE=${IDLE:-10000} ROUNDS=${ROUNDS:-3}
  rates=(500 1000 2000 4000 6000 8000 12000 16000 24000 32000)
fi
RESULTS=${RESULTS:-$root/artifacts/bench-$(date -u +%Y%m%d-%H%M%S)}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: ROUNDS must be a positive number, got $ROUNDS" >&2; exit 2; }
if [ "${REDIS_APPENDFSYNC:-always}" != always ] && [ -z "$only" ]; then
  echo "bench.sh: REDIS_APPENDFSYNC=$REDIS_APPENDFSYNC needs --only: docs/performance.md states appendfsync always" >&2
  exit 2
fi

for tool in go node curl; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is needed" >&2; exit 1; }
done
if [ ! -d node_modules/sharedb ] || [ ! -d node_modules/@hocuspocus/server ] || [ ! -d node_modules/sharedb-postgres ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
# Scenario 5 holds IDLE connections open in the generator and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ShareDB on PostgreSQL runs where a PostgreSQL server answers.
BENCH_PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
durable=()
pg_version=""
# pg SQL: runs SQL at BENCH_PG's postgres database; never asks for a
# password (-w), gives up on a server that does not answer in 5 s.
pg() { PGCONNECT_TIMEOUT=5 psql -w "$BENCH_PG/postgres" -Atqc "$1"; }
# pg_usable: whether psql reaches BENCH_PG and may create and drop a
# database there; sets pg_version to the server's version and the
# settings that make a commit durable.
pg_usable() {
  command -v psql >/dev/null || return 1
  pg_version=$(pg "SELECT split_part(current_setting('server_version'), ' ', 1) || ', synchronous_commit ' ||
    current_setting('synchronous_commit') || ', fsync ' || current_setting('fsync')" 2>/dev/null) || return 1
  pg "CREATE DATABASE coedit_bench_probe_$$" >/dev/null 2>&1 || return 1
  pg "DROP DATABASE coedit_bench_probe_$$" >/dev/null 2>&1
}
if pg_usable; then
  durable=(sharedb-pg)
else
  pg_version=""
  echo "bench.sh: psql cannot create a database at $BENCH_PG (no psql, no server, or no right to): ShareDB on PostgreSQL is left out"
fi

work=$(mktemp -d)
server_pid=""
pg_db=""
cluster_pids=()
# cleanup may run before the functions below are defined (a failed build).
cleanup() {
  if [ -n "$server_pid" ] || [ -n "$pg_db" ]; then stop_server; fi
  if declare -F stop_cluster >/dev/null; then stop_cluster; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building coedit, barerelay and the report tool"
# The tree the binaries are built from, as the page names it (the tree
# may change while the script runs).
built_from=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then built_from+=" (with uncommitted changes)"; fi
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
    sharedb-pg)
      pg_db="coedit_bench_$$_$port"
      pg "CREATE DATABASE $pg_db" >/dev/null
      node bench/sharedb-server.mjs --port "$port" --pg "$BENCH_PG/$pg_db" >"$log" 2>&1 &
      ;;
    hocuspocus) node bench/hocuspocus-server.mjs --port "$port" >"$log" 2>&1 & ;;
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

# start_cluster: starts a fresh redis-server on a free port, persisting
# with AOF and appendfsync always (the README's recommended setting: Redis
# fsyncs each commit before it answers; REDIS_APPENDFSYNC changes it), and two coedit nodes on it; sets
# cluster_pids (node 1, node 2, Redis) and cluster_urls. With route=1 the
# nodes advertise their addresses (--advertise), as the README's cluster
# runs them: each document's editors are passed to one node.
route=1
start_cluster() {
  local rport log i port
  rport=$(free_port)
  mkdir -p "$work/redis-$rport"
  log="$work/redis-$rport.log"
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis-$rport" --save '' \
    --appendonly yes --appendfsync "${REDIS_APPENDFSYNC:-always}" --maxmemory-policy noeviction --daemonize no >"$log" 2>&1 &
  local redis_pid=$!
  for _ in $(seq 200); do
    grep -q "Ready to accept connections" "$log" && break
    kill -0 "$redis_pid" 2>/dev/null || { echo "bench.sh: redis-server exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  cluster_pids=()
  cluster_urls=()
  for i in 1 2; do
    port=$(free_port)
    local adv=()
    [ "$route" = 1 ] && adv=(--advertise "127.0.0.1:$port")
    "$work/coedit" serve --addr "127.0.0.1:$port" --data "$work/data-$port" --sync always \
      --redis "127.0.0.1:$rport" --node-id "node$i" "${adv[@]}" \
      --ops-per-second 1000000 --max-conns 1000000 --max-conns-per-addr 1000000 \
      --log-level info >"$work/node$i-$port.log" 2>&1 &
    cluster_pids+=($!)
    cluster_urls+=("ws://127.0.0.1:$port/ws")
    local ok=0
    for _ in $(seq 200); do
      if ! kill -0 "${cluster_pids[-1]}" 2>/dev/null; then echo "bench.sh: node$i exited:" >&2; cat "$work/node$i-$port.log" >&2; exit 1; fi
      if curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.05
    done
    [ "$ok" = 1 ] || { echo "bench.sh: node$i is not ready:" >&2; cat "$work/node$i-$port.log" >&2; exit 1; }
  done
  cluster_pids+=("$redis_pid")
  # Each node reads the roster when it starts and every 2 s after (a
  # third of redisrelay.RosterOptions' 6 s): node 1 knows node 2 within
  # 2 s of node 2's start.
  if [ "$route" = 1 ]; then sleep 2.2; fi
}

# stop_cluster stops the nodes, then Redis.
stop_cluster() {
  local pid
  for pid in "${cluster_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  cluster_pids=()
  rm -rf "$work"/data-* "$work"/redis-*/
}

# bench_cluster NAME [coedit bench flags]: one run against a fresh
# cluster; the result goes to $RESULTS/NAME.cluster.json.
bench_cluster() {
  local name=$1
  shift
  local file="$RESULTS/$name.cluster"
  start_cluster
  echo "-- $name cluster (2 nodes$([ "$route" = 1 ] && echo ", routing by document"), Redis AOF ${REDIS_APPENDFSYNC:-always}): $*"
  local pids
  pids=$(IFS=,; echo "${cluster_pids[*]}")
  if ! "$work/coedit" bench --pid "$pids" --out "$file.json" "$@" "${cluster_urls[@]}" \
      2>"$file.progress" | sed 's/^/   /'; then
    echo "   (run failed; see $file.progress)"
  fi
  # Each node's counters (commits, conflicts, turn waits, Redis round
  # trips) stay with the results, for what the latencies alone cannot say.
  local i=1 url
  for url in "${cluster_urls[@]}"; do
    url=${url#ws://}
    curl -fs "http://${url%/ws}/metrics" | grep '^coedit_' >"$RESULTS/$name.node$i.metrics" || true
    i=$((i + 1))
  done
  stop_cluster
  # The nodes' logs (at info level: they say why a node closed a client's
  # socket) and Redis's stay with the results.
  for f in "$work"/node1-*.log "$work"/node2-*.log "$work"/redis-*.log; do
    [ -f "$f" ] && mv "$f" "$RESULTS/$name.$(basename "$f" .log | cut -d- -f1).log"
  done
  return 0
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  rm -rf "$work"/data-*
  if [ -n "$pg_db" ]; then
    # WITH (FORCE) is PostgreSQL 13's; without it the drop waits for no
    # one, since the server has exited.
    pg "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || pg "DROP DATABASE IF EXISTS $pg_db" >/dev/null || true
    pg_db=""
  fi
}

# bench NAME TARGET [coedit bench flags]: one run against a fresh server;
# the result goes to $RESULTS/NAME.TARGET.json (NAME.TARGET.STEP.json when
# $step is set, NAME.TARGET@ROUND.json when $round is and ROUNDS is more
# than 1). A failed run is reported and the script goes on.
step=""
round=""
bench() {
  local name=$1 target=$2
  shift 2
  local file="$RESULTS/$name.$target${step:+.$step}"
  [ -n "$round" ] && [ "$ROUNDS" -gt 1 ] && file+="@$round"
  local extra=()
  [ "$target" = relay ] && extra+=(--relay)
  [ "$target" = hocuspocus ] && extra+=(--protocol hocuspocus)
  start_server "$target"
  local pids=$server_pid
  # ShareDB on PostgreSQL: PostgreSQL's processes do its storing, so they
  # count (the pool's backends are open by now: the server opens them
  # before it listens).
  [ "$target" = sharedb-pg ] && pids+=",$(pgrep -d, -x postgres || true)" && pids=${pids%,}
  echo "-- $name $target${step:+ $step}${round:+ (round $round)}: $*"
  if ! "$work/coedit" bench --pid "$pids" --out "$file.json" "${extra[@]}" "$@" "$server_url" \
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

targets=(coedit sharedb hocuspocus relay)
timing=(--warmup "${WARMUP}s" --duration "${DURATION}s")

# Scenarios 1, 2 and 6 run in rounds: each round runs every server once,
# one after another, so that each comparison is side by side; the page
# shows the medians and every round (bench/report/rounds.go). Scenario 6
# (coedit with --sync none) runs right after 2a's coedit, its reference.
for round in $(seq "$ROUNDS"); do
  if [ "$ROUNDS" -gt 1 ] && { wanted 1 || wanted 2 || wanted 6; }; then
    echo "== round $round of $ROUNDS (scenarios 1, 2 and 6)"
  fi
  if wanted 1; then
    echo "== scenario 1: open loop 2,000 ops/s, 100 x 4"
    # coedit without its fsync too: what the others, in memory, are closest to.
    for t in "${targets[@]}" "${durable[@]}" coedit-sync-none; do bench s1 "$t" --docs 100 --clients 4 --rate 2000 "${timing[@]}"; done
  fi
  if wanted 2 || wanted 6; then
    echo "== scenario 2a: closed loop 100 x 4 (and 6: coedit with --sync none after coedit)"
    for t in "${targets[@]}" "${durable[@]}"; do
      if wanted 2; then bench s2a "$t" --docs 100 --clients 4 "${timing[@]}"; fi
      if [ "$t" = coedit ] && wanted 6; then bench s6 coedit-sync-none --docs 100 --clients 4 "${timing[@]}"; fi
    done
  fi
  if wanted 2; then
    echo "== scenario 2b: closed loop 1 x 10"
    for t in "${targets[@]}" "${durable[@]}" coedit-sync-none; do bench s2b "$t" --docs 1 --clients 10 "${timing[@]}"; done
  fi
done
round=""

if wanted 3; then
  echo "== scenario 3: latency against offered load, 100 x 4"
  # Step up until two steps in a row are not held: one bad step on a noisy
  # machine should not end the curve.
  for t in "${targets[@]}" "${durable[@]}"; do
    misses=0
    for rate in "${rates[@]}"; do
      step=$rate bench s3 "$t" --docs 100 --clients 4 --rate "$rate" --warmup 1s --duration "${STEP_DURATION}s"
      if held "$RESULTS/s3.$t.$rate.json"; then misses=0; else misses=$((misses + 1)); fi
      [ "$misses" -lt 2 ] || break
    done
  done
fi

if wanted 4; then
  echo "== scenario 4: one hot document, 400 clients x 1 op/s"
  for t in "${targets[@]}" "${durable[@]}"; do bench s4 "$t" --docs 1 --clients 400 --rate 400 "${timing[@]}"; done
fi

if wanted 5; then
  echo "== scenario 5: $IDLE idle subscribed connections over 1,000 documents"
  for t in "${targets[@]}"; do bench s5 "$t" --docs 1000 --clients 0 --idle "$IDLE" --warmup 0s --duration 1s; done
fi

if wanted 7; then
  echo "== scenario 7: two nodes over Redis, scenario 1 (open loop 2,000 ops/s) and 2a (closed loop 100 x 4)"
  if command -v redis-server >/dev/null; then
    bench_cluster s7a --docs 100 --clients 4 --rate 2000 "${timing[@]}"
    bench_cluster s7b --docs 100 --clients 4 "${timing[@]}"
    # Not targets: the same closed loop with each document's clients on
    # one node, as a load balancer routing by document puts them, and
    # spread without the nodes routing (no --advertise), where both nodes
    # commit each document's ops and race for its versions.
    route=0
    bench_cluster s7c --docs 100 --clients 4 --affinity "${timing[@]}"
    bench_cluster s7d --docs 100 --clients 4 "${timing[@]}"
    route=1
  else
    echo "   redis-server is not installed (apt-get install redis-server): scenario 7 skipped"
  fi
fi

elapsed=$(( $(date +%s) - started ))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "$only" ]; then
  echo "done in ${elapsed}s; results in $RESULTS (--only: docs/performance.md left alone)"
  exit 0
fi
echo "== writing docs/performance.md (results in $RESULTS)"
(cd bench/report && "$work/report" -results "$RESULTS" -out "$root/docs/performance.md" -plots "$root/docs/perf" -commit "$built_from" \
  -load-start "$load_start" -load-end "$load_end" -elapsed "$((elapsed / 60)) min $((elapsed % 60)) s" -note "$note" -postgresql "$pg_version" \
  -params "warm-up ${WARMUP} s and ${DURATION} s measured per run (scenario 3: 1 s and ${STEP_DURATION} s per step), ${ROUNDS} rounds of scenarios 1, 2 and 6, ${IDLE} idle connections")
echo "done in ${elapsed}s"
