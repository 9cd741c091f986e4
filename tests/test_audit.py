"""The oracle audit (`harness.audit`): its grids against closed forms, its regret, bound, flip
and rank-agreement arithmetic on hand-made ledgers, and one smoke-sized audit through Ray."""
import csv
import dataclasses
import math
from pathlib import Path

import pytest

from harness import audit, registry, search
from harness.ledger import Ledger, MethodInfo, Plan, data_digest
from harness.planner import search_name, selected_name
from harness.record import TrialRecord
from harness.suites import get_suite


# ------------------------------------------------------------------------------------ grids
def test_a_one_parameter_grid_spans_its_range_ends_evenly_in_sampling_coordinates():
    space = {"lam": (1e-4, 10.0)}
    coords = audit.grid_coordinates(space, 16)
    assert [c["lam"] for c in coords] == [i / 15 for i in range(16)]
    assert coords[0]["lam"] == 0.0 and coords[-1]["lam"] == 1.0
    values = [c["lam"] for c in audit.grid(space, 16)]
    assert math.isclose(values[0], 1e-4) and math.isclose(values[-1], 10.0)
    ratios = [b / a for a, b in zip(values, values[1:])]  # log scale: one ratio, 10^(5/15)
    assert all(math.isclose(r, 10 ** (5 / 15)) for r in ratios)
    assert audit.grid_shape(space, 16) == "16"


def test_two_parameters_give_a_square_grid_with_each_pair_once():
    space = registry.get("softcca").search  # lam: log, alpha: "lin"
    assert list(space) == ["lam", "alpha"] and space["alpha"][2] == "lin"
    coords = audit.grid_coordinates(space, 16)
    assert len(coords) == 16 and audit.grid_shape(space, 16) == "4x4"
    axis = [0.0, 1 / 3, 2 / 3, 1.0]
    assert sorted((c["lam"], c["alpha"]) for c in coords) == sorted(
        (a, b) for a in axis for b in axis)
    alphas = sorted({round(v["alpha"], 12) for v in audit.grid(space, 16)})
    assert alphas == [0.0, 0.33, 0.66, 0.99]  # uniform: lo + u (hi − lo)
    lams = sorted({v["lam"] for v in audit.grid(space, 16)})
    assert [math.log10(v) for v in lams] == pytest.approx([-3, -3 + 5 / 3, -3 + 10 / 3, 2])
    assert audit.per_axis(2, 10) == 4 and audit.per_axis(2, 9) == 3  # ⌈√N⌉


def test_a_one_minus_scale_grid_is_log_spaced_in_one_minus_the_value():
    rng = (1e-3, 0.1, "1-")
    values = [v["rho"] for v in audit.grid({"rho": rng}, 3)]
    assert values == pytest.approx([1 - 1e-3, 1 - 1e-2, 1 - 0.1])
    assert [search.position(rng, v) for v in values] == pytest.approx([0.0, 0.5, 1.0])


def test_three_or_more_parameters_get_a_product_grid_of_at_least_two_per_axis():
    assert audit.per_axis(3, 16) == 2 and audit.per_axis(3, 27) == 3
    assert audit.per_axis(3, 26) == 2 and audit.per_axis(4, 16) == 2 and audit.per_axis(4, 81) == 3
    assert audit.per_axis(3, 4) == 2  # ⌊4^(1/3)⌋ = 1, raised to 2
    space = {"a": (1e-2, 1.0), "b": (0.0, 1.0, "lin"), "c": (1e-3, 1e-1, "1-")}
    coords = audit.grid_coordinates(space, 16)
    assert len(coords) == 8 and audit.grid_shape(space, 16) == "2x2x2"
    assert {tuple(c.values()) for c in coords} == {(a, b, c) for a in (0.0, 1.0)
                                                   for b in (0.0, 1.0) for c in (0.0, 1.0)}


