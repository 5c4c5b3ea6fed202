"""`spirtd data ...` in process: list, check on generated files in the
standard formats, and download with the network replaced (tests never
download anything)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from spirtd.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from spirtd.ml.datasets import download as download_module
from spirtd.ml.datasets.download import RemoteFile
from tests.ml.dataset_files import idx_bytes, write_cifar, write_file, write_mnist

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_data_list_names_every_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == EXIT_OK
    assert [line.split("\t")[0] for line in out.splitlines()] == [
        "digits", "synthetic", "mnist", "fashion_mnist", "cifar10",
    ]  # fmt: skip


def test_data_check_digits(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "digits")
    assert code == EXIT_OK
    assert out.startswith("digits: train 1294, val 144, test 359; input (1, 8, 8), 10 classes; fingerprint ")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_data_check_mnist_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    write_mnist(tmp_path, n_train=40, n_test=10, gz=False)
    code, out, _ = run(capsys, "check", name, "--dir", str(tmp_path), "--option", "val_fraction=0.25")
    assert code == EXIT_OK
    assert out.startswith(f"{name}: train 30, val 10, test 10; input (1, 28, 28), 10 classes")


def test_data_check_cifar10_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_cifar(tmp_path, per_batch=2, n_test=3)
    code, out, _ = run(capsys, "check", "cifar10", "--dir", str(tmp_path), "--seed", "3")
    assert code == EXIT_OK
    assert out.startswith("cifar10: train 9, val 1, test 3; input (3, 32, 32), 10 classes")


def test_data_check_malformed_file_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=10)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    bad = write_file(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros((10, 28, 28), np.uint8)), gz=False)
    code, out, err = run(capsys, "check", "mnist", "--dir", str(tmp_path))
    assert code == EXIT_FAILED and out == ""
    assert f"spirtd data: error: {bad}: bad IDX magic number 0x00000803" in err


def test_data_check_missing_dir_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "mnist")
    assert code == EXIT_USAGE
    assert "dataset 'mnist' needs a path" in err


@pytest.mark.parametrize(("option", "message"), [("bogus=1", "has no option 'bogus'"),
                                                 ("val_fraction", "must be KEY=VALUE")])  # fmt: skip
def test_data_check_bad_option_is_usage_error(capsys: pytest.CaptureFixture[str], option: str, message: str) -> None:
    code, _, err = run(capsys, "check", "digits", "--option", option)
    assert code == EXIT_USAGE and message in err


def test_data_download_unknown_dataset_is_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, _ = run(capsys, "download", "digits", "--dir", str(tmp_path))
    assert code == EXIT_USAGE


def _fake_cifar_archive(tmp_path: Path, extra: tarfile.TarInfo | None = None) -> bytes:
    write_cifar(tmp_path / "src", per_batch=2, n_test=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        if extra is not None:
            archive.addfile(extra, io.BytesIO(b"x"))
    return buffer.getvalue()


def _serve(monkeypatch: pytest.MonkeyPatch, body: bytes, md5: str | None = None) -> RemoteFile:
    remote = RemoteFile("https://example.invalid/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                        md5 or hashlib.md5(body).hexdigest(), len(body), unpack="cifar-10-batches-py")  # fmt: skip
    monkeypatch.setattr(download_module, "PLANS", {**download_module.PLANS, "cifar10": (remote,)})
    monkeypatch.setattr(download_module, "_open_url", lambda url: io.BytesIO(body) if url == remote.url else None)
    return remote


def test_data_download_fetches_unpacks_then_check(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _serve(monkeypatch, _fake_cifar_archive(tmp_path))
    target = tmp_path / "data"
    code, out, _ = run(capsys, "download", "cifar10", "--dir", str(target))
    assert code == EXIT_OK
    assert f"fetched {target / 'cifar-10-python.tar.gz'}" in out and "unpacked" in out
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    code, out, _ = run(capsys, "download", "cifar10", "--dir", str(target))
    assert code == EXIT_OK and out.count("already there") == 2
    code, out, _ = run(capsys, "check", "cifar10", "--dir", str(target), "-o", "val_fraction=0")
    assert code == EXIT_OK and out.startswith("cifar10: train 10, val 0, test 2;")


def test_data_download_checksum_mismatch_leaves_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _serve(monkeypatch, _fake_cifar_archive(tmp_path), md5="0" * 32)
    target = tmp_path / "data"
    code, _, err = run(capsys, "download", "cifar10", "--dir", str(target))
    assert code == EXIT_FAILED
    assert "is not the published file" in err
    assert list(target.iterdir()) == []


def test_data_download_refuses_archive_escaping_its_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    evil = tarfile.TarInfo("cifar-10-batches-py/../../evil")
    evil.size = 1
    _serve(monkeypatch, _fake_cifar_archive(tmp_path, extra=evil))
    target = tmp_path / "data"
    code, _, err = run(capsys, "download", "cifar10", "--dir", str(target))
    assert code == EXIT_FAILED and "refusing to unpack" in err
    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in target.iterdir()) == ["cifar-10-python.tar.gz"]
