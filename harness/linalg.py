"""The one home of centring, ridge covariances, inverse square roots and linear CCA.

Everything here works on torch tensors (rows = samples) and computes in float64: CCA on
float32 loses the small canonical correlations, and eigenvalue clamping needs headroom.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def as_f64(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return x.to(torch.float64)


def center(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=0, keepdim=True)


def ridge_cov(xc: torch.Tensor, yc: torch.Tensor | None = None, ridge: float = 0.0) -> torch.Tensor:
    """Sample (cross-)covariance of already-centred rows, with `ridge * I` added when square."""
    n = xc.shape[0]
    if yc is None:
        cov = xc.T @ xc / (n - 1)
        return cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return xc.T @ yc / (n - 1)


def inv_sqrt(cov: torch.Tensor, eps: float = 1e-12, return_rank: bool = False):
    """Symmetric inverse square root; eigenvalues are clamped at `eps` so a rank-deficient
    covariance stays finite (the caller's ridge is the intended floor). With `return_rank`,
    also the number of eigenvalues that stand out of that floor (the data's rank)."""
    evals, evecs = torch.linalg.eigh(cov)
    root = (evecs * evals.clamp_min(eps).rsqrt()) @ evecs.T
    if not return_rank:
        return root
    signal = evals - eps
    return root, int((signal > RANK_RTOL * signal.max().clamp_min(1e-300)).sum())


RANK_RTOL = 1e-9  # on eigenvalues, i.e. about 3e-5 on singular values


@dataclass
class ThinQR:
    """V = Q R for a tall V (d × k, d ≥ k): Q with orthonormal columns, R upper triangular.

    `of` takes R from a Cholesky factorisation of the Gram, VᵀV = RᵀR, and leaves Q = V R⁻¹
    unformed: `q_times(X)` is V (R⁻¹ X), a k × k triangular solve and one d × k × k product.
    At the factored objectives' shapes (k = 301, float64, 2 threads) that is 6.8 against
    Householder QR's 8.5 ms at d = 500 and 8.8 against 13.5 ms at d = 1000, R and Q X
    included. Its error grows with cond(V)² where Householder's grows with cond(V), so a V
    whose Cholesky fails (rank-deficient: a zero bias column) or whose R has a diagonal spread
    over `CHOLESKY_QR_MAX_SPREAD` (a lower bound on cond(V)) takes Householder QR instead. The
    signs of R's rows may differ from Householder's; Q R is the same."""

    v: torch.Tensor
    r: torch.Tensor
    gram: torch.Tensor  # VᵀV, which `of` computes anyway and a caller may need
    q: torch.Tensor | None = None  # formed only where Householder QR was taken

    @classmethod
    def of(cls, v: torch.Tensor) -> "ThinQR":
        gram = v.T @ v
        chol, info = torch.linalg.cholesky_ex(gram)
        diag = torch.diagonal(chol)
        # one host sync per call on a GPU, to choose the route
        if bool((info == 0) & (diag.max() <= CHOLESKY_QR_MAX_SPREAD * diag.min())):
            return cls(v, chol.T, gram)
        q, r = torch.linalg.qr(v)
        return cls(v, r, gram, q)

    def q_times(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Q X (d × n) for X k × n; the d × k × n product in `dtype` if given (R⁻¹ X is taken
        in the factors' own)."""
        q = self.q
        if q is None:  # Cholesky-QR: Q = V R⁻¹, never formed
            q, x = self.v, torch.linalg.solve_triangular(self.r, x, upper=True)
        return q @ x if dtype is None else q.to(dtype) @ x.to(dtype)

    def qt_times(self, x: torch.Tensor, vt_x: torch.Tensor) -> torch.Tensor:
        """Qᵀ X (k × n) for X d × n, given Vᵀ X (which a caller often has): R⁻ᵀ (Vᵀ X), a k × k
        triangular solve; where Householder QR was taken, Qᵀ X itself (a d × k × n product)."""
        if self.q is not None:
            return self.q.T @ x
        return torch.linalg.solve_triangular(self.r.T, vt_x, upper=False)


CHOLESKY_QR_MAX_SPREAD = 1e4  # cond(V) ≥ 1e4 would cost ~8 of float64's 16 digits (cond²)


def whitened_cross(x: torch.Tensor, y: torch.Tensor, ridge: float):
    """T = Σ11^{-1/2} Σ12 Σ22^{-1/2}, both inverse square roots, the centred inputs and
    min(rank1, rank2): the number of canonical directions that exist."""
    xc, yc = center(x), center(y)
    eps = max(ridge, 1e-12)
    s11_is, rank1 = inv_sqrt(ridge_cov(xc, ridge=ridge), eps=eps, return_rank=True)
    s22_is, rank2 = inv_sqrt(ridge_cov(yc, ridge=ridge), eps=eps, return_rank=True)
    t = s11_is @ ridge_cov(xc, yc) @ s22_is
    return t, s11_is, s22_is, xc, yc, min(rank1, rank2)


def cholesky_whitened_cross(xc: torch.Tensor, yc: torch.Tensor, ridge: float):
    """T' = L1⁻¹ Σ12 L2⁻ᵀ of centred views, with Σii + ridge·I = Li Liᵀ; returns (T', L1, L2).

    T' = Q1 T Q2ᵀ with Qi orthogonal, so it has the singular values of
    T = Σ11^{-1/2} Σ12 Σ22^{-1/2} (half the cost of two inverse square roots); autograd
    through `cholesky`/`solve_triangular` stays defined at repeated canonical correlations.
    A rank-deficient Σ with ridge 0 makes `cholesky` raise (the caller's trial diverges)."""
    l1 = torch.linalg.cholesky(ridge_cov(xc, ridge=ridge))
    l2 = torch.linalg.cholesky(ridge_cov(yc, ridge=ridge))
    t = torch.linalg.solve_triangular(l1, ridge_cov(xc, yc), upper=False)      # L1⁻¹ Σ12
    t = torch.linalg.solve_triangular(l2, t.T, upper=False).T                   # … L2⁻ᵀ
    return t, l1, l2


def canonical_correlations(x, y, ridge: float = 1e-4, k: int | None = None) -> torch.Tensor:
    """Canonical correlations of two views (descending), at most min(k, ranks) of them."""
    t, *_, rank = whitened_cross(as_f64(x), as_f64(y), ridge)
    k = rank if k is None else min(k, rank)
    return torch.linalg.svdvals(t)[:k]


@dataclass
class LinearCCA:
    """Projections fitted on one sample, applicable to another (linear CCA, docs/methods.md)."""

    mean1: torch.Tensor
    mean2: torch.Tensor
    proj1: torch.Tensor  # p1 × k
    proj2: torch.Tensor  # p2 × k
    corrs: torch.Tensor  # k canonical correlations on the fitting sample

    @classmethod
    def fit(cls, x, y, k: int, ridge: float = 1e-4) -> "LinearCCA":
        x, y = as_f64(x), as_f64(y)
        t, s11_is, s22_is, _, _, rank = whitened_cross(x, y, ridge)
        u, s, vh = torch.linalg.svd(t, full_matrices=False)
        k = min(k, rank)
        return cls(x.mean(0), y.mean(0), s11_is @ u[:, :k], s22_is @ vh[:k].T, s[:k])

    def transform(self, x, y):
        return (as_f64(x) - self.mean1) @ self.proj1, (as_f64(y) - self.mean2) @ self.proj2


def pearson_per_dim(a, b, eps: float = 1e-12) -> torch.Tensor:
    """Pearson correlation of matching columns of a and b."""
    a, b = center(as_f64(a)), center(as_f64(b))
    return (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0) + eps)
