#!/usr/bin/env bash
# Starts a try-out cluster on loopback: 3 NATS JetStream nodes (config/cluster/nats-*.conf) and
# 2 Annals nodes over one stream (annals-a.toml on :8081, annals-b.toml on :8082), each with the
# demo data set and its own demo key. Run from the repository root; Ctrl-C stops everything.
# State goes to ./data/cluster/ (delete it to start over). Never for production: loopback only,
# no credentials.
set -euo pipefail
cd "$(dirname "$0")/../.."

# nats-server 2.12 or later: $NATS_SERVER, PATH, or the PyPI wheel installed under target/.
server="$(bash config/cluster/nats-server.sh)"
annals="${ANNALS_BIN:-target/release/annals}"
[ -x "$annals" ] || cargo build --release

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT
mkdir -p data/cluster
# One key sealing webhook secrets for both nodes, made once (64 hex digits, owner only).
[ -f data/cluster/webhooks.key ] ||
  (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >data/cluster/webhooks.key)
for i in 1 2 3; do
  "$server" -c "config/cluster/nats-$i.conf" >"data/cluster/nats-$i.log" 2>&1 &
  pids+=($!)
done
# The first append waits for the meta leader; the nodes connect in the background anyway.
for n in a b; do
  "$annals" serve --demo --config "config/cluster/annals-$n.toml" 2>"data/cluster/annals-$n.log" &
  pids+=($!)
done
echo "NATS on 4222-4224 (monitoring 8222-8224); Annals A on http://127.0.0.1:8081, B on http://127.0.0.1:8082"
echo "each Annals node prints its demo key above; logs in data/cluster/. Ctrl-C stops all."
wait
