"""The daemon's settings: defaults < TOML file < SPIRTD_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from spirtd.daemon import node_state
from spirtd.daemon.config import build, from_environment, load, parse_address
from spirtd.errors import ConfigError

CERTS = {"certs_dir": "/etc/spirtd/certs"}


def test_config_flags_beat_environment_beat_file(tmp_path):
    path = tmp_path / "spirtd.toml"
    path.write_text('id = "from-file"\nlisten = "127.0.0.1:7001"\nseeds = ["10.0.0.1:7100"]\n'
                    'certs_dir = "/c"\n[membership]\nprobe_interval_s = 0.5\n[store]\nthreads = 3\n')  # fmt: skip
    env = {"SPIRTD_ID": "from-env", "SPIRTD_LISTEN": "127.0.0.1:7002", "SPIRTD_SEEDS": "10.0.0.2:7100,10.0.0.3:7100"}
    cfg = load(path, env, {"id": "from-flag", "listen": None})
    assert cfg.id == "from-flag"
    assert cfg.listen == "127.0.0.1:7002"
    assert cfg.seeds == ("10.0.0.2:7100", "10.0.0.3:7100")
    assert cfg.membership.probe_interval_s == 0.5
    assert cfg.store.module_threads == 3
    assert cfg.certs_dir == Path("/c")


def test_config_file_named_by_environment(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('id = "n1"\ninsecure = true\nlisten = "127.0.0.1:7100"\n')
    cfg = load(None, {"SPIRTD_CONFIG": str(path)}, {})
    assert cfg.id == "n1" and cfg.insecure


def test_config_defaults(tmp_path):
    cfg = build({}, {}, {"id": "n1", "listen": "127.0.0.1:0", **CERTS})
    assert cfg.advertise is None and cfg.seeds == ()
    assert cfg.data_dir == Path("spirtd-data/n1") and cfg.store.data_dir == Path("spirtd-data/n1/store").absolute()


@pytest.mark.parametrize(
    "values, words",
    [
        ({"listen": "127.0.0.1:0"}, "--id is needed"),
        ({"id": "n1", "listen": "0.0.0.0:7100", **CERTS}, "is a wildcard: give --advertise"),
        ({"id": "n1", "listen": "127.0.0.1:7100"}, "--certs-dir is needed"),
        ({"id": "n1", "listen": "nonsense", **CERTS}, "is not HOST:PORT"),
        ({"id": "n1", "listen": "127.0.0.1:99999", **CERTS}, "port must be between"),
        ({"id": "n1", "listen": "127.0.0.1:1", "seeds": "10.0.0.1", **CERTS}, "seed '10.0.0.1' is not HOST:PORT"),
        ({"id": "n1", "listen": "127.0.0.1:1", "advertise": "0.0.0.0:1", **CERTS}, "is a wildcard"),
        ({"id": "bad name", **CERTS}, "not a valid name"),
        ({"id": "n1", "colour": "blue", **CERTS}, "unknown setting(s): colour"),
        ({"id": "n1", "insecure": "perhaps"}, "insecure must be true or false"),
    ],
)
def test_config_refuses_bad_settings(values, words):
    with pytest.raises(ConfigError) as info:
        build({}, {}, values)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ('id = "n1"\n[membership]\nprobe_speed = 1\n', "unknown key 'probe_speed' in [membership]"),
        ('id = "n1"\n[store]\npersistance = "aof"\n', "unknown key 'persistance' in [store]"),
        ('id = "n1"\n[membership]\nprobe_interval_s = 0.1\nprobe_timeout_s = 0.2\n', "probe_timeout_s"),
        ("id = ", "is not valid TOML"),
    ],
)
def test_config_file_errors_say_what_is_wrong(tmp_path, text, words):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path, {}, {"insecure": True})
    assert words in str(info.value)


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", {}, {})


def test_environment_variables_read():
    values = from_environment({"SPIRTD_INSECURE": "1", "SPIRTD_SEEDS": "a:1, b:2", "OTHER": "x"})
    assert values == {"insecure": "1", "seeds": ["a:1", " b:2"]}


@pytest.mark.parametrize("text, expected", [("10.0.0.1:7100", ("10.0.0.1", 7100)), ("[::1]:80", ("::1", 80))])
def test_parse_address(text, expected):
    assert parse_address(text, what="x") == expected


# Every form a bad setting comes in (an environment variable, a TOML value,
# a flag) and every type: a ConfigError naming the setting, its value and
# what is expected.
BASE = {"id": "n1", "listen": "127.0.0.1:0", "insecure": True}


@pytest.mark.parametrize(
    "env, words",
    [
        ({"SPIRTD_MAX_MESSAGE_BYTES": "4MB"}, "max_message_bytes must be an integer, not '4MB'"),
        ({"SPIRTD_HANDSHAKE_TIMEOUT_S": "fast"}, "handshake_timeout_s must be a number, not 'fast'"),
        ({"SPIRTD_IDLE_TIMEOUT_S": "nan"}, "idle_timeout_s must be a positive number of seconds, not nan"),
        ({"SPIRTD_INSECURE": "maybe"}, "insecure must be true or false, not 'maybe'"),
        ({"SPIRTD_LOG_FORMAT": "xml"}, "log_format must be one of text, json, not 'xml'"),
        ({"SPIRTD_SEEDS": "10.0.0.1"}, "seed '10.0.0.1' is not HOST:PORT"),
    ],
)
def test_config_bad_environment_variable_named(env, words):
    flags = {k: v for k, v in BASE.items() if f"SPIRTD_{k.upper()}" not in env}
    with pytest.raises(ConfigError) as info:
        build({}, from_environment(env), flags)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "text, words",
    [
        ("max_connections = 1.5", "max_connections must be an integer, not 1.5"),
        ("refusal_log_burst = true", "refusal_log_burst must be an integer, not True"),
        ("crl_poll_s = -1", "crl_poll_s must be a positive number of seconds, not -1.0"),
        ("advertise = 7100", "advertise must be HOST:PORT text, not 7100"),
        ("seeds = 5", "seeds must be a list of HOST:PORT texts (or one comma-separated text), not 5"),
        ('seeds = ["10.0.0.1:1", 2]', "seeds must be a list of HOST:PORT texts"),
        ("data_dir = 5", "data_dir must be a path (text), not 5"),
        ("certs_dir = true", "certs_dir must be a path (text), not True"),
        ('log_level = "loud"', "log_level must be one of debug, info, warning, error, not 'loud'"),
        ('insecure = "perhaps"', "insecure must be true or false, not 'perhaps'"),
        ('[store]\npersistence = "bogus"', "persistence must be aof, rdb or none, not 'bogus'"),
        ('[store]\nthreads = "two"', "threads must be between 1 and 256, not 'two'"),
        ("[store]\nredis_server = 5", "redis_server must be a file name, not 5"),
        ('[membership]\nprobe_interval_s = "x"', "probe_interval_s must be a number of seconds, not 'x'"),
        ("[jobs]\nkeep_jobs = 0.5", "keep_jobs must be an integer from 1"),
    ],
)
def test_config_bad_file_value_named(tmp_path, text, words):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    flags = {k: v for k, v in BASE.items() if not text.startswith(k)}
    with pytest.raises(ConfigError) as info:
        load(path, {}, flags)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "flags, words",
    [
        ({"listen": "nonsense"}, "--listen 'nonsense' is not HOST:PORT"),
        ({"seeds": "a:1,b"}, "seed 'b' is not HOST:PORT"),
        ({"log_level": "loud"}, "log_level must be one of debug, info, warning, error, not 'loud'"),
        ({"insecure": "x"}, "insecure must be true or false, not 'x'"),
        ({"data_dir": 5}, "data_dir must be a path (text), not 5"),
    ],
)
def test_config_bad_flag_named(flags, words):
    with pytest.raises(ConfigError) as info:
        build({}, {}, {**BASE, **flags})
    assert words in str(info.value)


def test_config_data_dir_that_cannot_be_made(tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    with pytest.raises(ConfigError, match=f"data_dir '{in_the_way}' must be a folder"):
        node_state.make_data_dir(in_the_way)
    with pytest.raises(ConfigError, match="data_dir .* cannot be made: Not a directory"):
        node_state.make_data_dir(in_the_way / "sub")


def test_config_metrics_off_unless_a_port_is_set():
    base = {"id": "n1", "listen": "127.0.0.1:0", **CERTS}
    assert not build({}, {}, base).metrics.enabled
    metrics = build({"metrics": {"port": 9464}}, {}, base).metrics
    assert metrics.enabled and (metrics.host, metrics.port) == ("127.0.0.1", 9464)  # loopback by default
    assert build({"metrics": {"port": 0, "host": "0.0.0.0"}}, {}, base).metrics.host == "0.0.0.0"


@pytest.mark.parametrize(
    "metrics, words",
    [
        ({"port": 70000}, "[metrics] port must be an integer from 0 to 65535, not 70000"),
        ({"port": "9464"}, "[metrics] port must be an integer"),
        ({"port": True}, "[metrics] port must be an integer"),
        ({"port": 9464, "host": ""}, "[metrics] host must be an address or host name"),
        ({"path": "/m"}, "unknown key 'path' in [metrics]; known keys: host, port"),
    ],
)
def test_config_refuses_bad_metrics_settings(metrics, words):
    with pytest.raises(ConfigError) as info:
        build({"metrics": metrics}, {}, {"id": "n1", "listen": "127.0.0.1:0", **CERTS})
    assert words in str(info.value)
