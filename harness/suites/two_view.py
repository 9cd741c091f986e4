"""The generic two-view suite: a trial that trains (or fits) a method on two views and scores
its representations (total correlation, cross-modal recognition), and the tables and plots
rendered from a sweep's plan and ledger. Any suite whose data are {"train", "val", "test"}
splits of `TwoViews` is `two_view_suite(...)` with its own loader (MNIST halves, Noisy MNIST,
your own arrays).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness import metrics, mlflow_extras, paired, planner, report, search
from harness.ledger import SweepResults, carries_references
from harness.loop import converged, fit_loop, represent_all
from harness.models import PRECISIONS, TwoViewModel
from harness.profiles import get_profile
from harness.record import TrialRecord
from harness.suites import Suite

# Metric columns, in table order.
COLUMNS = ("corr_heldout", "corr_refit", "corr_floor", "corr_diag", "recog_acc",
           "recog_acc_swapped", "val_corr_best", "train_seconds", "n_components", "best_epoch",
           "resumed_from")


def paper_value(table: dict, method: str, d: int, dims) -> float | None:
    """A reference number of `method` at `d` (None where the reference has none)."""
    row = table.get(method)
    if row is None or d not in tuple(dims):
        return None
    return row[tuple(dims).index(d)]


# ------------------------------------------------------------------------------------- data
def cut_to_profile(data: dict, profile_name: str) -> dict:
    """Each split of a two-view data set cut to the profile's subset sizes (None: all)."""
    profile = get_profile(profile_name)
    sizes = {"train": profile.n_train, "val": profile.n_val, "test": profile.n_test}
    return {split: views.head(sizes[split]) for split, views in data.items()}


def to_device(views, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(views.x1, device=device), torch.as_tensor(views.x2, device=device))


# ------------------------------------------------------------------------------------ trial
def validation_corr(represent, train, val, k: int) -> float:
    """Held-out correlation of the validation split (CCA fitted on train outputs)."""
    tr = represent_all(represent, *train)
    va = represent_all(represent, *val)
    return metrics.corr_heldout(*tr, *va, k)


def heldout_replicates(projection, warn) -> list[float]:
    """A reported trial's bootstrap replicates of corr_heldout over its test pairs (from the
    test outputs `metrics.all_metrics` projected by the held-out CCA), for the tables' paired
    tie test (`harness.paired`); none (and a warning) where they cannot be computed, and then
    its cells are compared by their seed spread."""
    try:
        replicates = paired.resampled_correlations(*projection)
    except Exception as err:  # noqa: BLE001 - the trial's metrics stand without them
        warn(f"no bootstrap replicates of corr_heldout ({type(err).__name__}: {err})")
        return []
    if not np.isfinite(replicates).all():
        warn("no bootstrap replicates of corr_heldout (some were not finite)")
        return []
    return paired.stored(replicates)