def test_grid_trials_are_search_trials_at_the_profiles_full_budget(tmp_path):
    suite = get_suite("mnist_halves")
    plan = audit.make_plan(suite, "quick", [("softcca", 50), ("muc2m", 200)], 16, tmp_path, {})
    assert audit.plan_cells(plan) == [("softcca", 50), ("muc2m", 200)]
    for method, d in audit.plan_cells(plan):
        trials = [t for t in plan.trials if (t["method"], t["d"]) == (method, d)]
        assert len(trials) == 16 and len({t["name"] for t in trials}) == 16
        assert [t["seed"] for t in trials] == [1000 + i for i in range(16)]
        resolved = suite.resolve({"method": method, "d": d, "profile": "quick",
                                  "phase": "search"})
        full = resolved["epochs"]
        for trial in trials:
            assert trial["phase"] == "search" and trial["epochs"] == full
            # under a convergence rule, validation at the cadence its patience counts in
            assert trial["patience"] == resolved["patience"] > 0
            assert trial["eval_every"] == suite.profile("quick").eval_every
    trial = plan.trials[5]  # lam at u = 1/3, alpha at 1/3
    values = {"lam": trial["params"]["lam"], "alpha": trial["params"]["alpha"]}
    assert trial["name"] == search_name("softcca", 50, values, 5)
    assert trial["audit"]["u"] == {"lam": 1 / 3, "alpha": 1 / 3}
    assert Plan.from_json(plan.to_json()).trials == plan.trials  # the plan round-trips


def test_parse_cells_refuses_what_cannot_be_audited(monkeypatch):
    suite = get_suite("mnist_halves")
    # a method without a search space (every built-in one has one): DCCA-EY without its own
    get, spec = registry.get, registry.get("dcca_ey")
    monkeypatch.setattr(registry, "get", lambda name: dataclasses.replace(spec, search={})
                        if name == "dcca_ey" else get(name))
    assert audit.parse_cells("softcca:50, muc2m:200,softcca:50", suite) == [
        ("softcca", 50), ("muc2m", 200)]
    for text, message in (("softcca", "expected METHOD:D"), ("nope:50", "unknown method"),
                          ("muc2m:x", "whole number"), ("muc2m:0", "≥ 1"),
                          ("dcca_ey:50", "no search space"), (",", "empty")):
        with pytest.raises(audit.UsageError, match=message):
            audit.parse_cells(text, suite)


# ------------------------------------------------------------------------------ arithmetic
def test_pooled_std_bound_and_rank_by_hand():
    # two cells of three seeds, each with std (ddof 0) √(2/3): sample variances 1 and 1
    assert audit.pooled_std(math.sqrt(2 / 3), 3, math.sqrt(2 / 3), 3) == pytest.approx(1.0)
    assert audit.pooled_std(0.5, 1, 0.7, 1) == 0.0  # one seed each: no spread to pool
    assert audit.bound(1.0) == 2.0 and audit.bound(0.2) == 1.0 and audit.bound(0.0) == 1.0
    assert audit.rank(11.0, [12.0, 5.0]) == 2 and audit.rank(14.0, [12.0, 5.0]) == 1
    assert audit.rank(12.0, [12.0]) == 1  # a tie does not put it below


def test_rung_scores_take_the_best_up_to_the_validation_pass_nearest_each_fraction():
    # a 50-epoch budget validated every round(50/9) = 6 epochs (and at the last): the passes
    # nearest 1/9 and 1/3 of it are epochs 6 and 18, the rungs at which ASHA compares trials
    history = [{"epoch": e, "val_corr": float(e)} for e in range(6, 50, 6)] + [
        {"epoch": 50, "val_corr": 7.0}]
    assert audit.rung_score(history, 50, 1 / 9) == (6.0, 6)
    assert audit.rung_score(history, 50, 1 / 3) == (18.0, 18)
    dipping = [{"epoch": 1, "val_corr": 5.0}, {"epoch": 2, "val_corr": 3.0}]
    assert audit.rung_score(dipping, 6, 1 / 3) == (5.0, 2)  # best so far, not the last pass
    assert math.isnan(audit.rung_score([{"epoch": 0, "val_corr": 1.0}], 1, 1 / 9)[0])


