"""spirt_client against a real peer over mutual TLS: the synchronous Client
called from inside a running event loop (as in Jupyter), AsyncClient with
the same methods and results, a job's events to its end, its model as a
torch state dict, its history as records and a DataFrame, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time

import numpy as np
import pytest
import torch

from spirt_client import AsyncClient, Client, ClientClosed, JobState, JobStatus, Member, MemberState, Model, RoundEvent, Status
from spirtd.jobs.spec import parse
from spirtd.ml.datasets import DatasetSpec, load_dataset
from spirtd.ml.models import ModelSpec, build_model
from tests.client.conftest import CALL_S, EVAL_EVERY, LONG_JOB, ROUNDS, SMALL_JOB, SMALL_JOB_TOML

POLL_S = 0.1
RUNNING_S = 60.0


async def test_client_sync_calls_inside_a_running_event_loop(trained, certs):
    asyncio.get_running_loop()  # the loop a notebook has: the sync client must not need its own
    with Client(trained.peer.address, certs, timeout_s=CALL_S) as client:
        status = client.status()
        members = client.members()
        job = client.job_status(trained.job_id)
        listed = client.jobs()
        with contextlib.closing(client.watch_members()) as membership:
            joined = next(membership)  # first a join for each member known
    await asyncio.sleep(0)  # the loop is still fine
    assert isinstance(status, Status) and status.id == "node1" and status.member_count == 1
    assert members == [Member("node1", trained.peer.address, MemberState.ALIVE, members[0].incarnation,
                              members[0].rtt_ms, members[0].state_age_s)]  # fmt: skip
    assert isinstance(job, JobStatus) and job.state is JobState.SUCCEEDED and job.state.succeeded
    assert (job.round, job.total_rounds, job.model, job.dataset, job.owner) == (ROUNDS, ROUNDS, "mlp", "digits", "client")
    assert job.participants == ("node1",) and 0.0 <= job.test_accuracy <= 1.0 and len(job.digest) == 64
    assert trained.job_id in [j.job_id for j in listed]
    assert (joined.kind, joined.member.id) == ("join", "node1")
    json.dumps(job.to_dict())  # JSON-ready


def test_the_events_of_a_job_iterated_to_its_end_with_a_bar(trained):
    rounds = [e for e in trained.events if not e.state.ended]
    assert [e.round for e in rounds] == list(range(1, ROUNDS + 1))
    assert all(isinstance(e, RoundEvent) and e.loss is not None and e.participants == ("node1",) for e in rounds)
    assert all({"compute", "aggregate", "update"} <= e.phase_s.keys() for e in rounds)
    assert [e.round for e in rounds if "evaluate" in e.phase_s] == list(range(EVAL_EVERY, ROUNDS + 1, EVAL_EVERY))
    last = trained.events[-1]
    assert last.state is JobState.SUCCEEDED and last.message == "finished"
    assert f"{ROUNDS}/{ROUNDS}" in trained.bar and "loss=" in trained.bar and "acc=" in trained.bar
    assert "peers=1" in trained.bar


async def test_async_client_has_the_same_methods_and_results(trained, certs):
    public = {n for n, _ in inspect.getmembers(Client, inspect.isfunction) if not n.startswith("_")} - {"close"}
    assert public == {n for n, _ in inspect.getmembers(AsyncClient, inspect.isfunction) if not n.startswith("_")} - {"aclose"}
    with Client(trained.peer.address, certs, timeout_s=CALL_S) as client:
        sync_job, sync_history = client.job_status(trained.job_id), client.history(trained.job_id)
    async with AsyncClient(trained.peer.address, certs, timeout_s=CALL_S) as client:
        status = await client.status()
        job = await client.job_status(trained.job_id)
        events = [e async for e in client.events(trained.job_id, timeout_s=RUNNING_S)]  # an ended job: what is kept
        history = await client.history(trained.job_id)
        model = await client.model(trained.job_id)
    assert status.id == "node1" and job == sync_job
    assert events == history == sync_history == trained.events
    assert model.round == ROUNDS and model.digest == job.digest


def test_the_model_is_a_state_dict_torch_loads(trained, certs):
    with Client(trained.peer.address, certs, timeout_s=CALL_S) as client:
        model = client.model(trained.job_id)
        final = client.job_status(trained.job_id)
    assert isinstance(model, Model) and model.round == ROUNDS and model.digest == final.digest
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in model.state_dict.values())
    job = parse(json.dumps(SMALL_JOB), "json")
    data = load_dataset(DatasetSpec.from_dict(job.dataset.to_dict()), job.seed)
    module = build_model(ModelSpec.from_dict(job.model.to_dict()), data.input_shape, data.num_classes, 0)
    module.load_state_dict(model.state_dict)  # what a notebook does with it
    x = torch.from_numpy(np.array(data.test_x))
    with torch.no_grad():
        predicted = module.eval()(x).argmax(dim=1).numpy()
        assert torch.equal(model.module()(x), module(x))
    assert abs((predicted == data.test_y).mean() - final.test_accuracy) < 1e-9


def test_history_as_records_and_a_dataframe(trained, certs):
    with Client(trained.peer.address, certs, timeout_s=CALL_S) as client:
        history = client.history(trained.job_id)
        frame = client.history_frame(trained.job_id)
    assert history == trained.events
    assert len(frame) == len(history) and list(frame["round"]) == [e.round for e in history]
    assert {"loss", "accuracy", "participant_count", "sent_bytes", "compute_s", "evaluate_s"} <= set(frame.columns)
    assert frame["loss"].iloc[0] == history[0].loss and (frame["participant_count"].iloc[:-1] == 1).all()
    assert list(frame["state"].iloc[-1:]) == ["succeeded"]


async def test_a_running_jobs_history_then_cancel_and_submit_from_a_path_or_text(trained, certs, tmp_path):
    spec_file = tmp_path / "long.json"
    spec_file.write_text(json.dumps(LONG_JOB))
    async with AsyncClient(trained.peer.address, certs, timeout_s=CALL_S) as client:
        running = await client.submit(spec_file)
        deadline = time.monotonic() + RUNNING_S
        while (await client.job_status(running)).round < 2 and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        history = await client.history(running)  # returns at once: what is kept so far
        queued = [await client.submit(SMALL_JOB_TOML), await client.submit(json.dumps(SMALL_JOB))]  # behind it
        # The queued ones first: one taken from the queue just as it is cancelled can stay queued (the
        # manager's task for it cancelled before it ever ran; spirtd/jobs/running.py, reported).
        states = [await client.cancel(job) for job in (*queued, running)]
        ended = [(await client.job_status(job)).state for job in (*queued, running)]
    assert len(history) >= 2 and not any(e.state.ended for e in history)
    assert states == ended == [JobState.CANCELLED] * 3


async def test_an_async_watch_in_flight_when_its_client_closes_raises_client_closed(trained, certs):
    """A watch iterated in one task while the client closes in another got
    asyncio.CancelledError, which reads as that task's own cancellation."""

    client = AsyncClient(trained.peer.address, certs, timeout_s=CALL_S)
    first = asyncio.Event()

    async def watching() -> None:
        async for _ in client.watch_members():
            first.set()

    task = asyncio.create_task(watching())
    await asyncio.wait_for(first.wait(), CALL_S)
    await client.aclose()
    with pytest.raises(ClientClosed, match="is closed"):
        await asyncio.wait_for(task, CALL_S)
    assert not task.cancelled()
