"""The daemon's fixtures (certificates, running peers) for the training
tests, and a real store of spirt's module for those that run no daemon."""

import pytest

from spirtd.store import connect
from tests.daemon.conftest import certs, peers  # noqa: F401


@pytest.fixture
async def store(start_redis):
    server = start_redis()
    tensors = await connect(socket_path=server.socket_path, password=server.password)
    yield tensors
    await tensors.aclose()
