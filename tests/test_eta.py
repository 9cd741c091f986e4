"""The whole protocol's ETA counts the phases a searched sweep has not planned yet."""
import json

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
    # the best third, at least two, and the method's reference (its defaults), counted as if
    # it were not among them
    n1 = search.n_promoted(9) + 1
    n2 = search.n_promoted(n1) + 1
    expected = ([rungs[0]] * 9 + [rungs[1] - rungs[0]] * n1 + [rungs[2] - rungs[1]] * n2
                + [rungs[2]] * 3)  # the 3 reported seeds at the full budget
    assert eta.epochs_at_most(left) == sum(expected) and len(left) == len(expected)
    # before any trial has converged, a trial at its full budget counts the profile's
    # expectation (its rung budget, 3 × the middle rung), not its cap
    model = eta.CostModel({}, [], eta.prior_epochs(plan))
    assert eta.prior_epochs(plan) == 3 * rungs[1] < rungs[2]
    assert sum(model.epochs_left(t) for t in left) == pytest.approx(
        9 * rungs[0] + n1 * (rungs[1] - rungs[0]) + n2 * (3 * rungs[1] - rungs[1])
        + 3 * 3 * rungs[1])


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
    model = eta.CostModel({t["name"]: t for t in plan.trials}, ended, eta.prior_epochs(plan))
    left_epochs = sum(model.epochs_left(t) for t in eta.remaining_trials(plan, finished))
    done_epochs = 9 * rungs[0]
    # 90 s of wall time for the 9 trials (one slot): the rest at the same rate
    got = eta.protocol_eta(plan, finished, ended, elapsed_s=90.0)
    assert got == pytest.approx(90.0 * left_epochs / done_epochs)
    assert eta.protocol_eta(plan, {}, [], 10.0) is None


def test_trials_that_converged_set_what_the_others_at_full_budget_count(tmp_path):
    plan = plan_of(tmp_path)
    full = plan.trials[0]["rungs"][-1]
    reported = {"name": "r0", "method": "dcca", "d": 50, "epochs": full, "patience": 6}
    record = TrialRecord(name="r0", method="dcca", d=50, epochs=full, train_seconds=40.0,
                         metrics={"epochs_trained": 80.0, "converged": 1.0})
    model = eta.CostModel({"r0": reported}, [record], eta.prior_epochs(plan))
    assert model.seconds("dcca", 50, 10) == pytest.approx(40.0 / 80 * 10)
    # what r0 took, shrunk towards the prior (3 × the middle rung, worth PRIOR_WEIGHT trials)
    prior = eta.prior_epochs(plan)
    assert prior == 3 * plan.trials[0]["rungs"][-2]
    assert model.epochs_left({**reported, "name": "r1"}) == pytest.approx(
        (80 + eta.PRIOR_WEIGHT * prior) / (1 + eta.PRIOR_WEIGHT))
    # another method is not pulled by Deep CCA's pace: it is expected at the prior
    assert model.epochs_left({**reported, "name": "c0", "method": "corrnet"}) == prior
    low = {"method": "dcca", "d": 50, "epochs": 17, "rung": 0, "rungs": [17, 50, full],
           "patience": 6}
    assert model.epochs_left(low) == 17  # a low rung trains its epochs
    assert eta.text(30) == "30 s" and eta.text(600) == "10 min" and eta.text(7200) == "2.0 h"


