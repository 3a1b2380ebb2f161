#!/usr/bin/env bash
# The data folder's size against its `annals export` (issue 13, "Disk": at most 1.5x).
# Imports the demo and N synthetic statement events (~500 B each, 1000 streams) into a fresh
# folder with the given settings, then prints the export size, the folder size and the ratio.
#
#   benches/disk_ratio.sh                                   # 100k events, shipped defaults
#   N=1000000 benches/disk_ratio.sh                         # 1M events
#   ANNALS_LOG__COMPRESSION=false benches/disk_ratio.sh     # as folders were before compression
#   ANNALS_LOG__COMPRESSION_LEVEL=9 benches/disk_ratio.sh   # another zstd level
#
# Needs python3 (to write the events) and bc. Builds the release binary, unless ANNALS_BIN names one.
set -euo pipefail
N=${N:-100000}
cd "$(dirname "$0")/.."
if [ -n "${ANNALS_BIN:-}" ]; then
  BIN=$ANNALS_BIN
else
  cargo build --release --bin annals >&2
  BIN=target/release/annals
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/annals-disk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 - "$N" > "$WORK/events.ndjson" <<'PY'
import json, random, sys
random.seed(7)
words = ("the talks on a ceasefire resumed in Moscow after weeks of delay while both delegations "
         "said progress on territory and security guarantees remained slow").split()
actors = ["actor:zelenskiy", "actor:putin", "org:kremlin", "actor:russia"]
for i in range(int(sys.argv[1])):
    print(json.dumps({
        "stream": f"process/p{i % 1000}", "type": "statement.made", "schema_version": 1,
        "occurred": {"precision": "day", "start": f"2026-01-{1 + i % 28:02d}"},
        "process": "ru-ua-peace",
        "data": {"statement_id": f"statement:s{i}", "speaker": actors[i % 4],
                 "content": " ".join(random.choice(words) for _ in range(18)), "tone": "neutral"},
        "evidence": [{"source": "src:moscow-peace-negotiations-article", "relation": "quotes",
                      "quote": "The meeting was confirmed by the Kremlin.", "locator": f"line {i % 90}"}],
    }, separators=(",", ":")))
PY
DATA="$WORK/data"
"$BIN" import --data-dir "$DATA" examples/moscow-talks.ndjson >&2
start=$(date +%s.%N)
"$BIN" import --data-dir "$DATA" "$WORK/events.ndjson" >&2
end=$(date +%s.%N)
"$BIN" export --data-dir "$DATA" > "$WORK/export.ndjson"
export_bytes=$(stat -c %s "$WORK/export.ndjson")
folder_bytes=$(du -sb "$DATA" | cut -f1)
echo "events: $N (+58 demo); import: $(echo "$end - $start" | bc) s"
echo "export: $export_bytes bytes; folder: $folder_bytes bytes (du -sb)"
echo "ratio: $(echo "scale=2; $folder_bytes / $export_bytes" | bc) (target: at most 1.5)"
