"""spirtd.ml.datasets: every dataset loads (the file formats from small
generated files), splits and minibatches are deterministic, and every
malformed file is refused with a message that names it."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from spirtd.errors import ConfigError, DatasetError, DownloadError
from spirtd.ml.datasets import (
    DATASETS,
    DatasetSpec,
    batches_per_epoch,
    load_dataset,
    minibatch_indices,
)
from spirtd.ml.datasets.batches import permutation
from spirtd.ml.datasets.download import PLANS, RemoteFile, download_plan, fetch_file
from tests.ml.dataset_files import cifar_batch, idx_bytes, write_cifar, write_file, write_mnist

pytestmark = pytest.mark.timeout(60)


def check_arrays(data, shape: tuple[int, ...], classes: int) -> None:
    for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y), (data.test_x, data.test_y)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), *shape)
        assert not x.flags.writeable and not y.flags.writeable
        if len(y):
            assert 0 <= y.min() and y.max() < classes
    assert data.input_shape == shape and data.num_classes == classes


# -- the datasets -------------------------------------------------------------


def test_digits_loads_1797_samples_in_unit_range() -> None:
    data = load_dataset(DatasetSpec("digits"), seed=0)
    check_arrays(data, (1, 8, 8), 10)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 1797
    assert len(data.test_y) == round(1797 * 0.2)
    assert len(data.val_y) == round((1797 - len(data.test_y)) * 0.1)
    assert data.train_x.min() == 0.0 and data.train_x.max() == 1.0
    assert set(np.unique(data.train_y)) == set(range(10))


def test_digits_standard_normalization_uses_train_statistics() -> None:
    data = load_dataset(DatasetSpec("digits", options={"normalize": "standard"}), seed=0)
    assert abs(float(data.train_x.mean())) < 1e-4
    assert abs(float(data.train_x.std()) - 1.0) < 1e-3


@pytest.mark.parametrize(("options", "shape"), [({}, (20,)), ({"n_features": 5}, (5,)),
                                                ({"shape": [1, 8, 8]}, (1, 8, 8))])  # fmt: skip
def test_synthetic_vector_or_image_shaped(options: dict, shape: tuple[int, ...]) -> None:
    data = load_dataset(DatasetSpec("synthetic", options={"n_samples": 200, **options}), seed=0)
    check_arrays(data, shape, 4)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 200


def test_synthetic_is_seeded_and_separable_ish() -> None:
    spec = DatasetSpec("synthetic", options={"n_samples": 400, "n_classes": 3})
    a, b = load_dataset(spec, seed=0), load_dataset(spec, seed=0)
    assert np.array_equal(a.train_x, b.train_x)
    other = load_dataset(DatasetSpec("synthetic", options={"n_samples": 400, "n_classes": 3, "data_seed": 1}), 0)
    assert not np.array_equal(a.test_x, other.test_x)
    # Nearest class mean, fitted on train, is right on most test samples.
    means = np.stack([a.train_x[a.train_y == k].mean(axis=0) for k in range(3)])
    predicted = np.argmin(((a.test_x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == a.test_y).mean() > 0.8


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_mnist_formats_load(tmp_path: Path, name: str, gz: bool) -> None:
    written = write_mnist(tmp_path, n_train=30, n_test=10, gz=gz)
    data = load_dataset(DatasetSpec(name, tmp_path, {"val_fraction": 0.0}), seed=3)
    check_arrays(data, (1, 28, 28), 10)
    images, labels = written["train"]
    assert np.array_equal(data.train_x, images.reshape(-1, 1, 28, 28).astype(np.float32) / 255)
    assert np.array_equal(data.train_y, labels)
    assert np.array_equal(data.test_x * 255, written["test"][0].reshape(-1, 1, 28, 28))
    assert data.train_x.min() >= 0.0 and data.train_x.max() <= 1.0


def test_mnist_val_split_and_no_test(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=30, n_test=10, gz=True)
    data = load_dataset(DatasetSpec("mnist", tmp_path, {"val_fraction": 0.2, "load_test": False}), 0)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (24, 6, 0)
    assert data.test_x.shape == (0, 1, 28, 28)


@pytest.mark.parametrize(("subdir", "protocol"), [(True, 2), (False, pickle.HIGHEST_PROTOCOL)])
def test_cifar10_loads(tmp_path: Path, subdir: bool, protocol: int) -> None:
    written = write_cifar(tmp_path, per_batch=4, n_test=5, subdir=subdir, protocol=protocol)
    data = load_dataset(DatasetSpec("cifar10", tmp_path, {"val_fraction": 0.0}), seed=0)
    check_arrays(data, (3, 32, 32), 10)
    assert (len(data.train_y), len(data.test_y)) == (20, 5)
    x, y = written["train"]
    assert np.array_equal(data.train_x * 255, x) and np.array_equal(data.train_y, y)
    # Channel-major rows: the first 1024 values are the red plane.
    assert np.array_equal(data.train_x[0, 0].ravel() * 255, x.reshape(20, 3072)[0, :1024])
    assert np.array_equal(data.test_y, written["test"][1])


def test_cifar10_path_may_be_the_batches_folder(tmp_path: Path) -> None:
    write_cifar(tmp_path, subdir=True)
    data = load_dataset(DatasetSpec("cifar10", tmp_path / "cifar-10-batches-py"), seed=0)
    assert len(data.train_y) + len(data.val_y) == 20


# -- splits, fingerprints, minibatches ----------------------------------------


def test_load_dataset_split_deterministic_from_seed() -> None:
    spec = DatasetSpec("synthetic", options={"n_samples": 100, "val_fraction": 0.3})
    a, b, c = (load_dataset(spec, s) for s in (5, 5, 6))
    assert np.array_equal(a.val_x, b.val_x) and np.array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.val_x, c.val_x)
    # The test split does not depend on the seed; train + val is the rest.
    assert np.array_equal(a.test_x, c.test_x)
    rows = lambda d: {r.tobytes() for r in np.concatenate([d.train_x, d.val_x])}  # noqa: E731
    assert rows(a) == rows(c) and len(rows(a)) == 80


def test_fingerprint_covers_spec_seed_and_data_not_path(tmp_path: Path) -> None:
    write_mnist(tmp_path / "a", seed=0)
    write_mnist(tmp_path / "b", seed=0, gz=False)
    write_mnist(tmp_path / "c", seed=1)
    key = lambda folder, seed=0, **o: load_dataset(DatasetSpec("mnist", tmp_path / folder, o), seed).fingerprint  # noqa: E731
    assert key("a") == key("b") == key("a", val_fraction=0.1)
    assert len({key("a"), key("c"), key("a", seed=1), key("a", val_fraction=0.2)}) == 4


def test_minibatch_indices_same_args_same_indices() -> None:
    assert np.array_equal(minibatch_indices(100, 32, 1, 2, 3), minibatch_indices(100, 32, 1, 2, 3))
    assert not np.array_equal(minibatch_indices(100, 32, 1, 2, 0), minibatch_indices(100, 32, 1, 3, 0))
    assert not np.array_equal(minibatch_indices(100, 32, 1, 2, 0), minibatch_indices(100, 32, 2, 2, 0))


def test_minibatch_indices_pinned() -> None:
    """The permutation is SplitMix64 arithmetic: these values never change
    (peers of different versions must agree)."""
    assert permutation(8, 0).tolist() == [0, 1, 6, 3, 5, 4, 2, 7]
    # seed 7, epoch 3: the permutation of key (7, EPOCH_STREAM = 1, 3)
    assert minibatch_indices(12, 5, 7, 3, 1).tolist() == [6, 2, 5, 9, 3]


@pytest.mark.parametrize(("n", "batch"), [(100, 32), (10, 10), (7, 1), (5, 8)])
def test_minibatch_indices_cover_epoch_once(n: int, batch: int) -> None:
    count = batches_per_epoch(n, batch)
    parts = [minibatch_indices(n, batch, 9, 4, i) for i in range(count)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert all(len(p) == batch for p in parts[:-1]) and 1 <= len(parts[-1]) <= batch
    assert all(p.dtype == np.int64 for p in parts)


@pytest.mark.parametrize(("n", "batch", "expected"), [(100, 32, 4), (96, 32, 3), (1, 32, 1), (33, 1, 33)])
def test_batches_per_epoch_keeps_last_partial_batch(n: int, batch: int, expected: int) -> None:
    assert batches_per_epoch(n, batch) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [((10, 4, 0, 0, 3), "index 3 is out of range.*has 3"), ((10, 0, 0, 0, 0), "batch_size"),
     ((0, 4, 0, 0, 0), "n_train"), ((10, 4, -1, 0, 0), "seed"), ((10, 4, 0, -1, 0), "epoch")],
)  # fmt: skip
def test_minibatch_indices_bad_arguments(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        minibatch_indices(*args)


def test_dataset_minibatch_rows() -> None:
    data = load_dataset(DatasetSpec("synthetic", options={"n_samples": 50}), seed=4)
    x, y = data.minibatch(8, epoch=1, index=2)
    picked = minibatch_indices(data.n_train, 8, 4, 1, 2)
    assert np.array_equal(x, data.train_x[picked]) and np.array_equal(y, data.train_y[picked])
    assert data.batches_per_epoch(8) == batches_per_epoch(data.n_train, 8)


# -- specs and their errors ---------------------------------------------------


def test_dataset_spec_round_trips(tmp_path: Path) -> None:
    spec = DatasetSpec("synthetic", options={"shape": [1, 4, 4], "n_samples": 50})
    assert spec.options == {"n_samples": 50, "shape": (1, 4, 4)}
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    assert hash(spec) == hash(DatasetSpec("synthetic", options={"n_samples": 50, "shape": (1, 4, 4)}))
    files = DatasetSpec("mnist", str(tmp_path))
    assert files.path == tmp_path and DatasetSpec.from_dict(files.to_dict()) == files


@pytest.mark.parametrize(
    ("name", "path", "options", "message"),
    [
        ("imagenet", None, {}, "unknown dataset 'imagenet'; known datasets: digits, synthetic, mnist"),
        ("digits", None, {"n_samples": 3}, "dataset 'digits' has no option 'n_samples'; its options: val_fraction"),
        ("digits", None, {"val_fraction": 1.0}, "'val_fraction' must be in \\[0, 1\\)"),
        ("digits", None, {"normalize": "minmax"}, "'normalize' must be one of unit, standard"),
        ("digits", "/tmp", {}, "not read from files; it takes no path"),
        ("mnist", None, {}, "needs a path: the folder with train-images-idx3-ubyte\\(.gz\\)"),
        ("cifar10", None, {}, "needs a path: the folder with data_batch_1"),
        ("synthetic", None, {"n_features": 3, "shape": [3]}, "n_features or shape, not both"),
        ("synthetic", None, {"n_classes": 1}, "'n_classes' must be >= 2"),
    ],
)
def test_dataset_spec_errors(name: str, path: str | None, options: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as caught:
        DatasetSpec(name, path, options)
    assert isinstance(caught.value, ConfigError)


def test_load_dataset_fractions_leave_no_training_data() -> None:
    spec = DatasetSpec("synthetic", options={"n_samples": 4, "n_classes": 2, "test_fraction": 0.5,
                                             "val_fraction": 0.9})  # fmt: skip
    with pytest.raises(DatasetError, match="none for training"):
        load_dataset(spec, 0)


def test_load_dataset_path_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"path {tmp_path / 'nope'} does not exist"):
        load_dataset(DatasetSpec("mnist", tmp_path / "nope"), 0)


@pytest.mark.parametrize("missing", ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"])
def test_mnist_missing_file_names_expected_files(tmp_path: Path, missing: str) -> None:
    write_mnist(tmp_path)
    os.remove(tmp_path / f"{missing}.gz")
    with pytest.raises(DatasetError) as caught:
        load_dataset(DatasetSpec("mnist", tmp_path), 0)
    message = str(caught.value)
    assert f"{tmp_path} has no {missing} (nor {missing}.gz)" in message
    assert "train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images" in message


def _replace(folder: Path, name: str, data: bytes, gz: bool = False) -> Path:
    for old in (folder / name, folder / f"{name}.gz"):
        old.unlink(missing_ok=True)
    return write_file(folder / name, data, gz)


IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
GOOD_IMAGES = np.zeros((30, 28, 28), np.uint8)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (IMAGES, idx_bytes(GOOD_IMAGES, magic=0x0801), "bad IDX magic number 0x00000801; expected 0x00000803"),
        (IMAGES, idx_bytes(GOOD_IMAGES, magic=0x0903), "bad IDX magic number 0x00000903"),
        (LABELS, idx_bytes(np.zeros((30, 1), np.uint8)), "bad IDX magic number 0x00000802; expected 0x00000801"),
        (IMAGES, idx_bytes(np.zeros((30, 32, 32), np.uint8)), "images are 32x32; mnist's are 28x28"),
        (IMAGES, idx_bytes(GOOD_IMAGES)[:-5], "truncated: the header says 30x28x28 = 23520 bytes of data, the file holds 23515"),
        (IMAGES, idx_bytes(GOOD_IMAGES)[:9], "truncated: the IDX header needs 16 bytes, the file has 9"),
        (IMAGES, b"\x00\x00", "truncated: 2 bytes, too short for an IDX header"),
        (IMAGES, idx_bytes(GOOD_IMAGES) + b"xyz", "3 bytes more than its header"),
        (LABELS, idx_bytes(np.zeros(29, np.uint8)), "holds 29 labels, but train-images-idx3-ubyte.gz holds 30 images"),
        (LABELS, idx_bytes(np.full(30, 10, np.uint8)), "label 10 at position 0 is not a class of mnist"),
    ],
)  # fmt: skip
def test_mnist_malformed_file(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    write_mnist(tmp_path, n_train=30)
    path = _replace(tmp_path, name, data, gz=False)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(DatasetSpec("mnist", tmp_path), 0)
    assert str(path) in str(caught.value)


def test_mnist_truncated_gzip(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    path = tmp_path / f"{IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DatasetError, match=f"{path}: broken or truncated gzip data"):
        load_dataset(DatasetSpec("mnist", tmp_path), 0)


def _cifar_with(tmp_path: Path, name: str, content: object, raw: bytes | None = None) -> Path:
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / name
    path.write_bytes(raw if raw is not None else pickle.dumps(content))
    return path


RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({b"data": np.zeros((4, 3072), np.uint8)}, "a CIFAR-10 batch is a dict with keys b'data' and b'labels'; this one has b'data'$"),
        ([1, 2], "a CIFAR-10 batch is a dict .* this one has list"),
        ({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}, "uint8 array of shape \\(N, 3072\\); it is a uint8 array of shape \\(4, 1024\\)"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, "it is a float32 array"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, "holds 3 labels for 4 images"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 11]}, "label 11 at position 3 is not a class of cifar10"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": ["a"] * 4}, "b'labels' must be a list of integers"),
    ],
)  # fmt: skip
def test_cifar10_malformed_batch(tmp_path: Path, content: object, message: str) -> None:
    path = _cifar_with(tmp_path, "data_batch_3", content)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(DatasetSpec("cifar10", tmp_path), 0)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("raw", "message"), [(b"not a pickle", "not a CIFAR-10 batch pickle"),
                                              (pickle.dumps(cifar_batch(4, RNG))[:-30], "not a CIFAR-10 batch pickle")])  # fmt: skip
def test_cifar10_unreadable_pickle(tmp_path: Path, raw: bytes, message: str) -> None:
    path = _cifar_with(tmp_path, "test_batch", None, raw=raw)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(DatasetSpec("cifar10", tmp_path), 0)
    assert str(path) in str(caught.value)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_cifar10_pickle_cannot_run_code(tmp_path: Path) -> None:
    _cifar_with(tmp_path, "data_batch_1", {b"data": _Exploit(), b"labels": []})
    with pytest.raises(DatasetError, match="refusing to load (posix|os).system"):
        load_dataset(DatasetSpec("cifar10", tmp_path), 0)


def test_cifar10_missing_batches_named(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_4")
    with pytest.raises(DatasetError, match="cifar-10-batches-py has no data_batch_4; it should hold data_batch_1, "):
        load_dataset(DatasetSpec("cifar10", tmp_path), 0)


# -- download planning (never the network) ------------------------------------


def test_download_plan_official_files() -> None:
    assert set(PLANS) == {name for name, found in DATASETS.items() if found.needs_path}
    mnist = download_plan("mnist")
    assert [f.filename for f in mnist] == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # fmt: skip
    assert all(f.url.endswith("/" + f.filename) and len(f.md5) == 32 for p in PLANS.values() for f in p)
    (cifar,) = download_plan("cifar10")
    assert cifar.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert cifar.unpack == "cifar-10-batches-py"
    with pytest.raises(DatasetError, match="no download for dataset 'digits'"):
        download_plan("digits")


def _serving(blobs: dict[str, bytes]):
    def opener(url: str):
        return io.BytesIO(blobs[url])

    return opener


def test_fetch_file_verifies_and_writes_atomically(tmp_path: Path) -> None:
    body = b"idx bytes" * 100
    good = RemoteFile("https://example.invalid/f.gz", "f.gz", hashlib.md5(body).hexdigest(), len(body))
    assert fetch_file(good, tmp_path, _serving({good.url: body})) is True
    assert (tmp_path / "f.gz").read_bytes() == body
    assert fetch_file(good, tmp_path, _serving({})) is False  # already there: not fetched
    bad = RemoteFile("https://example.invalid/g.gz", "g.gz", "0" * 32, len(body))
    with pytest.raises(DownloadError, match="not the published file: got 900 bytes with MD5"):
        fetch_file(bad, tmp_path, _serving({bad.url: body}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]  # no partial file left


def test_fetch_file_network_error(tmp_path: Path) -> None:
    def opener(url: str):
        raise urllib.error.URLError("no route to host")

    remote = RemoteFile("https://example.invalid/f.gz", "f.gz", "0" * 32, 1)
    with pytest.raises(DownloadError, match="could not fetch https://example.invalid/f.gz: no route to host"):
        fetch_file(remote, tmp_path, opener)
    assert list(tmp_path.iterdir()) == []