@mlflow_extras.sampled  # the record carries MLflow's system metrics sampled while it ran
def run_trial(config: dict, data: dict | None = None, checkpoint_dir=None, report=None,
              device: str | None = None, log=None, suite: Suite | None = None) -> TrialRecord:
    """Train (or fit) one configuration and return its record.

    config: method, d, and optionally strength, seed, profile, overrides (parameter → value),
    batch/lr/epochs/eval_every (profile overrides). data: the splits from `load_data`.
    checkpoint_dir: where the full state is saved every `eval_every` epochs and restored from.
    report(epoch, row): called after each validation pass (the Ray runner reports through it).
    """
    cfg, spec, device, log = suite.begin(config, device, log)
    warnings = []

    def warn(msg):  # e.g. an unreadable checkpoint: kept with the record and shown
        warnings.append(msg)
        log(msg)

    data = data or suite.load_data(cfg["profile"], config)
    profile = suite.profile(cfg["profile"])
    train = to_device(data["train"], device)
    val, test = to_device(data["val"], device), to_device(data["test"], device)
    train_fit = tuple(h[:profile.val_fit_n] for h in train)
    d, started = cfg["d"], time.time()

    if spec.two_view.closed_form is not None:
        represent = spec.two_view.closed_form(*train, d, cfg["params"])
        k = represent.n_components
        history = [{"epoch": 0, "val_corr": validation_corr(represent, train_fit, val, k)}]
        best_epoch = resumed_from = 0
    else:
        represent, history, best_epoch, resumed_from = _train(
            spec, cfg, train, train_fit, val, device, checkpoint_dir, report, log, warn,
            profile.convergence(cfg["patience"]))
        k = d
    # under a convergence rule: the epochs the trial needed, and whether the rule (not the
    # cap) ended it (a ledger without these predates the rule)
    trained = ({"epochs_trained": history[-1]["epoch"],
                "converged": float(converged(history, cfg["patience"]))}
               if cfg["patience"] and spec.two_view.closed_form is None else {})
    train_seconds = time.time() - started
    dataset = mlflow_extras.dataset_info(data, suite.name, cfg["profile"],
                                         config.get("mnist_dir") or config.get("data"))
    if cfg["phase"] == "search":  # a search trial is chosen on validation: no test metric
        out = {"val_corr_best": max(row["val_corr"] for row in history), "best_epoch": best_epoch,
               "resumed_from": resumed_from, **trained}  # resumed_from: for the ETA's rates
        return TrialRecord.of(cfg, metrics=out, history=history, train_seconds=train_seconds,
                              device=str(device), warnings=warnings, dataset=dataset)
    labels = data["test"].y  # recognition where the data have labels
    train_reps, test_reps = represent_all(represent, *train), represent_all(represent, *test)
    unavailable = {}  # metric -> why it cannot be measured here (one class, too few pairs)
    projected = {}  # the held-out CCA's projection of the test outputs, fitted once
    out = metrics.all_metrics(train_reps, test_reps, labels, k, aligned=spec.two_view.aligned,
                              recognition=labels is not None, unavailable=unavailable,
                              projected=projected)
    if suite.extra_metrics is not None:  # a suite's own protocol (Noisy MNIST's)
        out.update(suite.extra_metrics(train_reps, test_reps, data))
    replicates = (heldout_replicates(projected["p"], warn)  # the paired tie test
                  if "corr_heldout" in out and "p" in projected else [])
    out["val_corr_best"] = max(row["val_corr"] for row in history)  # the selection metric
    out["n_components"] = k
    out["best_epoch"] = best_epoch
    out["resumed_from"] = resumed_from  # the epoch a restored checkpoint continued from
    out.update(trained)
    encoder_path = ""  # the trained encoders, for MLflow's Models (a closed form has none)
    if checkpoint_dir is not None and getattr(represent, "model", None) is not None:
        encoder_path = mlflow_extras.save_encoders(represent.model, checkpoint_dir, data["test"],
                                                   test_reps)
    return TrialRecord.of(cfg, metrics=out, history=history, train_seconds=train_seconds,
                          device=str(device), warnings=warnings, unavailable=unavailable,
                          dataset=dataset, encoder_path=encoder_path, replicates=replicates)


def _train(spec, cfg, train, train_fit, val, device, checkpoint_dir, report, log, warn,
           convergence):
    """Build the method's model and running statistics and train them with `fit_loop`."""
    torch.manual_seed(cfg["seed"])
    p1, p2, d = train[0].shape[1], train[1].shape[1], cfg["d"]  # encoders sized from the data
    model = TwoViewModel.for_method(spec, p1, p2, d, cfg["hidden"], cfg["precision"],
                                    factored=cfg["factored"]).to(device)
    state = spec.two_view.fresh_state(d, device)

    def represent(h1, h2):
        model.eval()
        return model.represent(h1, h2)
    represent.model = model  # the trained networks, saved for MLflow by run_trial

    history, best_epoch, start_epoch = fit_loop(
        model, lambda h1, h2: spec.two_view.objective(model, h1, h2, state, cfg["params"]), train,
        epochs=cfg["epochs"], batch=min(cfg["batch"], len(train[0])), lr=cfg["lr"], seed=cfg["seed"],
        eval_every=cfg["eval_every"], validate=lambda: validation_corr(represent, train_fit, val, d),
        state=state, checkpoint_dir=checkpoint_dir, name=cfg["name"], log=log, report=report,
        warn=warn, convergence=convergence)
    return represent, history, best_epoch, start_epoch


