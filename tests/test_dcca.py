"""The DCCA objective: its value and its closed-form backward, against ground truth."""
import numpy as np
import torch

from baselines.dcca import TraceNormCorrelation, dcca_loss


def qr_canonical_correlations(x, y):
    q1, _ = np.linalg.qr(x - x.mean(0))
    q2, _ = np.linalg.qr(y - y.mean(0))
    return np.linalg.svd(q1.T @ q2, compute_uv=False)


def test_dcca_loss_is_minus_the_sum_of_canonical_correlations():
    rng = np.random.default_rng(0)
    f1 = rng.standard_normal((300, 8))
    f2 = 0.6 * f1 @ rng.standard_normal((8, 8)) + rng.standard_normal((300, 8))
    loss = dcca_loss(torch.tensor(f1), torch.tensor(f2), ridge=0.0)["loss"]
    assert abs(float(loss) + qr_canonical_correlations(f1, f2).sum()) < 1e-8


def test_dcca_closed_form_backward_matches_finite_differences():
    torch.manual_seed(0)
    f1 = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    f2 = (0.5 * f1.detach() @ torch.randn(5, 5, dtype=torch.float64)
          + torch.randn(40, 5, dtype=torch.float64)).requires_grad_(True)
    for ridge in (0.0, 1e-2):
        assert torch.autograd.gradcheck(lambda a, b: TraceNormCorrelation.apply(a, b, ridge),
                                        (f1, f2), eps=1e-6, atol=1e-6)


def test_dcca_gradient_is_finite_with_duplicated_columns():
    torch.manual_seed(0)
    base = torch.randn(64, 3, dtype=torch.float64)
    f1 = torch.cat([base, base], 1).requires_grad_(True)  # repeated (zero) singular values
    f2 = torch.cat([base + 0.1 * torch.randn(64, 3, dtype=torch.float64)] * 2, 1).requires_grad_(True)
    loss = dcca_loss(f1, f2, ridge=1e-3)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(f1.grad).all() and torch.isfinite(f2.grad).all()
