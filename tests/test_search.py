"""The search: sampling from each method's ranges, the edge flag, the choice on validation,
the tie marks of the tables, and a planted search problem run through Ray Tune."""
import csv
import dataclasses
import math
import time
import zlib

import numpy as np
import pandas as pd
import pytest

from harness import registry, report, run, search
from harness.record import TrialRecord
from harness.registry import MethodSpec, Presentation, TwoView
from harness.suites import register_suite, unregister_suite
from harness.suites.two_view import two_view_suite


def test_samples_cover_each_log_range_once_per_stratum():
    space = {"lam": (1e-4, 10.0), "lr": (1e-4, 1e-2)}
    configs = search.sample(space, 8, seed=3)
    assert len(configs) == 8
    for name, (lo, hi) in space.items():
        values = np.array([c[name] for c in configs])
        assert ((values >= lo) & (values <= hi)).all()
        # Latin hypercube: exactly one value in each eighth of the log range
        strata = np.floor([search.position(space[name], v) * 8 for v in values]).astype(int)
        assert sorted(strata) == list(range(8))
    assert configs == search.sample(space, 8, seed=3)  # seeded: a resume draws the same


def test_one_minus_range_samples_rho_below_one_and_maps_back():
    rng = (1e-3, 1.0, "1-")
    assert search.value_at(rng, 0.0) == pytest.approx(0.999)
    assert search.value_at(rng, 1.0) == pytest.approx(0.0)
    assert search.position(rng, 0.99) == pytest.approx(1 / 3)  # 1−ρ = 1e-2: a third of the way


def test_lin_range_samples_uniformly_and_zero_is_a_natural_end():
    rng = (0.0, 0.99, "lin")
    assert search.value_at(rng, 0.5) == pytest.approx(0.495)
    assert search.position(rng, 0.2475) == pytest.approx(0.25)
    values = [c["a"] for c in search.sample({"a": rng}, 4, seed=0)]
    assert sorted(int(v / 0.99 * 4) for v in values) == [0, 1, 2, 3]  # one per quarter
    spec = registry.get("softcca")  # alpha ∈ [0, 0.99]: α = 0 (per-batch) cannot go lower
    assert search.edge_flags(spec, {"lam": 1.0, "alpha": 0.0}) == []
    assert search.edge_flags(spec, {"lam": 1.0, "alpha": 0.985}) == ["alpha"]


def test_edge_flag_marks_a_bound_but_not_a_natural_end():
    spec = registry.get("sdcca")  # rho: 1−ρ ∈ [1e-3, 1] (ρ = 0 is its natural end); lr
    assert search.edge_flags(spec, {"rho": 0.0, "lr": 1e-3}) == []  # ρ = 0: cannot go lower
    assert search.edge_flags(spec, {"rho": 0.9989, "lr": 1e-3}) == ["rho"]
    assert search.edge_flags(spec, {"rho": 0.5, "lr": 1.1e-4}) == ["lr"]
    assert search.edge_flags(spec, {"rho": 0.5, "lr": 1e-3}) == []


def test_every_searched_method_has_its_default_strength_inside_its_range():
    for name in registry.list_methods():
        spec = registry.get(name)
        for param, rng in spec.search.items():
            value = spec.defaults.get(param) if param != "lr" else 1e-3
            assert 0.0 <= search.position(rng, value) <= 1.0, (name, param, value)


def _record(name, status, val, **kw):
    return TrialRecord(name=name, method="m", d=4, status=status, phase="search",
                       metrics={"val_corr_best": val}, **kw)


def test_choice_prefers_trials_that_ran_their_budget_and_reads_validation_only():
    records = [_record("a", "stopped", 9.0), _record("b", "ok", 5.0), _record("c", "ok", 6.0),
               _record("d", "diverged", math.nan)]
    assert search.choose(records).name == "c"  # the stopped trial's 9.0 came from fewer epochs
    assert search.choose([_record("a", "stopped", 3.0), _record("e", "stopped", 4.0)]).name == "e"
    assert search.choose([_record("d", "diverged", math.nan)]) is None


