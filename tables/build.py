"""Rebuild the paper's tables and plots from the MLflow store alone (never trains).

    python -m tables.build --suite mnist_halves [--profile quick] [--mlflow-uri URI] [--out-dir DIR]

Model selection per (method, d): the strength with the best mean validation correlation;
its test metrics are reported as mean ± std over seeds, with the paper's number beside them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tables import paper

METRIC_KEYS = ("corr_heldout", "corr_refit", "corr_floor", "corr_diag", "recog_acc",
               "recog_acc_swapped", "val_corr_best", "train_seconds", "n_components", "best_epoch",
               "resumed_from")
METHOD_ORDER = ("cca", "dcca", "dccae", "corrnet", "sdcca", "softcca", "muc2m", "muc2m_regu")


def load_rows(client, parent) -> list[dict]:
    """One row per finished child run of a sweep (the store is the source of truth)."""
    from harness import tracking
    mnist_like = _saliency_experiment(parent.data.tags.get("suite", "")) is None
    rows = {}
    for run in tracking.child_runs(client, parent):
        if run.info.status != "FINISHED" or run.info.run_name in rows:
            continue
        p, m, t = run.data.params, run.data.metrics, run.data.tags
        row = {"name": run.info.run_name, "method": p.get("method"), "d": int(p.get("d", 0)),
               "seed": int(p.get("seed", 0)), "status": t.get("status", "ok"),
               "strength_name": p.get("strength_name"), "strength": _num(p.get("strength")),
               "profile": p.get("profile"), "epochs": p.get("epochs"), "batch": p.get("batch"),
               "lr": p.get("lr"), "precision": p.get("precision", "fp32"),
               "device": p.get("device"), "git_commit": p.get("git_commit"),
               "reason": t.get("failure_reason", ""), "run_id": run.info.run_id,
               "end_time": run.info.end_time or 0}
        if mnist_like:  # a diverged trial has no metrics: keep its columns (as NaN)
            row.update({k: m.get(k, np.nan) for k in METRIC_KEYS})
        row.update({k: v for k, v in m.items() if k not in row})  # a suite's own metrics
        if mnist_like and "val_corr_best" not in m:  # runs logged before the summary metric had its own name
            row["val_corr_best"] = max((p.value for p in client.get_metric_history(
                run.info.run_id, "val_corr")), default=np.nan)
        rows[row["name"]] = row
    return sorted(rows.values(), key=lambda r: (_method_rank(r["method"]), r["d"], r["name"]))


def _num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return np.nan


def _method_rank(method):
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


NON_METRIC = {"name", "method", "d", "seed", "status", "strength_name", "strength", "profile",
              "epochs", "batch", "lr", "precision", "device", "git_commit", "reason", "run_id",
              "end_time"}


def select(df: pd.DataFrame, select_metric: str = "val_corr_best") -> pd.DataFrame:
    """Per (method, d): the strength with the best mean `select_metric` (a validation metric)
    over its ok seeds. Cells where no trial ended ok are kept with status 'diverged' or 'failed'."""
    metric_keys = [c for c in df.columns if c not in NON_METRIC]
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
        for key in metric_keys:
            values = chosen[key].astype(float)
            row[f"{key}_mean"] = values.mean()
            row[f"{key}_std"] = values.std(ddof=0)
        row["paper_table1"] = paper.paper_value(paper.TABLE1, method, d)
        row["paper_table5"] = paper.paper_value(paper.TABLE5, method, d)
        out.append(row)
    return pd.DataFrame(out)


def _fmt(row, key: str, digits: int = 1) -> str:
    if row.get("status") != "ok":
        return row.get("status", "—")
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    text = f"{mean:.{digits}f}"
    if row["n_seeds"] > 1:
        text += f" ± {std:.{digits}f}"
    return text


def _paper(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:g}"


def markdown_table(sel: pd.DataFrame, dims, cell) -> str:
    from harness.registry import get as get_method
    header = "| method | " + " | ".join(f"d={d}" for d in dims) + " |"
    lines = [header, "|---" * (len(dims) + 1) + "|"]
    for method in sorted(sel.method.unique(), key=_method_rank):
        cells = []
        for d in dims:
            match = sel[(sel.method == method) & (sel.d == d)]
            cells.append(cell(match.iloc[0].to_dict(), method, d) if len(match) else "not run")
        lines.append(f"| {get_method(method).title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance(df: pd.DataFrame, profile: str, parent) -> str:
    ok = df[df.status == "ok"]
    epochs = ",".join(sorted(set(ok.epochs.astype(str)))) or "?"
    commits = ",".join(sorted(set(df.git_commit.astype(str))))
    devices = ",".join(sorted(set(ok.device.astype(str))))
    hardware = parent.data.tags.get("hardware", "?") if parent is not None else "?"
    when = time.strftime("%Y-%m-%d", time.gmtime(max(df.end_time) / 1000)) if len(df) else "?"
    seeds = ",".join(str(s) for s in sorted(set(ok.seed)))
    precisions = sorted(set(ok.precision.astype(str)) - {"fp32"})  # fp32, the default, unnamed
    mixed = f", precision {','.join(precisions)}" if precisions else ""
    return (f"Provenance: profile `{profile}`, epochs {epochs}{mixed}, seeds {{{seeds}}}, commit {commits}, "
            f"hardware {hardware} ({devices}), finished {when}; {len(df)} trials "
            f"({(df.status == 'ok').sum()} ok, {(df.status == 'diverged').sum()} diverged, "
            f"{(df.status == 'failed').sum()} failed).")


def render(df: pd.DataFrame, profile: str, parent, suite: str) -> dict[str, str]:
    """Markdown of Tables 1 and 5 with the paper's numbers; one file per table."""
    sel = select(df)
    dims = sorted(df.d.unique())
    prov = provenance(df, profile, parent)

    def with_paper(key, paper_key, digits=1):
        def cell(row, method, d):
            ours = _fmt(row, key, digits)
            return f"{ours} ({_paper(row.get(paper_key))})" if row.get("status") == "ok" else ours
        return cell

    def refit_cell(row, method, d):
        if row.get("status") != "ok":
            return row.get("status")
        text = f"{_fmt(row, 'corr_refit')} [floor {row['corr_floor_mean']:.1f}]"
        if row["n_components_mean"] < d:
            text += f" (k={row['n_components_mean']:.0f})"
        return text

    table1 = "\n\n".join([
        f"# Table 1 — total correlation, {suite} test set (profile `{profile}`)",
        "Primary: `corr_heldout` (linear CCA fitted on the train outputs, per-dimension "
        "correlations summed on test). Cell: ours (paper). Upper bound = d.",
        markdown_table(sel, dims, with_paper("corr_heldout", "paper_table1")),
        "`corr_refit` (CCA refitted on the test outputs, the DCCA literature's number) with its "
        "noise floor `corr_floor` (pairs shuffled); k = components that exist when fewer than d.",
        markdown_table(sel, dims, refit_cell),
        "Selected strength per cell (best mean validation correlation):",
        markdown_table(sel, dims, lambda r, m, d: (f"{r['strength_name']}={r['strength']:g}"
                                                   if r.get("status") == "ok" else r["status"])),
        prov])
    table5 = "\n\n".join([
        f"# Table 5 — cross-modality recognition accuracy (%), {suite} (profile `{profile}`)",
        "LinearSVC trained on view-1 representations of 4 test folds, tested on view 2 of the "
        "fifth (5 contiguous folds). Cell: ours (paper).",
        markdown_table(sel, dims, with_paper("recog_acc", "paper_table5")),
        "Swapped direction (view 2 → view 1):",
        markdown_table(sel, dims, lambda r, m, d: _fmt(r, "recog_acc_swapped")),
        prov])
    return {"table1.md": table1 + "\n", "table5.md": table5 + "\n"}, sel


