"""MembershipConfig: presets are valid, bad settings are refused with a reason."""

from __future__ import annotations

import dataclasses

import pytest

from spirtd.errors import ConfigError
from spirtd.membership import MembershipConfig


@pytest.mark.parametrize("preset", [MembershipConfig.default, MembershipConfig.local, MembershipConfig.wan])
def test_config_presets_are_valid(preset):
    config = preset()
    assert 2 * config.probe_timeout_s < config.probe_interval_s
    assert dataclasses.replace(config) == config


def test_config_default_is_the_field_defaults():
    assert MembershipConfig.default() == MembershipConfig()


# changes, words the error must contain
BAD = [
    ({"probe_timeout_s": 0.2}, "half of probe_interval_s"),
    ({"probe_timeout_s": 0.125}, "half of probe_interval_s"),
    ({"probe_interval_s": 0.0}, "positive"),
    ({"gossip_interval_s": -1.0}, "positive"),
    ({"dead_retain_s": float("inf")}, "finite"),
    ({"rpc_timeout_s": "2"}, "number of seconds"),
    ({"probe_interval_s": True}, "number of seconds"),
    ({"indirect_checks": -1}, "at least 0"),
    ({"gossip_fanout": 0}, "at least 1"),
    ({"suspicion_mult": 2.5}, "integer"),
    ({"awareness_max": 0}, "at least 1"),
    ({"rpc_timeout_s": 10.0}, "push_pull_interval_s"),
    ({"dead_retain_s": 5.0}, "reconnection"),
]


@pytest.mark.parametrize("changes, words", BAD)
def test_config_invalid_refused(changes, words):
    with pytest.raises(ConfigError, match=words):
        MembershipConfig(**changes)


def test_config_replace_checks_again():
    with pytest.raises(ConfigError):
        dataclasses.replace(MembershipConfig.default(), probe_interval_s=0.1)


def test_config_no_indirect_checks_allowed():
    assert MembershipConfig(indirect_checks=0).indirect_checks == 0