def headline(m: dict) -> str:
    """The progress line's metrics: those the trial has (no labels: no recognition)."""
    parts = [f"{key} {m[key]:.1f}{unit}" for key, unit in (("corr_heldout", ""),
                                                           ("recog_acc", "%")) if key in m]
    return " ".join(parts).replace("recog_acc", "recog")


# ----------------------------------------------------------------------------------- tables
def render(df: pd.DataFrame, results: SweepResults, out_dir: Path):
    """table1.md, table5.md, tables.csv and the plots, from the sweep's table rows `df` and
    its plan and ledger (`results`); returns (paths, selected cells). The plan's reference
    numbers ({"table1": ..., "table5": ...}, the paper's for MNIST halves) stand beside ours;
    a suite without them gets our numbers alone. Search trials (phase "search") only enter
    the search-budget table: the cells are the reported trials."""
    plan, catalog = results.plan, results.catalog
    profile, suite_name = plan.profile, plan.suite
    reference = plan.reference or {}
    # a search with rungs starts from the methods' reference configurations (search=0)
    has_references = any("rungs" in t for p in results.plans for t in p.trials)
    searched_df = df[df.phase == "search"] if "phase" in df else df.iloc[:0]
    df = df[df.phase != "search"] if "phase" in df else df
    recognition = has_recognition(df, results)
    if not recognition:  # data without labels: no recognition column, table or plot
        df = df.drop(columns=[c for c in metrics.RECOGNITION if c in df])
    sel = report.select(df, "val_corr_best", (lambda method, d: {
        f"paper_{table}": paper_value(numbers, method, d, plan.reference_dims)
        for table, numbers in reference.items()}) if reference else None)
    dims = sorted(df.d.unique())
    prov = report.provenance(df, plan)
    unconverged = unconverged_cells(df, sel, catalog, {r.name: r.history for r in results.records})
    # ties of corr_heldout: a paired bootstrap test where both cells recorded replicates (a
    # ledger written before they were kept has none: its tables keep the seed-spread test and
    # its text); recognition has no replicates, so always the seed spread
    replicates = report.cell_replicates(df, sel, results.records)
    corr_tests, recog_tests = set(), set()
    corr_marks = report.marks(sel, "corr_heldout", exclude=unconverged, replicates=replicates,
                              tests=corr_tests)
    recog_marks = report.marks(sel, "recog_acc", exclude=unconverged,
                               tests=recog_tests) if recognition else {}
    missing = unavailable_cells(results)

    def na(text, method, d, key):  # a metric not measurable in this cell: "n/a" (see notes)
        return "n/a" if text == "–" and key in missing.get((method, d), ()) else text

    def table1_cell(row, method, d):
        if row.get("status") != "ok":
            return row.get("status")
        ours = na(report.marked(report.fmt(row, "corr_heldout"), corr_marks.get((method, d))),
                  method, d, "corr_heldout") + (" ⚠unconverged" if (method, d) in unconverged
                                               else "")
        if not reference:
            return ours
        paper = row.get("paper_table1")
        # outputs that correlate only after a rotation (aligned=False): their per-dimension sum
        # is that of the CCA-projected outputs, i.e. corr_heldout itself (marked †)
        aligned = getattr(catalog.get(method), "aligned", True)  # unknown: as given
        paper_metric = report.fmt(row, "corr_diag") if aligned else report.fmt(row, "corr_heldout") + "†"
        return (f"{ours} · {paper_metric}"
                + ("" if paper is None or pd.isna(paper) else f" ({_paper(paper)})"))

    def table5_cell(row, method, d):
        ours = na(report.marked(report.fmt(row, "recog_acc"), recog_marks.get((method, d))),
                  method, d, "recog_acc")
        if row.get("status") != "ok" or not reference:
            return ours
        return f"{ours} ({_paper(row.get('paper_table5'))})"

    def refit_cell(row, method, d):
        if row.get("status") != "ok":
            return row.get("status")
        floor = na(report.fmt({**row, "n_seeds": 1}, "corr_floor"), method, d, "corr_floor")
        text = f"{na(report.fmt(row, 'corr_refit'), method, d, 'corr_refit')} [floor {floor}]"
        if row["n_components_mean"] < d:
            text += f" (k={row['n_components_mean']:.0f})"
        return text

    widened = planner.widened_ranges(results.plans)

    def config_cell(row, method, d):
        cell = searched_df[(searched_df.method == method) & (searched_df.d == d)]
        spec = catalog.get(method)  # its search ranges as the sweep ran them
        if row.get("status") != "ok" or cell.empty or spec is None:
            return report.strength_text(row)
        if (method, d) in widened:  # flagged against the range the cell ended with
            spec = dataclasses.replace(spec, search=widened[(method, d)])
        values = search.values_of(spec, row)
        flags = search.edge_flags(spec, values)
        return ", ".join(f"{k}={v:.3g}" + (" ⚠edge" if k in flags else "")
                         for k, v in values.items())

    def budget_cell(row, method, d):
        cell = searched_df[(searched_df.method == method) & (searched_df.d == d)]
        reported = df[(df.method == method) & (df.d == d)]
        diag = search_diagnostics(cell, has_references)
        if getattr(catalog.get(method), "closed_form", False):
            text = f"{len(cell)} + {len(reported)} fits (closed form)"
        elif not len(cell):
            return f"no search + {len(reported)}×{_epochs(reported)} ep"
        else:
            text = (f"{diag['n_configs']} tried, {diag['n_full_budget']} at the full budget, "
                    f"{diag['search_epochs']} ep + {len(reported)}×{_epochs(reported)} ep")
        if (method, d) in widened:
            spec = catalog.get(method)
            text += "; widened " + ", ".join(
                f"{k} to [{lo:.3g}, {hi:.3g}]" for k, (lo, hi, *_) in widened[(method, d)].items()
                if spec is None or tuple(spec.search.get(k, ())) != (lo, hi, *_))
        reference = "over the reference" + (f" at {diag['reference_epochs']} ep, where it "
                                            f"stopped" if "reference_epochs" in diag else "")
        margins = [f"{diag[key]:+.1f} {what}" for key, what in (
            ("val_margin_runner_up", "over the runner-up"),
            ("val_margin_reference", reference)) if not pd.isna(diag[key])]
        return text + (f"; val {', '.join(margins)}" if margins else "")

    table1_head = ("Cell: **ours, `corr_heldout`** (linear CCA fitted on the train outputs, "
                   "canonical correlations summed on test: the number to trust) · ours on the "
                   "paper's metric, `corr_diag` (per-dimension Pearson correlations of the outputs "
                   "summed: the paper's metric on the batch-normalised outputs its network ends "
                   "in) "
                   "(the paper's number). No total of canonical correlations can exceed the rank "
                   "of the last hidden layer (300 units): the paper's values above 300 at d ≥ 500 "
                   "can only be per-dimension sums, which count one shared direction many times. "
                   "†: outputs that correlate only after a rotation (the rows marked †), "
                   "whose per-dimension sum is taken on their CCA projections, i.e. "
                   "`corr_heldout`."
                   if reference else "Primary: `corr_heldout` (linear CCA fitted on the train "
                   "outputs, per-dimension correlations summed on test). Upper bound = d.")
    n_boot = max((len(v) for cell in replicates.values() for v in cell.values()), default=0)
    by_rule = "converged" in df  # trained under the convergence rule: its flag is the rule's
    unconverged_text = ((" ⚠unconverged: a reported trial reached its cap of epochs before the "
                         "convergence rule stopped it (its validation correlation still "
                         "gained); no cell is marked at a d that has one, and no conclusion "
                         "should rank them." if by_rule else
                         " ⚠unconverged: a reported trial's validation correlation was still at "
                         "its best at its last epoch (training stopped while it improved); no "
                         "cell is marked at a d that has one, and no conclusion should rank "
                         "them.") if unconverged else "")
    ties = report.ties_text(corr_tests, n_boot) + unconverged_text
    recog_ties = report.ties_text(recog_tests) + unconverged_text
    table1 = "\n\n".join([
        f"# Table 1 — total correlation, {suite_name} test set (profile `{profile}`)",
        table1_head + " " + ties,
        report.markdown_table(catalog, sel, dims, table1_cell),
        "`corr_refit` (CCA refitted on the test outputs, the DCCA literature's number) with its "
        "noise floor `corr_floor` (pairs shuffled); k = components that exist when fewer than d.",
        report.markdown_table(catalog, sel, dims, refit_cell),
        *unavailable_notes(results),
        selection_text(searched_df, carried=all(  # every merged folder's search carried them
            carries_references(p) for p in results.plans if any("rungs" in t for t in p.trials))),
        report.markdown_table(catalog, sel, dims, config_cell),
        "Budget per cell: configurations tried, how many reached the full budget, the search's "
        "epochs, then the reported seeds × epochs; and the selection's validation margin over "
        "the runner-up and over the reference configuration (the method's defaults, "
        "`search=0`):",
        report.markdown_table(catalog, sel, dims, budget_cell),
        prov])
    table5 = "\n\n".join([
        f"# Table 5 — cross-modality recognition accuracy (%), {suite_name} (profile `{profile}`)",
        "LinearSVC trained on view-1 representations of 4 test folds, tested on view 2 of the "
        "fifth (5 contiguous folds)." + (" Cell: ours (paper)." if reference else "") + " "
        + recog_ties,
        report.markdown_table(catalog, sel, dims, table5_cell),
        "Swapped direction (view 2 → view 1):",
        report.markdown_table(catalog, sel, dims, lambda r, m, d: na(
            report.fmt(r, "recog_acc_swapped"), m, d, "recog_acc_swapped")),
        *unavailable_notes(results, metrics.RECOGNITION),
        prov]) if recognition else None
    written = []
    for fname, text in (("table1.md", table1), ("table5.md", table5))[:1 + recognition]:
        (out_dir / fname).write_text(text + "\n")
        written.append(out_dir / fname)
    diagnostics = pd.DataFrame([{"method": m, "d": d, **search_diagnostics(
        searched_df[(searched_df.method == m) & (searched_df.d == d)], has_references)}
        for m, d in zip(sel.method, sel.d)], columns=["method", "d", *DIAGNOSTICS])
    report.write_cells_csv(sel.merge(diagnostics, on=["method", "d"], how="left"),
                           out_dir / "tables.csv")
    written.append(out_dir / "tables.csv")
    return written + plots(df, sel, results, out_dir, searched_df), sel


