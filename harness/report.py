"""What every suite's tables share: model selection on validation, mean ± std cells, a
Markdown table with the plan's titles and row order, and the provenance line."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from harness.record import NON_METRIC


def select(df: pd.DataFrame, select_metric: str, reference=None) -> pd.DataFrame:
    """Per (method, d): the strength with the best mean `select_metric` (a validation metric)
    over its ok seeds. Cells where no trial ended ok are kept with status 'diverged' or 'failed'.
    `reference(method, d)` -> {column: value} adds the paper's numbers to each ok cell."""
    metric_keys = [c for c in df.columns if c not in NON_METRIC and not c.startswith("param_")]
    param_keys = [c for c in df.columns if c.startswith("param_")] + ["lr"]
    out = []
    for (method, d), cell in df.groupby(["method", "d"], sort=False):
        ok = cell[cell.status == "ok"]
        if ok.empty:
            status = "diverged" if (cell.status == "diverged").any() else "failed"
            out.append({"method": method, "d": d, "status": status, "n_seeds": 0,
                        "reason": "; ".join(sorted(set(cell.reason.astype(str)))[:2])})
            continue
        by_strength = ok.groupby("strength", dropna=False)[select_metric].mean()
        best = by_strength.idxmax()
        chosen = ok[ok.strength == best] if not pd.isna(best) else ok
        row = {"method": method, "d": d, "status": "ok", "n_seeds": len(chosen),
               "strength_name": chosen.strength_name.iloc[0], "strength": best,
               "n_tried": len(cell), "n_diverged": int((cell.status != "ok").sum())}
        row.update({key: chosen[key].iloc[0] for key in param_keys if key in chosen})
        for key in metric_keys:
            values = chosen[key].astype(float)
            row[f"{key}_mean"] = values.mean()
            row[f"{key}_std"] = values.std(ddof=0)
        if reference is not None:
            row.update(reference(method, d))
        out.append(row)
    return pd.DataFrame(out)


def fmt(row: dict, key: str, digits: int = 1) -> str:
    """`mean` (one seed) or `mean ± std`; a cell that did not end ok shows its status."""
    if row.get("status") != "ok":
        return row.get("status", "—")
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    if pd.isna(mean):
        return "–"
    text = f"{mean:.{digits}f}"
    if row["n_seeds"] > 1:
        text += f" ± {std:.{digits}f}"
    return text


def marks(sel: pd.DataFrame, key: str, exclude=(), replicates: dict | None = None,
          tests: set | None = None) -> dict:
    """Per d, the best mean `key` and the cells tied with it: (method, d) -> "best" | "tie".

    Where both cells have bootstrap replicates of `key` (`replicates`: (method, d) -> {seed:
    replicates}, see `cell_replicates`), a tie is a paired difference whose 95 % interval
    contains 0 (`harness.paired.tied`); elsewhere it is a mean within the two cells' summed
    standard deviations of the best (a difference inside their seed spread), and cells of one
    seed have no spread and never tie. `tests`, if given, collects the tests that decided:
    "paired" and/or "spread", one per comparison with a best. No cell is marked at a d where
    a cell of `exclude` (unconverged) is."""
    from harness import paired

    out, replicates = {}, replicates or {}
    ok = sel[(sel.status == "ok") & sel[f"{key}_mean"].notna()] if len(sel) else sel
    if len(ok) and exclude:  # cells no conclusion may rank (unconverged): no mark at their d,
        # where a "best" would compare finished training with unfinished
        ok = ok[[d not in {d for _, d in exclude} for d in ok.d]]
    for d, cells in (ok.groupby("d") if len(ok) else ()):
        best = cells.loc[cells[f"{key}_mean"].idxmax()]
        for _, cell in cells.iterrows():
            if cell.method == best.method:
                out[(cell.method, d)] = "best"
                continue
            tie = None
            if (cell.method, d) in replicates and (best.method, d) in replicates:
                tie = paired.tied(replicates[(cell.method, d)], replicates[(best.method, d)])
            if tie is None:  # no paired replicates: the seed spread decides
                gap = best[f"{key}_mean"] - cell[f"{key}_mean"]
                spread = best[f"{key}_std"] + cell[f"{key}_std"]
                tie = bool(best.n_seeds > 1 and cell.n_seeds > 1 and gap <= spread)
                used = "spread"
            else:
                used = "paired"
            if tests is not None:
                tests.add(used)
            if tie:
                out[(cell.method, d)] = "tie"
    return out


def selected_trials(df: pd.DataFrame, row) -> pd.DataFrame:
    """The trials a selected cell `row` (of `select`) averages: ok, reported (not search),
    of its method, d and chosen strength."""
    cell = df[(df.method == row.method) & (df.d == row.d) & (df.status == "ok")]
    if "phase" in cell:
        cell = cell[cell.phase != "search"]
    if not pd.isna(row.strength):
        cell = cell[cell.strength == row.strength]
    return cell