def plots(df: pd.DataFrame, sel: pd.DataFrame, client, out_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.registry import get as get_method

    written = []
    ok = sel[sel.status == "ok"]
    for key, paper_table, fname, ylabel in (
            ("corr_heldout", paper.TABLE1, "corr_vs_d.png", "total correlation (corr_heldout)"),
            ("recog_acc", paper.TABLE5, "recog_vs_d.png", "cross-modal recognition (%)")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, method in enumerate(sorted(ok.method.unique(), key=_method_rank)):
            color = f"C{i}"
            rows = ok[ok.method == method].sort_values("d")
            ax.errorbar(rows.d, rows[f"{key}_mean"], yerr=rows[f"{key}_std"], color=color,
                        marker="o", label=get_method(method).title)
            ref = [(d, paper.paper_value(paper_table, method, d)) for d in paper.DIMS]
            ref = [(d, v) for d, v in ref if v is not None]
            if ref:
                ax.plot(*zip(*ref), color=color, linestyle="--", marker="x", alpha=0.7)
        ax.set_xscale("log")
        ax.set_xlabel("latent dimension d")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel}: ours solid, paper dashed")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    methods = sorted(df[df.status == "ok"].method.unique(), key=_method_rank)
    if methods:
        cols = min(4, len(methods))
        rows_n = int(np.ceil(len(methods) / cols))
        fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False)
        for ax, method in zip(axes.flat, methods):
            for _, trial in df[(df.method == method) & (df.status == "ok")].iterrows():
                hist = sorted((m.step, m.value) for m in
                              client.get_metric_history(trial.run_id, "val_corr"))
                if len(hist) > 1:  # epoch 0 is a validation point only for closed-form fits
                    hist = [(step, value) for step, value in hist if step > 0]
                if hist:
                    ax.plot(*zip(*hist), marker=".", label=trial["name"].split("[", 1)[1][:-1])
            ax.set_title(get_method(method).title)
            ax.set_xlabel("epoch")
            ax.set_ylabel("val_corr")
            ax.legend(fontsize=5)
        for ax in list(axes.flat)[len(methods):]:
            ax.axis("off")
        fig.tight_layout()
        path = out_dir / "val_curves.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def build(suite: str, profile: str, client=None, uri: str | None = None,
          out_dir: Path | None = None) -> list[Path]:
    """Write table1/table5 (Markdown), tables.csv and the plots; return the paths."""
    from harness import tracking
    client = client or tracking.open_client(uri)
    parent = tracking.find_sweep(client, suite, profile)
    if parent is None:
        raise LookupError(f"no sweep of suite {suite!r} with profile {profile!r} in the store; "
                          f"run `python -m harness.run --suite {suite} --profile {profile}` first")
    df = pd.DataFrame(load_rows(client, parent))
    if df.empty:
        raise LookupError(f"the sweep {parent.info.run_id} has no finished trials yet")
    out_dir = Path(out_dir or f"tables/results/{suite}-{profile}")
    out_dir.mkdir(parents=True, exist_ok=True)
    experiment = _saliency_experiment(suite)
    if experiment is None:
        texts, sel = render(df, profile, parent, suite)
    else:
        from tables import saliency
        sel = select(df, _select_metric(suite))
        sel = sel.merge(_selected_run_ids(df, sel), on=["method", "d"], how="left")
        texts = saliency.render(sel, suite, profile, provenance(df, profile, parent), experiment)
    written = []
    for fname, text in texts.items():
        (out_dir / fname).write_text(text)
        written.append(out_dir / fname)
    sel.to_csv(out_dir / "tables.csv", index=False, float_format="%.4f")
    written.append(out_dir / "tables.csv")
    if experiment is None:
        written += plots(df, sel, client, out_dir)
    else:
        written += saliency.gallery(sel, client, out_dir, suite, experiment)
    return written


