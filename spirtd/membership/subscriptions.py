"""Fan-out of membership events to any number of async subscribers.

Every subscriber gets every event, in order, from a bounded buffer of its
own: one that falls behind loses its oldest events (counted in `dropped`)
instead of slowing the membership down. Iteration ends when the
subscription or the hub is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from spirtd.membership.events import MemberEvent


class Subscription:
    def __init__(self, hub: EventHub, capacity: int) -> None:
        self._hub = hub
        self._buffer: deque[MemberEvent] = deque()
        self._capacity = capacity
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def push(self, event: MemberEvent) -> None:
        if self._closed:
            return
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(event)
        self._ready.set()

    def pending(self) -> list[MemberEvent]:
        """Takes every buffered event without waiting."""
        events = list(self._buffer)
        self._buffer.clear()
        return events

    def close(self) -> None:
        """Idempotent; buffered events can still be read, then iteration ends."""
        if not self._closed:
            self._closed = True
            self._hub.discard(self)
            self._ready.set()

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MemberEvent:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EventHub:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._subscriptions: set[Subscription] = set()
        self._closed = False
        self._dropped_by_closed = 0

    @property
    def dropped(self) -> int:
        """Events lost by slow subscribers, closed ones included."""
        return self._dropped_by_closed + sum(s.dropped for s in self._subscriptions)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._capacity)
        if self._closed:
            subscription.close()
        else:
            self._subscriptions.add(subscription)
        return subscription

    def discard(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._dropped_by_closed += subscription.dropped

    def publish(self, event: MemberEvent) -> None:
        for subscription in self._subscriptions:
            subscription.push(event)

    def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