def cell_replicates(df: pd.DataFrame, sel: pd.DataFrame, records) -> dict:
    """(method, d) -> {seed: bootstrap replicates} of each ok cell whose every selected trial
    (the trials `select` averaged: ok, reported, of the chosen strength) recorded them; a cell
    where any lacks them is left out (its ties fall back to the seed spread)."""
    by_name = {r.name: list(getattr(r, "replicates", None) or []) for r in records}
    out = {}
    for row in (sel[sel.status == "ok"].itertuples() if len(sel) else ()):
        cell = selected_trials(df, row)
        reps = {int(t.seed): by_name.get(t.name, []) for t in cell.itertuples()}
        if reps and all(reps.values()):
            out[(row.method, row.d)] = reps
    return out


SPREAD_TIES = ("Per d, **bold** is the best mean over seeds and ≈ marks a cell whose difference "
               "from it lies within the two cells' summed standard deviations (a tie).")


def ties_text(tests: set, n_boot: int = 0, key: str = "corr_heldout") -> str:
    """The sentence that says how `marks` made the ties, from the `tests` it used: the seed
    spread alone (the text tables have always had), the paired test alone, or both."""
    if "paired" not in tests:
        return SPREAD_TIES
    paired = ("Per d, **bold** is the best mean over seeds and ≈ marks a cell tied with it by a "
              "paired test: the 95 % percentile interval of their difference contains 0, where "
              f"the difference is, per bootstrap replicate (the same {n_boot} resamplings of the "
              f"test pairs in every trial), the mean over the seeds both cells have of the "
              f"cell's `{key}` minus the best's.")
    if "spread" not in tests:
        return paired
    return (paired + " Where either cell has no replicates (trials recorded before they were "
            "kept), ≈ marks instead a difference within the two cells' summed standard "
            "deviations.")


def marked(text: str, mark: str | None) -> str:
    """A cell's text, bold when best, with "≈" when tied with the best."""
    return {"best": f"**{text}**", "tie": f"{text} ≈"}.get(mark, text)


def strength_text(row: dict, missing: str | None = None) -> str:
    """`name=value` of the selected strength; a cell that did not end ok shows `missing`
    (default: its status), a method without a strength "–"."""
    if row.get("status") != "ok":
        return row.get("status", "–") if missing is None else missing
    if pd.isna(row.get("strength")):
        return "–"
    return f"{row['strength_name']}={row['strength']:g}"


def markdown_table(catalog, sel: pd.DataFrame, dims, cell) -> str:
    """Rows: methods (the plan's row order and titles, `catalog`); columns: d;
    `cell(row, method, d)` -> text."""
    header = "| method | " + " | ".join(f"d={d}" for d in dims) + " |"
    lines = [header, "|---" * (len(dims) + 1) + "|"]
    for method in catalog.ordered(sel.method.unique()):
        cells = []
        for d in dims:
            match = sel[(sel.method == method) & (sel.d == d)]
            cells.append(cell(match.iloc[0].to_dict(), method, d) if len(match) else "not run")
        lines.append(f"| {catalog.title(method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_figure(fig, path, dpi: int) -> Path:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def provenance(df: pd.DataFrame, plan) -> str:
    ok = df[df.status == "ok"]
    epochs = ",".join(sorted(set(ok.epochs.astype(str)))) or "?"
    commits = ",".join(sorted(set(df.git_commit.astype(str))))
    devices = ",".join(sorted(set(ok.device.astype(str))))
    profile, hardware = plan.profile, plan.hardware or "?"
    when = time.strftime("%Y-%m-%d", time.gmtime(max(df.end_time) / 1000)) if len(df) else "?"
    seeds = ",".join(str(s) for s in sorted(set(ok.seed)))
    precisions = sorted(set(ok.precision.astype(str)) - {"fp32"})  # fp32, the default, unnamed
    mixed = f", precision {','.join(precisions)}" if precisions else ""
    return (f"Provenance: profile `{profile}`, epochs {epochs}{mixed}, seeds {{{seeds}}}, commit {commits}, "
            f"hardware {hardware} ({devices}), finished {when}; {len(df)} trials "
            f"({(df.status == 'ok').sum()} ok, {(df.status == 'diverged').sum()} diverged, "
            f"{(df.status == 'failed').sum()} failed).")


def write_cells_csv(sel: pd.DataFrame, path: Path) -> None:
    """tables.csv: the selected cells, metrics to 4 decimals, the selected parameters and
    learning rate to 6 significant digits (a rounded 0.0002 would not rerun the choice)."""
    out = sel.copy()
    for key in [c for c in out.columns if c.startswith("param_")] + ["lr"]:
        if key in out:
            out[key] = [f"{v:.6g}" if isinstance(v, (int, float)) and not pd.isna(v) else v
                        for v in out[key]]
    out.to_csv(path, index=False, float_format="%.4f")
