"""A job another member recorded, offered to this peer (JobManager.adopt):
taken and fsynced, or refused whole with what was wrong, nothing kept. A
record from a newer spirtd with a setting this one does not know is such a
refusal (README: "Versions"). A real store; no job runs."""

from __future__ import annotations

import numpy as np
import pytest

from spirtd.clock import SystemClock
from spirtd.errors import ConfigError
from spirtd.jobs import records
from spirtd.jobs.jobstate import JobPhase
from spirtd.jobs.manager import JobManager
from spirtd.jobs.spec import parse
from spirtd.jobs.views import Training
from spirtd.ml.tasks import DataShape

SPEC = parse('model = "mlp"\ndataset = "digits"\nbatch_size = 8\nminibatches_per_round = 2\nrounds = 3\n')


def training() -> Training:
    def invoker(spec):
        raise AssertionError("no job runs in these tests")

    return Training(describe=lambda spec: DataShape(n_train=80, batches_per_epoch=10, n_params=4),
                    initial_parameters=lambda spec: np.zeros(4, np.float32), invoker=invoker)  # fmt: skip


def offered(spec: dict) -> str:
    return records.record_to_json(records.JobRecord("j0123456789", spec, phase=JobPhase.RUNNING.value,
                                                    total_rounds=3, members=["node2"]))  # fmt: skip


async def test_a_record_with_a_setting_this_peer_does_not_know_is_refused_and_nothing_kept(store, tmp_path):
    newer = SPEC.to_dict()
    newer["limits"] = {**newer["limits"], "warp_factor": 9}
    manager = JobManager(tmp_path, store, training(), SystemClock())
    with pytest.raises(ConfigError, match=r"unknown key 'warp_factor' in \[limits\]"):
        await manager.adopt(offered(newer))
    assert manager.jobs() == [] and not list(tmp_path.rglob("*.json"))
    assert await manager.adopt(offered(SPEC.to_dict())) is False  # one it knows is taken
    assert [j.record.id for j in manager.jobs()] == ["j0123456789"] and list(tmp_path.rglob("*.json"))