def curves(full_scores, first, third):
    """Histories over a 9-epoch budget: epoch 1 scores `first`, epochs 2-3 `third`, then a
    rise to the full-budget score at epoch 9."""
    out = []
    for f, a, b in zip(full_scores, first, third):
        history = [{"epoch": 1, "val_corr": a}, {"epoch": 2, "val_corr": b},
                   {"epoch": 3, "val_corr": b}]
        history += [{"epoch": e, "val_corr": b + (f - b) * (e - 3) / 6} for e in range(4, 10)]
        out.append(history)
    return out


def test_spearman_on_histories_of_known_order():
    full = [10.0, 20.0, 30.0, 40.0]
    histories = curves(full, first=[4.0, 3.0, 2.0, 1.0], third=[5.0, 6.0, 7.0, 8.0])
    records = [TrialRecord(name=f"m[search={i}]", method="m", d=5, epochs=9, phase="search",
                           metrics={"val_corr_best": f}, history=h)
               for i, (f, h) in enumerate(zip(full, histories))]
    assert audit.rank_agreement(records, 1 / 9) == (pytest.approx(-1.0), 1, 4)  # reversed
    assert audit.rank_agreement(records, 1 / 3) == (pytest.approx(1.0), 3, 4)   # the same
    records[0].status = "diverged"  # left out
    assert audit.rank_agreement(records, 1 / 3)[2] == 3
    assert math.isnan(audit.rank_agreement(records[:2], 1 / 3)[0])  # too few to rank


# A pair of folders with known numbers. The audited sweep ("protocol") at d = 50: MUC2M
# 10, 11, 12 (mean 11, std √(2/3)), DCCA 11.5, 12, 12.5 (mean 12); at d = 200: MUC2M 20 ×3,
# DCCA 25 ×3. The oracle: MUC2M at d = 50 13, 14, 15 (mean 14, std √(2/3)), at d = 200 20.5 ×3.
# By hand: d = 50 regret 3, pooled std √((3·2/3 + 3·2/3)/4) = 1, bound 2, fails; rank 2 → 1
# (a flip). d = 200 regret 0.5, pooled std 0, bound 1, passes; rank 2 → 2.
PROTOCOL = {("muc2m", 50): [10.0, 11.0, 12.0], ("dcca", 50): [11.5, 12.0, 12.5],
            ("muc2m", 200): [20.0, 20.0, 20.0], ("dcca", 200): [25.0, 25.0, 25.0]}
ORACLE = {("muc2m", 50): [13.0, 14.0, 15.0], ("muc2m", 200): [20.5, 20.5, 20.5]}
GRID_LAMS = [1e-4, 1e-3, 1e-2, 1e-1]


def catalog(methods):
    order = registry.list_methods()
    return {m: MethodInfo.of(registry.get(m), "two_view", order.index(m)) for m in methods}


def reported(method, d, values, seed, corr, end_time=1_700_000_000_000):
    spec = registry.get(method)
    return TrialRecord(name=selected_name(method, d, values, seed), method=method, d=d,
                       seed=seed, profile="quick", strength_name=spec.strength,
                       strength=values[spec.strength], params=dict(values), epochs=9,
                       lr=1e-3, metrics={"corr_heldout": corr, "val_corr_best": corr + 0.1},
                       git_commit="abc1234", hardware="test CPU", device="cpu",
                       end_time=end_time)


def write_folder(folder: Path, records: list, methods, grid=()) -> Path:
    trials = [{"name": r.name, "method": r.method, "d": r.d, "seed": r.seed,
               "phase": r.phase, "epochs": r.epochs, **extra} for r, extra in
              [(g, {"audit": {"points": 4, "shape": "4", "options": {}}}) for g in grid]
              + [(r, {}) for r in records]]
    folder.mkdir(parents=True)
    Plan(suite="mnist_halves", family="two_view", profile="quick", trials=trials,
         methods=catalog(methods), columns=("corr_heldout", "val_corr_best"),
         search_trials=4, seeds=3, dims=(50, 200), data_digest="feedbeef",
         hardware="test CPU", created="2024-01-01").save(folder)
    ledger = Ledger(folder)
    for record in [*grid, *records]:
        ledger.append(record)
    return folder


