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
        name="broken_nan", presentation=registry.Presentation("broken"), defaults={"s": 1.0},
        strength="s", grid=(0.5, 2.0), two_view=registry.TwoView(
            objective=lambda model, h1, h2, state, params: {
                "loss": model(h1, h2)[0].sum() * float("nan")})))
    try:
        with pytest.raises(AssertionError, match="broken_nan: a loss term is not finite"):
            check_method("broken_nan")
    finally:
        registry.unregister(broken.name)


def test_the_contract_check_catches_a_default_outside_its_choices():
    muc2m = registry.get("muc2m")
    bad = registry.register(registry.MethodSpec(
        name="broken_choice", presentation=registry.Presentation("broken"),
        defaults={**muc2m.defaults, "ind_score": "raw"}, strength="lam", grid=(5e-3,),
        loss_fn=muc2m.loss_fn, two_view=muc2m.two_view, choices=muc2m.choices))
    try:
        with pytest.raises(AssertionError, match="default ind_score='raw' is not among"):
            check_method("broken_choice")
    finally:
        registry.unregister(bad.name)


def test_a_spec_without_the_code_of_its_kind_is_refused_in_one_line():
    def fit(h1, h2, d, params):
        return None
    one_of = "exactly one of objective / closed_form"
    for parts, says in [({}, "has neither a two_view nor a saliency part"),
                        ({"two_view": registry.TwoView()}, one_of),
                        ({"two_view": registry.TwoView(objective=fit, closed_form=fit)}, one_of),
                        ({"saliency": registry.Saliency(score_model=None)}, "needs a score_model")]:
        with pytest.raises(ValueError, match=f"method 'bad'.*{says}") as refused:
            registry.MethodSpec(name="bad", presentation=registry.Presentation("bad"),
                                defaults={}, strength=None, **parts)
        assert "\n" not in str(refused.value)


def test_capabilities_follow_from_the_parts_a_method_has():
    assert registry.get("dcca").capabilities == ("two_view",)
    assert registry.get("contrastive").capabilities == ("ooi",)
    assert registry.get("base_a").capabilities == ("pairs",)
    assert registry.get("uniform").capabilities == ("ooi", "pairs")
    assert registry.get("muc2m").capabilities == ("two_view", "ooi", "pairs")
    assert registry.get("muc2m").title_for("saliency") == "MUC2M orig"
    assert registry.get("muc2m").title_for("two_view") == "MUC2M"


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


@pytest.mark.parametrize("suite_name", list(SUITES))
def test_every_suites_default_sweep_is_valid_under_every_profile(suite_name, tmp_path):
    """`harness.run --suite S --profile P` with no other flag plans trials that all resolve:
    its default methods at its default d for P (a d the profile's batch cannot whiten would
    stop the command at once)."""
    from harness import run
    from harness.planner import make_plan
    suite = SUITES[suite_name]
    for profile in run.PROFILES:
        args = run.parse_args(["--suite", suite_name, "--profile", profile])
        dims, n_search, seeds = run.plan_counts(args, suite, profile, None)
        batch = suite.profile(profile).batch
        assert dims and all(d < batch for d in dims), (profile, dims, batch)
        plan = make_plan(suite, profile, list(suite.methods), dims, None, n_search, seeds,
                         tmp_path, {})
        assert plan.trials, profile
        assert set(plan.methods) == set(suite.methods)  # every method's snapshot is taken


def test_the_two_view_summary_keeps_its_columns_for_long_method_names():
    """The one-screen table after a sweep: every line as wide as the header, whatever the
    longest method's name (barlow_twins, corrnet_orig), and each number under its d."""
    import pandas as pd
    from harness.ledger import SweepResults
    from harness.suites.two_view import summary
    rows = [{"method": m, "d": d, "phase": "", "status": "ok", "strength": 1.0,
             "strength_name": "s", "seed": 0, "val_corr_best": 1.0, "corr_heldout": 1.5 * d,
             "recog_acc": 50.0 + d / 10} for m in ("cca", "barlow_twins", "corrnet_orig")
            for d in (10, 50)]
    lines = summary(pd.DataFrame(rows), SweepResults([], [])).splitlines()
    assert len({len(line) for line in lines}) == 1, lines
    for line in lines[2:]:
        assert line.split()[1:] == ["15.0", "/", "51.0", "75.0", "/", "55.0"], line
    header_end = lines[0].index("d=50") + len("d=50")
    assert all(line.endswith("55.0") and len(line) == header_end for line in lines[2:])