RISING = 0.005  # a last validation pass this much (relative) above all before it: still rising


def unconverged_cells(df: pd.DataFrame, sel: pd.DataFrame, catalog, history: dict) -> set:
    """(method, d) of the cells where a trial of the selected configuration was still
    improving when training stopped, so the cell measures how fast the method learns, not
    where it ends. Under a convergence rule (a `converged` metric): the cap, not the rule,
    ended it. Before the rule: its last validation pass beat every earlier one by more than
    RISING (relative); where no validation curve was recorded (a folder converted from a
    results.csv), its best validation epoch is its last. A closed form has no epochs."""
    out = set()
    if "best_epoch" not in df:
        return out
    for row in sel[sel.status == "ok"].itertuples():
        if getattr(catalog.get(row.method), "closed_form", False):
            continue
        for trial in report.selected_trials(df, row).itertuples():
            curve = [h["val_corr"] for h in history.get(trial.name, []) if "val_corr" in h]
            if not pd.isna(getattr(trial, "converged", np.nan)):
                rising = not trial.converged
            elif len(curve) >= 2:
                rising = curve[-1] - max(curve[:-1]) > RISING * abs(curve[-1])
            else:
                rising = float(trial.best_epoch) >= float(trial.epochs) > 0
            if rising:
                out.add((row.method, row.d))
                break
    return out


