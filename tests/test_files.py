"""write_atomically: whole or nothing, with the mode asked for."""

import os
import stat

import pytest

from spirtd.files import PRIVATE_MODE, PUBLIC_MODE, write_atomically


def test_writes_new_file_with_mode(tmp_path):
    path = tmp_path / "key.pem"
    write_atomically(path, b"secret")
    assert path.read_bytes() == b"secret"
    assert stat.S_IMODE(path.stat().st_mode) == PRIVATE_MODE
    write_atomically(tmp_path / "ca.pem", b"public", PUBLIC_MODE)
    assert stat.S_IMODE((tmp_path / "ca.pem").stat().st_mode) == PUBLIC_MODE


def test_replaces_old_content_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    os.chmod(path, 0o666)
    write_atomically(path, b"new" * 100_000)
    assert path.read_bytes() == b"new" * 100_000
    assert stat.S_IMODE(path.stat().st_mode) == PRIVATE_MODE
    assert os.listdir(tmp_path) == ["state.json"]


def test_failed_write_keeps_old_content(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_missing_folder_is_an_error_not_a_partial_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "absent" / "x", b"data")
    assert not (tmp_path / "absent").exists()
