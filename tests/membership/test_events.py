import pytest

from spirtd.membership.events import BOOT_META, EventKind, MemberEvent, RestartDetector
from spirtd.membership.messages import Member, MemberState


def event(kind: EventKind, boot: str | None, member: str = "b") -> MemberEvent:
    meta = {BOOT_META: boot} if boot is not None else {}
    return MemberEvent(kind, Member(member, "127.0.0.1:1", 1, MemberState.ALIVE, meta), 0.0)


@pytest.mark.parametrize(
    "history, last, restarted",
    [
        ([], (EventKind.JOIN, "x"), False),  # first seen
        ([(EventKind.JOIN, "x")], (EventKind.UPDATE, "x"), False),  # same process, new meta
        ([(EventKind.JOIN, "x")], (EventKind.UPDATE, "y"), True),  # back before declared dead
        ([(EventKind.JOIN, "x"), (EventKind.SUSPECT, "x")], (EventKind.ALIVE, "y"), True),
        ([(EventKind.JOIN, "x"), (EventKind.DEAD, "x")], (EventKind.JOIN, "y"), False),  # its death was news
        ([(EventKind.JOIN, None)], (EventKind.UPDATE, None), False),  # a peer without boot tokens
        ([(EventKind.JOIN, "x"), (EventKind.UPDATE, "y")], (EventKind.UPDATE, "y"), False),  # said once
    ],
)
def test_a_new_boot_token_without_a_death_between_is_a_restart(history, last, restarted):
    detector = RestartDetector()
    for kind, boot in history:
        detector.restarted(event(kind, boot))
    assert detector.restarted(event(*last)) is restarted


def test_members_are_told_apart():
    detector = RestartDetector()
    detector.restarted(event(EventKind.JOIN, "x", "b"))
    assert detector.restarted(event(EventKind.UPDATE, "y", "c")) is False
