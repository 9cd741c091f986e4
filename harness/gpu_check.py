"""Everything a session with a GPU should measure, in one command and one JSON report.

    python -m harness.gpu_check [--out gpu_report.json] [--budget-s 450]

Phases, each a subprocess with its own time box, all inside `--budget-s` (default 7.5 min, for
an 8-minute device slot on one H100/H200):

1. `harness.bench --device cuda` (seconds per epoch against the network floor): fp32 at
   d = 50, 500 and 1000, then the same at d = 500 and 1000 with `--direct` (what the factored
   objectives save, or cost, where float64 decompositions are latency-bound), bf16 at d = 50
   and 1000;
2. `harness.bench.ccazoo --device cuda` (ours against cca-zoo), where cca-zoo is installed;
3. a time-boxed slice of the paper-profile sweep (`harness.run --profile paper`) at 1, 2 and 4
   trials per GPU (`--gpus-per-trial` 1, 0.5, 0.25), the same trials each time, to choose the
   trials per GPU by measured throughput (epochs per second of the whole GPU).

`--spot-check FOLDER` runs instead the paper-profile spot check: MUC2M, SDCCA, Soft CCA and
Deep CCA at d = 200 trained as the paper trains (its profile, the registry's defaults, one
seed, four trials sharing the GPU), into the sweep folder `FOLDER/mnist_halves-paper`, whose
Table 1 puts each on the paper's metric beside the paper's number. Commit that folder as
`tables/results/mnist_halves-paper-spot`; an interrupted check continues with the same command
(it resumes the sweep).

nvidia-smi samples GPU utilisation and memory every 0.5 s throughout; each phase gets its
mean and peak. Without a GPU the command says so in one line, writes a report with
`"status": "no_gpu"`, and exits with code 3. The report format is in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPORT_VERSION = 1
NO_GPU_EXIT = 3
SPOT_CHECK = ["--suite", "mnist_halves", "--profile", "paper",
              "--methods", "muc2m,sdcca,softcca,dcca", "--dims", "200", "--strengths", "default",
              "--seeds", "1", "--gpus-per-trial", "0.25"]
SWEEP_SLICE = ["--suite", "mnist_halves", "--profile", "paper", "--methods", "muc2m,dcca",
               "--dims", "200", "--strengths", "0.005", "--epochs", "30"]


class Sampler(threading.Thread):
    """nvidia-smi's utilisation and memory every 0.5 s, with the time of each sample."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, float]] = []  # (time, util %, memory MiB)
        self.proc = None

    def run(self):
        if shutil.which("nvidia-smi") is None:
            return
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
             "-lms", "500"], stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            try:
                util, mem = (float(v) for v in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.time(), util, mem))

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()

    def summary(self, start: float, end: float) -> dict:
        window = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not window:
            return {"samples": 0}
        utils, mems = zip(*window)
        return {"samples": len(window), "util_mean_pct": sum(utils) / len(utils),
                "util_max_pct": max(utils), "memory_max_mib": max(mems)}


def run_phase(name: str, command: list[str], timeout_s: float, sampler: Sampler) -> dict:
    """One phase: its command, exit code, wall time, parsed JSON (last stdout line) or output
    tail, and the GPU's utilisation while it ran."""
    started = time.time()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=max(1, timeout_s))
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", exc.stdout or "", exc.stderr or ""
        out, err = (x.decode() if isinstance(x, bytes) else x for x in (out, err))
    ended = time.time()
    phase = {"name": name, "command": " ".join(command[1:]), "rc": rc,
             "wall_s": round(ended - started, 1), "gpu": sampler.summary(started, ended)}
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    try:
        phase["result"] = json.loads(lines[-1])
    except (IndexError, ValueError):
        phase["output_tail"] = (out + err)[-6000:]  # e.g. the rows a timed-out bench printed
    print(f"{name}: rc {rc}, {phase['wall_s']} s, GPU util mean "
          f"{phase['gpu'].get('util_mean_pct', float('nan')):.0f} %", file=sys.stderr, flush=True)
    return phase


