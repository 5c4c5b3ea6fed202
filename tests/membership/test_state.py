"""Probing, Lifeguard's local health, relaying, gossip and push-pull plans."""

from __future__ import annotations

import pytest

from spirtd.errors import MembershipError
from spirtd.membership import Ack, Alive, Dead, Gossip, MembershipConfig, MemberState, Ping, PingReq, PingReqReply, Suspect

from .helpers import ME, kinds, make_state, peers, view

A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT
CFG = MembershipConfig.default()


def test_state_probe_alone_has_no_target():
    assert make_state().start_probe(0.0) is None


def test_state_probe_round_robin_visits_everyone_once_per_pass():
    state = make_state(peers(8))
    for _ in range(3):
        targets = []
        for _ in range(7):
            plan = state.start_probe(0.0)
            targets.append(plan.target.id)
            state.record_ack(plan.seq, Ack(plan.target.id, plan.seq), 0.0)
            state.finish_probe(plan.seq, 0.0)
        assert sorted(targets) == [f"p{i}" for i in range(1, 8)]


def test_state_probe_skips_dead_and_left_probes_suspects():
    state = make_state({"a": (A, 0), "d": (D, 0), "l": (L, 0), "s": (S, 0)})
    seen = {state.start_probe(0.0).target.id for _ in range(10)}
    assert seen == {"a", "s"}


def test_state_probe_plan_timing_scales_with_awareness():
    state = make_state(peers(4))
    plan = state.start_probe(5.0)
    assert plan.ack_deadline == pytest.approx(5.0 + CFG.probe_timeout_s)
    assert plan.deadline == pytest.approx(5.0 + CFG.probe_interval_s)
    assert plan.ping == Ping(ME, plan.seq, plan.target.id, plan.ping.updates)
    state.finish_probe(plan.seq, 5.0)  # no helpers were asked: +1
    assert state.awareness == 1
    plan = state.start_probe(6.0)
    assert plan.ack_deadline == pytest.approx(6.0 + 2 * CFG.probe_timeout_s)
    assert plan.deadline == pytest.approx(6.0 + 2 * CFG.probe_interval_s)
    assert state.probe_interval_s() == pytest.approx(2 * CFG.probe_interval_s)


def _fail_round(state, *, now=0.0, nacks=0, indirect_ack=False):
    plan = state.start_probe(now)
    sends = state.start_indirect(plan.seq, now)
    for i, out in enumerate(sends):
        acked = indirect_ack and i == 0
        if acked or i < nacks:
            state.record_reply(plan.seq, PingReqReply(out.to.id, plan.seq, acked), now)
    return plan, sends, state.finish_probe(plan.seq, now + 0.25)


# nacks out of 3 helpers, indirect ack, awareness delta, suspected
@pytest.mark.parametrize(
    "nacks, indirect_ack, delta, suspected",
    [(3, False, 0, True), (2, False, 1, True), (0, False, 3, True), (0, True, 0, False), (2, True, 0, False)],
)
def test_state_probe_failure_awareness(nacks, indirect_ack, delta, suspected):
    state = make_state(peers(8))
    plan, sends, result = _fail_round(state, nacks=nacks, indirect_ack=indirect_ack)
    assert len(sends) == CFG.indirect_checks
    assert plan.target.id not in {out.to.id for out in sends}
    assert all(out.message == PingReq(ME, plan.seq, plan.target.id, plan.target.address, out.message.updates) for out in sends)
    assert result.awareness_delta == delta and state.awareness == delta
    assert result.suspected == suspected
    assert view(state, plan.target.id) == ((S, 0) if suspected else (A, 0))


def test_state_probe_direct_ack_lowers_awareness_and_records_rtt():
    state = make_state(peers(8))
    _fail_round(state, nacks=0)  # awareness 3
    plan = state.start_probe(10.0)
    assert state.record_ack(plan.seq, Ack(plan.target.id, plan.seq, (Alive("new", "addr-new", 0),)), 10.04)
    result = state.finish_probe(plan.seq, 10.05)
    assert result.direct and result.acked and result.awareness_delta == -1
    assert state.awareness == 2
    assert state.rtt(plan.target.id) == pytest.approx(0.04)
    assert view(state, "new") == (A, 0)  # piggybacked updates are applied


def test_state_awareness_is_bounded():
    state = make_state(peers(8))
    for _ in range(10):
        _fail_round(state, nacks=0)
    assert state.awareness == CFG.awareness_max - 1
    for _ in range(20):
        plan = state.start_probe(0.0)
        state.record_ack(plan.seq, Ack(plan.target.id, plan.seq), 0.0)
        state.finish_probe(plan.seq, 0.0)
    assert state.awareness == 0


def test_state_probe_foreign_acks_and_replies_ignored():
    state = make_state(peers(8))
    plan = state.start_probe(0.0)
    other = "p1" if plan.target.id != "p1" else "p2"
    assert not state.record_ack(plan.seq, Ack(other, plan.seq), 0.0)
    assert not state.record_ack(plan.seq + 1, Ack(plan.target.id, plan.seq + 1), 0.0)
    assert not state.record_ack(plan.seq, Ack(plan.target.id, plan.seq + 1), 0.0)
    sends = state.start_indirect(plan.seq, 0.1)
    assert state.start_indirect(plan.seq, 0.1) == ()  # once per round
    helper = sends[0].to.id
    stranger = next(m.id for m in state.members() if m.id not in {helper, ME, plan.target.id} | {o.to.id for o in sends})
    assert not state.record_reply(plan.seq, PingReqReply(stranger, plan.seq, True), 0.1)
    assert state.record_reply(plan.seq, PingReqReply(helper, plan.seq, False), 0.1)
    assert not state.record_reply(plan.seq, PingReqReply(helper, plan.seq, False), 0.1)  # counted once
    result = state.finish_probe(plan.seq, 0.25)
    assert result.nacks == 1 and not result.acked
    assert state.finish_probe(plan.seq, 0.3) is None