@pytest.fixture
def folders(tmp_path):
    protocol_records = [reported(m, d, {registry.get(m).strength: 0.5}, seed, corr)
                        for (m, d), corrs in PROTOCOL.items() for seed, corr in enumerate(corrs)]
    against = write_folder(tmp_path / "against", protocol_records, ["dcca", "muc2m"])
    grid = []
    for d, histories in ((50, curves([10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0],
                                     [5.0, 6.0, 7.0, 8.0])),
                         (200, [[{"epoch": 0, "val_corr": 1.0 + i}] for i in range(4)])):
        for i, (lam, history) in enumerate(zip(GRID_LAMS, histories)):
            grid.append(TrialRecord(
                name=search_name("muc2m", d, {"lam": lam}, i), method="muc2m", d=d,
                seed=1000 + i, profile="quick", phase="search", epochs=9, lr=1e-3,
                strength_name="lam", strength=lam, params={"lam": lam}, history=history,
                metrics={"val_corr_best": max(h["val_corr"] for h in history)},
                git_commit="abc1234", device="cpu", end_time=1_700_000_000_000))
    oracle_records = [reported(m, d, {"lam": GRID_LAMS[-1]}, seed, corr)
                      for (m, d), corrs in ORACLE.items() for seed, corr in enumerate(corrs)]
    audited = write_folder(tmp_path / "audit", oracle_records, ["muc2m"], grid)
    return audited, against


def read_rows(path: Path) -> dict:
    with open(path) as fh:
        return {(r["method"], int(r["d"])): r for r in csv.DictReader(fh)}


def test_regret_bound_and_flip_of_a_hand_made_pair_of_ledgers(folders):
    audited, against = folders
    written = audit.render(audited, against)
    rows = read_rows(audited / "audit.csv")
    assert list(rows) == [("muc2m", 50), ("muc2m", 200)]
    low, high = rows["muc2m", 50], rows["muc2m", 200]
    assert float(low["protocol_mean"]) == pytest.approx(11.0)
    assert float(low["protocol_std"]) == pytest.approx(math.sqrt(2 / 3), abs=1e-4)
    assert float(low["oracle_mean"]) == pytest.approx(14.0)
    assert (float(low["regret"]), float(low["pooled_std"]), float(low["bound"])) == \
        pytest.approx((3.0, 1.0, 2.0))
    assert low["pass"] == "no" and low["status"] == "ok"
    assert (low["rank_protocol"], low["rank_oracle"], low["n_ranked"], low["flip"]) == \
        ("2", "1", "2", "yes")
    assert (float(high["regret"]), float(high["pooled_std"]), float(high["bound"])) == \
        pytest.approx((0.5, 0.0, 1.0))
    assert high["pass"] == "yes" and (high["rank_protocol"], high["rank_oracle"],
                                      high["flip"]) == ("2", "2", "no")
    # the grid's histories: reversed order at 1/9 of the budget, the full order at 1/3
    assert float(low["spearman_1_9"]) == pytest.approx(-1.0)
    assert float(low["spearman_1_3"]) == pytest.approx(1.0)
    assert (low["rung_epoch_1_9"], low["rung_epoch_1_3"], low["n_spearman"]) == ("1", "3", "4")
    assert high["spearman_1_9"] == "" and high["rung_epoch_1_9"] == "0"  # no curve: no ρ
    assert low["oracle_config"] == "lam=0.1" and low["protocol_config"] == "lam=0.5"
    md = (audited / "audit.md").read_text()
    assert "| MUC2M d=50 | 4 points (lam), 4/4 ok | 11.0 ± 0.8 | 14.0 ± 0.8 | +3.0 | 2.0 | no " \
           "| 2 → 1 of 2 **flip** | -1.00 (ep 1) | 1.00 (ep 3) |" in md
    assert "2 of 2 cells complete: 1 pass, 1 flip (0 resolved by the paired test)." in md
    assert f"--cells muc2m:50,muc2m:200 --against {against} --points 4" in md
    assert "commit abc1234" in md and "hardware test CPU" in md and "2023-11-14" in md
    # a pure function of the two folders: rebuilt elsewhere, byte for byte but for the
    # command that names where it went
    elsewhere = audited / "rebuilt"
    again = audit.render(audited, against, out_dir=elsewhere)
    for first, second in zip(written, again):
        assert first.read_text() == second.read_text().replace(f" --out-dir {elsewhere}", "")
    assert f"--out {audited} --out-dir {elsewhere}` rebuilds" in again[1].read_text()


