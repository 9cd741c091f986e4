"""The GPU readiness command: its CPU path (no GPU here) and its phase bookkeeping."""
import json
import subprocess
import sys

import pytest

from harness import gpu_check


def test_without_a_gpu_it_says_so_in_one_line_writes_a_no_gpu_report_and_exits_3(tmp_path):
    report = tmp_path / "gpu_report.json"
    proc = subprocess.run([sys.executable, "-m", "harness.gpu_check", "--out", str(report)],
                          capture_output=True, text=True, timeout=120,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == gpu_check.NO_GPU_EXIT, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no GPU:")
    data = json.loads(report.read_text())
    assert data["status"] == "no_gpu" and data["version"] == gpu_check.REPORT_VERSION
    assert data["phases"] == [] and data["torch"]


@pytest.mark.parametrize("argv, message", [
    (["--out", "/proc/no-such-folder/gpu_report.json"], "--out /proc/no-such-folder: cannot write"),
    (["--budget-s", "0"], "--budget-s 0.0: give a positive number of seconds"),
])
def test_bad_flags_stop_it_before_any_device_time_is_spent(argv, message, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("got to the device"))
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_phase_records_its_exit_code_time_parsed_result_and_gpu_window():
    sampler = gpu_check.Sampler()  # not started: no samples, as on a machine without nvidia-smi
    ok = gpu_check.run_phase("echo", [sys.executable, "-c", "print('x'); print('{\"a\": 1}')"],
                             30, sampler)
    assert ok["rc"] == 0 and ok["result"] == {"a": 1} and ok["gpu"] == {"samples": 0}
    slow = gpu_check.run_phase("slow", [sys.executable, "-c", "import time; time.sleep(5)"], 1,
                               sampler)
    assert slow["rc"] == "timeout" and slow["wall_s"] < 4 and "result" not in slow
    sampler.samples = [(10.0, 50.0, 1000.0), (11.0, 100.0, 3000.0), (20.0, 0.0, 0.0)]
    assert sampler.summary(9, 12) == {"samples": 2, "util_mean_pct": 75.0, "util_max_pct": 100.0,
                                      "memory_max_mib": 3000.0}


def test_the_spot_check_plans_four_default_trials_at_d200_on_the_paper_profile(tmp_path):
    """The paper spot check's flags parse, and plan what it promises: MUC2M, SDCCA, Soft CCA
    and Deep CCA at d = 200, each once at its registry defaults, on the paper's budget."""
    from harness import registry, run
    from harness.planner import make_plan
    from harness.suites import get_suite
    args = run.parse_args(gpu_check.SPOT_CHECK + ["--out", str(tmp_path)])
    suite = get_suite(args.suite)
    methods, strengths = run.select_methods(args.methods, suite), run.parse_strengths(
        args.strengths)
    plan = make_plan(suite, args.profile, methods, [200], strengths, 0, args.seeds,
                     tmp_path / "ck", {})
    assert [(t["method"], t["d"], t["seed"]) for t in plan.trials] == [
        ("muc2m", 200, 0), ("sdcca", 200, 0), ("softcca", 200, 0), ("dcca", 200, 0)]
    for trial in plan.trials:
        spec = registry.get(trial["method"])
        assert trial["profile"] == "paper"
        assert all(trial["params"][k] == v for k, v in spec.defaults.items()
                   if k in trial["params"])


def test_the_spot_check_runs_the_sweep_alone_and_resumes_a_folder_it_began(tmp_path,
                                                                           monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "test GPU")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: type("P", (), {"total_memory": 2**30})())
    commands = []
    monkeypatch.setattr(gpu_check, "run_phase", lambda name, command, timeout, sampler: (
        commands.append(command) or {"name": name, "rc": 0}))
    folder = tmp_path / "spot"
    for _ in range(2):
        assert gpu_check.main(["--out", str(tmp_path / "r.json"), "--spot-check",
                               str(folder)]) == 0
        (folder / "mnist_halves-paper").mkdir(parents=True, exist_ok=True)
        (folder / "mnist_halves-paper" / "plan.json").write_text("{}")
    first, second = commands  # the spot check only: no bench, no slice
    assert first[2:] == ["harness.run", *gpu_check.SPOT_CHECK, "--out", str(folder)]
    assert second == first + ["--resume"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "ok" and [p["name"] for p in report["phases"]] == [
        "paper_spot_check"]
