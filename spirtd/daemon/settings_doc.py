"""docs/settings.md: every setting of `spirtd run`, its default and its
meaning, made from the config dataclasses (the text under each field).
`make docs` writes it; tests/daemon/test_settings_doc.py fails while it is
stale.

    python -m spirtd.daemon.settings_doc > docs/settings.md
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from pathlib import Path
from typing import Any

from spirtd.daemon.config import ENV_PREFIX, METRICS_KEYS, STORE_KEYS, TOP_KEYS, DaemonConfig
from spirtd.metrics.config import MetricsConfig
from spirtd.membership.config import MembershipConfig
from spirtd.store.server import StoreServerConfig
from spirtd.jobs.config import JobsConfig

# Settings that `spirtd run` also takes as flags (--log-level, ...).
FLAG_KEYS = ("id", "listen", "advertise", "seeds", "data_dir", "certs_dir", "insecure", "log_level", "log_format")
# Defaults that are worked out when the peer starts, in words.
COMPUTED_DEFAULTS = {"data_dir": "./spirtd-data/ID"}
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "settings.md"

HEADER = """# Settings of `spirtd run`

Made from the config dataclasses by `make docs` (`python -m
spirtd.daemon.settings_doc`); tests/daemon/test_settings_doc.py fails while
this page is stale. Settings come from the defaults, then a TOML file
(`--config FILE`, or `SPIRTD_CONFIG`), then `SPIRTD_*` environment
variables (top-level settings only), then flags; flags win. Unknown keys
are errors. Durations are seconds.
"""


def field_docs(cls: type) -> dict[str, str]:
    """The text under each field of a dataclass (its attribute docstring)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for stmt, following in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):  # fmt: skip
            docs[stmt.target.id] = " ".join(inspect.cleandoc(following.value.value).split())
    return docs


def _toml(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return "`[" + ", ".join(_toml(v).strip("`") for v in value) + "]`"
    return f"`{value}`"


def default_of(cls: type, name: str) -> str:
    if name in COMPUTED_DEFAULTS:
        return COMPUTED_DEFAULTS[name]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return _toml(f.default)
    return "(required)"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[tuple[str, ...]], head: tuple[str, ...]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    return out


def render() -> str:
    lines = [HEADER, "## Top level", ""]
    docs = field_docs(DaemonConfig)
    rows = []
    for key in TOP_KEYS:
        ways = [f"`{ENV_PREFIX}{key.upper()}`"] + ([f"`--{key.replace('_', '-')}`"] if key in FLAG_KEYS else [])
        rows.append((f"`{key}`", ", ".join(ways), default_of(DaemonConfig, key), docs[key]))
    lines += _table(rows, ("setting", "also as", "default", "meaning"))
    sections = (
        ("membership", MembershipConfig, {f.name: f.name for f in dataclasses.fields(MembershipConfig)},
         "SWIM failure detection and gossip (spirtd/membership/config.py; see docs/architecture.md)."),
        ("store", StoreServerConfig, STORE_KEYS, "The colocated Redis that holds the model and does the tensor work."),
        ("jobs", JobsConfig, {f.name: f.name for f in dataclasses.fields(JobsConfig)},
         "Training jobs: what ended jobs keep, and waiting for a store that crashed."),
        ("metrics", MetricsConfig, METRICS_KEYS,
         "The Prometheus endpoint (families in the README, \"Metrics and health\"); off unless a port is set."),
    )  # fmt: skip
    for table, cls, keys, about in sections:
        docs = field_docs(cls)
        rows = [(f"`{key}`", default_of(cls, name), docs[name]) for key, name in keys.items()]
        lines += ["", f"## [{table}]", "", about, ""] + _table(rows, ("setting", "default", "meaning"))
    return "\n".join(lines) + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
