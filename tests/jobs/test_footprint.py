"""What a job takes in memory, checked before anything of it is allocated."""

import pytest

from spirtd.errors import LimitExceeded
from spirtd.ml import describe
from spirtd.jobs.footprint import check_fits, store_bytes, worker_bytes
from spirtd.jobs.spec import from_dict

BASE = {"model": "mlp", "dataset": "digits", "batch_size": 32, "minibatches_per_round": 4, "rounds": 10}


@pytest.mark.parametrize(
    "optimizer, vectors",
    [
        ({"name": "sgd", "lr": 0.1}, 2 + 4 + 1),  # two versions, 4 gradients, the aggregate
        ({"name": "sgd", "lr": 0.1, "momentum": 0.9}, 2 * 2 + 4 + 1),  # + a momentum buffer per version
        ({"name": "adam", "lr": 0.001}, 2 * 3 + 4 + 1),  # + two moments per version
        ({"name": "adamw", "lr": 0.001}, 2 * 3 + 4 + 1),
    ],
)
def test_store_bytes_count_every_vector_of_a_round(optimizer, vectors):
    spec = from_dict({**BASE, "optimizer": optimizer})
    assert store_bytes(1000, spec) == 4 * 1000 * vectors
    assert worker_bytes(1000) == 12_000


def test_a_job_that_does_not_fit_names_the_limit_and_its_setting():
    spec = from_dict({**BASE, "optimizer": {"name": "adam", "lr": 0.001}})
    check_fits(1000, spec, store_limit_bytes=4 * 1000 * 11)
    with pytest.raises(LimitExceeded, match=r"needs 0 MiB in the store, whose memory limit is 0 MiB \(\[store\] max_memory_mb\)"):
        check_fits(1000, spec, store_limit_bytes=4 * 1000 * 11 - 1)
    with pytest.raises(LimitExceeded, match="over limits invocation_memory_mb = 2048"):
        check_fits(200_000_000, spec, store_limit_bytes=None)


def test_describing_a_huge_model_allocates_nothing():
    """A trillion parameters are counted, not built (torch's meta device)."""
    spec = from_dict({**BASE, "model": {"name": "mlp", "hidden": [1 << 20, 1 << 20]}})
    shape = describe.describe(spec.work())
    assert shape.n_params > 10**12 and shape.batches_per_epoch > 0