def test_paired_changes_name_the_methods_a_flip_reorders_by_the_paired_test(folders):
    """Every replicate b is the trial's corr plus one shift s_b shared by all trials (the
    same resampled test pairs), so a paired difference is exactly the difference of the means,
    except for the protocol's MUC2M at d = 50, whose replicates also carry 3·u_b with u_b
    evenly spaced in [−1, 1]: its difference from DCCA (11 − 12 = −1) then has an interval of
    about −1 ± 2.9, which holds 0 (≈). The oracle's MUC2M (14) lies 2 above DCCA in every
    replicate: DCCA ≈ → above. At d = 200 the protocol (20) and the oracle (20.5) both lie
    below DCCA (25): no change."""
    import numpy as np
    audited, against = folders
    shared = np.random.default_rng(0).normal(size=200)
    wobble = np.linspace(-1.0, 1.0, 200)
    for folder in (audited, against):
        records = list(Ledger(folder).records())
        (folder / "records.jsonl").unlink()
        ledger = Ledger(folder)
        for record in records:
            if record.phase != "search":
                corr = record.metrics["corr_heldout"]
                noisy = folder == against and (record.method, record.d) == ("muc2m", 50)
                record = dataclasses.replace(
                    record, replicates=list(corr + shared + (3 * wobble if noisy else 0)))
            ledger.append(record)
    audit.render(audited, against)
    rows = read_rows(audited / "audit.csv")
    assert rows["muc2m", 50]["paired_changes"] == "Deep CCA ≈ → above"
    assert rows["muc2m", 200]["paired_changes"] == ""
    md = (audited / "audit.md").read_text()
    assert "| 2 → 1 of 2 **flip** (paired: Deep CCA ≈ → above) |" in md
    assert "2 of 2 cells complete: 1 pass, 1 flip (1 resolved by the paired test)." in md
    assert audit.paired_relation({0: [1.0, 2.0]}, {0: [0.0, 0.5]}) == "above"
    assert audit.paired_relation({0: [1.0, 2.0]}, {1: [0.0, 0.5]}) == ""  # no seed in common


def test_an_audit_whose_reruns_have_not_ended_renders_as_incomplete(folders):
    audited, against = folders
    plan = Plan.load(audited)
    plan.trials.append({"name": selected_name("muc2m", 50, {"lam": 0.1}, 3), "method": "muc2m",
                        "d": 50, "seed": 3, "phase": ""})  # a fourth seed, not run yet
    plan.save(audited)
    audit.render(audited, against)
    rows = read_rows(audited / "audit.csv")
    assert rows["muc2m", 50]["status"] == "incomplete" and rows["muc2m", 50]["regret"] == ""
    assert rows["muc2m", 200]["status"] == "ok"


def test_bad_input_is_one_line_and_exit_2(folders, tmp_path, capsys):
    audited, against = folders
    cases = [["--against", str(tmp_path / "nowhere"), "--cells", "muc2m:50"],
             ["--against", str(against), "--cells", "muc2m:500"],
             ["--against", str(against), "--cells", "nope:50"],
             ["--against", str(against), "--cells", "muc2m:50", "--points", "1"],
             ["--against", str(against), "--cells", "muc2m:50", "--profile", "smoke"],
             ["--against", str(against)],
             ["--against", str(against), "--render-only", "--out", str(tmp_path / "empty")]]
    for argv in cases:
        capsys.readouterr()
        assert audit.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.strip().count("\n") == 0, (argv, err)
    assert audit.main(["--against", str(against), "--render-only", "--out", str(audited)]) == 0
    assert (audited / "audit.md").exists()


