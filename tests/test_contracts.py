"""Contracts every registered method and every suite must meet (saliency ones included), so a
new method or suite is checked the moment it is registered."""
import pytest
import torch

from harness import registry
from harness.common import ConfigError
from harness.profiles import FAMILIES
from harness.suites import all_suites

CAPABILITIES = {"two_view", "ooi", "pairs"}
SUITES = all_suites()


@pytest.mark.parametrize("name", registry.list_methods())
def test_every_method_declares_what_it_can_run_and_has_the_code_for_it(name):
    spec = registry.get(name)
    assert spec.capabilities and set(spec.capabilities) <= CAPABILITIES, spec.capabilities
    if "two_view" in spec.capabilities:
        assert (spec.objective is None) != (spec.closed_form is None), "one of objective/closed_form"
    if {"ooi", "pairs"} & set(spec.capabilities):
        assert spec.score_model is not None
    assert any(s.accepts(spec) for s in SUITES.values()), "no suite can run it"
    for family in FAMILIES:
        grid = spec.grid_for(family)
        assert (spec.strength is None) == (len(grid) == 0), (family, grid)
        for value in grid:
            spec.check_strength(value)
        assert spec.title_for(family)


@pytest.mark.parametrize("suite_name", list(SUITES))
def test_every_suite_resolves_each_of_its_methods_at_every_grid_point(suite_name):
    suite = SUITES[suite_name]
    assert set(suite.methods) <= set(suite.known_methods()) and suite.methods
    assert suite.dims and callable(suite.render) and callable(suite.summary)
    for method in suite.known_methods():
        for strength in suite.grid(method) or (None,):
            cfg = suite.resolve({"method": method, "d": suite.dims[0], "strength": strength,
                                 "profile": "smoke", "seed": 1})
            assert cfg["method"] == method and cfg["epochs"] >= 1 and cfg["batch"] > cfg["d"]
            assert cfg["name"].startswith(f"{method}[d={suite.dims[0]},") and cfg["seed"] == 1
    outsiders = [m for m in registry.list_methods() if m not in suite.known_methods()]
    for method in outsiders:
        with pytest.raises(ConfigError, match=f"not part of suite {suite_name}"):
            suite.resolve({"method": method, "d": suite.dims[0], "profile": "smoke"})


SALIENCY_METHODS = [m for m in registry.list_methods()
                    if {"ooi", "pairs"} & set(registry.get(m).capabilities)]


@pytest.mark.parametrize("name", SALIENCY_METHODS)
def test_every_saliency_method_builds_a_score_model_with_finite_differentiable_scores(name):
    spec = registry.get(name)
    suite = next(s for s in SUITES.values() if s.accepts(spec) and s.family == "saliency")
    torch.manual_seed(0)
    h1, h2 = torch.randn(64, 6), torch.randn(64, 6)
    cfg = suite.resolve({"method": name, "d": 4, "profile": "smoke", "batch": 32})
    model, history = spec.score_model(cfg, (h1, h2), torch.device("cpu"), None, lambda m: None,
                                      "pairs" in spec.capabilities)
    if spec.constant_maps:
        assert model is None and history == []
        return
    kinds = ["cosine", "dot", "norm"] + (["individual"] if "pairs" in spec.capabilities else [])
    for kind in kinds:
        x = h1[:5].clone().requires_grad_(True)
        score = model.score_tensor(x, h2[:5], kind=kind, view=1)
        assert score.shape == (5,) and torch.isfinite(score).all(), kind
        (grad,) = torch.autograd.grad(score.sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, kind
