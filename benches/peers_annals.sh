#!/usr/bin/env bash
# The Annals side of the peer comparison, run by the shared harness through its ANNALS_BENCH
# hook (benches/peers.sh sets it up). For each scenario it starts the release `annals` binary
# over a fresh temp folder (every run starts on an empty store, as the peers' do), seeds the
# source and the speaker the statements cite through the API, drives it from outside with
# `wrk --latency`, and appends one row to $PEERS_OUT/results.tsv in the harness's format.
# It must never count an event that was not acknowledged: a run with any non-2xx answer is
# marked in its notes.
#
# Environment (defaults from the harness's peers_env.sh): PEERS_DURATION (s per run),
# PEERS_STREAMS, PEERS_BATCH, PEERS_OUT; ANNALS_BIN (default target/release/annals),
# ANNALS_SINGLE_CLIENTS ("1 16 64"), ANNALS_BATCH_CLIENTS ("4 16 64"; empty skips), ANNALS_TMP (where
# the temp folders go, default /tmp).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BIN="${ANNALS_BIN:-$ROOT/target/release/annals}"
PEERS_OUT="${PEERS_OUT:-/tmp/peers-results}"
DURATION="${PEERS_DURATION:-20}"
STREAMS="${PEERS_STREAMS:-1000}"
BATCH="${PEERS_BATCH:-100}"
SINGLE_CLIENTS="${ANNALS_SINGLE_CLIENTS-1 16 64}"
BATCH_CLIENTS="${ANNALS_BATCH_CLIENTS-4 16 64}"
export PEERS_STREAMS="$STREAMS"

command -v wrk >/dev/null 2>&1 || {
  echo "apt-get install wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; }
}
[ -x "$BIN" ] || { echo "no $BIN: build it with cargo build --release --bin annals" >&2; exit 1; }
mkdir -p "$PEERS_OUT"

WORK="$(mktemp -d "${ANNALS_TMP:-/tmp}/annals-peers-XXXXXX")"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT

# One key for every run: append and read. `keys new` prints the key and the block to paste.
KEYS_NEW="$("$BIN" keys new --principal peers-bench --scopes append,read)"
KEY="$(printf '%s\n' "$KEYS_NEW" | awk '/^key: /{print $2}')"
printf '%s\n' "$KEYS_NEW" | sed -n '/^\[\[auth.keys\]\]/,$p' >"$WORK/annals.toml"

post() { # path body → status (000 if it could not connect)
  rm -f "$WORK/last.json"
  curl -sS -o "$WORK/last.json" -w '%{http_code}' -X POST "$BASE$1" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary "$2" || true
}

# After a failed seed (the temp folder, with the server's log, is removed on exit): whether
# the server still runs, and the end of its log.
server_state() { # run name
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server ($SERVER_PID, $BASE) is still running; its log ends:"
  else
    wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
    echo "the server ($SERVER_PID, $BASE) exited with status $rc; its log ends:"
  fi
  tail -n 20 "$WORK/server-$1.log" 2>/dev/null || true
}

start_server() {
  local data="$WORK/data-$1"
  # Each run's own stdout, absent until its server opens it: the shell truncates a reused file
  # only once the forked child runs, so on a loaded machine the loop below could read the
  # previous server's address and seed a port nobody listens on any more.
  local stdout="$WORK/stdout-$1"
  rm -rf "$data" "$stdout"
  "$BIN" serve --config "$WORK/annals.toml" --data-dir "$data" --listen 127.0.0.1:0 \
    >"$stdout" 2>"$WORK/server-$1.log" &
  SERVER_PID=$!
  local port=""
  for _ in $(seq 1 200); do
    port="$(grep -o '127\.0\.0\.1:[0-9]*' "$stdout" 2>/dev/null | head -1 | cut -d: -f2)" || true
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "annals did not start:" >&2; cat "$WORK/server-$1.log" >&2; exit 1; }
  BASE="http://127.0.0.1:$port"
  # What the statements cite: a registered source and a registered speaker.
  local s
  s="$(post /streams/registry%2Fsources/events '{"type":"source.registered","occurred":{"precision":"unknown"},"data":{"source_id":"src:peers-wire","kind":"wire","publisher":"Peers Wire"},"evidence":[]}')"
  [ "$s" = 201 ] || { echo "seeding the source answered $s: $(cat "$WORK/last.json")" >&2; server_state "$1" >&2; exit 1; }
  s="$(post /streams/registry%2Factors/events '{"type":"actor.registered","occurred":{"precision":"unknown"},"data":{"actor_id":"actor:mfa-ru","name":"Ministry of Foreign Affairs of the Russian Federation","kind":"organisation"},"evidence":[{"source":"src:peers-wire","relation":"quotes","quote":"Ministry of Foreign Affairs"}]}')"
  [ "$s" = 201 ] || { echo "seeding the speaker answered $s: $(cat "$WORK/last.json")" >&2; server_state "$1" >&2; exit 1; }
}

# run MODE EVENTS CLIENTS
run() {
  local mode="$1" events="$2" clients="$3"
  local threads=$((clients < 2 ? clients : 2))
  start_server "$events-$clients"
  # One warm-up second, not counted: connections, the first sled pages.
  ANNALS_KEY="$KEY" ANNALS_EVENTS="$events" ANNALS_WRK_OUT="$WORK/warm.tsv" \
    wrk -t"$threads" -c"$clients" -d1s --timeout 30s -s "$HERE/peers_wrk.lua" "$BASE" >/dev/null
  ANNALS_KEY="$KEY" ANNALS_EVENTS="$events" ANNALS_WRK_OUT="$WORK/wrk.tsv" \
    wrk -t"$threads" -c"$clients" -d"${DURATION}s" --timeout 30s --latency -s "$HERE/peers_wrk.lua" "$BASE" \
    >"$WORK/wrk-$events-$clients.out"
  stop_server
  local row
  row="$(awk -v ev="$events" -v mode="$mode" -v c="$clients" -v d="$DURATION" -F'\t' '{
      ok = $1 - $3; secs = $2 / 1e6;
      note = ($3 > 0) ? sprintf("%d non-2xx or failed requests (not counted)", $3) : "";
      printf "annals (HTTP, wrk)\t%s\t%d\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\twrk -d%ss --latency, 2 threads max, fsync; %s\n",
        mode, c, ok * ev / secs, $4 / 1000, $5 / 1000, $6 / 1000, $7 / 1000, d, note }' "$WORK/wrk.tsv")"
  printf '%s\n' "$row" >>"$PEERS_OUT/results.tsv"
  printf '%s\n' "$row" | cut -f1-7
}

echo "annals: $("$BIN" --version 2>/dev/null || echo "$BIN"), ${DURATION}s per run, $STREAMS streams"
for c in $SINGLE_CLIENTS; do run "append 1 ev/req" 1 "$c"; done
for c in $BATCH_CLIENTS; do run "append $BATCH ev/req" "$BATCH" "$c"; done