def test_a_closed_forms_fits_do_not_price_the_trained_methods(tmp_path):
    """CCA's fits end first and take a second: the trained methods' epochs must not be
    priced from them (a seconds-per-'epoch' of a fit is not an epoch)."""
    plan = plan_of(tmp_path, methods=("cca", "dcca"))
    by_name = {t["name"]: t for t in plan.trials}
    fits = [TrialRecord(name=t["name"], method="cca", d=50, phase="search", epochs=t["epochs"],
                        train_seconds=1.0, metrics={"val_corr_best": 1.0})
            for t in plan.trials if t["method"] == "cca"]
    dcca = [t for t in plan.trials if t["method"] == "dcca"][0]
    trained = TrialRecord(name=dcca["name"], method="dcca", d=50, phase="search",
                          epochs=dcca["epochs"], train_seconds=dcca["epochs"] * 2.0,
                          metrics={"val_corr_best": 1.0})
    model = eta.CostModel(by_name, fits + [trained], eta.prior_epochs(plan))
    assert model.epochs_left(by_name[fits[0].name]) == 1  # a fit, not its planned epochs
    assert model.seconds("cca", 50, 1) == pytest.approx(1.0)
    assert model.seconds("dcca", 50, 10) == pytest.approx(20.0)  # 2 s an epoch
    assert model.fallback == pytest.approx(2.0)  # priced from the trained method only


def test_a_resumed_sweep_counts_its_later_rungs_finished_before_as_done(tmp_path):
    """Resumed after its whole protocol ran once, a plan holds only rung 0 again (later rungs
    are re-planned as it reaches them): the ledger's rung 1, rung 2 and reported trials are not
    left to run, and their epochs to convergence price what is."""
    plan = plan_of(tmp_path)
    rungs = plan.trials[0]["rungs"]
    finished = {t["name"]: TrialRecord(name=t["name"], method="dcca", d=50, phase="search",
                                       epochs=t["epochs"], train_seconds=10.0,
                                       metrics={"val_corr_best": 1.0}) for t in plan.trials}
    # the best third, at least two, and the method's reference (its defaults), counted as if
    # it were not among them
    n1 = search.n_promoted(9) + 1
    n2 = search.n_promoted(n1) + 1
    later = ([("search", rungs[1])] * n1 + [("search", rungs[2])] * n2 + [("", rungs[2])] * 3)
    for i, (phase, epochs) in enumerate(later):
        finished[f"earlier{i}"] = TrialRecord(name=f"earlier{i}", method="dcca", d=50,
                                              phase=phase, epochs=epochs, train_seconds=1.0,
                                              metrics={"epochs_trained": 70.0})
    assert eta.remaining_trials(plan, finished) == []
    model = eta.CostModel({t["name"]: t for t in plan.trials}, list(finished.values()),
                          eta.prior_epochs(plan))
    # the earlier reported trials took 70 epochs: they, not only the prior, set the
    # expectation (search trials not re-planned yet do not say their rung, so do not count)
    n_full = 3
    assert model.converging[("dcca", 50)] == pytest.approx(
        (70.0 * n_full + eta.PRIOR_WEIGHT * eta.prior_epochs(plan)) / (n_full + eta.PRIOR_WEIGHT))
    # only part of the later rungs ran: the rest is left (2 reported seeds here)
    del finished["earlier%d" % (len(later) - 1)], finished["earlier%d" % (len(later) - 2)]
    left = eta.remaining_trials(plan, finished)
    assert [(t.get("rung"), t["epochs"]) for t in left] == [(None, rungs[2])] * 2


