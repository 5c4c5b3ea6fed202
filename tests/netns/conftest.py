"""The `netns_cluster` fixture: a factory of network-namespace clusters.

    def test_something(netns_cluster):
        cluster = netns_cluster(n=3)          # or netns_cluster(2, subnet=...)
        a, b, c = cluster.hosts

Every cluster the factory made is closed at teardown, whether the test
passed, failed or was interrupted. Where namespaces cannot be used (not
root, no iproute2, no permission) the test is skipped with the reason;
set SPIRTD_REQUIRE_NETNS=1 (as CI, which runs as root, should) to make that
a failure instead.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

import pytest

from .harness import Cluster, netns_available


@pytest.fixture(scope="session")
def netns_unavailable_reason() -> str | None:
    """Why this machine cannot run clusters, or None; checked once per run."""
    return netns_available()


@pytest.fixture
def netns_required(netns_unavailable_reason: str | None) -> None:
    """Skip (or, with SPIRTD_REQUIRE_NETNS=1, fail) without namespaces; for
    tests that build clusters themselves."""
    if netns_unavailable_reason is not None:
        message = f"network namespaces unavailable: {netns_unavailable_reason}"
        if os.environ.get("SPIRTD_REQUIRE_NETNS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def netns_cluster(netns_required: None) -> Iterator[Callable[..., Cluster]]:
    with contextlib.ExitStack() as stack:

        def make(n: int = 3, **kwargs: Any) -> Cluster:
            return stack.enter_context(Cluster(n, **kwargs))

        yield make
