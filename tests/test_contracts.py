"""Contracts every registered method and every suite must meet (saliency ones included), so a
new method or suite is checked the moment it is registered."""
import pytest

from harness import registry
from harness.common import ConfigError
from harness.contracts import check_method
from harness.suites import all_suites

SUITES = all_suites()


@pytest.mark.parametrize("name", registry.list_methods())
def test_every_registered_method_meets_the_plug_in_contract(name):
    check_method(name)


def test_the_contract_check_catches_a_broken_method():
    broken = registry.register(registry.MethodSpec(
        name="broken_nan", title="broken", defaults={"s": 1.0}, strength="s", grid=(0.5, 2.0),
        objective=lambda model, h1, h2, state, params: {
            "loss": model(h1, h2)[0].sum() * float("nan")}))
    try:
        with pytest.raises(AssertionError, match="broken_nan: a loss term is not finite"):
            check_method("broken_nan")
    finally:
        registry.unregister(broken.name)


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
