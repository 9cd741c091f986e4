"""Noisy MNIST: the views as Wang et al. define them, built deterministically."""
import math

import numpy as np
import pytest

from harness.data import noisy_mnist as nm
from harness.data.mnist_halves import TwoViews


def tiny_mnist(n=60, seed=0):
    rng = np.random.default_rng(seed)
    def split(k):
        return TwoViews(rng.random((n, 392), dtype=np.float32), rng.random((n, 392), dtype=np.float32),
                        np.arange(n) % 3)
    return {s: split(k) for k, s in enumerate(nm.SPLITS)}


def test_full_images_put_the_halves_back_together():
    halves = tiny_mnist()["train"]
    images = nm.full_images(halves)
    assert images.shape == (60, 28, 28)
    np.testing.assert_array_equal(images[:, :, :14].reshape(60, -1), halves.x1)
    np.testing.assert_array_equal(images[:, :, 14:].reshape(60, -1), halves.x2)


def test_rotation_by_zero_is_the_identity_and_by_a_quarter_turn_maps_a_column_to_a_row():
    img = np.zeros((2, 28, 28), np.float32)
    img[:, 6:22, 14] = 1.0  # a vertical bar
    out = nm.rotate(img, np.array([0.0, math.pi / 2]))
    np.testing.assert_allclose(out[0], img[0], atol=1e-5)  # float32 grid coordinates
    assert out[1][:, 14].sum() < 1.5 and out[1].sum(1).max() > 14  # now a horizontal bar


def test_each_partner_is_a_different_image_of_the_same_class():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    other = nm.partners(labels, np.random.default_rng(0))
    assert np.all(other != np.arange(len(labels))) and np.all(labels[other] == labels)
    with pytest.raises(ValueError, match="class 5 has one image"):
        nm.partners(np.array([5, 1, 1]), np.random.default_rng(0))


def test_views_are_a_rotated_digit_and_a_noisy_same_class_image_deterministically():
    mnist = tiny_mnist()
    a, b, c = nm.build(mnist, seed=0), nm.build(mnist, seed=0), nm.build(mnist, seed=1)
    for split in nm.SPLITS:
        va = a[split]
        assert va.x1.shape == va.x2.shape == (60, 784) and va.x1.dtype == np.float32
        np.testing.assert_array_equal(va.y, mnist[split].y)
        np.testing.assert_array_equal(va.x1, b[split].x1)
        np.testing.assert_array_equal(va.x2, b[split].x2)
        assert not np.array_equal(va.x1, c[split].x1)
        assert va.x2.min() >= 0 and va.x2.max() <= 1
        # view 2 = clip(partner + U[0, 1]): never below its clean partner image, and at least
        # one clean image of the same class stands under it
        images = nm.full_images(mnist[split]).reshape(60, -1)
        for i in range(60):
            same = np.flatnonzero((mnist[split].y == mnist[split].y[i]) & (np.arange(60) != i))
            assert any(np.all(va.x2[i] >= images[j] - 1e-6) and
                       np.all(va.x2[i] <= np.minimum(images[j] + 1, 1) + 1e-6) for j in same)
        # view 1 keeps each image's ink up to interpolation and what leaves the frame
        rotated_ink, ink = va.x1.sum(1), images.sum(1)
        assert np.all(rotated_ink <= ink * 1.05 + 1e-3) and np.mean(rotated_ink / ink) > 0.5
