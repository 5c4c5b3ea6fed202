"""Files a peer keeps that are damaged never stop it from starting: they
are moved aside or made again, and the log says so (real peers)."""

from __future__ import annotations

import asyncio
import os

from tests.daemon.peers import Control


def test_a_damaged_node_state_and_password_file_do_not_stop_a_peer(peers, certs):
    peer = peers.start("node1")
    peer.signal(15)
    assert peer.wait() == 0
    (peer.data_dir / "node.json").write_bytes(os.urandom(200))
    (peer.data_dir / "store" / "store.password").write_bytes(b"\xff\xfe\x00 not text")
    peers.restart(peer)

    async def status():
        control = Control(peer.address, certs)
        try:
            return await control.status()
        finally:
            await control.aclose()

    reply = asyncio.run(status())
    assert reply.id == "node1" and reply.incarnation > 10**9  # from the wall clock: above any counted before
    assert (peer.data_dir / "node.json.damaged").exists()
    assert any("node.json is damaged" in line.get("msg", "") for line in peer.log_lines())
    assert (peer.data_dir / "store" / "store.password").read_text().strip().isprintable()
