"""Saliency metrics on hand-made maps and masks with known answers."""
import numpy as np
import pytest
import torch

from harness.suites.saliency.metrics import (
    average_precision,
    precision,
    precision_without_background,
    saliency_magnitude,
    uniform_precision,
)

torch.set_num_threads(1)
H, W = 8, 10


def box(r0, r1, c0, c1):
    m = np.zeros((H, W), bool)
    m[r0:r1, c0:c1] = True
    return m


def test_map_inside_mask_is_one_and_outside_is_zero():
    mask = box(2, 5, 3, 7)
    inside = np.zeros((H, W))
    inside[3, 4], inside[2, 6], inside[4, 3] = 0.5, 2.0, 1.0
    outside = np.zeros((H, W))
    outside[0, 0], outside[7, 9], outside[5, 5] = 1.0, 3.0, 0.2
    assert precision(inside, mask) == 1.0
    assert precision(outside, mask) == 0.0
    # a map covering the mask exactly (and strictly positive on it)
    assert precision(mask * 7.0, mask) == 1.0


def test_uniform_map_gives_the_area_fraction():
    mask = box(0, 3, 0, 5)  # 15 of 80 pixels
    assert uniform_precision(mask) == 15 / 80
    for level in (1e-3, 1.0, 42.0):
        assert precision(np.full((H, W), level), mask) == pytest.approx(15 / 80, abs=1e-15)


def test_half_inside_half_outside_with_known_weights():
    mask = box(0, 4, 0, 10)  # top half
    s = np.zeros((H, W))
    s[1, 1] = 3.0   # inside
    s[2, 8] = 1.0   # inside
    s[6, 2] = 4.0   # outside
    s[7, 9] = 2.0   # outside
    assert precision(s, mask) == pytest.approx(4.0 / 10.0, abs=1e-15)
    assert precision(s, ~mask) == pytest.approx(6.0 / 10.0, abs=1e-15)


def test_all_zero_map_is_treated_as_uniform():
    mask = box(1, 3, 1, 6)  # 10 pixels
    assert precision(np.zeros((H, W)), mask) == 10 / 80
    assert saliency_magnitude(np.zeros((H, W))) == 0.0


def test_negative_maps_and_non_binary_masks_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        precision(-np.ones((H, W)), box(0, 1, 0, 1))
    with pytest.raises(ValueError, match="binary"):
        precision(np.ones((H, W)), np.full((H, W), 0.5))


def test_average_precision_is_the_mean_over_maps():
    m1, m2 = box(0, 4, 0, 10), box(0, 8, 0, 5)
    s1 = np.zeros((H, W)); s1[0, 0] = 1; s1[7, 7] = 3           # precision 1/4
    s2 = np.ones((H, W))                                          # precision 1/2
    s3 = np.zeros((H, W)); s3[1, 1] = 2                           # precision 1
    maps, masks = np.stack([s1, s2, s3]), np.stack([m1, m2, m2])
    assert average_precision(maps, masks) == pytest.approx((0.25 + 0.5 + 1.0) / 3, abs=1e-15)
    # lists of differently sized images (COCO) give the same mean
    small = np.ones((4, 4)); small_mask = np.zeros((4, 4), bool); small_mask[:2] = True
    assert average_precision([s1, s2, small], [m1, m2, small_mask]) == pytest.approx(
        (0.25 + 0.5 + 0.5) / 3, abs=1e-15)


def test_precision_without_background_on_a_constructed_case():
    m_ind, m_common = box(0, 4, 0, 5), box(0, 4, 5, 10)
    s = np.zeros((H, W))
    s[1, 1] = 2.0   # on the individual object
    s[2, 7] = 6.0   # on the common object
    s[6, 6] = 100.0  # background: removed
    assert precision_without_background(s, m_ind, m_common) == pytest.approx(2 / 8, abs=1e-15)
    assert precision(s, m_ind) == pytest.approx(2 / 108, abs=1e-15)
    # overlapping masks: the union counts the overlap once
    m_common2 = box(0, 4, 3, 10)
    s2 = np.zeros((H, W)); s2[1, 4] = 1.0; s2[1, 8] = 3.0  # (1,4) lies in both masks
    assert precision_without_background(s2, m_ind, m_common2) == pytest.approx(1 / 4, abs=1e-15)
    # map only on the background: the uniform value |M_ind| / |M_ind ∪ M_common|
    bg = np.zeros((H, W)); bg[7, 0] = 1.0
    assert precision_without_background(bg, m_ind, m_common) == pytest.approx(20 / 40, abs=1e-15)
    assert np.isnan(precision_without_background(s, np.zeros((H, W), bool), np.zeros((H, W), bool)))


def test_magnitude_of_constant_and_one_hot_maps():
    assert saliency_magnitude(np.full((H, W), 0.3)) == pytest.approx(100.0, abs=1e-12)
    one_hot = np.zeros((H, W)); one_hot[3, 4] = 5.0
    assert saliency_magnitude(one_hot) == pytest.approx(100.0 / (H * W), abs=1e-12)
    two_level = np.zeros((H, W)); two_level[0, :] = 2.0; two_level[1, :] = 1.0
    assert saliency_magnitude(two_level) == pytest.approx(100 * (10 * 1 + 10 * 0.5) / 80, abs=1e-12)


def test_batching_equals_the_loop_and_torch_equals_numpy():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 3, H, W)) * (rng.random((5, 3, H, W)) > 0.5)
    maps[0, 1] = 0.0  # an all-zero map in the batch
    masks = rng.random((5, 3, H, W)) > 0.6
    common = rng.random((5, 3, H, W)) > 0.6
    p = precision(maps, masks)
    pb = precision_without_background(maps, masks, common)
    mag = saliency_magnitude(maps)
    up = uniform_precision(masks)
    assert p.shape == pb.shape == mag.shape == up.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            assert p[i, j] == precision(maps[i, j], masks[i, j])
            assert pb[i, j] == precision_without_background(maps[i, j], masks[i, j], common[i, j])
            assert mag[i, j] == saliency_magnitude(maps[i, j])
            assert up[i, j] == uniform_precision(masks[i, j])
    assert average_precision(maps.reshape(-1, H, W), masks.reshape(-1, H, W)) == pytest.approx(
        p.mean(), abs=1e-15)
    np.testing.assert_allclose(precision(torch.from_numpy(maps).float(), torch.from_numpy(masks)),
                               p, atol=1e-6)
