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
#   PEERS_ROUNDS=3 bash benches/peers.sh      # 3 rounds in a row; each figure the median of them
#
# Last, the targets of issue 13 that compare Annals with the peers, as ratios (peers_rounds.py).
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

# One round: the harness with Annals' rows (or Annals' rows alone) into $PEERS_OUT.
one_round() {
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
}

started=$(date +%s)
ROUNDS="${PEERS_ROUNDS:-1}"
if [ "$ROUNDS" -le 1 ]; then
  one_round
  echo
  python3 "$HERE/peers_rounds.py" "$PEERS_OUT/ratios.tsv" "$PEERS_OUT/results.tsv" | tee "$PEERS_OUT/ratios.txt"
else
  # Rounds one after the other, every system in each, so a slow spell of this noisy machine
  # falls on all of them; each figure is then the median over the rounds.
  out="$PEERS_OUT"
  tsvs=()
  for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r of $ROUNDS"
    PEERS_OUT="$out/round-$r" one_round
    tsvs+=("$out/round-$r/results.tsv")
  done
  echo
  echo "== medians of $ROUNDS rounds (each round's events/s in $out/results.tsv's notes)"
  python3 "$HERE/peers_rounds.py" "$out/results.tsv" "${tsvs[@]}" >"$out/ratios.txt"
  python3 "$PEERS_DIR/summarize.py" "$out/results.tsv" | tee "$out/summary.txt"
  echo
  tee -a "$out/summary.txt" <"$out/ratios.txt"
  PEERS_OUT="$out"
fi
echo "== wall time: $(( $(date +%s) - started )) s; rows in $PEERS_OUT/results.tsv"
