"""A whole cluster in one process on virtual time, for tests and
bench/membership_sim.py: real MembershipDrivers over a MemoryNetwork,
driven by a FakeClock that run_for() advances in small steps.

Every member's events are logged with their virtual time, so a test can
ask when each survivor saw a death, or whether anyone ever saw a live
member die.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from spirtd.clock import FakeClock
from spirtd.errors import ConfigError
from spirtd.membership.config import MembershipConfig
from spirtd.membership.driver import MembershipDriver
from spirtd.membership.events import EventKind, MemberEvent
from spirtd.membership.memory import DelayFn, MemoryNetwork
from spirtd.membership.messages import MemberState
from spirtd.membership.state import MembershipState
from spirtd.membership.subscriptions import Subscription

# Virtual time advances this much between two looks at the event loop: the
# resolution of every measured time.
DEFAULT_STEP_S = 0.005
# Loop iterations given to the cluster after each step before time moves on
# (stops early once nothing is runnable).
MAX_SETTLE_ITERATIONS = 200


def address_of(member_id: str) -> str:
    return f"mem://{member_id}"


@dataclass
class SimMember:
    id: str
    state: MembershipState
    driver: MembershipDriver
    subscription: Subscription
    events: list[MemberEvent] = field(default_factory=list)
    killed_at: float | None = None

    @property
    def address(self) -> str:
        return address_of(self.id)

    def view(self) -> dict[str, MemberState]:
        """member id -> state, as this member sees it (itself left out)."""
        return {m.id: m.state for m in self.state.members() if m.id != self.id}

    def first(self, kind: EventKind, about: str, after: float = float("-inf")) -> float | None:
        for event in self.events:
            if event.kind is kind and event.member.id == about and event.time >= after:
                return event.time
        return None


class SimCluster:
    def __init__(
        self,
        config: MembershipConfig,
        *,
        seed: int = 0,
        delay_s: float | DelayFn = 0.0,
        drop: float = 0.0,
        step_s: float = DEFAULT_STEP_S,
    ) -> None:
        self.config = config
        self.clock = FakeClock()
        self.network = MemoryNetwork(self.clock, delay_s=delay_s, drop=drop, seed=seed)
        self.members: dict[str, SimMember] = {}
        self._rng = random.Random(seed)
        self._step_s = step_s
        self._stalls: tuple[float, float, float] | None = None
        self._stall_rng = random.Random(seed + 1)

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def live(self) -> list[SimMember]:
        return [m for m in self.members.values() if m.killed_at is None and not m.state.left]

    async def add(self, member_id: str, *, incarnation: int = 0) -> SimMember:
        """Starts a member (not yet joined). A killed member's id may be reused
        (a restart)."""
        old = self.members.get(member_id)
        if old is not None and old.killed_at is None:
            raise ConfigError(f"{member_id} is already running")
        state = MembershipState(
            member_id,
            address_of(member_id),
            self.config,
            rng=random.Random(self._rng.getrandbits(64)),
            now=self.now,
            incarnation=incarnation,
        )
        driver = MembershipDriver(state, self.network.transport(address_of(member_id)), self.clock, self.config)
        member = SimMember(member_id, state, driver, driver.subscribe())
        self.network.register(member.address, driver)
        await driver.__aenter__()
        self.members[member_id] = member
        return member

    async def start(self, n: int, *, prefix: str = "m", settle_s: float = 5.0) -> list[SimMember]:
        """n members, each joining through the first; runs until settle_s."""
        ids = [f"{prefix}{i:02d}" for i in range(n)]
        added = [await self.add(i) for i in ids]
        for member in added[1:]:
            await self.join(member.id, [added[0].id])
        await self.run_for(settle_s)
        return added

    async def join(self, member_id: str, seeds: Iterable[str]) -> int:
        """member.join(seeds), run on virtual time."""
        member = self.members[member_id]
        job = asyncio.ensure_future(member.driver.join([address_of(s) for s in seeds]))
        while not job.done():
            await self.step()
        return job.result()

    async def kill(self, member_id: str) -> None:
        """SIGKILL: it stops answering and sending, without a word."""
        member = self.members[member_id]
        self.network.kill(member.address)
        member.killed_at = self.now
        await member.driver.aclose()
        self._collect()

    async def leave(self, member_id: str) -> None:
        member = self.members[member_id]
        job = asyncio.ensure_future(member.driver.leave())
        while not job.done():
            await self.step()
        job.result()

    async def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - self._step_s / 2:
            await self.step()

    def stall_randomly(self, per_s: float, min_s: float, max_s: float) -> None:
        """From now on each live member stalls about per_s times a second
        for U(min_s, max_s) seconds (MemoryNetwork.pause), like a Python
        process on a busy CPU."""
        self._stalls = (per_s, min_s, max_s)

    async def step(self) -> None:
        if self._stalls is not None:
            per_s, min_s, max_s = self._stalls
            for member in self.live():
                if self._stall_rng.random() < per_s * self._step_s:
                    self.network.pause(member.address, self._stall_rng.uniform(min_s, max_s))
        self.clock.advance(self._step_s)
        await _settle()
        self._collect()

    async def aclose(self) -> None:
        for member in self.members.values():
            await member.driver.aclose()

    def _collect(self) -> None:
        for member in self.members.values():
            member.events.extend(member.subscription.pending())

    # -- measures ----------------------------------------------------------
    def detection_times(self, victim: str) -> dict[str, float | None]:
        """For each live member: seconds from the victim's death until it
        marked the victim dead (None: not yet)."""
        killed_at = self.members[victim].killed_at
        if killed_at is None:
            raise ConfigError(f"{victim} was not killed")
        times: dict[str, float | None] = {}
        for member in self.live():
            seen = member.first(EventKind.DEAD, victim, after=killed_at)
            times[member.id] = None if seen is None else seen - killed_at
        return times

    def false_deaths(self) -> list[tuple[str, MemberEvent]]:
        """(observer, event) for every DEAD event about a member that was
        alive at the time."""
        found = []
        for observer in self.members.values():
            for event in observer.events:
                subject = self.members.get(event.member.id)
                if event.kind is not EventKind.DEAD or subject is None:
                    continue
                if subject.killed_at is None or event.time < subject.killed_at:
                    found.append((observer.id, event))
        return found

    def converged(self) -> bool:
        """Every live member sees every other live member alive."""
        live = {m.id for m in self.live()}
        return all(
            all(m.view().get(other) is MemberState.ALIVE for other in live - {m.id}) for m in self.live()
        )


async def _settle() -> None:
    """Lets the event loop run until nothing is runnable (virtual time
    stands still meanwhile). Reads asyncio's ready queue where it can
    (CPython's loop); otherwise runs a fixed number of iterations."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(MAX_SETTLE_ITERATIONS):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return
