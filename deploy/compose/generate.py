"""Writes a docker-compose.yml for N peers (stdlib only: no spirtd needed).

    python3 deploy/compose/generate.py --peers 5 > docker-compose.5.yml
    docker-compose -f docker-compose.5.yml up -d --build

The repository's docker-compose.yml is this script's output for 3 peers
(tests/deploy/test_compose.py checks that it is current). Run the file from
the repository's root (its paths are relative to it). Every peer gets a
certificate from the one-shot `certs` step (which keeps the ones made
before, so a cluster can grow), a daemon container nodeI and a store
container nodeI-store sharing the data volume nodeI-data, and joins
through the first three peers; nodeI's port 7100 is published on
127.0.0.1:7100+I.
"""

from __future__ import annotations

import argparse
import sys

PORT = 7100
SEEDS = 3  # peers every peer joins through (the first ones)
MAX_PEERS = 64

HEADER = """\
# spirtd on one Docker host: a one-shot certificates step, then {n} peers,
# each a daemon (nodeI) and its store (nodeI-store) in containers of their
# own, sharing that peer's data volume nodeI-data (the store's unix socket
# and password are there: the store has no network at all). The CA and its
# key stay in the volume ca; the peers mount certs, which has neither the CA
# key nor the operator's.
#
#   docker-compose up -d --build
#   docker-compose exec node1 spirtctl --peer 127.0.0.1:7100 --certs-dir /certs members
#
# Made by `python3 deploy/compose/generate.py --peers {n}` (more peers: the
# README's "Deploy" section); tests/deploy/test_compose.py checks it is
# current and valid.

x-spirtd: &spirtd
  image: spirtd:dev
  build: .
  restart: unless-stopped

services:
  certs:
    <<: *spirtd
    restart: "no"
    command: [spirtd, certs, cluster, --dir, /ca, --export, /certs, --peers, "{peers}",
              --ip, 127.0.0.1, --dns, localhost]
    volumes:
      - ca:/ca
      - certs:/certs
"""

PEER = """
  node{i}-store:
    <<: *spirtd
    command: [spirtd, store, serve, --data-dir, /var/lib/spirtd/store]
    network_mode: none
    volumes:
      - node{i}-data:/var/lib/spirtd
    healthcheck:
      test: [CMD, spirtd, store, ping, --data-dir, /var/lib/spirtd/store]
      interval: 2s
      timeout: 10s
      retries: 30

  node{i}:
    <<: *spirtd
    command: [spirtd, run, --id, node{i}, --listen, "0.0.0.0:{port}", --advertise, "node{i}:{port}",
              --seeds, "{seeds}", --data-dir, /var/lib/spirtd, --certs-dir, /certs,
              --config, /etc/spirtd/peer.toml, --log-format, json]
    volumes:
      - node{i}-data:/var/lib/spirtd
      - certs:/certs:ro
      - ./deploy/compose/peer.toml:/etc/spirtd/peer.toml:ro
    ports:
      - "127.0.0.1:{published}:{port}"
    depends_on:
      certs:
        condition: service_completed_successfully
      node{i}-store:
        condition: service_healthy
    healthcheck:
      test: [CMD, spirtctl, --peer, "127.0.0.1:{port}", --certs-dir, /certs, health]
      interval: 5s
      timeout: 10s
      retries: 3
      start_period: 30s
"""


def render(n: int) -> str:
    if not 1 <= n <= MAX_PEERS:
        raise ValueError(f"--peers must be between 1 and {MAX_PEERS}, not {n}")
    names = [f"node{i}" for i in range(1, n + 1)]
    seeds = ",".join(f"{name}:{PORT}" for name in names[:SEEDS])
    text = HEADER.format(n=n, peers=",".join(names))
    for i in range(1, n + 1):
        text += PEER.format(i=i, port=PORT, seeds=seeds, published=PORT + i)
    text += "\nvolumes:\n  ca:\n  certs:\n" + "".join(f"  node{i}-data:\n" for i in range(1, n + 1))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=3, help=f"how many peers (1-{MAX_PEERS})")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.peers))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
