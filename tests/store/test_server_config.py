"""The redis.conf spirtd writes, as a real redis-server reads it."""

import pytest

from spirtd import machine
from spirtd.errors import ConfigError
from spirtd.store.server import DEFAULT_MEMORY_SHARE, StoreServerConfig, prepare, render_config


def test_the_default_store_is_durable_and_bounded(short_tmp):
    """Job state must survive a crash of the store and never be evicted."""
    cfg = StoreServerConfig(data_dir=short_tmp / "d")
    assert (cfg.persistence, cfg.fsync) == ("aof", "everysec")
    text = render_config(cfg, "pw", short_tmp / "m.so")
    for line in ("appendonly yes", "appendfsync everysec", "aof-load-truncated yes", 'save ""',
                 "maxmemory-policy noeviction", f"maxmemory {int(machine.memory_bytes() * DEFAULT_MEMORY_SHARE)}"):  # fmt: skip
        assert line in text.splitlines()


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_fsync_policy_and_memory_limit_are_in_force(start_redis, fsync):
    server = start_redis(persistence="aof", fsync=fsync, max_memory_mb=64)
    client = server.client()
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": fsync}
    assert client.config_get("maxmemory") == {"maxmemory": str(64 << 20)}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


@pytest.mark.parametrize(
    "kwargs, words",
    [({"fsync": "sometimes"}, "fsync must be always, everysec or no"), ({"persistence": "disk"}, "persistence must be"),
     ({"max_memory_mb": 0}, "max_memory_mb must be an integer >= 1"), ({"stop_timeout_s": -1}, "stop_timeout_s"),
     ({"stop_timeout_s": "10"}, "stop_timeout_s")],
)
def test_bad_store_settings_are_refused(tmp_path, kwargs, words):
    with pytest.raises(ConfigError, match=words):
        StoreServerConfig(data_dir=tmp_path, **kwargs)


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


def test_missing_module_path_is_a_config_error(tmp_path):
    cfg = StoreServerConfig(data_dir=tmp_path / "store", module_path=tmp_path / "nope.so")
    with pytest.raises(ConfigError, match=f"module_path '{tmp_path}/nope.so' must be spirt's built module"):
        prepare(cfg)
