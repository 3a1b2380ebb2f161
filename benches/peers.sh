#!/usr/bin/env bash
# One command for the peer comparison of issue 13: builds Annals in release (unless ANNALS_BIN
# names a binary), then runs the shared
# peer harness (../shared/bench/peers beside the repository: PostgreSQL 15 Message-DB-style and
# py eventsourcing) with Annals side by side through its ANNALS_BENCH hook
# (benches/peers_annals.sh), and prints the harness's one table. It must never change the
# harness: Annals only appends its rows to the harness's results.tsv.
#
#   bash benches/peers.sh                     # full run, 20 s per scenario (~7 min)
#   PEERS_DURATION=5 bash benches/peers.sh    # smoke run (~2.5 min)
#   PEERS_ANNALS_ONLY=1 bash benches/peers.sh # Annals rows alone, printed as the same table
#
# The harness needs root (apt-get, a PostgreSQL cluster run as the postgres user). Every knob
# of the harness (PEERS_*) passes through; see peers_annals.sh for Annals' own.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$ROOT/../shared/bench/peers}"
[ -d "$PEERS_DIR" ] || PEERS_DIR="/work/shared/bench/peers"
[ -f "$PEERS_DIR/run_all.sh" ] || { echo "peer harness not found (set PEERS_DIR)" >&2; exit 1; }
export PEERS_OUT="${PEERS_OUT:-/tmp/peers-results}"

# A binary named by ANNALS_BIN is measured as it is (another build, an older release).
if [ -z "${ANNALS_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin annals)
fi
export ANNALS_BIN="${ANNALS_BIN:-$ROOT/target/release/annals}"

started=$(date +%s)
if [ "${PEERS_ANNALS_ONLY:-0}" = 1 ]; then
  mkdir -p "$PEERS_OUT"
  [ -f "$PEERS_OUT/results.tsv" ] && mv "$PEERS_OUT/results.tsv" "$PEERS_OUT/results.prev.tsv"
  : >"$PEERS_OUT/results.tsv"
  bash "$HERE/peers_annals.sh"
  echo
  python3 "$PEERS_DIR/summarize.py" "$PEERS_OUT/results.tsv" | tee "$PEERS_OUT/summary.txt"
else
  ANNALS_BENCH="$HERE/peers_annals.sh" bash "$PEERS_DIR/run_all.sh"
fi
echo "== wall time: $(( $(date +%s) - started )) s; rows in $PEERS_OUT/results.tsv"
