"""Job specs (strict parsing) and the pure job state: phases, schedule, patience."""

from __future__ import annotations

import math

import pytest

from spirtd.errors import ConfigError
from spirtd.optim import AdamConfig, SgdConfig
from spirtd.jobs.jobstate import (
    JobPhase,
    JobTransitionError,
    Patience,
    advance,
    evaluation_due,
    minibatches_of_round,
)
from spirtd.jobs.spec import from_dict, parse

BASE = {"model": "mlp", "dataset": "digits", "batch_size": 32, "minibatches_per_round": 4, "rounds": 10}


def test_spec_from_toml_with_tables():
    spec = parse("""
model = { name = "mlp", hidden = [64] }
dataset = { name = "mnist", path = "/data/mnist", val_fraction = 0.2 }
batch_size = 64
minibatches_per_round = 8
epochs = 2.5
seed = 3
[optimizer]
name = "adamw"
lr = 0.001
weight_decay = 0.01
[aggregation]
rule = "trimmed_mean"
b = 1
[workers]
mode = "cold"
concurrency = 4
""")
    assert spec.model.options == {"hidden": [64]} and spec.dataset.options["path"] == "/data/mnist"
    assert spec.total_rounds(batches_per_epoch=100) == math.ceil(2.5 * 100 / 8)
    cfg = spec.optimizer.config()
    assert isinstance(cfg, AdamConfig) and cfg.decoupled and cfg.weight_decay == 0.01
    assert spec.aggregation.options() == {"b": 1} and spec.workers.mode == "cold"


def test_spec_aggregation_options_sit_next_to_the_rule_and_round_trip():
    spec = parse('model = "mlp"\ndataset = "digits"\nbatch_size = 8\nminibatches_per_round = 7\nrounds = 2\n'
                 '[aggregation]\nrule = "multikrum"\nf = 2\nm = 3\n')
    assert spec.aggregation.rule == "multikrum" and spec.aggregation.options() == {"f": 2, "m": 3}
    assert spec.to_dict()["aggregation"] == {"rule": "multikrum", "f": 2, "m": 3}
    assert from_dict(spec.to_dict()) == spec and parse(spec.to_json()) == spec
    assert from_dict({**BASE, "aggregation": {"rule": "trimmed_mean", "b": 1, "f": None}}).aggregation.options() == {"b": 1}


def test_the_peers_table_sets_the_rounds_with_other_peers_and_round_trips():
    spec = from_dict({**BASE, "peers": {"quorum": 0.6, "deadline_ceiling_s": 30, "wire_dtype": "float16"}})
    settings = spec.round_settings()
    assert settings.config.agreement.quorum_fraction == 0.6 and settings.config.deadline_ceiling_s == 30
    assert settings.config.wire_dtype == "HALF" and settings.rule == spec.aggregation.rule
    assert from_dict(spec.to_dict()) == spec


def test_a_workers_start_may_take_what_the_spec_says():
    """The pool's start timeout was a fixed 30 s: a warm worker importing
    torch on a loaded machine took longer, and the job failed at that peer."""
    assert from_dict(BASE).pool_config().start_timeout_s == 120
    slow = from_dict({**BASE, "limits": {"worker_start_timeout_s": 600}})
    assert slow.pool_config().start_timeout_s == 600 and from_dict(slow.to_dict()) == slow


def test_spec_from_json_round_trips():
    spec = parse('{"model": "lenet", "dataset": "digits", "batch_size": 8, "minibatches_per_round": 2, '
                 '"rounds": 3, "optimizer": {"name": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": true}}')
    assert isinstance(spec.optimizer.config(), SgdConfig)
    assert from_dict(spec.to_dict()) == spec
    assert parse(spec.to_json()) == spec


