"""MUC2M's individual structure, one component at a time, on VALIDATION only.

    python -m harness.suites.saliency.ablation --suite scenes_pairs [--profile quick]
        [--gamma 1] [--seeds 1] [--out FILE.md]

Each row is a MUC2M variant trained on the suite's training pairs and scored on the suite's
validation pairs (never on test): the paper's reading (the individual score on BN(g(h)), no
regularization), then the contractive regularization of the common score (γ), of the
individual score too (γ_ind = γ), the score read before the BatchNorm or through an affine one,
and the cross-correlation penalty switched off (λ_ind = 0). uniform and the base rows are
scored on the same validation pairs for reference. Every row: mean ± std over `--seeds` seeds.
The trials are the suite's own (`Suite.trial`, no Ray); their test metrics are computed by
the trial but neither printed nor written.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from harness.common import ConfigError
from harness.suites import get_suite

KEYS = ("ap_common", "ap_ind", "ap_ind_bg", "ind_score_cv")


def variants(gamma: float) -> list[tuple[str, str, dict]]:
    """(label, method, overrides) of each row; strengths: muc2m's λ default, γ for w/ regu."""
    regu = {"strength": gamma}
    return [
        ("uniform", "uniform", {}),
        ("base A (raw features)", "base_a", {}),
        ("base B (raw features)", "base_b", {}),
        ("MUC2M, paper's reading: score on BN(g(h)), no regularization", "muc2m", {}),
        ("+ γ on the common score only", "muc2m_regu", {**regu, "ind_gamma_ratio": 0.0}),
        ("+ γ_ind = γ on the individual score too", "muc2m_regu", {**regu}),
        ("pre_bn, γ on both", "muc2m_regu", {**regu, "ind_score": "pre_bn"}),
        ("affine BatchNorm (affine_bn), γ on both", "muc2m_regu",
         {**regu, "ind_score": "affine_bn"}),
        ("pre_bn, γ on both, λ_ind = 0 (no decorrelation)", "muc2m_regu",
         {**regu, "ind_score": "pre_bn", "lam_ind": 0.0}),
    ]


def run(suite_name: str, profile: str, gamma: float, seeds: int, log=print) -> list[dict]:
    suite = get_suite(suite_name)
    if suite.needs != "pairs":
        raise ConfigError(f"--suite {suite_name}: the ablation needs a pairs suite (individual "
                          f"maps), e.g. scenes_pairs")
    data = suite.load_data(profile, {})
    rows = []
    todo = variants(gamma)
    started = time.time()
    for i, (label, method, overrides) in enumerate(todo):
        overrides = dict(overrides)
        strength = overrides.pop("strength", None)
        values = {k: [] for k in KEYS}
        for seed in range(seeds):
            record = suite.trial({"method": method, "d": 64, "profile": profile, "seed": seed,
                                  "strength": strength, "overrides": overrides}, data=data)
            for k in KEYS:
                values[k].append(record.metrics.get(f"val_{k}", float("nan")))
        rows.append({"label": label, "method": method, "strength": strength,
                     "overrides": overrides, "commit": record.git_commit,
                     "hardware": record.hardware, "epochs": record.epochs,
                     **{k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}})
        done = i + 1
        eta = (time.time() - started) / done * (len(todo) - done)
        log(f"[{done}/{len(todo)}] {label}: val AP_ind−bg {rows[-1]['ap_ind_bg'][0]:.1f} "
            f"(ETA {eta / 60:.1f} min)")
    return rows


def provenance(rows: list[dict], profile: str, seeds: int) -> str:
    commits = ",".join(sorted({str(r["commit"]) for r in rows}))
    hardware = ",".join(sorted({str(r["hardware"]) for r in rows}))
    epochs = ",".join(sorted({str(r["epochs"]) for r in rows if r["epochs"]}))
    return (f"Provenance: profile `{profile}`, epochs {epochs or '–'}, seeds {seeds}, commit "
            f"{commits}, hardware {hardware}, finished {time.strftime('%Y-%m-%d')}; "
            f"{len(rows)} variants × {seeds} seed(s), validation split only.")


def markdown(rows: list[dict], suite: str, profile: str, gamma: float, seeds: int) -> str:
    def cell(pair, digits=1):
        mean, std = pair
        if np.isnan(mean):
            return "–"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if seeds > 1 else "")

    lines = ["| variant | method | AP_common | AP_ind | AP_ind−bg | s_ind CV |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | `{r['method']}` | {cell(r['ap_common'])} | "
                     f"{cell(r['ap_ind'])} | {cell(r['ap_ind_bg'])} | "
                     f"{cell(r['ind_score_cv'], 3)} |")
    return "\n\n".join([
        f"# Ablation of MUC2M's individual structure — VALIDATION pairs (suite `{suite}`, "
        f"profile `{profile}`)",
        f"`python -m harness.suites.saliency.ablation --suite {suite} --profile {profile} "
        f"--gamma {gamma:g} --seeds {seeds}`. Every number is on the validation split (nothing "
        f"here was measured on test); mean ± std over seeds 0..{seeds - 1}. γ = {gamma:g} where "
        f"a row regularizes; MUC2M's λ at its default. s_ind CV: the individual score's "
        f"coefficient of variation over the validation pairs.",
        "\n".join(lines), provenance(rows, profile, seeds)]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.suites.saliency.ablation",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="scenes_pairs")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    if args.seeds < 1 or not args.gamma > 0:
        parser.error("--seeds must be ≥ 1 and --gamma > 0")
    try:
        rows = run(args.suite, args.profile, args.gamma, args.seeds)
    except (ConfigError, KeyError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    text = markdown(rows, args.suite, args.profile, args.gamma, args.seeds)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
