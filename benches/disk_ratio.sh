#!/usr/bin/env bash
# The data folder's size against its `annals export` (issue 13, "Disk": at most 1.5x).
# Imports the demo and N synthetic statement events (~500 B each, 1000 streams) into a fresh
# folder with the given settings, then prints the export size, the folder size and the ratio.
# Then serves the folder SERVES times (2 by default) for SERVE_SECS each (60 by default: the
# projections fold the whole log and save it on the first), stops it with SIGTERM and prints the
# folder size and ratio again, with the time the projections took to catch up.
#
#   benches/disk_ratio.sh                                   # 100k events, shipped defaults
#   N=1000000 benches/disk_ratio.sh                         # 1M events
#   SERVES=0 benches/disk_ratio.sh                          # the import alone
#   ANNALS_LOG__COMPRESSION=false benches/disk_ratio.sh     # as folders were before compression
#   ANNALS_LOG__COMPRESSION_LEVEL=9 benches/disk_ratio.sh   # another zstd level
#
# Needs python3 (to write the events) and bc. Builds the release binary, unless ANNALS_BIN names one.
set -euo pipefail
N=${N:-100000}
SERVES=${SERVES:-2}
SERVE_SECS=${SERVE_SECS:-60}
cd "$(dirname "$0")/.."
if [ -n "${ANNALS_BIN:-}" ]; then
  BIN=$ANNALS_BIN
else
  cargo build --release --bin annals >&2
  BIN=target/release/annals
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/annals-disk.XXXXXX")
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
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
for s in $(seq 1 "$SERVES"); do
  ANNALS_LOG=info,annals::projection::engine=debug "$BIN" serve --listen 127.0.0.1:0 \
    --data-dir "$DATA" --log-format json > /dev/null 2> "$WORK/serve.log" &
  SERVER=$!
  sleep "$SERVE_SECS"
  kill -TERM "$SERVER"
  wait "$SERVER" || true
  SERVER=
  # From the server's own log: its first line, the head it found, its first save up to it.
  caught_up=$(python3 - "$WORK/serve.log" <<'PY'
import json, sys
from datetime import datetime
start = head = last = None
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f, at = e.get("fields", {}), datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
    start = start or at
    if f.get("message") == "projections resume from their save":
        head = f["head"]
        if f["tail"] == 0:
            last = "at start (nothing to fold)"
    elif f.get("message") == "projection saved" and head is not None and f["seq"] >= head:
        last = last or f"{(at - start).total_seconds():.1f} s after its first log line"
print(last or "not before the stop")
PY
)
  folder_bytes=$(du -sb "$DATA" | cut -f1)
  echo "after serve $s ($SERVE_SECS s, SIGTERM): folder: $folder_bytes bytes (du -sb); ratio: $(echo "scale=2; $folder_bytes / $export_bytes" | bc); projections caught up: $caught_up"
done
