"""The worker's computation against a real store: the gradient it writes is
the one torch computes for that minibatch, with its stats beside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spirtd.train import compute
from spirtd.train.spec import parse

SPEC = parse('model = "mlp"\ndataset = "digits"\nbatch_size = 32\nminibatches_per_round = 4\nrounds = 2\nseed = 3\n')


@pytest.fixture
def store(redis_node, monkeypatch):
    monkeypatch.setenv(compute.SOCKET_ENV, str(redis_node.socket_path))
    monkeypatch.setenv(compute.PASSWORD_FILE_ENV, str(redis_node.cfg.password_file))
    compute._store.cache_clear()
    client = redis_node.client()
    params = compute.initial_parameters(SPEC)
    client.execute_command("AI.TENSORSET", "p", "FLOAT", params.size, "BLOB", params.tobytes())
    yield client
    compute._store.cache_clear()


def test_gradient_invocation_matches_torch_and_keeps_its_stats(store):
    request = {"kind": "gradient", "spec": SPEC.to_dict(), "params_key": "p", "epoch": 1, "index": 5, "out_key": "g"}
    reply = compute.handle(request)
    got = np.frombuffer(store.execute_command("AI.TENSORGET", "g", "BLOB"), dtype=np.float32)

    values = SPEC.to_dict()
    data = compute.dataset_of(values)
    model = compute.model_of(values, data)  # the same skeleton: reload the parameters
    from spirtd.train.models import flatten_gradients, load_flat_parameters

    load_flat_parameters(model, compute.initial_parameters(SPEC))
    x, y = data.minibatch(32, 1, 5)
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(np.array(x))), torch.from_numpy(np.array(y)))
    loss.backward()
    np.testing.assert_array_equal(got, flatten_gradients(model))
    assert reply == {"loss": pytest.approx(loss.item()), "samples": 32}
    assert store.hgetall("g:stats") == {b"loss": repr(reply["loss"]).encode(), b"samples": b"32"}


def test_evaluate_invocation_reports_loss_and_accuracy(store):
    reply = compute.handle({"kind": "evaluate", "spec": SPEC.to_dict(), "params_key": "p", "split": "val"})
    assert 0.0 <= reply["accuracy"] <= 1.0 and reply["loss"] > 0 and reply["samples"] > 0


def test_parameters_that_are_gone_are_an_error(store):
    with pytest.raises(KeyError, match="parameters nope are not in the store"):
        compute.handle({"kind": "gradient", "spec": SPEC.to_dict(), "params_key": "nope", "epoch": 0,
                        "index": 0, "out_key": "g"})  # fmt: skip
