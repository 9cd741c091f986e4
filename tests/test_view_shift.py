"""The view-shift diagnosis against planted shifts (harness.bench.view_shift)."""
import numpy as np
import pytest

from harness.bench.view_shift import shift_stats


def codes(shift=0.0, scale=1.0, n=1000, d=4, seed=0):
    """Two views of class-separated codes: view 2 = view 1 + small noise, then shifted by
    `shift` view-1 stds and scaled by `scale` in every dimension."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    centres = 3.0 * rng.normal(size=(4, d))
    z1 = centres[labels] + rng.normal(size=(n, d))
    z2 = z1 + 0.05 * rng.normal(size=(n, d))
    z2 = (z2 - z2.mean(0)) * scale + z2.mean(0) + shift * z1.std(0)
    return z1, z2, labels


def test_no_shift_reads_zero_and_recognition_is_the_same_either_way():
    z1, z2, labels = codes()
    got = shift_stats(z1, z2, labels)
    assert got["offset_median"] < 0.01 and got["scale_median"] < 0.01
    assert got["corr_median"] > 0.99
    assert got["recog_acc"] == pytest.approx(got["recog_acc_own_scaling"], abs=1.0)


def test_a_planted_shift_is_measured_and_breaks_only_the_protocols_scaling():
    z1, z2, labels = codes(shift=1.5, scale=1.3)
    got = shift_stats(z1, z2, labels)
    assert got["offset_median"] == pytest.approx(1.5, abs=0.02)
    assert got["scale_median"] == pytest.approx(0.3, abs=0.02)
    assert got["corr_median"] > 0.99  # dimension by dimension the views still agree
    unshifted = shift_stats(*codes())
    assert got["recog_acc"] < unshifted["recog_acc"] - 20  # the classifier of view 1 misses
    assert got["recog_acc_own_scaling"] == pytest.approx(unshifted["recog_acc"], abs=2.0)
