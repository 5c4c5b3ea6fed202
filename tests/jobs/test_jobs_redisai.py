"""A peer that trains on a real RedisAI ([store] url) instead of its own
store: the same job gives the same model, bit for bit, as on spirt's
module (the RedisAI backend's in-database work matches the references)."""

from __future__ import annotations

import os

import pytest

from tests import redisai_server
from tests.jobs.jobs import DIGITS, spec_file, submit, wait_for_end

SPEC = DIGITS.format(epochs=1, timeout=30, mode="warm").replace("epochs = 1", "rounds = 12")


@pytest.fixture
def redisai(tmp_path):
    if not redisai_server.SERVE.is_file():
        why = f"no RedisAI: {redisai_server.SERVE} is not there"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; under CI the RedisAI backend's tests must run")
        pytest.skip(why)
    folder = tmp_path / "redisai"
    folder.mkdir()
    with redisai_server.serve(folder) as (url, _):
        yield url


def test_a_peer_on_redisai_trains_the_same_model_as_on_spirts_module(peers, certs, tmp_path, redisai):
    native = peers.start("node2")
    reference = wait_for_end(certs, native, submit(certs, native, spec_file(tmp_path, text=SPEC)).stdout.strip())
    peers.config_text += f'\n[store]\nurl = "{redisai}"\n'
    peer = peers.start("node1")
    assert any("using the external store at redis://127.0.0.1" in line.get("msg", "") and "(redisai)" in line["msg"]
               for line in peer.log_lines())  # fmt: skip
    assert not (peer.data_dir / "store").exists()  # no redis-server of its own
    final = wait_for_end(certs, peer, submit(certs, peer, spec_file(tmp_path, text=SPEC)).stdout.strip())
    assert final["state"] == "succeeded", final["error"]
    assert final["digest"] == reference["digest"] and final["round"] == 12
    assert final["test_accuracy"] == reference["test_accuracy"]


def test_a_store_url_to_a_redis_without_tensors_stops_the_peer_at_start(peers, short_tmp):
    from tests.store.conftest import plain_redis

    server = plain_redis(short_tmp / "plain")
    try:
        url = f"unix://{server.socket_path}?password={server.password}"
        peers.config_text += f'\n[store]\nurl = "{url}"\n'
        peer = peers.start("node1", wait=False)
        assert peer.wait(30) != 0
        text = peer.log_text()
        assert "is a Redis with neither spirt's module nor RedisAI" in text
        assert server.password not in text  # the URL is shown without its password
    finally:
        server.stop()
