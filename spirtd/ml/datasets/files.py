"""Finding and reading a dataset's files, with errors that name them."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from spirtd.errors import DatasetFileError

__all__ = ["find_file", "read_maybe_gzipped", "require_dir"]

GZIP_MAGIC = b"\x1f\x8b"


def require_dir(dataset: str, path: Path | None, files: Sequence[str]) -> Path:
    """The spec's path as a folder, or DatasetError saying what should be there."""
    wanted = ", ".join(files)
    if path is None:
        raise DatasetFileError(
            f"dataset {dataset!r} needs a path: the folder with {wanted} "
            f"(spirtd data download {dataset} --dir DIR fetches them)"
        )
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DatasetFileError(f"dataset {dataset!r}: path {path} {what}; it should hold {wanted}")
    return path


def find_file(dataset: str, folder: Path, name: str, files: Sequence[str]) -> Path:
    """folder/name, or else folder/name.gz; DatasetError naming every file
    the dataset expects when neither is there."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetFileError(
        f"dataset {dataset!r}: {folder} has no {name} (nor {name}.gz); it should hold "
        f"{', '.join(files)} (spirtd data download {dataset} --dir {folder} fetches them)"
    )


def read_maybe_gzipped(path: Path) -> bytes:
    """The file's bytes, decompressed when they are gzip (whatever the
    file is called); DatasetError when it cannot be read or the gzip
    stream is broken or cut short."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetFileError(f"{path}: broken or truncated gzip data ({exc})") from None