@pytest.mark.parametrize(
    "change, words",
    [
        ({"colour": "blue"}, "unknown key 'colour' in the job spec"),
        ({"optimizer": {"name": "sgd", "lr": 0.1, "mommentum": 0.9}}, "unknown key 'mommentum' in [optimizer]"),
        ({"optimizer": {"name": "rmsprop"}}, "optimizer name must be one of sgd, adam, adamw"),
        ({"optimizer": {"name": "sgd", "lr": -1}}, "lr"),
        ({"optimizer": {"name": "sgd", "lr": 0.1, "nesterov": True}}, "nesterov"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ({"minibatches_per_round": -1}, "minibatches_per_round"),
        ({"epochs": 2}, "exactly one of 'rounds' and 'epochs'"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"patience": -2}, "patience"),
        ({"aggregation": {"rule": "krum", "f": 1}}, "krum tolerates f faulty inputs only with n >= 2f+3"),
        ({"aggregation": {"rule": "bogus"}}, "unknown aggregation rule 'bogus'"),
        ({"aggregation": {"rule": "krum", "f": 0, "g": 1}}, "rule krum has no option 'g'; its options: f"),
        ({"aggregation": {"rule": "median", "b": 1}}, "rule median has no option 'b'; its options: none"),
        ({"aggregation": {"rule": "mean", "weights": [1, 1, 1, 1]}}, "option 'weights' of rule mean is not set in a job spec"),
        ({"aggregation": {"rule": "trimmed_mean", "b": "1"}}, "option b must be an integer, got '1'"),
        ({"aggregation": {"rule": "multikrum", "f": 0, "m": 5}}, "m=5 is more than n-f=4"),
        ({"aggregation": "krum"}, "[aggregation] must be a table"),
        ({"workers": {"mode": "lukewarm"}}, "workers mode must be warm or cold"),
        ({"workers": {"concurrency": 0}}, "workers concurrency"),
        ({"limits": {"invocation_timeout_s": 0}}, "invocation_timeout_s"),
        ({"limits": {"max_attempts": 0}}, "max_attempts"),
        ({"limits": {"worker_start_timeout_s": 0}}, "limits worker_start_timeout_s"),
        ({"limits": {"worker_start_timeout_s": 1e9}}, "limits worker_start_timeout_s"),
        ({"model": {"hidden": [3]}}, "model must be a name or a table with a name"),
        ({"peers": {"quorum": 1.0}}, "peers quorum is a fraction below 1"),
        ({"peers": {"quorum": -0.1}}, "peers quorum"),
        ({"peers": {"deadline_floor_s": 0}}, "peers deadline_floor_s"),
        ({"peers": {"deadline_floor_s": 30, "deadline_ceiling_s": 10}}, "deadline_floor_s (30) is above deadline_ceiling_s"),
        ({"peers": {"propose_timeout_s": "5"}}, "peers propose_timeout_s must be a finite number"),
        ({"peers": {"wire_dtype": "int8"}}, "peers wire_dtype must be float32 or float16, not 'int8'"),
        ({"peers": {"quorom": 0.5}}, "unknown key 'quorom' in [peers]"),
    ],
)
def test_spec_refuses_bad_settings(change, words):
    with pytest.raises(ConfigError) as info:
        from_dict({**BASE, **change})
    assert words in str(info.value)


@pytest.mark.parametrize("missing", ["model", "dataset", "batch_size", "minibatches_per_round"])
def test_spec_names_what_is_missing(missing):
    with pytest.raises(ConfigError, match=f"needs '{missing}'"):
        from_dict({k: v for k, v in BASE.items() if k != missing})


def test_spec_bad_text():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse("model = ")
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse("{not json")


@pytest.mark.parametrize(
    "current, new, ok",
    [
        (JobPhase.QUEUED, JobPhase.RUNNING, True),
        (JobPhase.QUEUED, JobPhase.CANCELLED, True),
        (JobPhase.RUNNING, JobPhase.SUCCEEDED, True),
        (JobPhase.RUNNING, JobPhase.STOPPED_EARLY, True),
        (JobPhase.RUNNING, JobPhase.FAILED, True),
        (JobPhase.QUEUED, JobPhase.SUCCEEDED, False),
        (JobPhase.SUCCEEDED, JobPhase.RUNNING, False),
        (JobPhase.CANCELLED, JobPhase.RUNNING, False),
    ],
)
def test_job_phase_transitions(current, new, ok):
    if ok:
        assert advance(current, new) is new
    else:
        with pytest.raises(JobTransitionError):
            advance(current, new)


def test_rounds_walk_through_epochs():
    assert minibatches_of_round(0, 3, 5) == [(0, 0), (0, 1), (0, 2)]
    assert minibatches_of_round(1, 3, 5) == [(0, 3), (0, 4), (1, 0)]
    seen = [slot for r in range(10) for slot in minibatches_of_round(r, 3, 5)]
    assert seen == [divmod(k, 5) for k in range(30)]


def test_patience_counts_evaluations_without_improvement():
    p = Patience()
    p = p.after(1.0, 0.1)
    assert (p.best, p.bad_evaluations) == (1.0, 0)
    p = p.after(0.95, 0.1)  # better, but not by more than min_delta
    assert (p.best, p.bad_evaluations) == (1.0, 1)
    assert not p.exhausted(2) and p.after(2.0, 0.1).exhausted(2)
    assert p.after(0.5, 0.1) == Patience(0.5, 0)
    assert not Patience(1.0, 99).exhausted(0)  # 0: never stop early


@pytest.mark.parametrize("done, total, every, due", [(5, 20, 5, True), (6, 20, 5, False), (20, 20, 7, True)])
def test_evaluation_schedule(done, total, every, due):
    assert evaluation_due(done, total, every) is due
