"""The oracle audit: how much the search protocol loses against a dense grid.

    python -m harness.audit --suite mnist_halves --profile quick \\
        --cells softcca:50,sdcca:200,muc2m:200,vicreg:50,dcca:50 \\
        --against tables/results/mnist_halves-quick [--points 16] [--out runs/audit] [--resume]

For each audited cell (method, d), a grid of the method's search space, in each parameter's
sampling coordinates u ∈ [0, 1] (`harness.search.value_at`): one parameter, `--points`
evenly spaced points, both ends included; two, a ⌈√N⌉ × ⌈√N⌉ grid; three or more, the
product grid of ⌊N^(1/p)⌋ points per axis (at least 2). Every configuration of the grid
trains as a search trial (seeds 1000 + i, no test metric) for the profile's full budget,
validating every ~1/9 of it, so its history holds the scores a shorter budget would have
seen. The grid's best on validation (`search.choose`) is then rerun with the seeds the
audited sweep reported. The trials are a plan and a ledger in `--out`, run by Ray Tune
(`harness.tune.run_grid`), so an interrupted audit continues with `--resume`.

`render(audit_folder, against_folder)` writes audit.csv and audit.md from the audit's
plan.json + records.jsonl and the audited sweep's folder alone (`--render-only` calls it):
per cell the protocol's and the oracle's reported corr_heldout (mean ± std over seeds), the
regret (oracle − protocol), its bound (max(1, 2 × pooled seed std)), whether the method's
rank at its d changes, and the rank agreement of the low-budget validation scores with the
full-budget ones (Spearman).
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from harness import planner, registry, report, search
from harness.cli import (SUITE_OPTIONS, OneLineParser, UsageError, add_suite_options, run_cli,
                         suite_options, trial_gpus, warn_emulated_bf16)
from harness.common import check_writable, whole_number
from harness.ledger import (LEDGER_FILE, PLAN_FILE, Ledger, MethodInfo, Plan, archive_previous,
                            data_digest, difference, plan_patience, read_folders)
from harness.models import PRECISIONS
from harness.record import git_commit, hardware

# the low budgets whose validation ranking is compared with the full budget's: successive
# halving's first two rungs (1/9 and 1/3 of the budget), also where ASHA compares trials
RUNG_FRACTIONS = (1 / search.ETA ** 2, 1 / search.ETA)
MIN_BOUND = 1.0     # the regret bound never goes below one unit of total correlation
BOUND_SPREADS = 2   # ... and otherwise is this many pooled seed standard deviations
GRID_MODE = "grid"  # the audit plan's `search`
CSV_FILE, MD_FILE = "audit.csv", "audit.md"
CSV_COLUMNS = ("method", "d", "status", "grid", "n_grid", "n_grid_ok", "full_epochs",
               "protocol_config", "protocol_mean", "protocol_std", "protocol_n",
               "protocol_val", "oracle_config", "oracle_grid_val", "oracle_mean",
               "oracle_std", "oracle_n", "oracle_val", "regret", "pooled_std", "bound", "pass",
               "rank_protocol", "rank_oracle", "n_ranked", "flip", "paired_changes",
               "spearman_1_9", "spearman_1_3", "rung_epoch_1_9", "rung_epoch_1_3", "n_spearman")
INT_COLUMNS = ("d", "n_grid", "n_grid_ok", "full_epochs", "protocol_n", "oracle_n",
               "rank_protocol", "rank_oracle", "n_ranked", "rung_epoch_1_9", "rung_epoch_1_3",
               "n_spearman")


# ------------------------------------------------------------------------------------ the grid
def per_axis(n_params: int, points: int) -> int:
    """Points per axis: all of them for one parameter, ⌈√N⌉ for two, ⌊N^(1/p)⌋ (at least 2)
    for p ≥ 3."""
    if points < 2:
        raise ValueError(f"a grid needs at least 2 points, got {points}")
    if n_params <= 1:
        return points
    if n_params == 2:
        k = math.isqrt(points)
        return k if k * k == points else k + 1
    k = max(1, int(round(points ** (1 / n_params))))
    while k ** n_params > points:
        k -= 1
    while (k + 1) ** n_params <= points:
        k += 1
    return max(2, k)


def grid_coordinates(space: dict, points: int) -> list[dict]:
    """The grid in sampling coordinates: [{parameter: u}], u = i / (k − 1), i = 0 … k − 1 per
    axis, the first parameter varying slowest (the product in the space's order)."""
    names = list(space)
    if not names:
        return []
    k = per_axis(len(names), points)
    axis = [i / (k - 1) for i in range(k)]
    return [dict(zip(names, us)) for us in itertools.product(axis, repeat=len(names))]


def grid(space: dict, points: int) -> list[dict]:
    """The grid's configurations {parameter: value}: `grid_coordinates` mapped through each
    parameter's range (`search.value_at`: log, "1-" or "lin")."""
    return [{name: search.value_at(space[name], u) for name, u in coords.items()}
            for coords in grid_coordinates(space, points)]


def grid_shape(space: dict, points: int) -> str:
    """`16`, `4x4` or `2x2x2`: the grid's points per axis."""
    k = per_axis(len(space), points)
    return "x".join([str(k)] * len(space))


# ------------------------------------------------------------------------------------ the plan
def parse_cells(text: str, suite) -> list[tuple[str, int]]:
    """`--cells softcca:50,muc2m:200` -> [(method, d)], checked: methods of the suite with a
    search space, d a positive whole number; repeats dropped."""
    cells = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        method, sep, d_text = token.partition(":")
        if not sep or not method or not d_text.strip():
            raise UsageError(f"--cells {token!r}: expected METHOD:D, e.g. softcca:50")
        try:
            d = int(d_text)
        except ValueError:
            raise UsageError(f"--cells {token!r}: d must be a whole number") from None
        if d < 1:
            raise UsageError(f"--cells {token!r}: d must be ≥ 1")
        if method not in suite.known_methods():
            raise UsageError(f"--cells {token!r}: unknown method {method!r} for suite "
                             f"{suite.name}; choose from: {', '.join(suite.known_methods())}")
        if not registry.get(method).search:
            raise UsageError(f"--cells {token!r}: {method} has no search space (it runs a "
                             f"grid), so there is no search to audit")
        if (method, d) not in cells:
            cells.append((method, d))
    if not cells:
        raise UsageError("--cells is empty; give METHOD:D pairs, e.g. softcca:50,muc2m:200")
    return cells


def grid_trials(suite, profile: str, cells, points: int, checkpoint_root: Path,
                options: dict) -> list[dict]:
    """Every cell's grid as search trials (seeds 1000 + i), each at the profile's full budget
    for a search trial and validating as the sweep's search trials do
    (`planner.search_config`). Each carries its grid coordinates and the audit's settings
    (`audit`), which the rendering reads back from the plan."""
    trials = []
    for method, d in cells:
        spec = registry.get(method)
        shape = grid_shape(spec.search, points)
        for i, coords in enumerate(grid_coordinates(spec.search, points)):
            values = {name: search.value_at(spec.search[name], u) for name, u in coords.items()}
            config, _ = planner.search_config(suite, method, d, values, i, profile, options)
            trial = planner.resolved_trial(suite, config, checkpoint_root)
            trial["audit"] = {"points": points, "shape": shape, "u": coords,
                              "rung_budget": min(suite.profile(profile).rung_budget
                                                 or trial["epochs"], trial["epochs"]),
                              "options": _jsonable(options)}
            trials.append(trial)
    return trials


def _jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def make_plan(suite, profile: str, cells, points: int, checkpoint_root: Path, options: dict,
              digest: str = "") -> Plan:
    """The audit's plan: its grid trials (the reported ones are added once the grid has
    ended, `reported_trials`) and the snapshot the rendering needs."""
    trials = grid_trials(suite, profile, cells, points, checkpoint_root, options)
    order = {name: i for i, name in enumerate(registry.list_methods())}
    methods = list(dict.fromkeys(m for m, _ in cells))
    per_cell = max(len(grid_coordinates(registry.get(m).search, points)) for m in methods)
    return Plan(suite=suite.name, family=suite.family, profile=profile, trials=trials,
                methods={m: MethodInfo.of(registry.get(m), suite.family, order[m])
                         for m in methods},
                columns=tuple(suite.columns), search_trials=per_cell, search=GRID_MODE,
                seeds=0, dims=tuple(sorted({d for _, d in cells})), data_digest=digest,
                git_commit=git_commit(), hardware=hardware(),
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def plan_cells(plan: Plan) -> list[tuple[str, int]]:
    """The audited cells, in the order the plan lists them."""
    return list(dict.fromkeys((t["method"], t["d"]) for t in plan.trials))


def reported_seeds(against_df: pd.DataFrame, method: str, d: int) -> list[int]:
    """The seeds the audited sweep reported the cell with (its trials outside the search)."""
    cell = against_df[(against_df.method == method) & (against_df.d == d)]
    return sorted({int(s) for s in cell.seed})


def reported_trials(suite, plan: Plan, records: list, seeds: dict, checkpoint_root: Path,
                    options: dict) -> tuple[list[dict], list[str]]:
    """Per cell, the grid's best configuration on validation (`search.choose`) rerun with
    `seeds[(method, d)]`, as reported trials. Returns (trials, lines on the choices)."""
    chosen, lines = [], []
    names = {t["name"] for t in plan.trials if t.get("phase") == "search"}
    for method, d in plan_cells(plan):
        spec = registry.get(method)
        best, cell = planner.cell_choice(records, method, d, names)
        if best is None:
            lines.append(f"warning: {method} d={d}: no grid trial ended with a validation "
                         f"correlation ({len(cell)} ended); nothing to rerun")
            continue
        values = search.values_of(spec, best)
        n_ok = sum(r.status == "ok" for r in cell)
        lines.append(f"{method} d={d}: grid best {_values_text(values)} (validation "
                     f"{best.metrics['val_corr_best']:.2f}, {n_ok} of {len(cell)} ok); rerun "
                     f"with seeds {','.join(map(str, seeds[method, d]))}")
        chosen += planner.rerun_trials(suite, method, d, best, seeds[(method, d)],
                                       plan.profile, checkpoint_root, options)
    return chosen, lines


def _values_text(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in values.items())


# --------------------------------------------------------------------------- the arithmetic
def pooled_std(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    """The pooled sample standard deviation of two cells, from the standard deviations the
    tables show (over the seeds, ddof 0): √((n_a·s_a² + n_b·s_b²) / (n_a + n_b − 2)); 0 where
    the two cells have no spread to estimate (one seed each)."""
    dof = n_a + n_b - 2
    if dof <= 0:
        return 0.0
    return math.sqrt((n_a * std_a ** 2 + n_b * std_b ** 2) / dof)


def bound(pooled: float) -> float:
    """The regret a protocol may have and still pass: max(1, 2 × pooled seed std)."""
    return max(MIN_BOUND, BOUND_SPREADS * pooled)


def rank(mean: float, others) -> int:
    """1 + how many of `others` (the other methods' means at that d) are strictly above."""
    return 1 + sum(1 for other in others if other > mean)


def paired_relation(cell: dict | None, other: dict | None) -> str:
    """Where the cell lies against another by the tables' paired test (`cell`, `other`: seed ->
    bootstrap replicates): "above" or "below" where the 95 % interval of their paired
    difference excludes 0, "≈" where it holds 0; "" where it cannot be formed."""
    from harness import paired
    interval = paired.paired_interval(cell, other) if cell and other else None
    if interval is None:
        return ""
    low, high = interval
    return "above" if low > 0 else "below" if high < 0 else "≈"


def paired_changes(protocol: dict | None, oracle: dict | None, others: dict, catalog) -> str:
    """The other methods (`others`: method -> replicates at the cell's d) whose paired
    relation with this method changes when the oracle's cell stands in for the protocol's,
    as "Title before → after"; joined by "; ". A rank flip with none here is a reordering the
    paired test cannot resolve."""
    changes = []
    for method, replicates in others.items():
        before = paired_relation(protocol, replicates)
        after = paired_relation(oracle, replicates)
        if before and after and before != after:
            changes.append(f"{catalog.title(method)} {before} → {after}")
    return "; ".join(changes)


def rung_score(history: list, epochs: int, fraction: float) -> tuple[float, int]:
    """(the best validation score up to the validation pass nearest to `fraction` of the
    budget `epochs` (ties: the earlier), that pass's epoch): what the configuration had
    shown at that budget. (NaN, 0) where the history has no validation pass after epoch 0."""
    rows = [h for h in history if "val_corr" in h and h.get("epoch", 0) > 0]
    if not rows or not epochs:
        return math.nan, 0
    target = fraction * epochs
    epoch = min((int(h["epoch"]) for h in rows), key=lambda e: (abs(e - target), e))
    scores = [float(h["val_corr"]) for h in rows if int(h["epoch"]) <= epoch]
    finite = [s for s in scores if math.isfinite(s)]
    return (max(finite) if finite else math.nan), epoch


def rank_agreement(records: list, fraction: float, budget: int | None = None
                   ) -> tuple[float, int, int]:
    """(Spearman's ρ between the grid trials' validation scores at `fraction` of the budget
    (`rung_score`) and at the full budget (`val_corr_best`), the epoch of that pass (the
    most common one), how many trials entered): the trials that ended ok with both finite.
    NaN with fewer than three, or where either score is constant."""
    from scipy.stats import spearmanr
    low, full, epochs = [], [], []
    for record in records:
        if record.status != "ok":
            continue
        score, epoch = rung_score(record.history, int(budget or record.epochs or 0), fraction)
        best = float(record.metrics.get("val_corr_best", math.nan))
        if math.isfinite(score) and math.isfinite(best):
            low.append(score)
            full.append(best)
            epochs.append(epoch)
    epoch = max(set(epochs), key=lambda e: (epochs.count(e), -e)) if epochs else 0
    if len(low) < 3 or len(set(low)) < 2 or len(set(full)) < 2:
        return math.nan, epoch, len(low)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = spearmanr(low, full).statistic
    return float(rho), epoch, len(low)


# ---------------------------------------------------------------------------- the rendering
def reported_cells(results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the reported trials' table rows, their selected cells): the tables' own selection
    (`tables.build.table_rows`, `harness.report.select` on validation)."""
    from tables.build import table_rows
    df = table_rows(results)
    if len(df) and "phase" in df:
        df = df[df.phase != "search"]
    if df.empty:
        return df, pd.DataFrame(columns=["method", "d", "status"])
    return df, report.select(df, "val_corr_best")


def _cell(sel: pd.DataFrame, method: str, d: int) -> dict | None:
    match = sel[(sel.method == method) & (sel.d == d)] if len(sel) else sel
    return match.iloc[0].to_dict() if len(match) else None


def _config_text(info, row: dict | None) -> str:
    if row is None or row.get("status") != "ok" or info is None:
        return ""
    return _values_text(search.values_of(info, row))


def audit_rows(audit_folder: Path, against_folder: Path) -> list[dict]:
    """One row per audited cell (`CSV_COLUMNS`), from the two folders alone."""
    audit = read_folders([audit_folder])
    against = read_folders([against_folder])
    plan, catalog = audit.plan, audit.catalog.merged(against.catalog)
    audit_df, audit_sel = reported_cells(audit)
    against_df, against_sel = reported_cells(against)
    # seed -> bootstrap replicates per (method, d): what the paired test compares
    audit_reps = report.cell_replicates(audit_df, audit_sel, audit.records)
    against_reps = report.cell_replicates(against_df, against_sel, against.records)
    ended = {r.name for r in audit.records if r.status != "failed"}  # a failure reruns
    rows = []
    for method, d in plan_cells(plan):
        info = catalog.get(method)
        planned = [t for t in plan.trials if t.get("phase") == "search"
                   and (t["method"], t["d"]) == (method, d)]
        names = {t["name"] for t in planned}
        grid_records = [r for r in audit.records if r.name in names]
        shape = planned[0].get("audit", {}).get("shape", str(len(planned))) if planned else ""
        best = search.choose(grid_records)
        protocol, oracle = _cell(against_sel, method, d), _cell(audit_sel, method, d)
        row = dict.fromkeys(CSV_COLUMNS, math.nan)
        row.update(method=method, d=d, grid=shape, n_grid=len(planned),
                   n_grid_ok=sum(r.status == "ok" for r in grid_records),
                   full_epochs=planned[0]["epochs"] if planned else math.nan,
                   protocol_config=_config_text(info, protocol),
                   oracle_config=_values_text(search.values_of(info, best))
                   if best is not None and info is not None else "",
                   oracle_grid_val=float(best.metrics["val_corr_best"]) if best else math.nan,
                   flip="", paired_changes="", **{"pass": ""})
        for fraction, key in zip(RUNG_FRACTIONS, ("1_9", "1_3")):
            # the fractions of the budget a sweep's low rungs train (the profile's
            # `rung_budget` where it has one, recorded in the plan)
            budget = planned[0].get("audit", {}).get("rung_budget") if planned else None
            rho, epoch, n = rank_agreement(grid_records, fraction, budget)
            row[f"spearman_{key}"], row[f"rung_epoch_{key}"], row["n_spearman"] = rho, epoch, n
        for name, cell in (("protocol", protocol), ("oracle", oracle)):
            if cell is not None and cell.get("status") == "ok":
                row.update({f"{name}_mean": cell["corr_heldout_mean"],
                            f"{name}_std": cell["corr_heldout_std"],
                            f"{name}_n": int(cell["n_seeds"]),
                            f"{name}_val": cell["val_corr_best_mean"]})
        reruns = [t["name"] for t in plan.trials if t.get("phase") != "search"
                  and (t["method"], t["d"]) == (method, d)]
        if protocol is None or protocol.get("status") != "ok":
            row["status"] = "no protocol cell"
        elif not reruns or any(name not in ended for name in reruns):
            row["status"] = "incomplete"  # the grid or its reruns have not all ended
        elif oracle is None or oracle.get("status") != "ok":
            row["status"] = f"oracle {oracle.get('status', 'failed') if oracle else 'failed'}"
        else:
            row["status"] = "ok"
            row["regret"] = row["oracle_mean"] - row["protocol_mean"]
            row["pooled_std"] = pooled_std(row["protocol_std"], row["protocol_n"],
                                           row["oracle_std"], row["oracle_n"])
            row["bound"] = bound(row["pooled_std"])
            row["pass"] = "yes" if row["regret"] <= row["bound"] else "no"
            field = against_sel[(against_sel.status == "ok") & (against_sel.d == d)
                                & (against_sel.method != method)]
            others = [float(v) for v in field.corr_heldout_mean if math.isfinite(float(v))]
            row["rank_protocol"] = rank(row["protocol_mean"], others)
            row["rank_oracle"] = rank(row["oracle_mean"], others)
            row["n_ranked"] = len(others) + 1
            row["flip"] = "yes" if row["rank_protocol"] != row["rank_oracle"] else "no"
            ranked = set(field.method)
            row["paired_changes"] = paired_changes(
                against_reps.get((method, d)), audit_reps.get((method, d)),
                {m: reps for (m, at), reps in against_reps.items() if at == d and m in ranked},
                catalog)
        rows.append(row)
    return rows


def command(plan: Plan, against_folder, audit_folder) -> str:
    """The command that runs this audit, from its plan: suite, profile, cells, points, and
    the suite options and precision it was given."""
    grid = [t for t in plan.trials if t.get("phase") == "search"]
    audit = grid[0].get("audit", {}) if grid else {}
    parts = ["python -m harness.audit", f"--suite {plan.suite}", f"--profile {plan.profile}",
             "--cells " + ",".join(f"{m}:{d}" for m, d in plan_cells(plan)),
             f"--against {against_folder}", f"--points {audit.get('points', '?')}",
             f"--out {audit_folder}"]
    for key, value in audit.get("options", {}).items():
        if key == "precision":
            parts.append(f"--precision {value}")
        elif key == "hidden":
            parts.append(f"--hidden {','.join(map(str, value))}")
        elif key == "weights":
            parts += [f"--weights {k}={v}" for k, v in value.items()]
        elif key in SUITE_OPTIONS:
            parts.append(f"{SUITE_OPTIONS[key][0]} {value}")
    return " ".join(parts)


def _num(value, digits: int = 1, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _mean_std(row: dict, name: str) -> str:
    mean, std, n = row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_n"]
    if not isinstance(mean, float) or not math.isfinite(mean):
        return "–"
    return f"{mean:.1f}" + (f" ± {std:.1f}" if n and n > 1 else "")


def markdown(rows: list[dict], plan: Plan, catalog, audit_df: pd.DataFrame,
             against_plan: Plan, against_df: pd.DataFrame, against_folder,
             audit_folder, out_dir=None) -> str:
    elsewhere = out_dir and Path(out_dir) != Path(audit_folder)
    out_dir_flag = f" --out-dir {out_dir}" if elsewhere else ""

    def title(row):
        return f"{catalog.title(row['method'])} d={row['d']}"

    def grid_text(row):
        params = " × ".join(catalog.get(row["method"]).search) if catalog.get(row["method"]) else ""
        shape = row["grid"].replace("x", "×") if "x" in row["grid"] else f"{row['grid']} points"
        return f"{shape} ({params}), {row['n_grid_ok']}/{row['n_grid']} ok"

    def rank_text(row):
        if not isinstance(row["rank_protocol"], int):
            return "–"
        return f"{row['rank_protocol']} → {row['rank_oracle']} of {row['n_ranked']}" + (
            " **flip**" if row["flip"] == "yes" else "") + (
            f" (paired: {row['paired_changes']})" if row["paired_changes"] else "")

    def rho_text(row, key):
        return f"{_num(row[f'spearman_{key}'], 2)} (ep {row[f'rung_epoch_{key}']})" \
            if row[f"rung_epoch_{key}"] else "–"

    head = ["| cell | grid | protocol | oracle | regret | bound | pass | rank (protocol → "
            "oracle) | Spearman 1/9 | Spearman 1/3 |", "|---" * 10 + "|"]
    for row in rows:
        verdict = row["pass"] or row["status"]
        head.append(f"| {title(row)} | {grid_text(row)} | {_mean_std(row, 'protocol')} | "
                    f"{_mean_std(row, 'oracle')} | {_num(row['regret'], 1, True)} | "
                    f"{_num(row['bound'])} | {verdict} | {rank_text(row)} | "
                    f"{rho_text(row, '1_9')} | {rho_text(row, '1_3')} |")
    chosen = ["| cell | protocol's choice (validation) | oracle's choice (grid validation; "
              "reruns' validation) |", "|---|---|---|"]
    for row in rows:
        chosen.append(f"| {title(row)} | {row['protocol_config'] or '–'} "
                      f"({_num(row['protocol_val'])}) | {row['oracle_config'] or '–'} "
                      f"({_num(row['oracle_grid_val'])}; {_num(row['oracle_val'])}) |")
    many = [r for r in rows if len(getattr(catalog.get(r["method"]), "search", ())) >= 3]
    grid_note = (" A space of three or more parameters gets the product grid of ⌊N^(1/p)⌋ "
                 "points per axis (at least 2), not a Latin hypercube: "
                 + ", ".join(f"{title(r)} {r['grid']}" for r in many) + ".") if many else ""
    points = next((t.get("audit", {}).get("points") for t in plan.trials
                   if t.get("phase") == "search"), "?")
    passed = sum(r["pass"] == "yes" for r in rows)
    flips = sum(r["flip"] == "yes" for r in rows)
    resolved = sum(r["flip"] == "yes" and bool(r["paired_changes"]) for r in rows)
    done = sum(r["status"] == "ok" for r in rows)
    explain = (
        f"Each cell's protocol is what `{against_folder}` reported: its search's choice rerun "
        f"with its seeds. The oracle is a dense grid of the same search space (N = {points}: "
        f"one parameter, N evenly spaced points of its sampling scale, both ends included; two, "
        f"a ⌈√N⌉ × ⌈√N⌉ grid), every point trained for the full budget, and the grid's best on "
        f"validation rerun with the same seeds.{grid_note} Cells: `corr_heldout` on test, mean "
        f"± std over the seeds. **Regret** is the oracle's mean minus the protocol's: what the "
        f"search lost by not looking everywhere (negative: the search's choice did better, or "
        f"seed noise). **Bound** is max({MIN_BOUND:g}, {BOUND_SPREADS} × the pooled seed standard "
        f"deviation of the two cells, √((n₁s₁² + n₂s₂²)/(n₁ + n₂ − 2)) with s the std shown): "
        f"a regret within it is inside seed noise, and the cell **passes**. **Rank**: the "
        f"method's place at its d among the audited sweep's methods, with its protocol mean "
        f"and with the oracle's in its stead (the others keep theirs); a **flip** is a change. "
        f"**Paired**: the methods whose order with this one changes by the tables' paired test "
        f"(the 95 % interval of the seed-paired difference over the same bootstrap resamplings "
        f"of the test pairs lies above 0, below it, or holds it: ≈); a flip with none is "
        f"within what that test resolves. "
        f"**Spearman** is the rank correlation between the grid configurations' best "
        f"validation score up to 1/9 (and 1/3) of the budget, the pass nearest to it (epoch "
        f"shown), and their full-budget score: near 1, a short budget already orders the "
        f"configurations as the full one does, so stopping the poor ones early (ASHA, "
        f"successive halving) loses little. Nothing is chosen on test. {done} of {len(rows)} "
        f"cells complete: {passed} pass, {flips} flip ({resolved} resolved by the paired "
        f"test).")
    commands = (f"Made by `{command(plan, against_folder, audit_folder)}` (add `--resume` to "
                f"continue it); `python -m harness.audit --render-only --against "
                f"{against_folder} --out {audit_folder}{out_dir_flag}` rebuilds this page and "
                f"{CSV_FILE} from "
                f"{audit_folder}/{PLAN_FILE}, {audit_folder}/{LEDGER_FILE} and the audited "
                f"folder.")
    prov_audit = report.provenance(audit_df, plan) if len(audit_df) else "Provenance: no trial yet."
    prov_against = report.provenance(against_df, against_plan) if len(against_df) else ""
    return "\n\n".join([
        f"# Oracle audit — {plan.suite}, profile `{plan.profile}`",
        explain, "\n".join(head), "What each chose:", "\n".join(chosen), commands,
        "Audit (grid and reruns): " + prov_audit,
        *(["Audited sweep (its reported trials): " + prov_against] if prov_against else [])])


def render(audit_folder, against_folder, out_dir=None) -> list[Path]:
    """audit.csv and audit.md (into `out_dir`, default the audit folder): a function of the
    audit's plan and ledger and of the audited sweep's folder alone."""
    from tables.build import table_rows
    audit_folder, against_folder = Path(audit_folder), Path(against_folder)
    out_dir = Path(out_dir or audit_folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = audit_rows(audit_folder, against_folder)
    audit, against = read_folders([audit_folder]), read_folders([against_folder])
    audit_df = table_rows(audit)
    against_df, _ = reported_cells(against)
    text = markdown(rows, audit.plan, audit.catalog.merged(against.catalog), audit_df,
                    against.plan, against_df, against_folder, audit_folder, out_dir)
    (out_dir / MD_FILE).write_text(text + "\n")
    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    for key in INT_COLUMNS:  # whole numbers, blank where missing
        table[key] = pd.array([None if isinstance(v, float) and not math.isfinite(v) else
                               int(v) for v in table[key]], dtype="Int64")
    table.to_csv(out_dir / CSV_FILE, index=False, float_format="%.4f")
    return [out_dir / CSV_FILE, out_dir / MD_FILE]


# ------------------------------------------------------------------------------ the command
def parse_args(argv=None):
    from harness.suites import all_suites
    p = OneLineParser(prog="python -m harness.audit", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    suites = all_suites()
    p.add_argument("--suite", default=None, help="a two-view suite (default: the --against "
                   "folder's)")
    p.add_argument("--profile", default=None, help="paper | quick | smoke (default: the "
                   "--against folder's; it must be that one)")
    p.add_argument("--cells", default=None, help="comma-separated METHOD:D cells to audit, "
                   "e.g. softcca:50,sdcca:200,muc2m:200,vicreg:50,dcca:50")
    p.add_argument("--against", required=True, metavar="FOLDER", help="the sweep folder "
                   "(plan.json + records.jsonl) whose reported cells are audited, e.g. "
                   "tables/results/mnist_halves-quick")
    p.add_argument("--points", type=whole_number(2), default=16, help="grid size N per cell: "
                   "N points for one parameter, ⌈√N⌉² for two, ⌊N^(1/p)⌋ per axis for p ≥ 3 "
                   "(default 16)")
    p.add_argument("--out", default="runs/audit", help="the audit's folder: plan.json, "
                   "records.jsonl, audit.csv, audit.md (default runs/audit)")
    p.add_argument("--precision", default=None, choices=PRECISIONS, help="the networks' "
                   "arithmetic (default: the audited sweep's, else the profile's)")
    p.add_argument("--resume", action="store_true", help="continue the audit in --out: "
                   "finished trials are kept")
    p.add_argument("--render-only", action="store_true", help="only rebuild audit.csv and "
                   "audit.md from --out and --against (no trial runs)")
    p.add_argument("--out-dir", default=None, help="where --render-only writes audit.csv and "
                   "audit.md (default --out), e.g. beside the audited sweep's tables")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module that registers methods; repeatable")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start and "
                   "stop a local Ray)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="fractional GPUs per "
                   "trial (default: 0.25 where the cluster has GPUs, 0 otherwise)")
    p.add_argument("--cpus-per-trial", type=whole_number(1), default=1,
                   help="CPUs (and torch threads) per trial (default 1)")
    p.add_argument("--max-concurrent", type=whole_number(1), default=None,
                   help="most trials at once (default: as many as the resources allow)")
    add_suite_options(p, suites)
    return p.parse_args(argv)


def main(argv=None) -> int:
    return run_cli(lambda argv: _main(parse_args(argv)), argv)


def _main(args) -> int:
    from harness.suites import get_suite
    for plugin in args.plugin:
        print(f"plug-in {plugin}: {', '.join(registry.load_plugin(plugin))}", flush=True)
    out, against_folder = Path(args.out), Path(args.against)
    against = read_folders([against_folder])  # not a sweep's folder: one line
    if args.render_only:
        if not (out / PLAN_FILE).is_file():
            raise UsageError(f"--render-only: {out} holds no audit ({PLAN_FILE}); run the "
                             f"audit first")
        for path in render(out, against_folder, args.out_dir):
            print(path)
        return 0
    if args.cells is None:
        raise UsageError("--cells is required (METHOD:D pairs, e.g. softcca:50,muc2m:200)")
    suite = get_suite(args.suite or against.plan.suite)
    profile = args.profile or against.plan.profile
    if suite.family != "two_view":
        raise UsageError(f"suite {suite.name} sweeps a grid, not a search; the audit is for "
                         f"two-view suites")
    suite.profile(profile)  # an unknown profile: one line
    if (suite.name, profile) != (against.plan.suite, against.plan.profile):
        raise UsageError(f"--against {against_folder} is a sweep of {against.plan.suite}, "
                         f"profile {against.plan.profile}, not {suite.name}, profile "
                         f"{profile}; audit a sweep of the same suite and profile")
    cells = parse_cells(args.cells, suite)
    against_df, against_sel = reported_cells(against)
    seeds = {}
    for method, d in cells:
        cell = _cell(against_sel, method, d)
        if cell is None or cell.get("status") != "ok":
            raise UsageError(f"--against {against_folder} has no reported {method} d={d} "
                             f"(no trial of it ended ok); audit a cell it reports")
        seeds[(method, d)] = reported_seeds(against_df, method, d)
    check_writable(out, "--out")
    options = suite_options(args, suite)
    # the grid trains in the audited sweep's precision (an oracle in another would measure
    # the precision too, and bf16 where a CPU emulates it costs ~10x), unless told otherwise
    options["precision"] = args.precision or swept_precision(against.plan, cells) or \
        suite.profile(profile).precision
    checkpoint_root = out / "checkpoints"
    if args.gpus_per_trial is not None and not (math.isfinite(args.gpus_per_trial)
                                                and args.gpus_per_trial >= 0):
        raise UsageError(f"--gpus-per-trial {args.gpus_per_trial}: give a number ≥ 0")
    # every trial resolved before any data is read: a bad one is a ConfigError, one line
    plan = make_plan(suite, profile, cells, args.points, checkpoint_root, options)
    suite.check_inputs(options)
    data = suite.load_data(profile, options)
    plan.data_digest = data_digest(data)
    differs = difference(plan, against.plan)
    if differs:
        what, mine, theirs = differs
        raise UsageError(f"--against {against_folder}: its {what} differs from this audit's "
                         f"({theirs} vs {mine}); audit a sweep of the same data")
    # the grid trains as the audited sweep did: an oracle under another stopping rule would
    # measure the rule, not the search
    theirs, mine = plan_patience(against.plan), plan_patience(plan)
    if theirs != mine:
        raise UsageError(f"--against {against_folder}: it was trained with patience {theirs}, "
                         f"this audit's profile with {mine}; audit a sweep run under the "
                         f"current profile")

    from harness import tune as tune_runner  # Ray is imported only to run trials
    cluster: dict = {}

    def resources() -> dict:
        """Ray, started (or joined) when a phase first has trials to run: a resumed audit
        whose trials have all ended renders without it."""
        if not cluster:
            try:
                available = tune_runner.connect(args.address, num_cpus=None if args.address
                                                else os.cpu_count())
            except tune_runner.ClusterError as err:
                raise UsageError(str(err)) from None
            gpus = float(available.get("GPU", 0))
            per_trial = trial_gpus(args.gpus_per_trial, gpus)
            warn_emulated_bf16(plan.trials[0]["precision"], per_trial)
            cluster.update(gpus_per_trial=per_trial, cpus_per_trial=args.cpus_per_trial,
                           max_concurrent=args.max_concurrent)
        return cluster

    try:
        return _run(plan, suite, data, out, against_folder, seeds, options, args.resume,
                    tune_runner, resources)
    finally:
        tune_runner.shutdown()


def swept_precision(plan: Plan, cells) -> str | None:
    """The precision the audited cells' trials were planned in (None: the plan names none)."""
    found = {t.get("precision") for t in plan.trials if (t.get("method"), t.get("d")) in cells}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _run(plan: Plan, suite, data, out: Path, against_folder: Path, seeds: dict, options: dict,
         resume: bool, tune_runner, resources) -> int:
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_root = out / "checkpoints"
    if not resume:
        if (out / LEDGER_FILE).exists():
            print(f"a new audit in {out}: its earlier {LEDGER_FILE} and {PLAN_FILE} are kept "
                  f"there under a dated name (--resume continues it instead)", flush=True)
        archive_previous(out)
        shutil.rmtree(checkpoint_root, ignore_errors=True)
    plan.save(out)
    ledger = Ledger(out)
    finished = ledger.finished()
    storage = str((out / "ray_results").resolve())
    cells = plan_cells(plan)
    grid = [t for t in plan.trials if t.get("phase") == "search"]
    reported_epochs = sum(len(seeds[(t["method"], t["d"])]) * t["epochs"] for t in grid
                          if t["seed"] == search.SEARCH_SEED_BASE)
    parts = []
    for method, d in cells:
        mine = [t for t in grid if (t["method"], t["d"]) == (method, d)]
        parts.append(f"{method} d={d}: {len(mine)} configurations ({mine[0]['audit']['shape']})"
                     f" × {mine[0]['epochs']} epochs")
    print(f"oracle audit of {len(cells)} cells against {against_folder} ({'; '.join(parts)}): "
          f"{len(grid)} grid trials ({sum(t['epochs'] for t in grid)} epochs), then "
          f"{sum(len(seeds[c]) for c in cells)} reported trials ({reported_epochs} epochs)",
          flush=True)
    if resume:
        done = [t["name"] for t in grid if t["name"] in finished]
        print(f"resuming: {len(done)} of {len(grid)} grid trials already finished", flush=True)

    def on_result(result) -> None:
        result.end_time = result.end_time or int(time.time() * 1000)  # the audit's date
        ledger.append(result)
        finished[result.name] = result

    def run_phase(trials: list[dict], experiment: str) -> bool:
        todo = [dict(t) for t in trials if t["name"] not in finished]
        print(f"{experiment}: {len(todo)} trials to run ({len(trials)} in this phase)",
              flush=True)
        if not todo:
            return True
        try:
            ended = tune_runner.run_grid(todo, data, suite=suite, storage=storage,
                                         on_result=on_result, experiment_name=experiment,
                                         **resources())
        except KeyboardInterrupt:
            ended = -1
        return ended >= len(todo)

    interrupted = not run_phase(grid, "audit-grid")
    if not interrupted:
        chosen, lines = reported_trials(suite, plan, list(finished.values()), seeds,
                                        checkpoint_root, options)
        for line in lines:
            print(line, file=sys.stderr if line.startswith("warning") else sys.stdout,
                  flush=True)
        plan.trials = [t for t in plan.trials if t.get("phase") == "search"] + chosen
        plan.save(out)
        interrupted = not run_phase(chosen, "audit-reported")
    written = render(out, against_folder)
    print(written[1].read_text(), flush=True)
    if interrupted:
        print("\ninterrupted: finished trials are in the ledger; rerun the same command with "
              "--resume to continue", file=sys.stderr)
        return 130
    print(f"audit finished in {(time.time() - started) / 60:.1f} min: "
          + ", ".join(map(str, written)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
