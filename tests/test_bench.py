"""harness.bench: its rows, the floor each method is measured against, and its refusals."""
import json

import pytest

from harness import bench


def test_bench_prints_one_row_per_method_and_d_against_the_right_floor(capsys):
    assert bench.main(["--dims", "8", "--epochs", "1", "--methods", "dcca,muc2m_regu",
                       "--subset", "4096", "--threads", "1", "--json"]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out)
    # progress after each row, on stderr: the last one has nothing left to estimate
    progress = [ln for ln in printed.err.splitlines() if ln.startswith("bench: ")]
    assert [ln.split(" rows")[0] for ln in progress] == ["bench: 1 of 2", "bench: 2 of 2"]
    assert "left" in progress[0] and "left" not in progress[1]
    rows = {row["method"]: row for row in out["rows"]}
    assert set(rows) == {"dcca", "muc2m_regu"} and all(r["d"] == 8 for r in rows.values())
    # Only the method whose loss differentiates input gradients gets the double-backward floor.
    assert rows["dcca"]["floor"] == bench.FLOOR_PLAIN
    assert rows["muc2m_regu"]["floor"] == bench.FLOOR_DOUBLE_BACKWARD
    for row in rows.values():
        assert row["s_per_epoch"] > 0 and row["floor_s_per_epoch"] > 0
        assert row["ratio"] == pytest.approx(row["s_per_epoch"] / row["floor_s_per_epoch"])
        low, high = row["ratio_range"]  # one round: its only ratio is the ratio
        assert low == pytest.approx(row["ratio"]) and high == pytest.approx(row["ratio"])


