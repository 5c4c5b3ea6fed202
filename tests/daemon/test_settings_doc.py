"""docs/settings.md is current: made from the config dataclasses, every
setting in it with its default and meaning."""

import dataclasses
from pathlib import Path

from spirtd.daemon.config import STORE_KEYS, TOP_KEYS, build
from spirtd.daemon.settings_doc import DOC_PATH, field_docs, render
from spirtd.daemon.config import DaemonConfig
from spirtd.membership.config import MembershipConfig
from spirtd.store.server import StoreServerConfig
from spirtd.jobs.config import JobsConfig
from spirtd.metrics.config import MetricsConfig


def test_settings_page_is_current():
    assert DOC_PATH.read_text() == render(), "docs/settings.md is stale: run `make docs`"


def test_every_setting_has_a_meaning():
    for cls, names in ((DaemonConfig, TOP_KEYS), (StoreServerConfig, STORE_KEYS.values()),
                       (MembershipConfig, [f.name for f in dataclasses.fields(MembershipConfig)]),
                       (JobsConfig, [f.name for f in dataclasses.fields(JobsConfig)]),
                       (MetricsConfig, [f.name for f in dataclasses.fields(MetricsConfig)])):  # fmt: skip
        docs = field_docs(cls)
        assert all(docs.get(name) for name in names), (cls.__name__, [n for n in names if not docs.get(n)])


def test_every_store_key_on_the_page_is_accepted():
    values = {"url": "redis://127.0.0.1:6379", "password_file": "/data/store/store.password", "persistence": "aof", "fsync": "always", "rdb_save": "60 1", "max_memory_mb": 64, "threads": 2,
              "max_tensor_bytes": 1 << 20, "start_timeout_s": 5.0, "stop_timeout_s": 30.0, "restart_backoff_s": 0.5,
              "restart_backoff_max_s": 2.0, "redis_server": "/usr/bin/redis-server", "module_path": "/x/spirt.so"}
    assert set(values) == set(STORE_KEYS)
    store = build({"store": values}, {}, {"id": "node1", "insecure": True, "listen": "127.0.0.1:0"}).store
    assert store.url == "redis://127.0.0.1:6379" and store.fsync == "always" and store.module_threads == 2 and str(store.redis_server) == "/usr/bin/redis-server"
    assert store.url_password_file == Path("/data/store/store.password")
