"""The contract every method must meet, as one function a plug-in author can call from their
own tests (the harness's tests call it for every registered method):

    from harness.contracts import check_method
    def test_my_method():
        check_method("my_method")

It raises AssertionError naming what is wrong: a saliency experiment no suite knows, a spec
whose defaults disagree with its pure loss, a grid value outside the valid range, a suite that
cannot resolve it, or a loss / score that is not finite or not differentiable on a tiny
random problem. (A part without its code, a two-view method with neither objective nor closed
form, is refused when the spec is made: `harness.registry.MethodSpec`.)"""
from __future__ import annotations

import inspect

import torch

from harness import registry
from harness.models import TwoViewModel
from harness.profiles import FAMILIES

CAPABILITIES = {"two_view", "ooi", "pairs"}


def check_method(name: str) -> None:
    spec = registry.get(name)
    from harness.suites import all_suites
    suites = [s for s in all_suites().values() if s.accepts(spec)]
    caps = set(spec.capabilities)
    assert caps and caps <= CAPABILITIES, f"{name}: capabilities {spec.capabilities} not in {CAPABILITIES}"
    assert suites, f"{name}: no registered suite accepts its capabilities"
    _check_defaults(spec)
    for family in FAMILIES:
        grid = spec.grid_for(family)
        assert (spec.strength is None) == (len(grid) == 0), \
            f"{name}: a strength needs a grid and a grid needs a strength ({family}: {grid})"
        for value in grid:
            spec.check_strength(value)
        assert spec.title_for(family), f"{name}: no title for {family}"
    for suite in suites:
        for strength in suite.grid(name) or (None,):
            cfg = suite.resolve({"method": name, "d": suite.dims[0], "strength": strength,
                                 "profile": "smoke", "seed": 1})
            assert cfg["name"].startswith(f"{name}[d={suite.dims[0]},"), cfg["name"]
    if spec.two_view is not None and spec.two_view.objective is not None:
        _check_objective(spec)
    if spec.saliency is not None:
        _check_score_model(spec, next(s for s in suites if s.family == "saliency"))


def _check_defaults(spec) -> None:
    for key, allowed in spec.choices.items():
        assert spec.defaults.get(key) in allowed, \
            f"{spec.name}: the default {key}={spec.defaults.get(key)!r} is not among its choices {allowed}"
    if spec.loss_fn is None:
        return
    keyword_defaults = {k: p.default for k, p in inspect.signature(spec.loss_fn).parameters.items()
                        if p.kind is p.KEYWORD_ONLY}
    assert keyword_defaults, f"{spec.name}: the pure loss should take its parameters by keyword"
    for key, value in keyword_defaults.items():
        assert key in spec.defaults and spec.defaults[key] == value, \
            f"{spec.name}: the loss's default {key}={value} is not the spec's {spec.defaults.get(key)}"
    assert spec.strength is None or spec.strength in spec.defaults


def _check_objective(spec, p: int = 12, d: int = 4) -> None:
    """Two steps on a planted problem: finite loss and terms, finite non-zero gradients."""
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(256, 3, generator=g)
    h1 = shared @ torch.randn(3, p, generator=g) + 0.5 * torch.randn(256, p, generator=g)
    h2 = shared @ torch.randn(3, p, generator=g) + 0.5 * torch.randn(256, p, generator=g)
    torch.manual_seed(0)
    model = TwoViewModel.for_method(spec, p, p, d, hidden=(16,))
    state = spec.two_view.fresh_state(d)
    params = spec.params()
    for step in range(2):
        model.zero_grad()
        terms = spec.two_view.objective(model, h1[step * 128:(step + 1) * 128],
                                        h2[step * 128:(step + 1) * 128], state, params)
        assert "loss" in terms and terms["loss"].ndim == 0, f"{spec.name}: no scalar 'loss'"
        assert all(torch.isfinite(v).all() for v in terms.values() if torch.is_tensor(v)), \
            f"{spec.name}: a loss term is not finite"
        terms["loss"].backward()
        grads = [q.grad for q in model.parameters() if q.grad is not None]
        assert grads and all(torch.isfinite(q).all() for q in grads), \
            f"{spec.name}: gradients missing or not finite"
        assert sum(q.abs().sum() for q in grads) > 0, f"{spec.name}: all gradients are zero"


def _check_score_model(spec, suite) -> None:
    """A score model on tiny random features: finite scores, finite non-zero input gradients
    for every score kind it is asked for (uniform maps: no model at all)."""
    torch.manual_seed(0)
    h1, h2 = torch.randn(64, 6), torch.randn(64, 6)
    cfg = suite.resolve({"method": spec.name, "d": 4, "profile": "smoke", "batch": 32})
    individual = "pairs" in spec.capabilities
    model, history = spec.saliency.score_model(cfg, (h1, h2), torch.device("cpu"), None,
                                               lambda m: None, individual)
    if spec.saliency.constant_maps:
        assert model is None and history == [], f"{spec.name}: constant maps come from no model"
        return
    for kind in ["cosine", "dot", "norm"] + (["individual"] if individual else []):
        x = h1[:5].clone().requires_grad_(True)
        score = model.score_tensor(x, h2[:5], kind=kind, view=1)
        assert score.shape == (5,) and torch.isfinite(score).all(), f"{spec.name}: {kind} score"
        (grad,) = torch.autograd.grad(score.sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, f"{spec.name}: {kind} gradient"
