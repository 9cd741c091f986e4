"""A batch of encoder outputs in factored form, for objectives at d above the last hidden width.

Every encoder ends in a linear layer, f = H Wᵀ + 1 bᵀ, with H the m × h activations of its
last hidden layer (h = 300 in the paper's network). So f = P Vᵀ with P = [H, 1] (m × k) and
V = [W, b] (d × k), k = h + 1: at d > k the d outputs of a batch span at most k dimensions, and
what an objective computes from the m × d batch can be computed exactly from the factors:

* Gram matrices: Zᵢᵀ Zⱼ = Vᵢ (Pᵢᵀ Pⱼ) Vⱼᵀ costs d²k instead of m d² (m = 2048 ≫ k = 301);
* squared Frobenius norms: ‖Z‖² = ⟨PᵀP, VᵀV⟩ costs (m + d) k²;
* batch normalisation (train mode) only rescales the rows of V, by variances that are the
  diagonal of V (PᵀP) Vᵀ: d k²;
* an objective that an isometry of the output space leaves unchanged (Deep CCA's trace norm)
  takes the m × k coordinates of the batch in an orthonormal basis Q of span(V) (`coordinates`):
  f = (f Q) Qᵀ exactly, so the loss of f Q equals the loss of f, and its gradient, which lies
  in span(Q), is the same too. Q is computed from V without gradient: at the current V, the
  gradient through f Q with Q held fixed is the gradient of the loss of f (tests/test_lowrank.py).

`LowRank` is the one interface. `TwoViewModel.outputs`/`represent` hand it to the objectives
that ask for it (`factored=True`) when it is cheaper (d > k, training); the helpers below
accept a plain tensor as well, so a loss is written once for both. Within one loss evaluation
the k × k products PₐᵀP_b and VₐᵀV_b are memoized on the factors: each is computed, and
back-propagated, once however many terms ask for it (tests/test_lowrank.py counts them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LowRank:
    """Z = coords @ basis.T without forming it: coords m × k, basis d × k.

    One loss evaluation asks for the same k × k products several times (MUC2M: P₁ᵀP₁ for the
    BatchNorm variance, for the squared norm of Z₁ᵀZ₁ and for its diagonal), and back-propagating
    each copy costs as much again, so the coordinate Grams PₐᵀP_b and basis Grams VₐᵀV_b are
    memoized on the object (`_tn`), and so is its `centered` batch. A memo lives as long as its
    object, one loss evaluation, and assumes that the factors are not modified in place; slices,
    `detach` and `to` are new tensors, with empty memos."""

    coords: torch.Tensor
    basis: torch.Tensor
    _coord_grams: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _basis_grams: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _centered: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    # the diagonal of Zᵀ Z where `batchnorm` knows it without a product (its variances)
    _self_diag: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.coords.shape[0], self.basis.shape[0]))

    def full(self) -> torch.Tensor:
        return self.coords @ self.basis.T

    def __getitem__(self, rows) -> "LowRank":
        return LowRank(self.coords[rows], self.basis)

    def detach(self) -> "LowRank":
        return LowRank(self.coords.detach(), self.basis.detach())

    def to(self, dtype) -> "LowRank":
        return LowRank(self.coords.to(dtype), self.basis.to(dtype))


class _SelfGram(torch.autograd.Function):
    """xᵀx, back-propagated as one product x (G + Gᵀ) where autograd's x.T @ x takes two."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.T @ x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return x @ (grad + grad.T)


def _tn(x: torch.Tensor, x_memo: dict, y: torch.Tensor, y_memo: dict) -> torch.Tensor:
    """xᵀ y, memoized in x_memo (or read, transposed, from y_memo). An entry holds x and y, so
    that their ids, its key, are not reused while it exists; the key has the grad mode too, so
    that a product taken without gradient is not handed to a loss that needs one."""
    grad = torch.is_grad_enabled()
    if (id(x), id(y), grad) in x_memo:
        return x_memo[id(x), id(y), grad][2]
    if (id(y), id(x), grad) in y_memo:
        return y_memo[id(y), id(x), grad][2].T
    # (under autocast, whose bf16 product would meet x's dtype in that backward: plain autograd)
    self_gram = x is y and not torch.is_autocast_enabled(x.device.type)
    return _store(x_memo, x, y, _SelfGram.apply(x) if self_gram else x.T @ y)


