"""The contractive penalty of muc2m/regularization.py (Eq. 7) against finite
differences: its double-backward gradient with respect to the weights (gradcheck) and the
score's second derivatives (gradgradcheck), in float64 on a tiny model."""
import torch
from test_muc2m_fixtures import one_thread  # noqa: F401 (fixture)
from torch import nn
from torch.func import functional_call

from harness.models import TwoViewModel
from muc2m.common import objective
from muc2m.regularization import elastic_net, gradient_penalty, score_input_gradients
from muc2m.scores import cosine_score

PARAMS = {"lam": 5e-3, "gamma": 0.5, "alpha": 0.5}


def tiny(batchnorm: bool = True):
    torch.manual_seed(0)
    model = TwoViewModel(3, 4, 2, batchnorm=batchnorm, hidden=(5,)).double()
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(
        8, 4, generator=g, dtype=torch.float64)


class Penalised(nn.Module):
    """The registered objective as a module, so functional_call can swap in weights."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, h1, h2):
        return objective(self.net, h1, h2, {}, PARAMS)["loss"]


def test_penalised_objective_weight_gradient_matches_finite_differences():
    """∂/∂θ [L_common + γ·penalty] by double backprop (train-mode BN) = finite differences."""
    model, h1, h2 = tiny()
    wrapped = Penalised(model)
    names = ["net.enc1.0.weight", "net.enc1.2.weight", "net.enc2.0.weight"]
    base = dict(wrapped.named_parameters())

    def loss(*weights):
        return functional_call(wrapped, {**base, **dict(zip(names, weights))}, (h1, h2))

    weights = tuple(base[n].detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(loss, weights, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_score_second_derivatives_match_finite_differences():
    """gradgradcheck of s_c(h1, h2) through the encoders: the Hessian-vector products that the
    penalty's backward relies on are correct."""
    model, h1, h2 = tiny()

    def score(a, b):
        return cosine_score(*model.represent(a, b))

    inputs = (h1.clone().requires_grad_(True), h2.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(score, inputs, eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(score, inputs, eps=1e-6, atol=1e-5)


def test_penalty_value_is_mean_of_per_pair_elastic_nets():
    """Without batch coupling (eval-mode BN), the one-backward penalty equals
    (1/m) Σ_j Σ_i R(∂s_j/∂h_i,j) computed pair by pair."""
    model, h1, h2 = tiny()
    model.eval()
    h1, h2 = h1.requires_grad_(True), h2.requires_grad_(True)
    alpha = 0.3
    penalty = gradient_penalty(score_input_gradients(cosine_score(*model.represent(h1, h2)),
                                                     (h1, h2)), alpha=alpha)
    per_pair = []
    for j in range(h1.shape[0]):
        a, b = h1[j:j + 1].detach().requires_grad_(True), h2[j:j + 1].detach().requires_grad_(True)
        ga, gb = torch.autograd.grad(cosine_score(*model.represent(a, b)).sum(), (a, b))
        per_pair.append(elastic_net(ga, alpha) + elastic_net(gb, alpha))
    torch.testing.assert_close(penalty, torch.cat(per_pair).mean())
    manual = alpha * ga.abs().sum() + (1 - alpha) * ga.pow(2).sum()
    torch.testing.assert_close(elastic_net(ga, alpha)[0], manual)