def test_running_trials_count_the_epochs_they_reported_and_earlier_runs_price_each_method(
        tmp_path):
    """Every rung-0 trial of Deep CCA cost 1 s an epoch. The sweep has finished 8 of the 9,
    all of which price the method; this run (90 s so far) trained the 8th of them, and the
    9th is running and has reported half its epochs."""
    plan = plan_of(tmp_path)
    rung0 = [t for t in plan.trials if t["rung"] == 0]
    e0 = rung0[0]["epochs"]

    def record(t):
        return TrialRecord(name=t["name"], method="dcca", d=50, phase="search",
                           epochs=t["epochs"], train_seconds=float(e0),
                           metrics={"val_corr_best": 1.0})
    finished = {t["name"]: record(t) for t in rung0[:8]}
    ended = [finished[rung0[7]["name"]]]  # the one this run trained
    running = {rung0[8]["name"]: e0 // 2}
    model = eta.CostModel({t["name"]: t for t in plan.trials}, list(finished.values()),
                          eta.prior_epochs(plan))
    assert model.seconds("dcca", 50, 10) == pytest.approx(10.0)  # 1 s an epoch
    left = sum(model.seconds(t["method"], t["d"], model.epochs_left(t))
               for t in eta.remaining_trials(plan, finished)) - e0 // 2
    done = e0 + e0 // 2
    got = eta.protocol_eta(plan, finished, ended, elapsed_s=90.0, in_flight=running)
    assert got == pytest.approx(90.0 * left / done)
    # without the running trial's epochs, the same wall time would be read as slower work
    assert eta.protocol_eta(plan, finished, ended, elapsed_s=90.0) == pytest.approx(
        90.0 * (left + e0 // 2) / e0)


def test_sweep_eta_computes_once_per_trial_end_and_again_on_news_or_time(tmp_path,
                                                                          monkeypatch):
    """The progress log and the live view both ask at a trial's end: one computation serves
    both; a new report from a running trial, or a second passing, computes it again."""
    plan = plan_of(tmp_path)
    rung0 = [t for t in plan.trials if t["rung"] == 0]
    computed = []
    monkeypatch.setattr(eta, "protocol_eta",
                        lambda plan, fin, ended, elapsed, in_flight: computed.append(
                            (elapsed, dict(in_flight))) or 100.0 + elapsed)
    now = [1000.0]
    finished, ended = {}, []
    sweep_eta = eta.SweepEta(plan, finished, ended, clock=lambda: now[0])
    first, second = rung0[0]["name"], rung0[1]["name"]
    assert sweep_eta.seconds({first: 5, second: 3}) == 100.0
    now[0] += 30.0
    rec = TrialRecord(name=first, method="dcca", d=50, phase="search")
    finished[first] = rec
    ended.append(rec)
    assert sweep_eta.seconds() == 130.0                      # the log, at the trial's end
    assert sweep_eta.seconds({second: 3}) == 130.0           # the view, the ended one gone
    assert len(computed) == 2
    assert sweep_eta.seconds({second: 4}) == 130.0 and len(computed) == 3  # a new report
    assert computed[-1][1] == {second: 4}
    now[0] += 2.0
    assert sweep_eta.seconds() == 132.0 and len(computed) == 4  # time has passed
    # a phase's start plans trials (the next rung, the reported ones) within the same second
    # as the last trial's end: the estimate must count them, not serve the old answer
    plan.trials.append({**rung0[2], "name": "planned-now"})
    assert sweep_eta.seconds() == 132.0 and len(computed) == 5


def test_the_eta_logged_at_a_trial_end_is_the_one_its_line_shows(tmp_path):
    """The progress log asks at a trial's end, before the live line: it must count the
    running trials as they are then, not as the last line saw them (a trial started since
    was missing, and the first Deep CCA trial's logged ETA was 175 minutes where its line
    said 2.2 hours)."""
    import io
    import re
    from types import SimpleNamespace

    from harness.tune import SweepCallback
    plan = plan_of(tmp_path)
    first, second = [t for t in plan.trials if t["rung"] == 0][:2]
    finished, ended, logged = {}, [], []
    now = [1000.0]
    sweep_eta = eta.SweepEta(plan, finished, ended, clock=lambda: now[0])

    def on_result(record):  # as harness.sweep's: keep the trial, then log the ETA
        finished[record.name] = record
        ended.append(record)
        logged.append(sweep_eta.seconds())

    stream = io.StringIO()
    view = SweepCallback(9, on_result, stream=stream,
                         protocol_eta=lambda in_flight: eta.text(sweep_eta.seconds(in_flight)))

    def tune_trial(t, status="RUNNING", last_result=None):
        return SimpleNamespace(config={"trial": t}, status=status, last_result=last_result)

    one = tune_trial(first)
    view.on_trial_start(0, [one], one)
    view.on_trial_result(0, [one], one, {"epoch": 5, "val_corr": 30.0})  # a line: one runs
    two = tune_trial(second)
    view.on_trial_start(0, [one, two], two)  # started since the last line
    view.on_trial_result(0, [one, two], two, {"epoch": 10, "val_corr": 30.0})  # no line
    now[0] += 20.0
    final = json.dumps({"name": first["name"], "method": "dcca", "d": 50, "status": "ok",
                        "phase": "search", "epochs": first["epochs"], "train_seconds": 20.0,
                        "metrics": {"val_corr_best": 30.0}})
    done = tune_trial(first, "TERMINATED", {"final": final})
    view.on_trial_complete(0, [done, two], done)
    shown = re.findall(r", (\S+ \S+) in all\]", stream.getvalue().splitlines()[-1])
    assert shown == [eta.text(logged[-1])]
    # the logged one counts the second trial's 10 epochs as done
    assert logged[-1] == pytest.approx(
        eta.protocol_eta(plan, finished, ended, 20.0, {second["name"]: 10}))
    assert logged[-1] != pytest.approx(eta.protocol_eta(plan, finished, ended, 20.0, {}))


def test_a_failing_estimate_is_none_and_never_raises(tmp_path, monkeypatch):
    plan = plan_of(tmp_path)
    monkeypatch.setattr(eta, "protocol_eta", lambda *a: 1 / 0)
    assert eta.SweepEta(plan, {}, []).seconds({}) is None


def _write_progress(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_eta_check_compares_each_estimate_with_the_time_really_left(tmp_path):
    """A run that ends at t = 1000 s: trial k ends at t = 100 k and its ETA is the true time
    left, except the 9th's (three times it); the check starts at the 5th."""
    from harness.progress import check_eta, read_runs
    rows = [{"time": 0.0, "event": "start", "resume": False}]
    for k in range(1, 10):
        left = 1000.0 - 100 * k
        eta_s = 3 * left if k == 9 else left
        rows.append({"time": 100.0 * k, "event": "ended", "trial": f"t{k}", "ended_in_run": k,
                     "eta_s": eta_s})
    rows.append({"time": 970.0, "event": "ended", "trial": "t10", "ended_in_run": 10,
                 "eta_s": 0.0})  # 30 s left (the tables): below a minute, not checked
    rows.append({"time": 1000.0, "event": "finished"})
    # a second, resumed run, killed before it finished: its truth is unknown
    rows += [{"time": 2000.0, "event": "start", "resume": True},
             {"time": 2100.0, "event": "ended", "trial": "u", "ended_in_run": 1, "eta_s": 60}]
    path = tmp_path / "progress.jsonl"
    _write_progress(path, rows)
    path.write_text(path.read_text() + '{"time": 21')  # a line cut by a killed driver
    runs = read_runs(path)
    assert len(runs) == 2
    result = check_eta(runs[0], from_trial=5, tolerance=0.25)
    assert result.checked == 5  # trials 5..9; trial 9's ETA (3x) is the only wrong one
    assert result.worst_error == pytest.approx(2.0)
    assert result.within == pytest.approx(4 / 5)
    assert result.run_minutes == pytest.approx(1000 / 60)
    with pytest.raises(ValueError, match="did not finish"):
        check_eta(runs[1])


def test_the_eta_bench_prints_one_line_per_finished_run_and_refuses_a_folder_without_one(
        tmp_path, capsys):
    from harness.bench import eta as eta_bench
    assert eta_bench.main([str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    _write_progress(tmp_path / "progress.jsonl", [
        {"time": 0.0, "event": "start", "resume": False},
        *[{"time": 60.0 * k, "event": "ended", "trial": f"t{k}", "ended_in_run": k,
           "eta_s": 60.0 * (12 - k) * 1.1} for k in range(1, 12)],
        {"time": 720.0, "event": "finished"}])
    assert eta_bench.main([str(tmp_path)]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["checked"] == 2 and line["median_error"] == pytest.approx(0.1)
    assert line["within_0.25"] == 1.0


def test_phase_costs_count_busy_slots_tail_and_leave_out_time_with_nothing_running():
    """Two slots; minutes: A 0–10, B 0–4, C 4–10 fill both slots to 10; nothing runs 10–12
    (a stopped sweep); D 12–15 and E 12–20 fill both to 15, then E runs alone 5 minutes."""
    from harness.bench.phases import phase_costs
    minutes = [(0, 10), (0, 4), (4, 10), (12, 15), (12, 20)]
    costs = phase_costs([(60 * s, 60 * e) for s, e in minutes], slots=2)
    assert costs["trials"] == 5
    assert costs["span_min"] == 18.0  # 20 minutes less the 2 with nothing running
    assert costs["slots_busy"] == pytest.approx(31 / 36, abs=1e-3)
    assert costs["tail_min"] == 5.0


def test_phase_epochs_count_a_survivor_from_its_rungs_start_and_a_resumed_trial_whole():
    """What the protocol trains from an empty folder: a rung-1 survivor continues from the
    17-epoch checkpoint, so its 50 epochs are 33 new ones; a reported trial resumed from
    epoch 180 of 195 still trained 195 from scratch; a closed form's fit is no epochs."""
    from harness.bench.phases import epochs_from_rung_start
    rungs = [17, 50, 300]
    survivor = {"name": "s", "method": "dcca", "d": 50, "epochs": 50, "rung": 1, "rungs": rungs}
    last = {**survivor, "epochs": 300, "rung": 2}
    reported = {"name": "r", "method": "dcca", "d": 50, "epochs": 300}
    cca = {"name": "c", "method": "cca", "d": 50, "epochs": 300}

    def record(trial, **metrics):
        return TrialRecord(name=trial["name"], method=trial["method"], d=50,
                           epochs=trial["epochs"], metrics=metrics)
    assert epochs_from_rung_start(record(survivor, epochs_trained=50.0), survivor) == 33
    assert epochs_from_rung_start(record(last, epochs_trained=65.0), last) == 15
    assert epochs_from_rung_start(
        record(reported, epochs_trained=195.0, resumed_from=180.0), reported) == 195
    assert epochs_from_rung_start(record(cca, epochs_trained=300.0), cca) == 0


def test_a_trial_resumed_from_a_checkpoint_is_priced_by_the_epochs_it_trained_in_this_run(
        tmp_path):
    """A driver resumed mid-trial trains only the epochs after the restored checkpoint, and
    its `train_seconds` count only those: counting all its epochs would make the method look
    13x faster (195 epochs in 45 s) and the protocol's ETA far too short."""
    plan = plan_of(tmp_path)
    full = plan.trials[0]["rungs"][-1]
    reported = {"name": "r0", "method": "dcca", "d": 50, "epochs": full, "patience": 6}
    resumed = TrialRecord(name="r0", method="dcca", d=50, epochs=full, train_seconds=45.0,
                          metrics={"epochs_trained": 195.0, "converged": 1.0,
                                   "resumed_from": 180.0})
    model = eta.CostModel({"r0": reported}, [resumed], eta.prior_epochs(plan))
    assert model.seconds("dcca", 50, 1) == pytest.approx(45.0 / 15)  # 3 s an epoch
    # a whole trial is expected to take r0's 195 epochs, shrunk towards the prior
    prior = eta.prior_epochs(plan)
    assert model.epochs_left({**reported, "name": "r1"}) == pytest.approx(
        (195 + eta.PRIOR_WEIGHT * prior) / (1 + eta.PRIOR_WEIGHT))
    # this run did 15 epochs' work in 45 s of wall time: 100 epochs left take 300 s
    left = {"name": "r1", "method": "dcca", "d": 50, "epochs": 100}
    plan.trials = [reported, left]
    got = eta.protocol_eta(plan, {"r0": resumed}, [resumed], elapsed_s=45.0)
    assert got == pytest.approx(45.0 * 100 / 15)


def test_a_running_trial_past_the_expectation_raises_it_and_has_half_a_window_left(tmp_path):
    """The first trials to converge are the quick ones: a trial still running past what they
    took is a censored draw (its epoch and half a patience window at least), which raises what
    the others are expected to take, and it is not counted as about to end."""
    plan = plan_of(tmp_path)
    full = plan.trials[0]["rungs"][-1]
    base = {"method": "dcca", "d": 50, "epochs": full, "patience": 6, "eval_every": 5}
    trials = {n: {**base, "name": n} for n in ("quick", "slow", "next")}
    quick = TrialRecord(name="quick", method="dcca", d=50, epochs=full, train_seconds=60.0,
                        metrics={"epochs_trained": 60.0, "converged": 1.0})
    alone = eta.CostModel(trials, [quick], eta.prior_epochs(plan))
    expected = alone.epochs_left(trials["next"])
    assert expected < 150
    half_window = 0.5 * 6 * 5
    model = eta.CostModel(trials, [quick], eta.prior_epochs(plan), running={"slow": 150})
    assert model.converging[("dcca", 50)] == pytest.approx(
        (60.0 + 150 + half_window + eta.PRIOR_WEIGHT * alone.prior)
        / (2 + eta.PRIOR_WEIGHT))
    assert model.epochs_left(trials["next"]) > expected
    assert model.epochs_left(trials["slow"], at=150) == pytest.approx(
        max(model.converging[("dcca", 50)] - 150, half_window))
    # a running trial short of the expectation changes nothing, and has the rest of it left
    early = eta.CostModel(trials, [quick], eta.prior_epochs(plan), running={"slow": 20})
    assert early.converging == alone.converging
    assert early.epochs_left(trials["slow"], at=20) == pytest.approx(expected - 20)


def test_seconds_per_epoch_are_the_fastest_seen_so_a_first_trials_start_up_does_not_count(
        tmp_path):
    """A worker's first trial also pays for starting (and may share the cores with closed-form
    fits): the median of two trials would price the method at the mean of a slow and a normal
    one."""
    plan = plan_of(tmp_path)
    rung0 = [t for t in plan.trials if t["rung"] == 0]
    e0 = rung0[0]["epochs"]
    records = [TrialRecord(name=t["name"], method="dcca", d=50, phase="search",
                           epochs=e0, train_seconds=seconds, metrics={"val_corr_best": 1.0})
               for t, seconds in zip(rung0, (2.0 * e0, 1.0 * e0))]
    model = eta.CostModel({t["name"]: t for t in plan.trials}, records, eta.prior_epochs(plan))
    assert model.seconds("dcca", 50, 10) == pytest.approx(10.0)


def test_work_done_is_the_seconds_trained_while_work_left_is_priced_at_the_fastest_rate(
        tmp_path):
    """Work left is priced at the fastest seconds per epoch seen, but an ended trial counts
    the seconds it did train: pricing those at the fastest rate too would shrink the work done
    and inflate the ETA by the ratio of the typical rate to the fastest."""
    plan = plan_of(tmp_path)
    plan.trials = [{"name": n, "method": "dcca", "d": 50, "epochs": e}
                   for n, e in (("slow", 10), ("fast", 10), ("a", 30), ("b", 30), ("c", 30))]
    # one trial at 2 s an epoch, one at 1 s: the fastest prices the rest at 1 s an epoch
    finished = {name: TrialRecord(name=name, method="dcca", d=50, epochs=10,
                                  train_seconds=rate * 10, metrics={"val_corr_best": 1.0})
                for name, rate in (("slow", 2.0), ("fast", 1.0))}
    # 30 s trained in 15 s of wall time (two slots): 90 epochs at 1 s take 45 s (priced at
    # the fastest rate, the work done would be 20 s, and the ETA 67.5 s)
    got = eta.protocol_eta(plan, finished, list(finished.values()), elapsed_s=15.0)
    assert got == pytest.approx(15.0 * 90 / 30)


def test_no_eta_is_shorter_than_the_longest_trial_left(tmp_path):
    """Two slots halve the wall time of the work left, but not of the last trial: it runs
    alone (the bf16 run's last trial was priced at half its 65 seconds)."""
    plan = plan_of(tmp_path)
    plan.trials = [{"name": n, "method": "dcca", "d": 50, "epochs": e}
                   for n, e in (("one", 10), ("two", 10), ("last", 30))]
    finished = {name: TrialRecord(name=name, method="dcca", d=50, epochs=10, train_seconds=10.0,
                                  metrics={"val_corr_best": 1.0}) for name in ("one", "two")}
    # 20 s trained in 10 s of wall time: the work left (30 s) would take 15 s shared, but it
    # is one trial of 30 s
    assert eta.protocol_eta(plan, finished, list(finished.values()), elapsed_s=10.0) == \
        pytest.approx(30.0)
    plan.trials.append({"name": "other", "method": "dcca", "d": 50, "epochs": 30})
    assert eta.protocol_eta(plan, finished, list(finished.values()), elapsed_s=10.0) == \
        pytest.approx(30.0)  # two of them share the two slots
    plan.trials.append({"name": "third", "method": "dcca", "d": 50, "epochs": 30})
    assert eta.protocol_eta(plan, finished, list(finished.values()), elapsed_s=10.0) == \
        pytest.approx(45.0)


def test_the_replay_rebuilds_what_the_live_eta_saw_at_each_trial_end(tmp_path, monkeypatch):
    """`harness.bench.eta_replay` gives the ETA code, at each recorded trial end, the trials
    ended by then, the plan as far as it had been planned, and the running trials' epochs."""
    from harness.bench import eta_replay
    from harness.ledger import Ledger
    plan = plan_of(tmp_path)
    rung0 = [t for t in plan.trials if t["rung"] == 0][:2]
    plan.trials = list(rung0)
    t0, e0 = 1000.0, rung0[0]["epochs"]
    records = [TrialRecord(name=t["name"], method="dcca", d=50, phase="search", epochs=e0,
                           train_seconds=10.0, end_time=int((t0 + 10 * (i + 1)) * 1000),
                           metrics={"val_corr_best": float(i), "epochs_trained": float(e0)})
               for i, t in enumerate(rung0)]
    finished = {r.name: r for r in records}
    later = next_rung(plan, finished, 0)  # planned when the second ended, at t0 + 20
    plan.trials += later
    records.append(TrialRecord(name=later[0]["name"], method="dcca", d=50, phase="search",
                               epochs=later[0]["epochs"], train_seconds=25.0,
                               end_time=int((t0 + 50) * 1000),
                               metrics={"val_corr_best": 1.0}))
    plan.save(tmp_path)
    for r in records:
        Ledger(tmp_path).append(r)
    events = [{"time": t0, "event": "start", "resume": False}] + [
        {"time": r.end_time / 1000, "event": "ended", "trial": r.name, "ended_in_run": i + 1,
         "eta_s": 1.0} for i, r in enumerate(records)] + [{"time": t0 + 51, "event": "finished"}]
    (tmp_path / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    seen = []
    monkeypatch.setattr(eta, "protocol_eta", lambda plan, fin, ended, elapsed, in_flight: seen.append(
        (len(plan.trials), sorted(fin), elapsed, dict(in_flight))) or 5.0)
    replayed, pairs = eta_replay.replay(tmp_path)
    assert [e.get("eta_s") for e in replayed if e["event"] == "ended"] == [5.0, 5.0, 5.0]
    names = [r.name for r in records]
    # the first end: rung 0 alone planned, the second trial 0 s into its 10 (it starts then)
    assert seen[0] == (2, [names[0]], 10.0, {names[1]: 0})
    # the second end plans rung 1: its first trial (25 s, to t0 + 50) has not started yet
    assert seen[1][:3] == (2 + len(later), sorted(names[:2]), 20.0) and names[2] not in seen[1][3]
    assert seen[2][1] == sorted(names)
    assert pairs == [(1, 1.0, 5.0), (2, 1.0, 5.0), (3, 1.0, 5.0)]
