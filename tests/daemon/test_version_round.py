"""Which fetched versions a joiner takes, or asks another source (or the
same one later) for (spirtd.daemon.cluster.check_version_round)."""

from __future__ import annotations

import pytest

from spirtd.daemon.cluster import check_version_round
from spirtd.errors import VersionMoved


def test_the_round_asked_for_is_taken() -> None:
    check_version_round("node2", "j1", held=7, wanted=7)


@pytest.mark.parametrize(("held", "words"), [
    (8, "node2 went on to round 8 of job j1, past 7"),  # it went on meanwhile
    (6, "node2 holds round 6 of job j1: it has not committed round 7 yet"),  # it reported 7, commits it next
])  # fmt: skip
def test_another_round_is_a_race_not_a_fault(held: int, words: str) -> None:
    with pytest.raises(VersionMoved, match=words):
        check_version_round("node2", "j1", held=held, wanted=7)