@pytest.mark.parametrize("argv, message", [
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--dims", "50,x"], "expected comma-separated integers"),
    (["--dims", "0"], "every d must lie in"),
    (["--subset", "10"], "smaller than one batch"),
    (["--set", "rho"], "expected KEY=VALUE"),
    (["--set", "nope=1"], "no benchmarked method has the parameter(s) ['nope']"),
    (["--methods", "sdcca", "--set", "rho=abc"], "takes a float"),
    (["--epochs", "0"], "argument --epochs: 0 is below 1"),  # was a traceback after the data
    (["--threads", "0"], "argument --threads: 0 is below 1"),  # ran on torch's default
    (["--device", "tpu"], "device 'tpu' is not a torch device"),
])
def test_bench_refuses_bad_input_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "argument --repeats: 0 is below 1"),  # was 'no median for empty data'
    (["--threads", "0"], "argument --threads: 0 is below 1"),  # ran on torch's default
])
def test_bench_parts_refuses_bad_input_with_one_line(argv, message, capsys):
    from harness.bench import parts as bench_parts
    with pytest.raises(SystemExit) as exit_info:
        bench_parts.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_bench_parts_prints_every_stage_and_their_sum(capsys):
    from harness.bench import parts as bench_parts
    assert bench_parts.main(["--d", "320", "--repeats", "1", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    times = {line[:56].strip(): float(line[56:].split()[0]) for line in lines}
    assert len(times) == 10 and all(ms > 0 for ms in times.values())
    stages = [ms for name, ms in times.items() if not name.startswith(("floor", "objective"))]
    assert times["objective, all stages"] == pytest.approx(sum(stages), abs=0.01 * len(stages))


def test_bench_parts_refuses_a_d_the_factored_path_does_not_take(capsys):
    from harness.bench import parts as bench_parts
    with pytest.raises(SystemExit) as exit_info:
        bench_parts.main(["--d", "300"])
    assert exit_info.value.code == 2
    assert "above the last hidden width 300" in capsys.readouterr().err


@pytest.mark.parametrize("direct", [False, True])
def test_bench_direct_times_the_objectives_on_the_full_outputs(direct, factoring_calls, capsys):
    """Above the last hidden width (300 + 1) the objectives take factors unless --direct (each
    model is built with its path: no process-wide switch to put back)."""
    calls = factoring_calls
    argv = ["--dims", "320", "--epochs", "1", "--methods", "dcca", "--subset", "4096",
            "--threads", "1", "--json"] + (["--direct"] if direct else [])
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outputs"] == ("direct" if direct else "factored where d > 301")
    assert (len(calls) == 0) == direct


def test_bench_times_objective_and_floor_step_by_step_in_turn_on_the_cpu():
    """Both see the same drift of the machine: their steps alternate, after a warm-up epoch
    each, and every timed epoch sums its own steps."""
    import torch
    order = []

    def fake_stepper(name):
        while True:
            order.append(name)
            yield

    times = bench.interleaved_epochs([fake_stepper("obj"), fake_stepper("floor")], epochs=2,
                                     steps_per_epoch=3, device=torch.device("cpu"))
    assert order == ["obj"] * 3 + ["floor"] * 3 + ["obj", "floor"] * 6
    assert [len(t) for t in times] == [2, 2] and all(s > 0 for t in times for s in t)


def test_progress_estimates_the_rest_at_the_mean_pace_so_far():
    assert bench.progress(3, 12, 90.0) == "bench: 3 of 12 rows in 1m30s, ~4m30s left"
    assert bench.progress(12, 12, 3725.0) == "bench: 12 of 12 rows in 62m05s"


def _tables_csv(folder, rows):
    import pandas as pd
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "tables.csv", index=False)
    return folder


def test_bench_agreement_checks_each_cell_against_the_audits_bound_and_the_order(tmp_path,
                                                                               capsys):
    """Two sweeps: A's cell moves by 0.5 (within the bound of 1), B's by 3 (beyond), and B's
    move reverses the order of A and B; C picked another setting."""
    from harness.bench import agreement

    def row(method, mean, std=0.1, lam=1.0):
        return {"method": method, "d": 50, "status": "ok", "n_seeds": 3, "param_lam": lam,
                "lr": 0.001, "corr_heldout_mean": mean, "corr_heldout_std": std}
    a = _tables_csv(tmp_path / "a", [row("A", 40.0), row("B", 38.0), row("C", 30.0)])
    b = _tables_csv(tmp_path / "b", [row("A", 40.5), row("B", 41.0), row("C", 30.0, lam=2.0)])
    assert agreement.main([str(a), str(b)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cells = {c["method"]: c for c in lines if "method" in c}
    assert (cells["A"]["diff"], cells["A"]["within"]) == (0.5, True)
    assert (cells["B"]["diff"], cells["B"]["within"]) == (3.0, False)
    assert not cells["C"]["same_selection"] and cells["A"]["same_selection"]
    order = next(o for o in lines if "order_a" in o)
    assert order["order_a"] == ["A", "B", "C"] and order["order_b"] == ["B", "A", "C"]
    assert order["flipped_pairs"] == [["A", "B", 2.0, -0.5]]
    assert lines[-1] == {"cells": 3, "same_selection": 2, "within_bound": 2, "same_order": 0,
                         "dims": 1}
    assert agreement.main([str(a), str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_bench_eta_checks_the_etas_the_lines_showed(tmp_path, capsys):
    """`--shown LOG` reads each trial-end line's whole-protocol ETA (not a running trial's
    periodic line) and checks it against the time that was really left."""
    from harness.bench import eta as bench_eta
    log = "\n".join([
        "[1/3 ended: 1 ok, 0 diverged, 0 failed | 1 running, ETA 2 min this phase, 0.1 h in all] a val_corr_best 4.0 (ran its budget)",
        "[1/3 ended: 1 ok, 0 diverged, 0 failed | 2 running, ETA 2 min this phase, 9 min in all] b epoch 5 val_corr 3.0",
        "[2/3 ended: 2 ok, 0 diverged, 0 failed | 1 running, ETA 1 min this phase, 4 min in all] b corr 4.0 (60 s)",
        "[3/3 ended: 3 ok, 0 diverged, 0 failed | 0 running] c corr 4.0 (60 s)"])
    assert bench_eta.shown_etas(log) == {"a": 360.0, "b": 240.0}
    rows = [{"time": 0.0, "event": "start", "resume": False},
            {"time": 60.0, "event": "ended", "trial": "a", "ended_in_run": 1, "eta_s": 9.0},
            {"time": 120.0, "event": "ended", "trial": "b", "ended_in_run": 2, "eta_s": 9.0},
            {"time": 180.0, "event": "ended", "trial": "c", "ended_in_run": 3, "eta_s": 0.0},
            {"time": 360.0, "event": "finished"}]
    (tmp_path / "progress.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "sweep.log").write_text(log)
    assert bench_eta.main([str(tmp_path), "--from", "1", "--shown",
                           str(tmp_path / "sweep.log")]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    # a: 360 s shown with 300 left (+20 %); b: 240 with 240 left (0 %); c showed none
    assert out["checked"] == 2 and out["worst_error"] == pytest.approx(0.2)
    assert out["within_0.25"] == 1.0
