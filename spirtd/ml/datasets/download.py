"""Fetching the official files of the file datasets, for `spirtd data
download`. Only that command touches the network; loading never does.

Each file is checked against the MD5 its publishers give (MD5 is what
they publish; it guards against broken and wrong downloads, not against
an attacker) and is written atomically: it is fetched into a hidden
temporary file in the target folder and renamed into place only once it
matched, so the folder never holds a partial file under the real name. A
file already there with the right checksum is not fetched again. CIFAR-10
comes as one archive, whose cifar-10-batches-py/ folder is unpacked next
to it the same way (into a temporary folder, then renamed).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import BinaryIO

from spirtd import __version__
from spirtd.errors import DatasetError, DownloadError
from spirtd.ml.datasets import cifar

__all__ = ["PLANS", "RemoteFile", "download", "download_plan", "fetch_file"]

# Socket timeout of each connect and read.
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# Zalando's own mirror; it serves plain http only, hence the checksums.
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, its name in the target folder, its
    published MD5 and size in bytes; unpack: a tar.gz whose folder of that
    name is unpacked next to it."""

    url: str
    filename: str
    md5: str
    size: int
    unpack: str | None = None


def _files(base: str, entries: tuple[tuple[str, str, int], ...]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(base + name, name, md5, size) for name, md5, size in entries)


PLANS: Mapping[str, tuple[RemoteFile, ...]] = MappingProxyType(
    {
        "mnist": _files(MNIST_URL, (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542),
        )),
        "fashion_mnist": _files(FASHION_MNIST_URL, (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148),
        )),
        "cifar10": (
            RemoteFile(CIFAR10_URL + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                       "c58f30108f718f92721af3b95e74349a", 170498071, unpack=cifar.SUBDIR),
        ),
    }
)  # fmt: skip

# url -> a readable binary stream (closed by the caller).
Opener = Callable[[str], BinaryIO]


def download_plan(name: str) -> tuple[RemoteFile, ...]:
    """The files `spirtd data download NAME` fetches; no network."""
    plan = PLANS.get(name) if isinstance(name, str) else None
    if plan is None:
        raise DatasetError(f"no download for dataset {name!r}; downloadable: {', '.join(PLANS)}")
    return plan


def _open_url(url: str) -> BinaryIO:
    request = urllib.request.Request(url, headers={"User-Agent": f"spirtd/{__version__}"})
    return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)  # type: ignore[no-any-return]


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(remote: RemoteFile, folder: Path, opener: Opener | None = None) -> bool:
    """Makes folder/remote.filename hold the published file, fetched with
    `opener` (default: urllib, with DOWNLOAD_TIMEOUT_S). Returns False when
    it already did (nothing fetched). Raises DownloadError when the fetch
    fails or the bytes do not match; nothing is left behind then."""
    opener = opener or _open_url
    target = folder / remote.filename
    if target.is_file() and _md5_of(target) == remote.md5:
        return False
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.md5(usedforsecurity=False), 0
        with os.fdopen(fd, "wb") as out:
            try:
                with opener(remote.url) as stream:
                    while chunk := stream.read(CHUNK_BYTES):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
                reason = getattr(exc, "reason", None) or exc
                raise DownloadError(f"could not fetch {remote.url}: {reason}") from None
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != remote.md5:
            raise DownloadError(
                f"{remote.url} is not the published file: got {size} bytes with MD5 "
                f"{digest.hexdigest()}, expected {remote.size} bytes with MD5 {remote.md5}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _safe_members(archive: tarfile.TarFile, folder: str, source: Path) -> list[tarfile.TarInfo]:
    """The archive's members under folder/, refusing links, devices and
    paths that would land outside it."""
    members = []
    for member in archive.getmembers():
        parts = PurePosixPath(member.name).parts
        if not parts or parts[0] != folder:
            continue
        if ".." in parts or member.name.startswith("/") or not (member.isfile() or member.isdir()):
            raise DownloadError(f"{source}: refusing to unpack {member.name!r}")
        members.append(member)
    if not members:
        raise DownloadError(f"{source}: the archive has no {folder}/ folder")
    return members


def unpack(archive_path: Path, folder: str) -> bool:
    """Unpacks archive/folder/ next to the archive; False when it is already there."""
    target = archive_path.parent / folder
    if target.is_dir():
        return False
    staging = Path(tempfile.mkdtemp(dir=archive_path.parent, prefix=f".{folder}."))
    try:
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                archive.extractall(staging, members=_safe_members(archive, folder, archive_path),
                                   filter="data")  # fmt: skip
        except (tarfile.TarError, EOFError) as exc:
            raise DownloadError(f"{archive_path}: cannot unpack: {exc}") from None
        os.replace(staging / folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def download(name: str, folder: Path, opener: Opener | None = None,
             report: Callable[[str], None] = lambda line: None) -> list[Path]:  # fmt: skip
    """Fetches dataset `name` into `folder` (made if missing) and returns
    the files and folders it consists of; `report` gets one line per file."""
    plan = download_plan(name)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for remote in plan:
        fetched = fetch_file(remote, folder, opener)
        target = folder / remote.filename
        size = target.stat().st_size
        report(f"{'fetched' if fetched else 'already there:'} {target} ({size} bytes, MD5 ok)")
        made.append(target)
        if remote.unpack is not None:
            unpacked = unpack(target, remote.unpack)
            report(f"{'unpacked' if unpacked else 'already there:'} {folder / remote.unpack}/")
            made.append(folder / remote.unpack)
    return made
