"""The gradient handler against a real store: the gradient it writes is the
one torch computes for that minibatch; tasks and results cross the pipe in
one checked form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spirtd.errors import ProtocolError, TensorNotFound
from spirtd.jobs.spec import parse
from spirtd.ml import describe, gradient
from spirtd.ml.models import flatten_gradients, load_flat_parameters
from spirtd.ml.tasks import (
    EvaluateTask,
    Evaluation,
    GradientResult,
    GradientTask,
    decode_result,
    decode_task,
    encode_result,
    encode_task,
)
from spirtd.store import blocking

SPEC = parse('model = "mlp"\ndataset = "digits"\nbatch_size = 32\nminibatches_per_round = 4\nrounds = 2\nseed = 3\n')
WORK = SPEC.work()


@pytest.fixture
def store(redis_node, monkeypatch):
    for name, value in blocking.store_env(redis_node.socket_path, redis_node.cfg.password_file).items():
        monkeypatch.setenv(name, value)
    gradient._store.cache_clear()
    client = redis_node.client()
    params = describe.initial_parameters(WORK)
    client.execute_command("AI.TENSORSET", "p", "FLOAT", params.size, "BLOB", params.tobytes())
    yield client
    gradient._store().close()
    gradient._store.cache_clear()


def grad_task(params_key: str = "p") -> GradientTask:
    return GradientTask(id="j:round 0:minibatch 0", work=WORK, params_key=params_key, epoch=1, index=5, out_key="g")


def test_gradient_invocation_matches_torch(store):
    reply = gradient.handle(encode_task(grad_task()))
    got = np.frombuffer(store.execute_command("AI.TENSORGET", "g", "BLOB"), dtype=np.float32)

    data = describe.dataset_of(WORK)
    model = describe.model_of(WORK, data)  # the same skeleton: reload the parameters
    load_flat_parameters(model, describe.initial_parameters(WORK))
    x, y = data.minibatch(32, 1, 5)
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(np.array(x))), torch.from_numpy(np.array(y)))
    loss.backward()
    np.testing.assert_array_equal(got, flatten_gradients(model))
    assert decode_result(grad_task(), reply) == GradientResult(loss=pytest.approx(loss.item()), samples=32)
    assert store.keys("g:*") == []  # the result travels in the reply; nothing is written beside the gradient


def test_evaluate_invocation_reports_loss_and_accuracy(store):
    task = EvaluateTask(id="j:eval:val", work=WORK, params_key="p", split="val")
    result = decode_result(task, gradient.handle(encode_task(task)))
    assert isinstance(result, Evaluation)
    assert 0.0 <= result.accuracy <= 1.0 and result.loss > 0 and result.samples > 0


def test_parameters_that_are_gone_are_an_error(store):
    with pytest.raises(TensorNotFound, match="parameters nope are not in the store"):
        gradient.handle(encode_task(grad_task("nope")))


def test_tasks_and_results_round_trip_through_their_wire_form():
    for task in (grad_task(), EvaluateTask(id="e", work=WORK, params_key="p", split="test")):
        assert decode_task(encode_task(task)) == task
    result = GradientResult(loss=0.5, samples=32)
    assert decode_result(grad_task(), encode_result(result)) == result


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "train"}, "unknown task kind 'train'"),
        ({"epoch": "1"}, "epoch must be an integer"),
        ({"epoch": True}, "epoch must be an integer"),
        ({"out_key": None}, "out_key must be a string"),
        ({"work": {"model": {"name": "mlp"}}}, "a work spec lacks dataset, batch_size, seed"),
        ({"work": {**WORK.to_wire(), "model": "mlp"}}, "a work spec's model must be a table with a name"),
    ],
)
def test_a_malformed_task_is_refused_naming_what_is_wrong(change, message):
    with pytest.raises(ProtocolError, match=message):
        decode_task({**encode_task(grad_task()), **change})


def test_a_task_missing_fields_names_them():
    wire = encode_task(grad_task())
    del wire["index"], wire["params_key"]
    with pytest.raises(ProtocolError, match="a gradient task lacks params_key, index"):
        decode_task(wire)


def test_a_result_of_the_wrong_form_is_refused():
    with pytest.raises(ProtocolError, match="samples must be an integer"):
        decode_result(grad_task(), {"loss": 0.1, "samples": 3.5})
    with pytest.raises(ProtocolError, match="an evaluation lacks accuracy"):
        decode_result(EvaluateTask(id="e", work=WORK, params_key="p", split="val"), {"loss": 0.1, "samples": 3})
