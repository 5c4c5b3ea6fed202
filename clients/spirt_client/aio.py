"""AsyncClient: Control's calls with grpc.aio, for asyncio code (the same
methods as the synchronous Client, awaited)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import IO, Any

import grpc

from spirt_client import calls, history
from spirt_client.base import ClientBase
from spirt_client.calls import Ask, R
from spirt_client.model import Model, ModelAssembler
from spirt_client.progress import RoundBar
from spirt_client.results import JobState, JobStatus, JobSummary, Member, MemberEvent, RoundEvent, Status
from spirt_client.specs import Spec
from grpc_health.v1 import health_pb2_grpc

from spirtd.api.spirt.v1 import control_pb2_grpc


class AsyncClient(ClientBase):
    __doc__ = "A peer's Control service, over mutual-TLS gRPC (asyncio).\n\n    " + (ClientBase.__doc__ or "")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channel = self.target.aio_channel()
        self._stubs = {calls.CONTROL: control_pb2_grpc.ControlStub(self._channel),
                       calls.HEALTH: health_pb2_grpc.HealthStub(self._channel)}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        await self._channel.close()

    async def _call(self, ask: Ask[R]) -> R:
        deadline = self._deadline(ask)
        try:
            reply = await self._started(lambda: getattr(self._stubs[ask.service], ask.rpc)(ask.request, timeout=deadline))
        except grpc.RpcError as exc:
            raise self._failed(exc, deadline) from None
        except asyncio.CancelledError:
            self._closed_meanwhile()
            raise
        return ask.read(reply)

    async def _stream(self, ask: Ask[R], timeout_s: float | None = None) -> AsyncIterator[R]:
        deadline = self._deadline(ask, timeout_s)
        call = self._started(lambda: getattr(self._stubs[ask.service], ask.rpc)(ask.request, timeout=deadline))
        try:
            async for message in call:
                yield ask.read(message)
        except grpc.RpcError as exc:
            raise self._failed(exc, deadline) from None
        except asyncio.CancelledError:
            self._closed_meanwhile()
            raise
        finally:
            call.cancel()

    def _closed_meanwhile(self) -> None:
        """ClientClosed for a call that the client's closing cancelled: as
        asyncio.CancelledError it would read as the caller's own task
        cancelled (a task that is being cancelled keeps its CancelledError)."""
        task = asyncio.current_task()
        if self._closed and (task is None or not task.cancelling()):
            raise self._closed_error() from None

    async def health(self, service: str = "") -> str:
        """The gRPC health check: SERVING once the peer is up, NOT_SERVING while it starts or
        shuts down; service: one of its services (spirt.v1.Control, ...), "" the peer as a whole."""
        return await self._call(calls.health(service))

    async def status(self) -> Status:
        """The peer's id, version, uptime, store backend, member count and counters."""
        return await self._call(calls.status())

    async def members(self) -> list[Member]:
        """Every member the peer knows (itself included), by id."""
        return await self._call(calls.members())

    async def watch_members(self, include_current: bool = True) -> AsyncIterator[MemberEvent]:
        """Membership events as they happen (first a join for each member known, unless not include_current)."""
        async for event in self._stream(calls.watch_members(include_current)):
            yield event

    async def submit(self, spec: Spec) -> str:
        """Submits a job: a dict, a TOML or JSON file's path, or a spec's text. Returns the job's id."""
        return await self._call(calls.submit(spec))

    async def job_status(self, job_id: str) -> JobStatus:
        return await self._call(calls.job_status(job_id))

    async def jobs(self) -> list[JobSummary]:
        """Every job the peer knows, oldest first."""
        return await self._call(calls.jobs())

    async def events(self, job_id: str, *, progress: bool = False, file: IO[str] | None = None,
                     timeout_s: float | None = None) -> AsyncIterator[RoundEvent]:  # fmt: skip
        """The job's round events (those the peer keeps, then each new one)
        until it ends; progress: a tqdm bar of the rounds as well (into
        file, default stderr; a widget in a notebook); timeout_s: give up
        (CallTimedOut) if it has not ended by then (default: never)."""
        bar = RoundBar(file=file, description=f"job {job_id}") if progress else None
        try:
            async for event in self._stream(calls.events(job_id), timeout_s):
                if bar is not None:
                    bar.update(event)
                yield event
        finally:
            if bar is not None:
                bar.close()

    async def wait(self, job_id: str, *, progress: bool = False, file: IO[str] | None = None,
                   timeout_s: float | None = None) -> JobStatus:  # fmt: skip
        """Waits for the job's end (with a progress bar if asked, at most
        timeout_s if given); returns its final status."""
        async for _ in self.events(job_id, progress=progress, file=file, timeout_s=timeout_s):
            pass
        return await self.job_status(job_id)

    async def history(self, job_id: str) -> list[RoundEvent]:
        """The round events the peer keeps of the job so far (at most its [jobs] event_history)."""
        return [event async for event in self._stream(calls.history(job_id))]

    async def history_frame(self, job_id: str):
        """history() as a pandas DataFrame, a row per event (needs pandas)."""
        return history.frame(await self.history(job_id))

    async def model(self, job_id: str) -> Model:
        """The job's model (its newest committed round): a torch state dict, and how to rebuild its module."""
        assembler = ModelAssembler(job_id)
        async for chunk in self._stream(calls.model(job_id)):
            assembler.add(chunk)
        return assembler.finish()

    async def cancel(self, job_id: str) -> JobState:
        """Stops the job everywhere; returns its state then."""
        return await self._call(calls.cancel(job_id))

    async def delete(self, job_id: str) -> None:
        """Deletes an ended job: its record and its model."""
        await self._call(calls.delete(job_id))

    async def plot(self, job_id: str, output: str | None = None):
        """The job's rounds as a matplotlib Figure (saved to output if given; needs matplotlib)."""
        from spirt_client.plot import plot_job

        return plot_job(await self.job_status(job_id), await self.history(job_id), output)
