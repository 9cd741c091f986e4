"""Metrics against known answers: noise floors of independent views, recognition extremes."""
import numpy as np
import pytest

from harness import metrics

# corr_refit on independent Gaussian views with n = 10,000.
NOISE_FLOOR = {50: 3.0, 200: 24.0}


@pytest.mark.parametrize("d", sorted(NOISE_FLOOR))
def test_corr_floor_on_independent_views_matches_the_noise_floor(d):
    rng = np.random.default_rng(d)
    z1, z2 = rng.standard_normal((10000, d)), rng.standard_normal((10000, d))
    floor = metrics.corr_floor(z1, z2, k=d)
    assert abs(floor - NOISE_FLOOR[d]) < 0.15 * NOISE_FLOOR[d], floor
    assert abs(metrics.corr_refit(z1, z2, k=d) - NOISE_FLOOR[d]) < 0.15 * NOISE_FLOOR[d]


def test_corr_heldout_on_independent_views_is_near_zero():
    rng = np.random.default_rng(1)
    tr1, tr2, te1, te2 = (rng.standard_normal((10000, 50)) for _ in range(4))
    assert abs(metrics.corr_heldout(tr1, tr2, te1, te2, k=50)) < 0.5


def test_corr_heldout_and_floor_on_dependent_views():
    rng = np.random.default_rng(2)
    s = rng.standard_normal((20000, 10))
    z1 = s + 0.5 * rng.standard_normal(s.shape)
    z2 = s + 0.5 * rng.standard_normal(s.shape)
    expected = 10 * 1 / 1.25  # corr of s+e1, s+e2 with var(e)=0.25: 1/(1+0.25)
    assert abs(metrics.corr_heldout(z1[:10000], z2[:10000], z1[10000:], z2[10000:], k=10) - expected) < 0.1
    assert abs(metrics.corr_diag(z1, z2) - expected) < 0.1
    assert metrics.corr_floor(z1, z2, k=10) < 0.5


def test_recognition_is_perfect_on_separable_shared_codes_and_chance_on_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    centers = 5 * rng.standard_normal((10, 8))
    z1 = centers[labels] + 0.3 * rng.standard_normal((2000, 8))
    z2 = centers[labels] + 0.3 * rng.standard_normal((2000, 8))
    fwd, swapped = metrics.cross_modal_recognition(z1, z2, labels)
    assert fwd > 0.99 and swapped > 0.99
    noise_fwd, _ = metrics.cross_modal_recognition(z1, rng.standard_normal((2000, 8)), labels)
    assert noise_fwd < 0.2


def test_row_space_basis_spans_the_rows_of_rank_deficient_features_and_is_none_at_full_rank():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 40))  # rank 6 in 40 dimensions
    basis = metrics.row_space_basis(x)
    assert basis.shape == (40, 6)
    np.testing.assert_allclose(basis.T @ basis, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(x @ basis @ basis.T, x, atol=1e-9)  # every row lies in the span
    assert metrics.row_space_basis(rng.standard_normal((500, 40))) is None


def test_linear_svm_in_row_space_coordinates_is_the_svm_on_the_full_features():
    """Ground truth: liblinear solved to convergence on the original d features. The optimum of
    an L2-regularised linear model lies in the span of the training rows, so the fit in an
    orthonormal basis of that span has the same weights (mapped back) and the same predictions,
    also on test rows with components outside the span."""
    import warnings

    from sklearn.svm import LinearSVC
    rng = np.random.default_rng(4)
    n, d, rank = 1200, 60, 5
    mix = rng.standard_normal((rank, d))
    codes = rng.standard_normal((n, rank))
    labels = np.argmax(codes[:, :3] + 0.3 * rng.standard_normal((n, 3)), axis=1)
    x = codes @ mix
    x_test = rng.standard_normal((300, rank)) @ mix + 0.1 * rng.standard_normal((300, d))
    basis = metrics.row_space_basis(x)
    assert basis.shape == (d, rank)

    def fit(features):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LinearSVC(C=1.0, dual=False, tol=1e-10, max_iter=10000).fit(features, labels)

    full, reduced = fit(x), fit(x @ basis)
    np.testing.assert_allclose(reduced.coef_ @ basis.T, full.coef_, atol=1e-6)
    np.testing.assert_allclose(reduced.intercept_, full.intercept_, atol=1e-6)
    assert (reduced.predict(x_test @ basis) == full.predict(x_test)).all()


def test_recognition_on_collapsed_features_predicts_the_majority_class():
    """Constant representations carry no information: after standardisation they are all
    zero, and the SVM can only predict the most frequent training class."""
    rng = np.random.default_rng(5)
    labels = np.where(rng.random(2000) < 0.6, 3, rng.integers(0, 10, 2000))
    z = np.ones((2000, 12))
    assert metrics.row_space_basis(np.zeros((100, 12))) is None
    fwd, swapped = metrics.cross_modal_recognition(z, z, labels)
    assert fwd == pytest.approx(np.mean(labels == 3)) and swapped == fwd


def test_recognition_without_any_component_predicts_the_majority_class_instead_of_failing():
    """DCCA-type outputs that collapsed leave no canonical direction to project on (k = 0):
    recognition is then the majority class, as on constant features, not a crash."""
    rng = np.random.default_rng(6)
    labels = np.where(rng.random(1000) < 0.7, 2, rng.integers(0, 10, 1000))
    empty = np.zeros((1000, 0))
    fwd, swapped = metrics.cross_modal_recognition(empty, empty, labels)
    assert fwd == pytest.approx(np.mean(labels == 2)) and swapped == fwd
