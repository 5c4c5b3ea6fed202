"""What the README shows works: its job spec parses (and its Krum remark is
true), its spirtctl commands parse, its Python snippet runs, its bounds are
the code's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from spirtd.errors import ConfigError
from spirtd.jobs import spec as specs
from spirtd.ml.models import ModelSpec, build_model
from spirtctl.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def block(language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", README, re.S)
    assert len(found) >= 1
    return found[0]


def test_the_readme_job_spec_parses():
    spec = specs.parse(block("toml"))
    assert spec.model.name == "mlp" and spec.minibatches_per_round == 4


def test_the_readme_krum_remark_is_true():
    text = block("toml").replace('rule = "mean"', 'rule = "krum"\nf = 1')
    with pytest.raises(ConfigError, match="2f\\+3"):
        specs.parse(text)
    assert specs.parse(text.replace("minibatches_per_round = 4", "minibatches_per_round = 5")).aggregation.options() == {"f": 1}


def test_every_spirtctl_command_in_the_readme_parses():
    lines = [line.split("#")[0].strip() for line in README.splitlines() if line.strip().startswith(".venv/bin/spirtctl")]
    assert len(lines) >= 10
    for line in lines:
        argv = shlex.split(line.replace("JOB", "j0123456789"))[1:]
        build_parser().parse_args(argv)  # SystemExit on a command that does not exist


def test_the_readme_python_snippet_runs(tmp_path, monkeypatch):
    model = build_model(ModelSpec("mlp"), (64,), 10, seed=3)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    exec(compile(block("python"), "README snippet", "exec"), {})


def test_the_bounds_the_readme_names_are_the_codes():
    assert (specs.MAX_ROUNDS, specs.MAX_EPOCHS, specs.MAX_BATCH_SIZE, specs.MAX_MINIBATCHES_PER_ROUND,
            specs.MAX_NAME_CHARS) == (10**9, 10**6, 65536, 1024, 200)  # fmt: skip
    assert "rounds at most 10^9, epochs 10^6, batch_size\n65536, minibatches_per_round 1024, a name 200 characters" in README


def test_the_readme_rules_table_is_the_registry():
    """Every rule, once, with the fewest inputs it needs as the code says."""
    from spirtd.aggregation import RULES

    rows = re.findall(r"^\| `(\w+)`[^|]*\| ([^|]*) \| ([^|]*) \| ([^|]*) \|$", README, re.M)
    table = {name: (options, needs) for name, options, _, needs in rows if name in RULES or "inputs" in needs}
    assert set(table) == set(RULES)
    # "n >= 2f + 3" and the like, read as the bound on n for these option values
    values = {"f": 2, "b": 2, "m": 1}
    for name, (_, needs) in table.items():
        bound = needs.split(",")[0].replace("n >= ", "").replace("n > ", "1 + ")
        expected = eval(re.sub(r"(\d)([a-z])", r"\1*\2", bound), {}, dict(values))  # noqa: S307 - the README's own text
        assert RULES[name].min_inputs(values) == expected, f"{name}: README says {needs!r}"
