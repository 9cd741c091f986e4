"""Every registered gradient objective: decreases on a small problem, finite on degenerate input."""
import inspect

import pytest
import torch

from harness.models import TwoViewModel
from harness.registry import get, list_methods

GRADIENT_METHODS = [m for m in list_methods()
                    if get(m).two_view is not None and get(m).two_view.objective is not None]


def planted_problem(n=512, p=12, shared=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, shared, generator=g)
    h1 = s @ torch.randn(shared, p, generator=g) + 0.5 * torch.randn(n, p, generator=g)
    h2 = s @ torch.randn(shared, p, generator=g) + 0.5 * torch.randn(n, p, generator=g)
    return h1, h2


def small_model(spec, p=12, d=4):
    torch.manual_seed(0)
    two_view = spec.two_view
    return TwoViewModel(p, p, d, batchnorm=two_view.batchnorm, decoders=two_view.decoders,
                        hidden=(32,))


def fresh_state(spec, d=4):
    return spec.two_view.fresh_state(d)


def test_every_method_is_registered():
    assert set(list_methods()) >= {"cca", "dcca", "dccae", "corrnet", "sdcca", "softcca", "muc2m"}


@pytest.mark.parametrize("name", list_methods())
def test_spec_defaults_match_the_loss_signature(name):
    spec = get(name)
    if spec.loss_fn is None:
        return
    sig = inspect.signature(spec.loss_fn)
    keyword_defaults = {k: p.default for k, p in sig.parameters.items()
                        if p.kind is p.KEYWORD_ONLY}
    assert keyword_defaults, f"{name}: the pure loss should take its parameters by keyword"
    for key, value in keyword_defaults.items():
        assert spec.defaults[key] == value, (name, key)
    assert spec.strength in spec.defaults
    for value in spec.grid:
        spec.check_strength(value)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_loss_decreases_on_a_small_synthetic_problem(name):
    spec = get(name)
    h1, h2 = planted_problem()
    model, state = small_model(spec), fresh_state(spec)
    params = spec.params(overrides={"gamma": 0.01} if "gamma" in spec.defaults else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        model.train()
        terms = spec.two_view.objective(model, h1, h2, state, params)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(float(terms["loss"].detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.05 * abs(first), (first, last)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_loss_and_gradients_stay_finite_with_duplicated_columns(name):
    spec = get(name)
    h1, h2 = planted_problem()
    h1 = torch.cat([h1[:, :6], h1[:, :6]], 1)  # duplicated input columns
    model, state = small_model(spec), fresh_state(spec)
    with torch.no_grad():  # duplicated output columns: repeated singular values downstream
        for enc in (model.enc1, model.enc2):
            enc[-1].weight[2:] = enc[-1].weight[:2]
            enc[-1].bias[2:] = enc[-1].bias[:2]
    params = spec.params(overrides={"gamma": 0.01} if "gamma" in spec.defaults else None)
    for _ in range(2):  # the second step exercises the running statistics
        terms = spec.two_view.objective(model, h1, h2, state, params)
        model.zero_grad()
        terms["loss"].backward()
        assert torch.isfinite(terms["loss"])
        for p in model.parameters():
            assert p.grad is None or torch.isfinite(p.grad).all()