def _saliency_experiment(suite: str) -> str | None:
    """"ooi" / "pairs" for the saliency suites, None for mnist_halves-like suites."""
    from harness.suites import SUITES
    tables = SUITES[suite].tables if suite in SUITES else ("table1",)
    if "table2" in tables:
        return "ooi"
    return "pairs" if "table3" in tables else None


def _select_metric(suite: str) -> str:
    """The validation metric the suite selects strengths by (`Suite.select_metric`)."""
    from harness.suites import SUITES
    return SUITES[suite].select_metric if suite in SUITES else "val_corr_best"


def _selected_run_ids(df: pd.DataFrame, sel: pd.DataFrame) -> pd.DataFrame:
    """The run of the selected strength (seed 0, or the lowest seed) per (method, d): its
    gallery is the one shown."""
    rows = []
    for r in sel.itertuples():
        if r.status != "ok":
            continue
        cell = df[(df.method == r.method) & (df.d == r.d) & (df.status == "ok")]
        if not pd.isna(r.strength):
            cell = cell[cell.strength == r.strength]
        rows.append({"method": r.method, "d": r.d, "run_id": cell.sort_values("seed").run_id.iloc[0]})
    return pd.DataFrame(rows, columns=["method", "d", "run_id"])


def summary(client, parent) -> str:
    """A one-screen text table of the selected cells (corr_heldout / recog_acc)."""
    df = pd.DataFrame(load_rows(client, parent))
    if df.empty:
        return "no finished trials"
    experiment = _saliency_experiment(parent.data.tags.get("suite", ""))
    if experiment is not None:
        from tables.saliency import TABLE3_KEYS, TABLE4_KEYS
        sel = select(df, _select_metric(parent.data.tags.get("suite", "")))
        keys = ("ap",) if experiment == "ooi" else TABLE3_KEYS + TABLE4_KEYS
        lines = ["method       " + "".join(f"{k:>12}" for k in keys)]
        for r in sel.sort_values("method").itertuples():
            cells = [f"{getattr(r, f'{k}_mean', float('nan')):>12.1f}" if r.status == "ok"
                     else f"{r.status:>12}" for k in keys]
            lines.append(f"{r.method:<13}" + "".join(cells))
        return "\n".join(lines)
    sel = select(df)
    dims = sorted(df.d.unique())
    lines = ["method     " + "".join(f"{'d=' + str(d):>16}" for d in dims),
             "           " + "".join(f"{'corr / recog%':>16}" for _ in dims)]
    for method in sorted(sel.method.unique(), key=_method_rank):
        cells = []
        for d in dims:
            r = sel[(sel.method == method) & (sel.d == d)]
            if not len(r):
                cells.append(f"{'-':>16}")
            elif r.iloc[0].status != "ok":
                cells.append(f"{r.iloc[0].status:>16}")
            else:
                r = r.iloc[0]
                cells.append(f"{r.corr_heldout_mean:>9.1f} / {r.recog_acc_mean:4.1f}")
        lines.append(f"{method:<11}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tables.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--mlflow-uri", default="sqlite:///runs/mlflow.db")
    parser.add_argument("--out-dir", default=None,
                        help="default: tables/results/<suite>-<profile>")
    args = parser.parse_args(argv)
    from harness import tracking
    try:
        written = build(args.suite, args.profile, uri=args.mlflow_uri, out_dir=args.out_dir)
    except (LookupError, tracking.TrackingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
