"""The whole protocol's ETA counts the phases a searched sweep has not planned yet."""
import pytest

from harness import eta, search
from harness.ledger import Plan
from harness.planner import make_plan, next_rung
from harness.record import TrialRecord
from harness.suites import get_suite


def plan_of(tmp_path, methods=("dcca",)):
    suite = get_suite("mnist_halves")
    return Plan.from_json(make_plan(suite, "quick", list(methods), [50], None, 9, 3, tmp_path,
                                    {}, search_mode="halving").to_json())


def test_remaining_trials_of_a_fresh_halving_plan_follow_the_protocols_shape(tmp_path):
    plan = plan_of(tmp_path)
    rungs = plan.trials[0]["rungs"]
    assert len(rungs) == 3
    left = eta.remaining_trials(plan, {})
    n1 = search.n_promoted(9)
    n2 = search.n_promoted(n1)
    expected = ([rungs[0]] * 9 + [rungs[1] - rungs[0]] * n1 + [rungs[2] - rungs[1]] * n2
                + [rungs[2]] * 3)  # the 3 reported seeds at the full budget
    assert sorted(e for *_, e in left) == sorted(expected)


def test_the_eta_scales_the_wall_time_so_far_by_work_left_over_work_done(tmp_path):
    plan = plan_of(tmp_path)
    rung0 = [t for t in plan.trials if t["rung"] == 0]
    # every rung-0 trial took 10 s for its epochs: seconds per epoch = 10 / rungs[0]
    finished = {t["name"]: TrialRecord(name=t["name"], method="dcca", d=50, phase="search",
                                       epochs=t["epochs"], train_seconds=10.0,
                                       metrics={"val_corr_best": float(i)})
                for i, t in enumerate(rung0)}
    ended = list(finished.values())
    plan.trials += next_rung(plan, finished, 0)
    rungs = rung0[0]["rungs"]
    left_epochs = sum(e for *_, e in eta.remaining_trials(plan, finished))
    done_epochs = 9 * rungs[0]
    # 90 s of wall time for the 9 trials (one slot): the rest at the same rate
    got = eta.protocol_eta(plan, finished, ended, elapsed_s=90.0)
    assert got == pytest.approx(90.0 * left_epochs / done_epochs)
    assert eta.protocol_eta(plan, {}, [], 10.0) is None


def test_trials_that_converge_early_shrink_the_estimate_of_planned_epochs(tmp_path):
    plan = plan_of(tmp_path)
    rung0 = [t for t in plan.trials if t["rung"] == 0]
    # each trained half its planned epochs before the rule stopped it
    finished = {t["name"]: TrialRecord(name=t["name"], method="dcca", d=50, phase="search",
                                       epochs=t["epochs"], train_seconds=5.0,
                                       metrics={"val_corr_best": 1.0,
                                                "epochs_trained": t["epochs"] / 2})
                for t in rung0}
    model = eta.CostModel({t["name"]: t for t in plan.trials}, list(finished.values()))
    assert model.share == pytest.approx(0.5)
    per_epoch = 5.0 / (rung0[0]["epochs"] / 2)  # seconds per epoch actually trained
    assert model.seconds("dcca", 50, 10) == pytest.approx(per_epoch * 10 * 0.5)
    assert eta.text(30) == "30 s" and eta.text(600) == "10 min" and eta.text(7200) == "2.0 h"