def _store(memo: dict, x: torch.Tensor, y: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    memo[id(x), id(y), torch.is_grad_enabled()] = (x, y, product)
    return product


def _coord_gram(a: LowRank, b: LowRank) -> torch.Tensor:
    """Pₐᵀ P_b (k × k), memoized."""
    return _tn(a.coords, a._coord_grams, b.coords, b._coord_grams)


def _basis_gram(a: LowRank, b: LowRank) -> torch.Tensor:
    """Vₐᵀ V_b (k × k), memoized."""
    return _tn(a.basis, a._basis_grams, b.basis, b._basis_grams)


def full(z) -> torch.Tensor:
    return z.full() if isinstance(z, LowRank) else z


def gram(a, b) -> torch.Tensor:
    """aᵀ b (d × d)."""
    if isinstance(a, LowRank) and isinstance(b, LowRank):
        return a.basis @ _coord_gram(a, b) @ b.basis.T
    return full(a).T @ full(b)


def diag_gram(a, b) -> torch.Tensor:
    """The diagonal of aᵀ b (d): Σ_j a_jk b_jk, without the d × d matrix."""
    if isinstance(a, LowRank) and isinstance(b, LowRank):
        if a is b and a._self_diag is not None:  # known to `batchnorm`, which made a
            return a._self_diag
        return ((a.basis @ _coord_gram(a, b)) * b.basis).sum(1)
    return (full(a) * full(b)).sum(0)


def row_inner(a, b) -> torch.Tensor:
    """⟨a_j, b_j⟩ for each row j (m): factored, Σ_kl Pa_jk (VaᵀVb)_kl Pb_jl, m k² instead of m d."""
    if isinstance(a, LowRank) and isinstance(b, LowRank):
        return ((a.coords @ _basis_gram(a, b)) * b.coords).sum(1)
    return (full(a) * full(b)).sum(-1)


def gram_inner(a, b, c, e) -> torch.Tensor:
    """⟨aᵀb, cᵀe⟩ = Σ_kl (aᵀb)_kl (cᵀe)_kl without a d × d matrix: with M = PaᵀPb and
    N = PcᵀPe, tr(Mᵀ (VaᵀVc) N (VeᵀVb)), (m + d) k² + k³; of one factored batch with itself
    (M = N symmetric, VaᵀVc = VeᵀVb), tr(X X) with the one product X = M VᵀV."""
    if all(isinstance(z, LowRank) for z in (a, b, c, e)):
        m, n = _coord_gram(a, b), _coord_gram(c, e)  # one product when (a, b) is (c, e)
        if a is b is c is e:
            x = m @ _basis_gram(a, a)
            return (x * x.T).sum()
        return ((m.T @ _basis_gram(a, c)) * (n @ _basis_gram(e, b)).T).sum()
    return (gram(a, b) * gram(c, e)).sum()


def inner_of_gram_sums(xs, ys) -> torch.Tensor:
    """⟨Σ_a aᵀa, Σ_b bᵀb⟩ over the batches a in xs and b in ys: factored, the sum of the pairwise
    `gram_inner(a, a, b, b)` (k × k work each); otherwise from the two d × d sums."""
    if all(isinstance(z, LowRank) for z in (*xs, *ys)):
        return sum(gram_inner(a, a, b, b) for a in xs for b in ys)
    return (sum(gram(a, a) for a in xs) * sum(gram(b, b) for b in ys)).sum()


def off_diagonal_sq(a, b, scale: float = 1.0) -> torch.Tensor:
    """Σ_{k≠l} (scale · aᵀb)_kl²: the squared Frobenius norm less the squared diagonal."""
    if not (isinstance(a, LowRank) and isinstance(b, LowRank)):
        s = gram(a, b) * scale
        return s.pow(2).sum() - torch.diagonal(s).pow(2).sum()
    return (gram_inner(a, b, a, b) - diag_gram(a, b).pow(2).sum()) * scale ** 2


def sq_norm(z) -> torch.Tensor:
    """‖z‖_F² = Σ_jk z_jk². Factored, of a `difference` a − b, it is ‖a‖² + ‖b‖² − 2⟨a, b⟩ in
    effect: exact up to round-off on the scale of ‖a‖² + ‖b‖², not of ‖a − b‖²."""
    if isinstance(z, LowRank):
        return (_coord_gram(z, z) * _basis_gram(z, z)).sum()
    return z.pow(2).sum()


def _blocks(aa: torch.Tensor, ab: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """The symmetric block matrix [[aa, ab], [abᵀ, bb]]."""
    return torch.cat([torch.cat([aa, ab], 1), torch.cat([ab.T, bb], 1)], 0)


def difference(a, b):
    """a − b, still factored when both are: [Pa, −Pb] [Va, Vb]ᵀ. A difference is taken for its
    squared norm, so its Grams are memoized at once, assembled from the (memoized) blocks
    PₐᵀPₐ, PₐᵀP_b, P_bᵀP_b, VₐᵀVₐ, ... of the two, which the loss has mostly computed already,
    rather than taken again from the concatenated factors (twice the width: 4× the work)."""
    if isinstance(a, LowRank) and isinstance(b, LowRank):
        out = LowRank(torch.cat([a.coords, -b.coords], 1), torch.cat([a.basis, b.basis], 1))
        _store(out._coord_grams, out.coords, out.coords,
               _blocks(_coord_gram(a, a), -_coord_gram(a, b), _coord_gram(b, b)))
        _store(out._basis_grams, out.basis, out.basis,
               _blocks(_basis_gram(a, a), _basis_gram(a, b), _basis_gram(b, b)))
        return out
    return full(a) - full(b)


def mean(z) -> torch.Tensor:
    """The batch mean (the mean row, d)."""
    return z.coords.mean(0) @ z.basis.T if isinstance(z, LowRank) else z.mean(0)


def centered(z):
    """z minus its batch mean (the mean row): Pc = P − mean(P), the same basis. Memoized on a
    factored z (by grad mode), so that its Grams are shared by the loss terms that centre it."""
    if isinstance(z, LowRank):
        grad = torch.is_grad_enabled()
        if grad not in z._centered:
            z._centered[grad] = LowRank(z.coords - z.coords.mean(0, keepdim=True), z.basis)
        return z._centered[grad]
    return z - z.mean(0, keepdim=True)


def coordinates(z) -> torch.Tensor:
    """The m × k coordinates z Q of a factored batch in an orthonormal basis Q of its span
    (float64; Q from a QR of the basis, held fixed): for objectives that an isometry of the
    output space leaves unchanged. A plain tensor is returned as it is."""
    if not isinstance(z, LowRank):
        return z
    basis = z.basis.double()
    q, _ = torch.linalg.qr(basis.detach())
    return z.coords.double() @ (basis.T @ q)


def factor_linear_output(layers, last: torch.nn.Linear, h: torch.Tensor) -> LowRank:
    """f = last(layers(h)) as [H, 1] [W, b]ᵀ, H = layers(h) (the last hidden activations)."""
    hidden = layers(h).to(last.weight.dtype)  # bf16 layers hand back float32 (MixedPrecisionMLP)
    ones = torch.ones(hidden.shape[0], 1, dtype=hidden.dtype, device=hidden.device)
    bias = last.bias if last.bias is not None else torch.zeros_like(last.weight[:, 0])
    return LowRank(torch.cat([hidden, ones], 1), torch.cat([last.weight, bias[:, None]], 1))


def batchnorm(z: LowRank, bn: torch.nn.BatchNorm1d) -> LowRank:
    """`bn(z.full())` in train mode (an affine-free BatchNorm1d), factored: (f − mean) scaled
    per output by 1/sqrt(var + eps), var the biased batch variance; the running statistics
    are updated exactly as BatchNorm1d updates them (momentum, unbiased variance)."""
    if bn.affine or not bn.training or bn.momentum is None:
        raise ValueError("factored batchnorm needs an affine-free BatchNorm1d in train mode "
                         "with a momentum")
    m = z.coords.shape[0]
    zc = centered(z)
    var = diag_gram(zc, zc) / m
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked += 1
            bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean(z).detach())
            bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * var.detach() * m / (m - 1))
    scale = torch.rsqrt(var + bn.eps)
    out = LowRank(zc.coords, zc.basis * scale[:, None])
    out._coord_grams = zc._coord_grams  # the same coordinates: PcᵀPc is shared
    out._self_diag = var * scale.pow(2) * m  # the diagonal of its Gram: m var / (var + eps)
    return out