# --------------------------------------------------------------------------------- a real one
@pytest.mark.sweep
def test_a_smoke_audit_runs_its_grid_and_reruns_and_resumes_without_rerunning(
        tmp_path, mnist_smoke, capsys):
    """MUC2M at d = 8 on the smoke profile, a 2-point grid, against a hand-made sweep of the
    same data that reported it with seeds 0 and 1."""
    against = tmp_path / "against"
    against.mkdir()
    records = [reported("muc2m", 8, {"lam": 0.005}, seed, corr) for seed, corr in
               enumerate([3.0, 3.2])] + [reported("cca", 8, {"ridge": 1e-3}, 0, 5.0)]
    for record in records:
        record.profile = "smoke"
    Plan(suite="mnist_halves", family="two_view", profile="smoke",
         trials=[{"name": r.name, "method": r.method, "d": r.d, "seed": r.seed, "phase": ""}
                 for r in records], methods=catalog(["cca", "muc2m"]),
         columns=get_suite("mnist_halves").columns, seeds=2, dims=(8,),
         data_digest=data_digest(mnist_smoke)).save(against)
    for record in records:
        Ledger(against).append(record)
    out = tmp_path / "audit"
    argv = ["--suite", "mnist_halves", "--profile", "smoke", "--cells", "muc2m:8", "--points",
            "2", "--against", str(against), "--out", str(out), "--max-concurrent", "2"]
    assert audit.main(argv) == 0, capsys.readouterr().err[-3000:]
    ledger = {r.name: r for r in Ledger(out).records()}
    grid = [r for r in ledger.values() if r.phase == "search"]
    assert len(grid) == 2 and all(r.status == "ok" for r in grid)
    assert sorted(r.seed for r in grid) == [1000, 1001]
    assert [h["epoch"] for h in grid[0].history] == [1, 2, 3, 4]  # every ~1/9 of 4 epochs
    lams = sorted(r.params["lam"] for r in grid)
    assert lams == pytest.approx(list(registry.get("muc2m").search["lam"]))  # both ends
    reruns = [r for r in ledger.values() if r.phase == ""]
    assert sorted(r.seed for r in reruns) == [0, 1] and all(r.status == "ok" for r in reruns)
    best = max(grid, key=lambda r: r.metrics["val_corr_best"])
    assert {r.params["lam"] for r in reruns} == {best.params["lam"]}
    row = read_rows(out / "audit.csv")["muc2m", 8]
    assert row["status"] == "ok" and row["n_grid"] == "2" and row["oracle_n"] == "2"
    assert float(row["regret"]) == pytest.approx(float(row["oracle_mean"]) - 3.1, abs=1e-3)
    assert row["rank_protocol"] == "2"  # below CCA's 5.0
    md = (out / "audit.md").read_text()
    capsys.readouterr()
    assert audit.main([*argv, "--resume"]) == 0  # nothing left: no trial runs, same pages
    printed = capsys.readouterr().out
    assert "audit-grid: 0 trials to run" in printed and "audit-reported: 0 trials to run" in printed
    assert len(Ledger(out).records()) == 4 and (out / "audit.md").read_text() == md


def test_the_grid_trains_in_the_audited_sweeps_precision_unless_told():
    """An oracle in another precision would measure the precision too (and bf16 on a CPU that
    emulates it costs ~10x): the audited cells' planned precision is the default."""
    trials = [{"name": "a", "method": "dcca", "d": 50, "precision": "fp32"},
              {"name": "b", "method": "dcca", "d": 50, "precision": "fp32"},
              {"name": "c", "method": "muc2m", "d": 50, "precision": "bf16"}]
    plan = Plan(suite="mnist_halves", family="two_view", profile="quick", trials=trials,
                methods={}, columns=())
    assert audit.swept_precision(plan, [("dcca", 50)]) == "fp32"
    assert audit.swept_precision(plan, [("muc2m", 50)]) == "bf16"
    assert audit.swept_precision(plan, [("dcca", 50), ("muc2m", 50)]) is None  # mixed: the profile's
    assert audit.swept_precision(plan, [("vicreg", 50)]) is None