def test_tie_marks_follow_the_seed_spread():
    sel = pd.DataFrame([
        {"method": "a", "d": 50, "status": "ok", "n_seeds": 3, "x_mean": 10.0, "x_std": 0.5},
        {"method": "b", "d": 50, "status": "ok", "n_seeds": 3, "x_mean": 9.2, "x_std": 0.4},
        {"method": "c", "d": 50, "status": "ok", "n_seeds": 3, "x_mean": 8.0, "x_std": 0.5},
        {"method": "e", "d": 50, "status": "ok", "n_seeds": 1, "x_mean": 9.9, "x_std": 0.0}])
    assert report.marks(sel, "x") == {("a", 50): "best", ("b", 50): "tie"}
    assert report.marked("10.0", "best") == "**10.0**" and report.marked("9.2", "tie") == "9.2 ≈"


# --------------------------------------------------------------------- a planted search problem
# Validation peaks at lam = 1; the test metric grows with lam, so the configuration that wins on
# test (the largest lam) loses on validation. The search must stop poor trials early and pick
# the best on validation.
def planted_val(lam: float) -> float:
    return 10.0 - math.log10(lam) ** 2


def planted_test(lam: float) -> float:
    return 5.0 + math.log10(lam)


def planted_trial(config, data=None, checkpoint_dir=None, report=None, device=None, log=None,
                  suite=None):
    cfg, spec, device, log = suite.begin(config, device, log)
    lam, history = cfg["params"]["lam"], []
    for epoch in range(cfg["eval_every"], cfg["epochs"] + 1, cfg["eval_every"]):
        row = {"epoch": epoch, "val_corr": planted_val(lam) * math.sqrt(epoch / cfg["epochs"])}
        history.append(row)
        if report is not None:
            report(epoch, row)
        time.sleep(0.2)  # lets the scheduler see the other trials' rungs
    best = max(r["val_corr"] for r in history)
    if cfg["phase"] == "search":
        return TrialRecord.of(cfg, metrics={"val_corr_best": best}, history=history)
    test = planted_test(lam)
    return TrialRecord.of(cfg, history=history, metrics={
        "val_corr_best": best, "corr_heldout": test, "corr_refit": test, "corr_floor": 0.0,
        "corr_diag": test, "recog_acc": 50.0, "recog_acc_swapped": 50.0, "n_components": cfg["d"],
        "best_epoch": cfg["epochs"], "resumed_from": 0})


@pytest.fixture
def planted_search_problem():
    registry.register(MethodSpec(
        name="planted", presentation=Presentation("Planted"), defaults={"lam": 1.0},
        strength="lam", grid=(1.0,), search={"lam": (1e-3, 1e3)},
        two_view=TwoView(objective=lambda *a: None)))
    register_suite(two_view_suite("planted_search", "a search problem with a planted optimum",
                                  lambda profile, options: {}, dims=(4,),
                                  run_trial=planted_trial))
    yield
    registry.unregister("planted")
    unregister_suite("planted_search")


