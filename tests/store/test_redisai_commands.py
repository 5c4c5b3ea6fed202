"""The RedisAI backend's commands, built as RedisAI 1.2 documents them.

Their execution needs a real RedisAI (tests/store/conftest.py); the
TorchScript they run is checked in test_redisai_scripts.py.
"""

from spirtd.aggregation import RULES, validate_call
from spirtd.store import redisai_scripts
from spirtd.store.redisai import ENTRY_POINT, SCRIPT_KEY, rule_args, scriptexecute_args


def test_scriptexecute_puts_keys_and_inputs_before_outputs():
    cmd = scriptexecute_args("spirt_krum", ["a", "b", "c"], ["out", "sel"], ["1", "1"])
    assert cmd == [
        "AI.SCRIPTEXECUTE", SCRIPT_KEY, "spirt_krum",
        "KEYS", 5, "a", "b", "c", "out", "sel",
        "INPUTS", 3, "a", "b", "c",
        "ARGS", 2, "1", "1",
        "OUTPUTS", 2, "out", "sel",
    ]  # fmt: skip


def test_scriptexecute_keys_align_with_inputs_and_empty_args_are_omitted():
    cmd = scriptexecute_args("spirt_sgd", ["p", "g", "p"], ["p"])
    assert cmd[3:9] == ["KEYS", 4, "p", "g", "p", "p"] and "ARGS" not in cmd


def test_every_rule_has_an_entry_point_in_the_script():
    assert set(ENTRY_POINT) == set(RULES)
    for fn in set(ENTRY_POINT.values()) | {"spirt_sgd", "spirt_adam"}:
        assert fn in redisai_scripts.ENTRY_POINTS
        assert f"def {fn}(" in redisai_scripts.SCRIPT


def test_rule_args_carry_the_validated_options_as_strings():
    assert rule_args(validate_call("mean", 2, {"weights": [1, 3]})) == ["1.0", "3.0"]
    assert rule_args(validate_call("trimmed_mean", 5, {"b": 2})) == ["2"]
    assert rule_args(validate_call("krum", 5, {"f": 1})) == ["1"]
    assert rule_args(validate_call("multikrum", 7, {"f": 2})) == ["2", "5"]
    assert rule_args(validate_call("median", 3, {})) == []