DIAGNOSTICS = ("n_configs", "n_full_budget", "search_epochs", "val_margin_runner_up",
               "val_margin_reference")


def search_diagnostics(trials: pd.DataFrame, references: bool = True) -> dict:
    """A cell's search, from its search trials (one row per configuration and rung):
    configurations tried; how many reached the full budget (the cell's most epochs, status
    ok); the epochs trained (a configuration continues from rung to rung, so its most epochs;
    an early-stopped one of an asynchronous search, `epochs_run`); the best full-budget
    validation score's margin over the runner-up and over the reference configuration (index
    0, the method's defaults; where successive halving left it at a lower rung, the margin at
    that rung, its epochs in `reference_epochs`; NaN where the search had no `references`: an
    older sweep's index 0 was a sample like the others)."""
    out = dict.fromkeys(DIAGNOSTICS, np.nan)
    if trials.empty:
        return {**out, "n_configs": 0, "n_full_budget": 0, "search_epochs": 0}
    planned = pd.to_numeric(trials.epochs, errors="coerce")
    trained = pd.to_numeric(trials["epochs_trained"], errors="coerce") if (
        "epochs_trained" in trials) else pd.Series(np.nan, index=trials.index)
    trials = trials.assign(
        config=[search.config_index(n) for n in trials["name"]],
        ran=np.where(trials.status == "stopped",
                     pd.to_numeric(trials.get("epochs_run", np.nan), errors="coerce"),
                     np.where(trained.notna(), trained, planned)))
    # the full budget is the most epochs a trial was allowed (one that converged before its
    # cap had it): the cell's last rung
    at_full = trials[(trials.status == "ok") & (planned == planned.max())]
    scores = at_full.groupby("config").val_corr_best.max().sort_values(ascending=False)
    out.update(n_configs=trials.config.nunique(), n_full_budget=len(scores),
               search_epochs=int(trials.groupby("config").ran.max().sum()))
    if len(scores) >= 2:
        out["val_margin_runner_up"] = scores.iloc[0] - scores.iloc[1]
    if references and len(scores) and 0 in scores.index:
        out["val_margin_reference"] = scores.iloc[0] - scores[0]
    elif references and len(scores):
        # the reference was left at a lower rung: the margin there, against the selection's
        # score at the same epochs (`reference_epochs` says which; not a tables.csv column)
        ok = trials.status == "ok"
        epochs = planned[ok & (trials.config == 0)].max()  # the reference's last rung
        at_rung = trials[ok & (planned == epochs)].groupby("config").val_corr_best.max()
        if scores.index[0] in at_rung.index:  # NaN epochs (no ok reference): empty
            out["val_margin_reference"] = at_rung[scores.index[0]] - at_rung[0]
            out["reference_epochs"] = int(epochs)
    return out


