"""Which fetched versions a joiner takes, asks another source for, or
refuses (spirtd.daemon.cluster.check_version_round)."""

from __future__ import annotations

import pytest

from spirtd.daemon.cluster import check_version_round
from spirtd.errors import ExchangeError, VersionMoved


def test_the_round_asked_for_is_taken() -> None:
    check_version_round("node2", "j1", held=7, wanted=7)


@pytest.mark.parametrize(("held", "error", "words"), [
    (8, VersionMoved, "holds round 8 of job j1, not 7"),  # went on meanwhile: a race, ask another
    (6, ExchangeError, "behind round 7 it reported"),  # lost what it reported (a store crash): at fault
    (0, ExchangeError, "holds round 0"),
])  # fmt: skip
def test_another_round_is_not_taken(held: int, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as info:
        check_version_round("node2", "j1", held=held, wanted=7)
    assert (type(info.value) is VersionMoved) == (held > 7)  # only a source ahead is no fault of its
