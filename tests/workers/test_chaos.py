"""SPIRTD_CHAOS, the plan of deliberate worker failures, is read strictly."""

from __future__ import annotations

import pytest

from spirtd.errors import ConfigError
from spirtd.workers import chaos


@pytest.mark.parametrize("plan", ["explode@round 1:minibatch 0", "crash@", "crash"])
def test_chaos_refuses_a_bad_plan_entry(monkeypatch, plan):
    monkeypatch.setenv(chaos.CHAOS_ENV, plan)
    with pytest.raises(ConfigError, match=f"{chaos.CHAOS_ENV} entry '{plan}' is not KIND@REQUEST_ID"):
        chaos.apply({"id": "job:round 1:minibatch 0"})


def test_chaos_off_without_a_plan(monkeypatch):
    monkeypatch.delenv(chaos.CHAOS_ENV, raising=False)
    chaos.apply({"id": "job:round 1:minibatch 0"})


def test_a_bad_plan_is_the_invocations_error_not_the_workers_death(monkeypatch):
    from spirtd.clock import SystemClock
    from spirtd.workers import protocol
    from spirtd.workers.worker_main import call_handler

    monkeypatch.setenv(chaos.CHAOS_ENV, "explode@x")
    reply = call_handler(lambda request: {"ok": 1}, protocol.Invoke(seq=1, request={"id": "j:x"}), SystemClock())
    assert not reply.ok and reply.error_type == "ConfigError" and "is not KIND@REQUEST_ID" in reply.error