def _epochs(trials: pd.DataFrame) -> str:
    """The reported trials' epochs: those each needed under a convergence rule (a range),
    else the planned ones."""
    trained = pd.to_numeric(trials.get("epochs_trained", pd.Series(dtype=float)),
                            errors="coerce").dropna().astype(int)
    if len(trained):
        lo, hi = trained.min(), trained.max()
        return f"({lo}–{hi})" if lo != hi else str(lo)
    values = sorted(set(pd.to_numeric(trials.epochs, errors="coerce").dropna().astype(int)))
    return "/".join(map(str, values)) or "?"


def selection_text(searched_df: pd.DataFrame, carried: bool = False) -> str:
    """How the cells were selected; `carried`: successive halving carried the references on
    at every rung (plans made before that rule did not)."""
    if searched_df.empty:
        return "Selected strength per cell (best mean validation correlation):"
    per_cell = searched_df.assign(config=[search.config_index(n) for n in searched_df["name"]]) \
        .groupby(["method", "d"]).config.nunique()
    how = ("stopped early by ASHA" if (searched_df.status == "stopped").any() else
           "left behind by successive halving (the best third of each rung, at least two, "
           + ("and the reference settings whatever they scored, " if carried else "")
           + "continue to the next)")
    return (f"Selected configuration per cell: the best validation correlation at the full "
            f"budget among {per_cell.max()} configurations per (method, d), the method's "
            f"reference settings and samples of its ranges (`harness.search`), the poor ones "
            f"{how}; then rerun with the reported seeds, which the search never used. Nothing "
            f"is chosen on test. ⚠edge: within {search.EDGE_FRACTION:.0%} of its range's bound "
            f"(the optimum may lie outside the range).")


def _paper(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:g}"


def _reported_ok(results: SweepResults) -> list:
    return [r for r in results.records if r.phase != "search" and r.status == "ok"]


