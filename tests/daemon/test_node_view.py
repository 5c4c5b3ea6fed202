"""What Control reads of the daemon: one NodeView object of live values."""

from __future__ import annotations

import pytest

from spirtd.clock import FakeClock
from spirtd.daemon.app import Daemon, DaemonNodeView
from spirtd.daemon.config import build
from spirtd.daemon.control import ControlService, StateAges
from spirtd.errors import MembershipError
from spirtd.membership.messages import Member, MemberState
from spirtd.rpc.counters import Counters


class StaticNode:
    """A NodeView of fixed values."""

    id = "n1"
    address = "10.0.0.1:7100"
    store_backend = "native"
    local = Member("n1", "10.0.0.1:7100", 4, MemberState.ALIVE)

    def members(self) -> list[Member]:
        return [self.local, Member("n2", "10.0.0.2:7100", 1, MemberState.SUSPECT)]

    def rtt_s(self, member_id: str) -> float | None:
        return 0.002

    def subscribe(self):
        raise AssertionError("Status reads no membership events")

    def membership_counters(self) -> dict[str, int]:
        return {"membership.sent.ping": 3}


async def test_node_view_is_what_status_reports():
    clock = FakeClock()
    control = ControlService(StaticNode(), Counters(), StateAges(clock), clock)
    status = await control.Status(None, None)
    assert (status.id, status.address, status.store_backend) == ("n1", "10.0.0.1:7100", "native")
    assert (status.member_count, status.alive_count, status.incarnation) == (2, 1, 4)
    assert status.counters["membership.sent.ping"] == 3


def test_node_view_of_a_daemon_before_its_membership_starts(tmp_path):
    config = build({}, {}, {"id": "n1", "listen": "127.0.0.1:0", "insecure": True, "data_dir": str(tmp_path)})
    view = DaemonNodeView(Daemon(config, clock=FakeClock()))
    assert (view.id, view.members(), view.rtt_s("n2"), view.membership_counters()) == ("n1", [], None, {})
    with pytest.raises(MembershipError, match="has not started"):
        view.local
    with pytest.raises(MembershipError, match="has not started"):
        view.subscribe()