@pytest.mark.sweep
def test_search_halves_on_validation_and_selects_on_validation_only(
        planted_search_problem, tmp_path, capsys):
    out = tmp_path / "runs"
    code = run.main(["--suite", "planted_search", "--profile", "smoke", "--methods", "planted",
                     "--search", "halving", "--search-trials", "9", "--seeds", "3", "--epochs",
                     "9", "--out", str(out)])
    assert code == 0, capsys.readouterr().err[-3000:]
    with open(out / "planted_search-smoke" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    tried = [r for r in rows if r["phase"] == "search"]
    reported = [r for r in rows if r["phase"] == ""]
    by_epochs = {e: [r for r in tried if int(r["epochs"]) == e] for e in (1, 3, 9)}
    assert [len(by_epochs[e]) for e in (1, 3, 9)] == [9, 3, 2]  # rungs at 1/9, 1/3, all
    assert all(not math.isfinite(float(r["corr_heldout"] or "nan")) for r in tried)
    # each rung's survivors are the best of the rung below on validation
    for low, high in ((1, 3), (3, 9)):
        ranked = sorted(by_epochs[low], key=lambda r: -float(r["val_corr_best"]))
        assert {r["param_lam"] for r in by_epochs[high]} == \
            {r["param_lam"] for r in ranked[:len(by_epochs[high])]}
    # the method's default (lam = 1, its reference) is always among the configurations
    assert any(float(r["param_lam"]) == 1.0 for r in by_epochs[1])
    best_val = max(by_epochs[9], key=lambda r: float(r["val_corr_best"]))
    lams = [float(r["param_lam"]) for r in by_epochs[1]]
    test_winner = max(lams, key=planted_test)
    assert sorted(int(r["seed"]) for r in reported) == [0, 1, 2]
    chosen = {float(r["param_lam"]) for r in reported}
    assert chosen == {float(best_val["param_lam"])}  # the best on validation, rerun 3 times
    assert test_winner not in chosen and planted_test(test_winner) > planted_test(chosen.pop())
    table1 = (out / "planted_search-smoke" / "table1.md").read_text()
    assert "9 tried, 2 at the full budget" in table1


def test_successive_halving_selects_the_same_whatever_order_trials_finish_in(tmp_path):
    """One search plan, its trials' records arriving in shuffled orders: the promotions of
    every rung and the final selection of every cell are the same each time."""
    import random

    from harness.ledger import Plan
    from harness.planner import make_plan, next_rung, plan_selected
    from harness.record import TrialRecord
    from harness.suites import get_suite
    suite = get_suite("mnist_halves")
    methods = ["dcca", "sdcca", "softcca"]
    fresh = make_plan(suite, "quick", methods, [50, 200], None, 9, 3, tmp_path, {},
                      search_mode="halving")
    assert {len([t for t in fresh.trials if t["method"] == m and t["d"] == 50])
            for m in methods} == {9}

    def score(trial):  # a fixed validation score per configuration and rung, ties included
        return float(zlib.crc32(trial["config"].encode()) % 7) + trial["rung"]

    selections = set()
    for order_seed in range(5):
        plan = Plan.from_json(fresh.to_json())
        finished, rung = {}, 0
        rng = random.Random(order_seed)
        while True:
            trials = [t for t in plan.trials if t.get("rung") == rung]
            if not trials:
                break
            rng.shuffle(trials)  # the order Ray happens to finish them in
            for t in trials:
                finished[t["name"]] = TrialRecord(
                    name=t["name"], method=t["method"], d=t["d"], seed=t["seed"], phase="search",
                    epochs=t["epochs"], lr=t["lr"], params=t["params"],
                    metrics={"val_corr_best": score(t)})
            plan.trials += next_rung(plan, finished, rung)
            rung += 1
        chosen, notes = plan_selected(suite, plan, list(finished.values()), tmp_path, {})
        full = [t for t in plan.trials if t.get("rung") == 2]
        references = {t["config"] for t in plan.trials if t.get("reference")}
        # at the full budget: at least 2 per cell, and every reference whatever it scored
        assert not notes and len(full) >= 2 * len(methods) * 2
        assert references and references <= {t["config"] for t in full}
        selections.add(tuple(sorted(c["name"] for c in chosen)))
    assert len(selections) == 1


def test_a_reference_last_at_every_low_rung_still_reaches_the_full_budget_and_can_win(tmp_path):
    """A slow learner: the method's reference setting scores last at 1/9 and 1/3 of the
    budget and best at the full one. Successive halving carries it on, and it is selected;
    the best third of each rung goes on beside it, as without it."""
    from harness.ledger import Plan
    from harness.planner import make_plan, next_rung, plan_selected
    from harness.record import TrialRecord
    from harness.suites import get_suite
    suite = get_suite("mnist_halves")
    plan = Plan.from_json(make_plan(suite, "quick", ["dcca"], [50], None, 9, 3, tmp_path, {},
                                    search_mode="halving").to_json())
    reference = [t["config"] for t in plan.trials if t.get("reference")]
    assert len(reference) == 1 and search.config_index(reference[0]) == 0  # its defaults

    def score(trial):  # the reference: last until the full budget, then first
        i, last = search.config_index(trial["config"]), trial["rung"] == 2
        return (100.0 if last else 0.0) if i == 0 else 10.0 + i + trial["rung"]

    finished = {}
    for rung in range(3):
        trials = [t for t in plan.trials if t.get("rung") == rung]
        for t in trials:
            finished[t["name"]] = TrialRecord(
                name=t["name"], method="dcca", d=50, seed=t["seed"], phase="search",
                epochs=t["epochs"], lr=t["lr"], params=t["params"],
                metrics={"val_corr_best": score(t)})
        promoted = next_rung(plan, finished, rung)
        if rung < 2:
            kept = sorted(search.config_index(t["config"]) for t in promoted)
            best = sorted(range(1, 9), reverse=True)[:search.n_promoted(len(trials))]
            assert kept == sorted([0] + best)  # the best third, and the reference
        plan.trials += promoted
    chosen, _ = plan_selected(suite, plan, list(finished.values()), tmp_path, {})
    assert {c["params"]["ridge"] for c in chosen} == {
        t["params"]["ridge"] for t in plan.trials if t["config"] == reference[0]}


def test_reported_trial_names_carry_every_searched_value():
    from harness.planner import selected_name
    from harness.suites import run_name
    a = selected_name("sdcca", 50, {"rho": 0.16, "lr": 1e-3}, 0)
    b = selected_name("sdcca", 50, {"rho": 0.16, "lr": 2e-3}, 0)
    assert a == "sdcca[d=50,rho=0.16,lr=0.001,seed=0]" and a != b  # a changed lr reruns
    # one searched value: the grid's name, so the two kinds of trial read alike
    assert selected_name("dcca", 50, {"ridge": 6.17185e-05}, 2) == run_name(
        "dcca", 50, "ridge", 6.17185e-05, 2)


def test_a_cell_still_improving_at_its_last_epoch_is_unconverged_and_left_unranked():
    """Rising (the last validation pass beats all before it by more than 0.5 %) is flagged;
    a plateau is not; with no recorded curve, a best epoch at the last epoch is rising; a
    closed form never is. A d with a flagged cell gets no bold or ≈ at all."""
    from harness.ledger import Catalog, MethodInfo
    from harness.suites.two_view import unconverged_cells
    catalog = Catalog({"cca": MethodInfo(name="cca", title="CCA", order=0, closed_form=True),
                       "a": MethodInfo(name="a", title="A", order=1),
                       "b": MethodInfo(name="b", title="B", order=2),
                       "c": MethodInfo(name="c", title="C", order=3)})
    rows = [("cca", 0, 0), ("a", 10, 10), ("b", 10, 10), ("c", 10, 10)]
    df = pd.DataFrame([{"name": m, "method": m, "d": 8, "status": "ok", "phase": "",
                        "strength": float("nan"), "best_epoch": best, "epochs": epochs}
                       for m, best, epochs in rows])
    sel = df.assign(n_seeds=1)[["method", "d", "status", "strength"]]
    history = {"a": [{"val_corr": 10.0}, {"val_corr": 12.0}],     # +20 %: rising
               "b": [{"val_corr": 10.0}, {"val_corr": 10.02}]}    # +0.2 %: a plateau
    assert unconverged_cells(df, sel, catalog, history) == {("a", 8), ("c", 8)}  # c: no curve
    cells = pd.DataFrame([{"method": m, "d": 8, "status": "ok", "n_seeds": 3,
                           "x_mean": v, "x_std": 0.1} for m, v in (("a", 9.0), ("b", 5.0))])
    assert report.marks(cells, "x") == {("a", 8): "best"}
    assert report.marks(cells, "x", exclude={("a", 8)}) == {}  # no "best" beside unfinished
    assert report.marks(cells, "x", exclude={("a", 9)}) == {("a", 8): "best"}


def test_outer_ends_and_extended_ranges_keep_their_sampling_scale():
    spec = registry.get("dcca")
    rng = (1e-6, 1e-2)
    narrow = dataclasses.replace(spec, search={"ridge": rng})
    assert search.outer_ends(narrow, {"ridge": 1e-2}) == {"ridge": "hi"}
    assert search.outer_ends(narrow, {"ridge": 1.3e-6}) == {"ridge": "lo"}  # u ≈ 0.03
    assert search.outer_ends(narrow, {"ridge": 1e-4}) == {}  # the middle
    # log: the end moves by half the width in log space (two decades of four)
    assert search.extended(rng, "hi") == pytest.approx((1e-6, 1.0, "log"))
    assert search.extended((0.0, 0.6, "lin"), "hi") == pytest.approx((0.0, 0.9, "lin"))
    # "1-" ranges hold 1 − value: moving their lo end brings the value nearer 1
    lo, hi, kind = search.extended((1e-2, 1.0, "1-"), "lo")
    assert kind == "1-" and lo == pytest.approx(1e-3) and hi == 1.0
    # an end that cannot move (every move past it is refused) is natural: no widening
    assert search.widened(narrow, {"ridge": 1e-2}, lambda name, v: v <= 1e-2) == {}
    moves = search.widened(narrow, {"ridge": 1e-2}, lambda name, v: True)
    (new, (a, b)), = moves.values()
    assert (a, b) == pytest.approx((2 / 3, 1.0))  # only the new third is sampled
    assert search.value_at(new, a) == pytest.approx(1e-2)


def test_a_cell_selected_at_the_edge_is_searched_again_past_it_once(tmp_path, monkeypatch):
    """The widening rule on a halving plan: Deep CCA's range narrowed so that its reference
    ridge (1e-3) is the range's top and scores best: the cell is searched again with ridges
    above 1e-3 only, halved on its own, and the choice is made among both rounds; a second
    widening is not planned. A cell selected inside its range is not widened."""
    from harness.ledger import Plan
    from harness.planner import cell_ranges, make_plan, next_rung, plan_selected, widen
    from harness.suites import get_suite
    spec = registry.get("dcca")
    monkeypatch.setitem(registry._REGISTRY, "dcca",
                        dataclasses.replace(spec, search={"ridge": (1e-8, 1e-3)}))
    suite = get_suite("mnist_halves")
    plan = make_plan(suite, "quick", ["dcca"], [50], None, 9, 3, tmp_path, {},
                     search_mode="halving")
    plan = Plan.from_json(plan.to_json())

    def run_rungs(score):
        finished, rung = {}, 0
        while True:
            trials = [t for t in plan.trials if t.get("rung") == rung]
            if not trials:
                return finished
            for t in trials:
                finished[t["name"]] = TrialRecord(
                    name=t["name"], method="dcca", d=50, seed=t["seed"], phase="search",
                    epochs=t["epochs"], lr=t["lr"], params=t["params"],
                    metrics={"val_corr_best": score(t["params"]["ridge"])})
            plan.trials += next_rung(plan, finished, rung)
            rung += 1

    finished = run_rungs(lambda ridge: math.log10(ridge))  # the larger the better
    wider = widen(suite, plan, finished, tmp_path, {})
    assert len(wider) == 9 and {t["round"] for t in wider} == {1}
    assert all(1e-3 < t["params"]["ridge"] <= 10 ** (-3 + 2.5) for t in wider)
    assert {search.config_index(t["name"]) for t in wider} == set(range(9, 18))
    plan.trials += wider
    finished = run_rungs(lambda ridge: -abs(math.log10(ridge) + 2))  # peak at 1e-2
    assert [t for t in plan.trials if t.get("round") == 1 and t["rung"] == 2]
    assert widen(suite, plan, finished, tmp_path, {}) == []  # once
    chosen, _ = plan_selected(suite, plan, list(finished.values()), tmp_path, {})
    best = chosen[0]["params"]["ridge"]
    assert 1e-3 < best and abs(math.log10(best) + 2) < 0.5  # chosen past the old top
    assert cell_ranges(plan, "dcca", 50)["ridge"][1] == pytest.approx(10 ** -0.5)

    # a selection inside the range: nothing to widen
    plan = Plan.from_json(make_plan(suite, "quick", ["dcca"], [50], None, 9, 3, tmp_path, {},
                                    search_mode="halving").to_json())
    finished = run_rungs(lambda ridge: -abs(math.log10(ridge) + 5.5))
    assert widen(suite, plan, finished, tmp_path, {}) == []


def test_quick_rungs_are_fractions_of_its_rung_budget_and_end_at_the_cap():
    from harness.planner import rungs_of
    from harness.suites import get_suite
    suite = get_suite("mnist_halves")
    rung_budget = suite.profile("quick").rung_budget
    assert rungs_of(suite, "quick", 300) == [math.ceil(rung_budget / 9),
                                             math.ceil(rung_budget / 3), 300]
    assert rungs_of(suite, "smoke", 4) == [1, 2, 4]  # no rung budget: fractions of the cap
    assert rungs_of(suite, "quick", 40) == [5, 14, 40]  # a cap below the rung budget


def test_a_reference_left_at_a_low_rung_is_compared_with_the_selection_at_that_rung():
    from harness.suites.two_view import search_diagnostics

    def row(i, epochs, val):
        return {"name": f"dcca[d=50,ridge=1,search={i},epochs={epochs}]", "status": "ok",
                "epochs": epochs, "val_corr_best": val}
    trials = pd.DataFrame([row(0, 17, 40.0), row(1, 17, 41.0), row(2, 17, 42.5),
                           row(1, 50, 44.0), row(2, 50, 45.0),
                           row(1, 300, 46.0), row(2, 300, 46.5)])
    diag = search_diagnostics(trials, references=True)
    assert diag["n_full_budget"] == 2 and diag["val_margin_runner_up"] == pytest.approx(0.5)
    # the selection (config 2) scored 42.5 at 17 epochs, where the reference stopped at 40.0
    assert diag["val_margin_reference"] == pytest.approx(2.5)
    assert diag["reference_epochs"] == 17
    assert math.isnan(search_diagnostics(trials, references=False)["val_margin_reference"])


def test_strengths_default_plans_one_trial_per_method_at_its_registry_defaults(tmp_path):
    """`--strengths default`: the paper-profile spot check's plan, each method as its authors
    set it, one seed."""
    from harness import registry
    from harness.planner import make_plan
    from harness.run import parse_strengths
    from harness.suites import get_suite
    assert parse_strengths("default") == [None] and parse_strengths("0.1,1") == [0.1, 1.0]
    assert parse_strengths(None) is None
    methods = ["muc2m", "sdcca", "softcca", "dcca"]
    plan = make_plan(get_suite("mnist_halves"), "paper", methods, [200], [None], 0, 1, tmp_path,
                     {})
    assert sorted(t["method"] for t in plan.trials) == sorted(methods)
    for trial in plan.trials:
        spec = registry.get(trial["method"])
        assert trial["params"] == spec.defaults and trial["seed"] == 0
        assert trial["epochs"] == 1000 and trial["lr"] == 2e-4  # as the paper trains
