"""The redis.conf spirtd writes, as a real redis-server reads it."""

import pytest

from spirtd.errors import ConfigError
from spirtd.store.server import StoreServerConfig


def test_rdb_save_rules_are_in_force(start_redis):
    server = start_redis(persistence="rdb", rdb_save="900 1 30 5")
    assert server.client().config_get("save") == {"save": "900 1 30 5"}


def test_no_save_rules_without_rdb(start_redis):
    server = start_redis(persistence="none")
    assert server.client().config_get("save") == {"save": ""}


def test_rdb_persists_on_sigterm(start_redis):
    """What a SIGKILLed spirtd relies on: its redis-server gets SIGTERM and saves."""
    server = start_redis(persistence="rdb")
    server.client().execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    server.restart()
    assert server.client().execute_command("AI.TENSORGET", "t", "VALUES") == [1.0, 2.0]


@pytest.mark.parametrize("rules", ["", "900", "900 1 30", "a b", "0 1"])
def test_bad_save_rules_are_refused(tmp_path, rules):
    with pytest.raises(ConfigError, match="rdb_save"):
        StoreServerConfig(data_dir=tmp_path, rdb_save=rules)
