"""The daemon's settings: defaults < TOML file < SPIRTD_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

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
