#!/usr/bin/env bash
# Webhook delivery cost (issue 13, "Webhook delivery costs little"): the real release binary
# over a temp folder, an out-of-process Node.js receiver (benches/receiver.mjs) and the load
# generator (benches/delivery.mjs). Prints ack -> receiver latency p50/p99/max, deliveries/s,
# the lag during and after the load, and the server's CPU per delivery. Targets: p99 <= 20 ms
# at 1k events/s to 10 subscriptions; 20k deliveries/s (20 subscriptions) without growing lag.
#
#   benches/delivery.sh                 # 10 subscriptions, then 20, 20 s each
#   SUBS="10" SECS=5 benches/delivery.sh
#   BINS="/tmp/base target/release/annals" benches/delivery.sh   # binaries in turn, per SUBS value
#   PERF=1 SUBS=20 SECS=10 benches/delivery.sh   # also perf record -g the server (perf-N.data)
#   STAGES=1 SUBS=10 SECS=5 benches/delivery.sh  # also where the slow deliveries waited (server stage log)
#   PERF=1 PERF_ARGS='--call-graph dwarf -F 499' ...  # callers through a release build without frame pointers
#   WARMUP= SUBS=10 benches/delivery.sh  # a cold start: no warm-up before the measured load
#   MODE=parallel IN_FLIGHT=8 SUBS=20 benches/delivery.sh  # parallel subscriptions (default ordered)
#   MODES="ordered parallel" SUBS=20 benches/delivery.sh   # each mode in turn, per SUBS and binary
#   DELIVERY_THREADS=1 benches/delivery.sh   # webhooks.delivery_threads (default: the server's, 0)
#
# By default the load starts warm (WARMUP=receiver,server): the generator first POSTs
# WARMUP_POSTS (20000) requests straight to the receiver, so Node's HTTP code is optimised
# before the server's first delivery, and then one event is delivered to every subscription,
# so the server's connections exist. Cold, the first second's round trips take 1-1.5 ms
# instead of 0.5-0.8 (the stage means printed per second show it), and an ordered
# subscription, one request at a time, owes a backlog that drains for seconds after.
#
# Needs node (20+). Builds the release binary, unless ANNALS_BIN (or BINS) names one. The server logs at
# its default level (info) to a file, as it would in production; ANNALS_LOG changes that.
set -euo pipefail
SUBS=${SUBS:-"10 20"}
SECS=${SECS:-20}
cd "$(dirname "$0")/.."
if [ -n "${BINS:-}" ]; then
  :
elif [ -n "${ANNALS_BIN:-}" ]; then
  BINS=$ANNALS_BIN
else
  cargo build --release --bin annals >&2
  BINS=target/release/annals
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/annals-delivery.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (bounded) until the file holds a line matching the pattern; prints that line.
await_line() {
  for _ in $(seq 1 300); do
    if grep -m1 "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  return 1
}

MODES=${MODES:-${MODE:-ordered}}
n=0
for subs in $SUBS; do
for mode in $MODES; do
for BIN in $BINS; do
  n=$((n + 1))
  run="$WORK/run-$n"
  mkdir -p "$run"
  cat > "$run/annals.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$run/data"

[webhooks]
# The receiver is on loopback.
allow_private_targets = true
delivery_threads = ${DELIVERY_THREADS:-0}
EOF
  echo "== $BIN ($mode)"
  if [ -n "${STAGES:-}" ]; then
    # Stage times of every first attempt (see src/webhook/dispatcher/stages.rs), read back by
    # delivery.mjs to say where the slow deliveries waited.
    export ANNALS_LOG="${STAGES_FILTER:=${ANNALS_LOG:-info},annals::webhook::stages=debug}"
    export STAGES_LOG="$run/server.log"
  fi
  "$BIN" serve --demo --config "$run/annals.toml" > "$run/server.out" 2> "$run/server.log" &
  server=$!
  PIDS+=("$server")
  base=$(await_line "$run/server.out" '^listening on ' | sed 's/^listening on //')
  key=$(await_line "$run/server.out" '^demo key: ' | sed 's/^demo key: //')
  node benches/receiver.mjs 0 > "$run/receiver.out" &
  receiver=$!
  PIDS+=("$receiver")
  rport=$(await_line "$run/receiver.out" '^receiver listening on ' | sed 's/^receiver listening on //')
  if [ -n "${PERF:-}" ]; then
    perf record ${PERF_ARGS:--g} -p "$server" -o "perf-$n.data" -- sleep "${PERF_SECS:-$SECS}" > /dev/null 2>&1 &
    PIDS+=($!)
  fi
  MODE=$mode RECEIVER_PID=$receiver node benches/delivery.mjs "$base" "$key" "$rport" "$server" "$subs" "$SECS"
  kill "$server" "$receiver" 2>/dev/null || true
done
done
done