def sweep_throughput(phase: dict, out_dir: Path) -> dict:
    """Epochs per second of wall time over the trials a sweep slice finished."""
    import csv
    rows = []
    for path in out_dir.glob("*/results.csv"):
        with open(path) as fh:
            rows += [r for r in csv.DictReader(fh) if r.get("status") == "ok"]
    epochs = sum(float(r["epochs"]) for r in rows)
    return {"trials_ok": len(rows), "epochs": epochs,
            "epochs_per_s": epochs / phase["wall_s"] if phase["wall_s"] else 0.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_report.json", help="the JSON report (default "
                        "./gpu_report.json)")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="wall-clock budget for all phases (default 450)")
    parser.add_argument("--spot-check", metavar="FOLDER", default=None,
                        help="run only the paper-profile spot check at d = 200, its sweep "
                        "folder under FOLDER (resumed if it is there)")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.budget_s) and args.budget_s > 0):
        parser.error(f"--budget-s {args.budget_s}: give a positive number of seconds")
    import torch

    from harness.common import ConfigError, check_writable
    out = Path(args.out)
    try:  # before any device time is spent: the report is all this command leaves
        check_writable(out.parent, "--out")
        if args.spot_check:
            check_writable(Path(args.spot_check), "--spot-check")
    except ConfigError as err:
        parser.error(str(err))
    report = {"version": REPORT_VERSION, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "host": platform.node(), "torch": torch.__version__, "python": platform.python_version()}
    if not torch.cuda.is_available():
        report.update(status="no_gpu", phases=[])
        out.write_text(json.dumps(report, indent=1))
        print(f"no GPU: torch {torch.__version__} sees no CUDA device on this machine, so there "
              f"is nothing to measure; run `python -m harness.gpu_check` where a GPU is lent "
              f"(report: {out})", file=sys.stderr)
        return NO_GPU_EXIT
    report["gpu"] = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                     "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30}
    deadline = time.time() + args.budget_s
    py = [sys.executable, "-m"]
    sampler = Sampler()
    sampler.start()
    phases = []

    def left(cap: float) -> float:
        return min(cap, deadline - time.time())

    try:
        if args.spot_check:
            folder = Path(args.spot_check)
            resume = ["--resume"] if (folder / "mnist_halves-paper" / "plan.json").exists() else []
            phases.append(run_phase("paper_spot_check", py + [
                "harness.run", *SPOT_CHECK, "--out", str(folder), *resume], left(args.budget_s),
                sampler))
        else:
            run_benches(report, phases, py, left, sampler)
    finally:
        sampler.stop()
    return finish(report, phases, out, args.budget_s, deadline)


def run_benches(report: dict, phases: list, py: list, left, sampler: Sampler) -> None:
    """The benches and the sweep slices (phases 1-3 of the docstring)."""
    bench = py + ["harness.bench", "--device", "cuda", "--epochs", "3", "--json"]
    for name, extra, cap in (("bench_fp32", ["--dims", "50,500,1000"], 120),
                             ("bench_fp32_direct", ["--dims", "500,1000", "--direct"], 90),
                             ("bench_bf16", ["--dims", "50,1000", "--precision", "bf16"], 90)):
        phases.append(run_phase(name, bench + extra, left(cap), sampler))
    if importlib.util.find_spec("cca_zoo") is not None and left(120) > 30:
        phases.append(run_phase("bench_ccazoo", py + [
            "harness.bench.ccazoo", "--device", "cuda", "--epochs", "4", "--json"],
            left(120), sampler))
    else:
        phases.append({"name": "bench_ccazoo", "skipped": "cca-zoo not installed (extra "
                       "`bench`) or no time left"})
    slices = {}
    for gpus_per_trial in ("1", "0.5", "0.25"):
        if left(75) < 30:
            phases.append({"name": f"sweep_slice_gpt{gpus_per_trial}", "skipped": "budget"})
            continue
        with tempfile.TemporaryDirectory() as tmp:
            phase = run_phase(f"sweep_slice_gpt{gpus_per_trial}", py + [
                "harness.run", *SWEEP_SLICE, "--seeds", str(round(1 / float(gpus_per_trial))),
                "--gpus-per-trial", gpus_per_trial, "--out", tmp], left(75), sampler)
            phase["throughput"] = sweep_throughput(phase, Path(tmp))
        phases.append(phase)
        slices[gpus_per_trial] = phase["throughput"]["epochs_per_s"]
    if slices:
        best = max(slices, key=slices.get)
        report["sweep_slice"] = {"epochs_per_s_by_gpus_per_trial": slices,
                                 "chosen_gpus_per_trial": float(best)}


def finish(report: dict, phases: list, out: Path, budget_s: float, deadline: float) -> int:
    """Write the report; exit 0 when every phase that ran succeeded."""
    report["phases"] = phases
    failed = [p["name"] for p in phases if p.get("rc") not in (0, None)]
    report["status"] = "partial" if failed or any("skipped" in p for p in phases) else "ok"
    report["wall_s"] = round(time.time() - (deadline - budget_s), 1)
    out.write_text(json.dumps(report, indent=1))
    print(f"gpu_check: {report['status']} in {report['wall_s']} s; report {out}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
