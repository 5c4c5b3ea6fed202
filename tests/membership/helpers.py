"""Builders for state-machine tests: a member "me" and others put in a
given state through ordinary updates."""

from __future__ import annotations

import random

from spirtd.membership import Alive, Dead, Gossip, MembershipConfig, MembershipState, MemberState, Suspect

ME = "me"


def make_state(
    others: dict[str, tuple[MemberState, int]] | None = None,
    *,
    config: MembershipConfig | None = None,
    seed: int = 0,
    now: float = 0.0,
    incarnation: int = 0,
) -> MembershipState:
    """`me` knowing `others` (id -> (state, incarnation)); events drained."""
    state = MembershipState(
        ME, "addr-me", config or MembershipConfig.default(), rng=random.Random(seed), now=now, incarnation=incarnation
    )
    for member_id, (member_state, inc) in (others or {}).items():
        put(state, member_id, member_state, inc, now)
    state.drain_events()
    return state


def put(state: MembershipState, member_id: str, member_state: MemberState, inc: int, now: float) -> None:
    state.on_gossip(Gossip("seed", (Alive(member_id, f"addr-{member_id}", inc),)), now)
    if member_state is MemberState.SUSPECT:
        state.on_gossip(Gossip("seed", (Suspect(member_id, inc, "accuser"),)), now)
    elif member_state is MemberState.DEAD:
        state.on_gossip(Gossip("seed", (Dead(member_id, inc, "accuser"),)), now)
    elif member_state is MemberState.LEFT:
        state.on_gossip(Gossip("seed", (Dead(member_id, inc, member_id),)), now)


def peers(n: int, member_state: MemberState = MemberState.ALIVE) -> dict[str, tuple[MemberState, int]]:
    """n - 1 others (so that the cluster has n members), all in one state."""
    return {f"p{i}": (member_state, 0) for i in range(1, n)}


def view(state: MembershipState, member_id: str) -> tuple[MemberState, int] | None:
    m = state.member(member_id)
    return None if m is None else (m.state, m.incarnation)


def kinds(state: MembershipState) -> list[str]:
    return [e.kind.value for e in state.drain_events()]