def has_recognition(df: pd.DataFrame, results: SweepResults) -> bool:
    """Whether the data have labels: some reported trial measured recognition, or recorded
    why it could not (one class, too few test pairs). Without labels, neither."""
    measured = "recog_acc" in df and df.recog_acc.notna().any()
    return bool(measured or any(metric in (r.unavailable or {}) for r in _reported_ok(results)
                                for metric in metrics.RECOGNITION))


def unavailable_cells(results: SweepResults) -> dict:
    """(method, d) -> the metrics some reported trial of that cell could not measure."""
    cells = {}
    for r in _reported_ok(results):
        cells.setdefault((r.method, r.d), set()).update(r.unavailable or {})
    return cells


def unavailable_notes(results: SweepResults, keys=None) -> list[str]:
    """One line per reason a metric (of `keys`, default all) could not be measured: which
    metrics, in which cells, and why (the reported trials that ended ok)."""
    catalog, groups = results.catalog, {}
    for r in _reported_ok(results):
        by_reason = {}
        for metric, why in (r.unavailable or {}).items():
            if keys is None or metric in keys:
                by_reason.setdefault(why, []).append(metric)
        for why, names in by_reason.items():
            cells = groups.setdefault((why, tuple(names)), [])
            cell = f"{catalog.title(r.method)} d={r.d}"
            if cell not in cells:
                cells.append(cell)
    return [f"Not available: {', '.join(f'`{m}`' for m in names)} ({', '.join(cells)}): {why}."
            for (why, names), cells in groups.items()]


