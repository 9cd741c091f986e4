"""Correlation and recognition metrics on representations (numpy or torch, rows = samples)."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from harness.linalg import LinearCCA, as_f64, canonical_correlations, pearson_per_dim

HELDOUT_RIDGE = 1e-4


def corr_heldout(train1, train2, test1, test2, k: int, ridge: float = HELDOUT_RIDGE) -> float:
    """Linear CCA fitted on TRAIN outputs, applied to TEST outputs; sum of per-dim Pearson."""
    cca = LinearCCA.fit(train1, train2, k=k, ridge=ridge)
    p1, p2 = cca.transform(test1, test2)
    return float(pearson_per_dim(p1, p2).sum())


def corr_refit(test1, test2, k: int, ridge: float = HELDOUT_RIDGE) -> float:
    """Linear CCA refitted on the test outputs: sum of canonical correlations (biased upward)."""
    return float(canonical_correlations(test1, test2, ridge=ridge, k=k).sum())


def corr_floor(test1, test2, k: int, seed: int = 0, ridge: float = HELDOUT_RIDGE) -> float:
    """`corr_refit` with the pairs shuffled: the noise floor of refitting."""
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(test2)))
    return corr_refit(test1, as_f64(test2)[perm], k, ridge)


def corr_diag(test1, test2) -> float:
    """Sum of per-dimension Pearson correlations of the raw outputs."""
    return float(pearson_per_dim(test1, test2).sum())


ROW_SPACE_RTOL = 1e-12  # on eigenvalues of XᵀX, i.e. 1e-6 on singular values


def row_space_basis(x: np.ndarray, rtol: float = ROW_SPACE_RTOL) -> np.ndarray | None:
    """An orthonormal basis (d × r) of the span of x's rows, or None when they span all d
    dimensions (or none: all-zero features keep their d columns). Eigenvalues of XᵀX below
    `rtol` × the largest count as zero: a network's d outputs computed from its last 300
    hidden units have rank ≤ 301 whatever d is, and the rest of the spectrum is float32
    rounding noise (~1e-14 relative)."""
    evals, evecs = np.linalg.eigh(x.T @ x)
    keep = evals > rtol * evals.max()
    if keep.all() or not keep.any():  # full rank, or all-zero (collapsed) features
        return None
    return evecs[:, keep]


def cross_modal_recognition(z1, z2, labels, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """Recognition: 5 contiguous folds; LinearSVC(C=1) on view-1 of 4 folds, tested on view-2 of
    the held-out fold. Returns (accuracy view1→view2, swapped view2→view1), mean over folds."""
    from sklearn.preprocessing import StandardScaler

    z1 = np.asarray(torch.as_tensor(z1).double().cpu())
    z2 = np.asarray(torch.as_tensor(z2).double().cpu())
    if z1.shape[1] == 0:  # no canonical direction left (collapsed outputs): nothing to classify
        z1, z2 = np.zeros((len(z1), 1)), np.zeros((len(z2), 1))  # -> the majority class
    labels = np.asarray(labels)
    bounds = np.linspace(0, len(labels), folds + 1).astype(int)
    accs = {"fwd": [], "swap": []}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        train = np.r_[0:lo, hi:len(labels)]
        for key, (a, b) in {"fwd": (z1, z2), "swap": (z2, z1)}.items():
            # Scaling is fitted on the training view only.
            scaler = StandardScaler().fit(a[train])
            x_train, x_test = scaler.transform(a[train]), scaler.transform(b[lo:hi])
            # An L2-regularised linear model's optimum lies in the span of its training rows,
            # so coordinates in an orthonormal basis of that span define the same problem
            # (same ‖w‖, same scores) with r ≤ 301 instead of d features at d ≥ 500: liblinear's
            # cost per Newton step is proportional to the feature count. The bounded solve below
            # stops at a different point of a different path (the basis also depends on BLAS's
            # thread count): within its tolerance, up to ~2 points on weak d ≥ 500 features.
            accs[key].append(_svm_accuracy(x_train, labels[train], x_test, labels[lo:hi], seed))
    return float(np.mean(accs["fwd"])), float(np.mean(accs["swap"]))


def _svm_accuracy(x_train, y_train, x_test, y_test, seed: int = 0) -> float:
    """LinearSVC(C=1) on standardised features, fitted in row-span coordinates (below)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC
    basis = row_space_basis(x_train)
    if basis is not None:
        x_train, x_test = x_train @ basis, x_test @ basis
    # A bounded primal solve (tol 1e-2, ≤ 100 Newton steps): on linear-CCA features it
    # matches the default tol 1e-4 at d = 50 (67.1 vs 66.9 %) and keeps d ≥ 500 at
    # seconds per fit instead of minutes.
    svm = LinearSVC(C=1.0, dual=False, tol=1e-2, max_iter=100, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(x_train, y_train)
    return float((svm.predict(x_test) == y_test).mean())


def view1_classification(train_z1, train_labels, test_z1, test_labels, n_train: int = 10000,
                         seed: int = 0) -> float:
    """The DCCAE paper's protocol (Wang et al. 2015, Noisy MNIST): a linear SVM on view-1
    representations of the training set (its first `n_train` rows), tested on view 1 of the
    test set; accuracy in [0, 1]."""
    from sklearn.preprocessing import StandardScaler
    a = np.asarray(torch.as_tensor(train_z1[:n_train]).double().cpu())
    b = np.asarray(torch.as_tensor(test_z1).double().cpu())
    scaler = StandardScaler().fit(a)
    return _svm_accuracy(scaler.transform(a), np.asarray(train_labels)[:n_train],
                         scaler.transform(b), np.asarray(test_labels), seed)


RECOGNITION = ("recog_acc", "recog_acc_swapped")
REFIT = ("corr_refit", "corr_floor")
FOLDS = 5


def recognition_unavailable(labels, folds: int = FOLDS) -> str | None:
    """Why cross-modal recognition cannot be measured on these test labels (None: it can):
    fewer test pairs than folds, or a training set of 4 folds that holds one class (a
    classifier needs two; the folds are contiguous, so a file sorted by class can lack one)."""
    labels = np.asarray(labels)
    n = len(labels)
    if n < folds:
        return f"{n} test pairs, fewer than its {folds} folds"
    classes = np.unique(labels)
    if len(classes) < 2:
        return f"the test labels hold one class ({classes[0]}); a classifier needs two"
    bounds = np.linspace(0, n, folds + 1).astype(int)
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if len(np.unique(np.r_[labels[:lo], labels[hi:]])) < 2:
            return (f"the 4 training folds of fold {i + 1} (test pairs outside {lo}–{hi - 1}) "
                    f"hold one class; a classifier needs two (shuffle the test pairs)")
    return None


def refit_unavailable(n_test: int, k1: int, k2: int) -> str | None:
    """Why a CCA refitted on the test outputs measures nothing (None: it does): centred, n
    pairs span n−1 dimensions, and outputs of k1 + k2 > n−1 columns share at least
    k1 + k2 − (n−1) directions, correlated 1 by construction whatever the data."""
    if k1 + k2 <= n_test - 1:
        return None
    return (f"the {n_test} test pairs support at most {max(0, (n_test - 1) // 2)} canonical "
            f"components, fewer than the outputs' {max(k1, k2)} (d): a refit on them "
            f"correlates 1 by construction")


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"could not be computed ({type(err).__name__}: {text[0] if text else 'no message'})"


def guarded(out: dict, unavailable: dict, names: tuple, compute) -> None:
    """`out[names] = compute()` (one value, or a tuple of one per name); a metric that raises
    or is not finite is left out of `out` and recorded in `unavailable` with its reason."""
    try:
        values = compute()
    except Exception as err:  # noqa: BLE001 - any metric failure: the trial's other metrics stand
        unavailable.update({name: _reason(err) for name in names})
        return
    values = values if isinstance(values, tuple) else (values,)
    for name, value in zip(names, values):
        if np.isfinite(value):
            out[name] = float(value)
        else:
            unavailable[name] = f"not finite ({value})"


def all_metrics(train_reps, test_reps, test_labels, k: int, aligned: bool = True,
                recognition: bool = True, unavailable: dict | None = None,
                projected: dict | None = None) -> dict:
    """Every metric of one trial, from train and test representations.

    `aligned=False` (DCCA-type outputs, correlated only after a rotation): recognition runs on
    the test outputs projected by the linear CCA fitted on the train outputs.
    `unavailable`: filled with metric -> reason for each metric that cannot be measured here
    (too few test pairs or classes, a computation that failed); those are left out of the
    result, and the others stand. `recognition=False` (no labels): no recognition metric.
    `projected`: filled with "p", the test outputs projected by the held-out CCA (fitted
    once, here), for whoever needs them after (the paired replicates)."""
    unavailable = {} if unavailable is None else unavailable
    (tr1, tr2), (te1, te2) = train_reps, test_reps
    out, projected = {}, ({} if projected is None else projected)

    def heldout():
        cca = LinearCCA.fit(tr1, tr2, k=k, ridge=HELDOUT_RIDGE)
        projected["p"] = cca.transform(te1, te2)
        return float(pearson_per_dim(*projected["p"]).sum())

    guarded(out, unavailable, ("corr_heldout",), heldout)
    why = refit_unavailable(len(te1), te1.shape[1], te2.shape[1])
    if why:
        unavailable.update(dict.fromkeys(REFIT, why))
    else:
        guarded(out, unavailable, ("corr_refit",), lambda: corr_refit(te1, te2, k))
        guarded(out, unavailable, ("corr_floor",), lambda: corr_floor(te1, te2, k))
    guarded(out, unavailable, ("corr_diag",), lambda: corr_diag(te1, te2))
    if not recognition:
        return out
    why = recognition_unavailable(test_labels)
    if why is None and not aligned and "p" not in projected:
        why = f"needs the held-out CCA projection, which {unavailable['corr_heldout']}"
    if why:
        unavailable.update(dict.fromkeys(RECOGNITION, why))
        return out
    views = (te1, te2) if aligned else projected["p"]
    guarded(out, unavailable, RECOGNITION, lambda: tuple(
        100 * a for a in cross_modal_recognition(*views, test_labels)))
    return out