def test_state_probe_without_helpers_counts_one():
    state = make_state({"b": (A, 0)})
    plan = state.start_probe(0.0)
    assert state.start_indirect(plan.seq, 0.1) == ()
    assert state.finish_probe(plan.seq, 0.25).awareness_delta == 1


def test_state_buddy_ping_to_suspect_carries_its_suspicion_first():
    state = make_state({"b": (A, 0), "c": (A, 0)})
    state.on_gossip(Gossip("c", (Suspect("b", 0, "c"),)), 1.0)
    plan = state.start_probe(1.0)
    assert plan.target.id == "b"  # accused by others: probed out of turn
    assert plan.ping.updates[0] == Suspect("b", 0, ME)


def test_state_suspect_accused_by_others_probed_out_of_turn_once():
    state = make_state(peers(8))
    plan = state.start_probe(0.0)
    state.finish_probe(plan.seq, 0.0)
    suspect = next(f"p{i}" for i in range(1, 8) if f"p{i}" != plan.target.id)
    state.on_gossip(Gossip("x", (Suspect(suspect, 0, "x"),)), 0.1)
    assert state.start_probe(0.25).target.id == suspect
    assert [state.start_probe(0.5 + i).target.id for i in range(6)].count(suspect) <= 1


def test_state_on_ping_answers_with_ack_and_refuses_other_targets():
    state = make_state(peers(3))
    ack = state.on_ping(Ping("p1", 7, ME, (Alive("new", "addr-new", 2),)), 0.0)
    assert ack.sender == ME and ack.seq == 7
    assert view(state, "new") == (A, 2)
    with pytest.raises(MembershipError):
        state.on_ping(Ping("p1", 8, "p2"), 0.0)


@pytest.mark.parametrize(
    "ack, acked",
    [
        (None, False),
        ("right", True),
        ("wrong sender", False),
        ("wrong seq", False),
    ],
)
def test_state_relay_for_a_helper(ack, acked):
    state = make_state(peers(4))
    req = PingReq("p1", 42, "p2", "addr-p2", (Alive("new", "addr-new", 0),))
    relay = state.on_ping_req(req, 0.0)
    assert relay.target == "p2" and relay.sender == ME
    assert view(state, "new") == (A, 0)
    answer = {
        None: None,
        "right": Ack("p2", relay.seq),
        "wrong sender": Ack("p3", relay.seq),
        "wrong seq": Ack("p2", relay.seq + 1),
    }[ack]
    reply = state.relay_result(req, relay, answer, 0.1)
    assert (reply.sender, reply.seq, reply.acked) == (ME, 42, acked)


def test_state_gossip_plan_only_when_something_is_pending():
    state = make_state(peers(8))
    while state.gossip_plan(0.0):
        pass
    assert state.gossip_plan(0.0) == ()
    state.on_gossip(Gossip("p1", (Dead("p2", 0, "p1"), Dead("p3", 0, "p3"))), 1.0)
    state.expel("p4", 1.0)
    kinds(state)
    targets = set()
    for _ in range(30):
        plan = state.gossip_plan(1.0)
        assert len(plan) <= CFG.gossip_fanout
        targets |= {out.to.id for out in plan}
        for out in plan:
            assert out.message.sender == ME and out.message.updates
        state.on_gossip(Gossip("p1", (Alive("x", "addr-x", len(targets)),)), 1.0)  # keep it busy
    assert "p2" in targets  # dead but remembered: told, so that it can refute
    assert not {"p3", "p4", ME} & targets  # left, expelled, ourselves


def test_state_updates_are_sent_retransmit_limit_times():
    state = make_state(peers(8))
    while state.gossip_plan(0.0):
        pass
    state.on_gossip(Gossip("p1", (Dead("p2", 0, "p1"),)), 1.0)
    copies = sum(sum(1 for u in out.message.updates if u == Dead("p2", 0, "p1")) for _ in range(10) for out in state.gossip_plan(1.0))
    # n = 7 alive members counting us: 4 * ceil(log10(8)) = 4
    assert copies == 4


def test_state_push_pull_targets_one_alive_one_dead():
    state = make_state({"a": (A, 0), "b": (A, 0), "d": (D, 0), "l": (L, 0), "s": (S, 0)})
    for _ in range(10):
        alive, dead = state.push_pull_targets(0.0)
        assert alive.id in {"a", "b"} and dead.id == "d"
    assert make_state().push_pull_targets(0.0) == ()


def test_state_push_pull_interval_scales_beyond_32():
    assert make_state(peers(32)).push_pull_interval_s() == CFG.push_pull_interval_s
    assert make_state(peers(33)).push_pull_interval_s() == 2 * CFG.push_pull_interval_s


def test_state_same_seed_same_choices():
    a, b = make_state(peers(16), seed=3), make_state(peers(16), seed=3)
    assert [a.start_probe(0.0).target.id for _ in range(20)] == [b.start_probe(0.0).target.id for _ in range(20)]