def plots(df: pd.DataFrame, sel: pd.DataFrame, results: SweepResults,
          out_dir: Path, searched_df: pd.DataFrame) -> list[Path]:
    """corr_vs_d.png, recog_vs_d.png (with labels), val_curves.png (with recorded curves)
    and, for a successive-halving search, evp.png. `searched_df`: the search trials' table
    rows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ok = sel[sel.status == "ok"]
    plan, catalog = results.plan, results.catalog
    reference = plan.reference or {}
    for key, paper_table, fname, ylabel in (
            ("corr_heldout", reference.get("table1", {}), "corr_vs_d.png",
             "total correlation (corr_heldout)"),
            ("recog_acc", reference.get("table5", {}), "recog_vs_d.png",
             "cross-modal recognition (%)")):
        if f"{key}_mean" not in ok or ok[f"{key}_mean"].isna().all():
            continue  # nothing to draw: no labels, or not measurable on these data (the notes)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, method in enumerate(catalog.ordered(ok.method.unique())):
            color = f"C{i}"
            rows = ok[ok.method == method].sort_values("d")
            ax.errorbar(rows.d, rows[f"{key}_mean"], yerr=rows[f"{key}_std"], color=color,
                        marker="o", label=catalog.title(method))
            aligned = getattr(catalog.get(method), "aligned", True)  # unknown: as given
            if key == "corr_heldout" and paper_table and aligned:  # ours on the paper's metric
                ax.plot(rows.d, rows["corr_diag_mean"], color=color, linestyle=":", alpha=0.8)
            ref = [(d, paper_value(paper_table, method, d, plan.reference_dims))
                   for d in plan.reference_dims]
            ref = [(d, v) for d, v in ref if v is not None]
            if ref:
                ax.plot(*zip(*ref), color=color, linestyle="--", marker="x", alpha=0.7)
        if key == "corr_heldout" and len(ok):
            width = rank_width(df)
            grid = np.array(sorted(ok.d.unique()))
            ax.plot(grid, np.minimum(grid, width), color="gray", linewidth=3, alpha=0.4,
                    label=f"rank bound min(d, {width})")
        ax.set_xscale("log")
        ax.set_xlabel("latent dimension d")
        ax.set_ylabel(ylabel)
        ax.set_title((f"{ylabel}: ours solid, ours on the paper's metric dotted, paper dashed"
                      if key == "corr_heldout" else f"{ylabel}: ours solid, paper dashed")
                     if paper_table else ylabel, fontsize=9)
        ax.legend(fontsize=8)
        written.append(report.save_figure(fig, out_dir / fname, dpi=110))

    history = {r.name: r.history for r in results.records if r.history}
    # no curve without a recorded history (a folder converted from a results.csv has none)
    methods = catalog.ordered(df[(df.status == "ok") & df["name"].isin(history)].method.unique())
    if methods:
        cols = min(4, len(methods))
        rows_n = int(np.ceil(len(methods) / cols))
        fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False)
        for ax, method in zip(axes.flat, methods):
            for _, trial in df[(df.method == method) & (df.status == "ok")].iterrows():
                hist = sorted((int(row["epoch"]), float(row["val_corr"]))
                              for row in history.get(trial["name"], []) if "val_corr" in row)
                if len(hist) > 1:  # epoch 0 is a validation point only for closed-form fits
                    hist = [(step, value) for step, value in hist if step > 0]
                if hist:
                    ax.plot(*zip(*hist), marker=".", label=trial["name"].split("[", 1)[1][:-1])
            ax.set_title(catalog.title(method))
            ax.set_xlabel("epoch")
            ax.set_ylabel("val_corr")
            ax.legend(fontsize=5)
        for ax in list(axes.flat)[len(methods):]:
            ax.axis("off")
        written.append(report.save_figure(fig, out_dir / "val_curves.png", dpi=100))

    # expected validation performance of the search (tables.evp), drawn only where the search
    # was successive halving: every committed folder searched with ASHA or not at all, and a
    # new file in one of them would break its byte-identical rebuild from plan and ledger
    if any(p.search == "halving" for p in results.plans):
        from tables import evp
        path = evp.plot(searched_df, out_dir / "evp.png", catalog)
        if path is not None:
            written.append(path)
    return written


def rank_width(df: pd.DataFrame) -> int:
    """The last hidden layer's width: no total canonical correlation of the outputs can
    exceed it (the d outputs are an affine map of that many units)."""
    hidden = [str(h) for h in df.get("hidden", pd.Series(dtype=str)).dropna() if str(h)]
    return int(hidden[0].split(",")[-1]) if hidden else 300


def summary(df: pd.DataFrame, results: SweepResults) -> str:
    """A one-screen text table of the selected cells (corr_heldout / recog_acc; corr_heldout
    alone for data without labels), then why any metric could not be measured."""
    df = df[df.phase != "search"] if "phase" in df else df
    recognition = has_recognition(df, results)
    sel = report.select(df, "val_corr_best")
    dims = sorted(df.d.unique())
    methods = results.catalog.ordered(sel.method.unique())
    width = max([len("method"), *map(len, methods)]) + 1  # barlow_twins, corrnet_orig: 12
    lines = [f"{'method':<{width}}" + "".join(f"{'d=' + str(d):>16}" for d in dims),
             " " * width + "".join(f"{'corr / recog%' if recognition else 'corr':>16}"
                                   for _ in dims)]
    for method in methods:
        cells = []
        for d in dims:
            r = sel[(sel.method == method) & (sel.d == d)]
            if not len(r):
                cells.append(f"{'-':>16}")
            elif r.iloc[0].status != "ok":
                cells.append(f"{r.iloc[0].status:>16}")
            else:
                r = r.iloc[0]
                corr = _number(r.get("corr_heldout_mean"), ".1f")
                cells.append(f"{corr:>9} / {_number(r.get('recog_acc_mean'), '4.1f')}"
                             if recognition else f"{corr:>16}")
        lines.append(f"{method:<{width}}" + "".join(cells))
    return "\n".join(lines + unavailable_notes(results))


def _number(value, spec: str) -> str:
    """A summary number, or "n/a" where the metric was not measured (the notes say why)."""
    return "n/a" if value is None or pd.isna(value) else format(value, spec)


def two_view_suite(name: str, description: str, load, dims=(10,), **overrides) -> Suite:
    """A suite of the two-view family: this module's trial, columns and renderers on `load`'s
    data ((profile, options) -> {"train", "val", "test"} of `TwoViews`)."""
    fields = dict(
        name=name, description=description, family="two_view", needs="two_view", dims=dims,
        load_data=load, run_trial=run_trial,
        render=render,
        summary=summary, select_metric="val_corr_best", headline=headline, columns=COLUMNS,
        leader_metric="corr_heldout", precisions=PRECISIONS, options=("hidden",))
    fields.update(overrides)
    return Suite(**fields)
