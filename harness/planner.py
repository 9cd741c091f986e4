"""The planner: from a suite, methods, d, profile and flags to a sweep's `Plan` (harness.ledger).

A trial is planned once, resolved (every default filled in, raises ConfigError), and carries
its parameters in one `params` dict. A two-view search plans in two phases: the search trials
(configurations sampled from each method's ranges), then, once they have all ended, the
selected configuration of each (method, d) with the reported seeds (`plan_selected`). The CLI
(`harness.run`) only parses flags; Ray only schedules what the plan says.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from harness import registry, search
from harness.ledger import MethodInfo, Plan, identity
from harness.record import git_commit, hardware


def resolved_trial(suite, config: dict, checkpoint_root: Path) -> dict:
    """A trial as the plan holds it and Ray gets it: resolved, with one `params` dict (the
    strength and every other parameter), and its checkpoint folder."""
    cfg = suite.resolve(config)
    trial = {k: v for k, v in config.items() if k not in ("strength", "overrides")}
    trial.update({k: cfg[k] for k in ("name", "method", "d", "seed", "profile", "phase", "params",
                                      "strength_name", "strength", "batch", "lr", "epochs",
                                      "eval_every", "precision", "patience")})
    trial["hidden"] = list(cfg["hidden"])
    trial["checkpoint_dir"] = str(Path(checkpoint_root) / cfg["name"])
    return trial


def searched(suite, methods: list[str], n_trials: int) -> list[str]:
    """The methods the search samples (those with a search space), when it is on."""
    return [m for m in methods if n_trials > 0 and registry.get(m).search] if \
        suite.family == "two_view" else []


def grid_trials(suite, profile: str, methods: list[str], dims: list[int], strengths, seeds,
                checkpoint_root: Path, options: dict) -> list[dict]:
    """Every (method, d, strength, seed) of the methods' grids (or `strengths`), validated.

    Largest d first: those trials are the slowest, and Ray starts trials in this order, so a
    sweep ends on short trials instead of idling all but one slot through a long one."""
    trials = []
    seeds = range(seeds) if isinstance(seeds, int) else seeds
    grids = {}
    for method in methods:
        default_grid = suite.grid(method)
        grids[method] = (strengths if strengths is not None and default_grid
                         else (default_grid or (None,)))
    for d in sorted(dims, reverse=True):
        for method in methods:
            for strength in grids[method]:
                for seed in seeds:
                    trials.append(resolved_trial(suite, {
                        "method": method, "d": d, "strength": strength, "seed": seed,
                        "profile": profile, **options}, checkpoint_root))
    return trials


def search_config(suite, method: str, d: int, values: dict, i: int, profile: str,
                  options: dict) -> tuple[dict, int]:
    """Configuration `i` of a (method, d) cell's search (`values` of its searched parameters)
    as a trial config at the full budget, and that budget's epochs. It validates every
    ~1/9 of the budget (where the low rungs are compared), or, under a convergence rule, at
    the profile's cadence, the one its patience counts in. The sweep's search and the audit's
    grid (harness.audit) both build their trials here."""
    spec = registry.get(method)
    config = {"method": method, "d": d, "seed": search.SEARCH_SEED_BASE + i, "profile": profile,
              "phase": "search", "name": search_name(method, d, values, i), **options,
              **search.config_of(spec, values)}
    resolved = suite.resolve(config)
    if not resolved["patience"]:
        config["eval_every"] = max(1, round(resolved["epochs"] / 9))
    return config, resolved["epochs"]


def rungs_of(suite, profile: str, full: int) -> list[int]:
    """A configuration's rungs: 1/9 and 1/3 of the profile's `rung_budget` (default: the
    full budget), then the full budget, which a convergence rule may end early."""
    base = suite.profile(profile).rung_budget or full
    low = [e for e in search.rung_epochs(min(base, full))[:-1] if e < full]
    return low + [full]


def first_rung(suite, config: dict, rungs: list[int], checkpoint_root: Path, **extra) -> dict:
    """A configuration's trial at the first of its `rungs` of successive halving (its name
    then names those epochs), with one checkpoint folder over all its rungs; `extra` keys
    (a widening's `round` and `ranges`, a reference's `reference`) go into the trial."""
    base = config["name"]
    trial = resolved_trial(suite, {**config, "epochs": rungs[0],
                                   "name": rung_name(base, rungs[0], len(rungs))},
                           checkpoint_root)
    trial.update(rung=0, rungs=rungs, config=base, **extra,
                 checkpoint_dir=str(Path(checkpoint_root) / base))
    return trial


SEARCHES = ("asha", "halving")  # --search: how the configurations of a cell are narrowed


def search_trials(suite, profile: str, methods: list[str], dims: list[int], n_trials: int,
                  checkpoint_root: Path, options: dict, mode: str = "asha") -> list[dict]:
    """`n_trials` configurations per (method, d), the method's references first, then samples
    of its ranges (harness.search), validated; each validates every ~1/9 of its full budget.
    "asha": each trains for the full budget, and Ray Tune's ASHA stops the poor ones as they
    report. "halving": the first rung of synchronous successive halving, each trained for the
    first rung's epochs (a closed form is fitted once: its only rung is the full budget), with
    one checkpoint folder over its rungs; the references are marked (`reference`), because
    every rung carries them on (`next_rung`). Under a convergence rule every rung applies it:
    a configuration that has converged stops early and, promoted, does not train again."""
    trials = []
    lr = suite.profile(profile).lr
    for d in sorted(dims, reverse=True):
        for method in searched(suite, methods, n_trials):
            spec = registry.get(method)
            fixed = search.references(spec, lr)
            configs = search.sample(spec.search, n_trials, search.cell_seed(method, d),
                                    fixed=fixed)
            for i, values in enumerate(configs):
                config, full = search_config(suite, method, d, values, i, profile, options)
                if mode == "asha":
                    trials.append(resolved_trial(suite, config, checkpoint_root))
                    continue
                rungs = [full] if spec.two_view.closed_form else rungs_of(suite, profile, full)
                trials.append(first_rung(suite, config, rungs, checkpoint_root,
                                         reference=i < len(fixed)))
    return trials


def rung_name(base: str, epochs: int, n_rungs: int) -> str:
    """A configuration's trial at one rung: `dcca[d=50,ridge=0.001,search=0,epochs=6]` (its
    name alone where it has one rung, a closed form's fit)."""
    return base if n_rungs == 1 else f"{base[:-1]},epochs={epochs}]"


def next_rung(plan: Plan, records: dict, rung: int) -> list[dict]:
    """The trials of rung `rung + 1` of every cell whose rung `rung` has fully reported: its
    best configurations on validation (`search.promote`: a third, at least two), and its
    reference configurations whatever they scored, continuing from their checkpoints to the
    next rung's epochs. Decided from the ledger's records of the whole rung, so the order in
    which its trials ended cannot change it.

    The references go on because a low rung ranks by early learning speed: a setting that
    learns slowly and ends best (measured: Deep CCA's ridge 1e-3 at d = 50, cut at 17 epochs,
    beats the selection once converged) would otherwise be lost, and a method's reported
    score could then fall below its own authors' settings."""
    cells: dict = {}
    for trial in plan.trials:  # a widened re-search (its `round`) is halved on its own
        if trial.get("phase") == "search" and trial.get("rung") == rung:
            cells.setdefault((trial["method"], trial["d"], trial.get("round", 0)),
                             []).append(trial)
    planned, promoted = set(plan.names()), []
    for trials in cells.values():
        rungs = trials[0]["rungs"]
        if rung + 1 >= len(rungs) or any(t["name"] not in records for t in trials):
            continue
        best = search.promote([records[t["name"]] for t in trials],
                              search.n_promoted(len(trials)))
        chosen = {r.name for r in best} | {t["name"] for t in trials if t.get("reference")}
        for trial in trials:
            epochs = rungs[rung + 1]
            name = rung_name(trial["config"], epochs, len(rungs))
            if trial["name"] in chosen and name not in planned:
                promoted.append({**trial, "rung": rung + 1, "epochs": epochs, "name": name})
    return promoted


def widened_ranges(plans) -> dict:
    """{(method, d): search ranges} of the cells a widening searched again (`widen` writes
    the cell's ranges into each of its trials; the last widening's stand)."""
    out = {}
    for plan in plans:
        for trial in plan.trials:
            if trial.get("ranges"):
                out[(trial["method"], trial["d"])] = {k: tuple(v) for k, v in
                                                      trial["ranges"].items()}
    return out


def cell_ranges(plan: Plan, method: str, d: int) -> dict:
    """The search ranges a (method, d) cell ended with: those of its last widening, or the
    plan's snapshot of the method's."""
    widened = widened_ranges([plan]).get((method, d))
    if widened is not None:
        return widened
    return dict(plan.methods[method].search) if method in plan.methods else {}


def widen(suite, plan: Plan, records: dict, checkpoint_root: Path, options: dict) -> list[dict]:
    """The widening rule, the same for every method: a cell whose search has fully reported
    and whose selection lies in the outer part of a range (`search.outer_ends`) is searched
    again, once (`search.MAX_WIDENINGS`), with that end moved out: `plan.search_trials` new
    configurations sampled in the new part, halved like the first round (`round` 1). The
    tables then flag an edge only against the widened range. Called when every planned rung
    has run (the selection is then final, whatever order the trials ended in)."""
    cells: dict = {}
    for trial in plan.trials:
        if trial.get("phase") == "search" and "rungs" in trial:
            cells.setdefault((trial["method"], trial["d"]), []).append(trial)
    out = []
    for (method, d), trials in cells.items():
        last = max(t.get("round", 0) for t in trials)
        spec = registry.get(method)
        if last >= search.MAX_WIDENINGS or spec.two_view.closed_form:
            continue
        if any(t["name"] not in records for t in trials):
            continue  # called once every rung has run: a trial missing here failed to end
        final = [t for t in trials if t["rung"] == len(t["rungs"]) - 1]
        best = search.choose([records[t["name"]] for t in final])
        if best is None:
            continue
        ranges = cell_ranges(plan, method, d)
        cell_spec = dataclasses.replace(spec, search=ranges)

        def runs(name, value):
            try:
                suite.resolve({"method": method, "d": d, "profile": plan.profile,
                               **search.config_of(spec, {name: value})})
                return value > 0 if name == "lr" else True
            except Exception:  # noqa: BLE001 - any refusal: the value cannot run
                return False
        moves = search.widened(cell_spec, search.values_of(spec, best), runs)
        if not moves:
            continue
        space = {**ranges, **{name: rng for name, (rng, _) in moves.items()}}
        configs = search.sample(space, plan.search_trials, search.cell_seed(method, d) + last + 1,
                                slices={name: part for name, (_, part) in moves.items()})
        first = 1 + max(search.config_index(t["name"]) for t in trials)
        for i, values in enumerate(configs, start=first):
            config, full = search_config(suite, method, d, values, i, plan.profile, options)
            out.append(first_rung(suite, config, rungs_of(suite, plan.profile, full),
                                  checkpoint_root, round=last + 1,
                                  ranges={k: list(v) for k, v in space.items()}))
    return out


def search_name(method: str, d: int, values: dict, i: int) -> str:
    """`dcca[d=200,ridge=1.49e-06,search=3]`: the values are in the name, so a resumed sweep
    whose ranges or trial count changed reruns what changed instead of reusing it."""
    shown = ",".join(f"{k}={v:.4g}" for k, v in values.items())
    return f"{method}[d={d},{shown},search={i}]"


def selected_name(method: str, d: int, values: dict, seed: int) -> str:
    """`sdcca[d=50,rho=0.16,lr=0.00472,seed=0]`: every searched value, not only the strength,
    so that a resumed sweep whose choice changed in any of them reruns the cell."""
    shown = ",".join(f"{k}={v:g}" for k, v in values.items())
    return f"{method}[d={d},{shown},seed={seed}]"


def cell_choice(records: list, method: str, d: int, names: set) -> tuple:
    """(the record `search.choose` picks among a cell's search records named in `names`,
    those records)."""
    cell = [r for r in records if r.phase == "search" and r.method == method and r.d == d
            and r.name in names]
    return search.choose(cell), cell


def rerun_trials(suite, method: str, d: int, best, seeds, profile: str, checkpoint_root: Path,
                 options: dict) -> list[dict]:
    """The configuration of the search record `best` rerun with `seeds`: reported trials,
    named with every searched value (`selected_name`). The sweep's reported phase and the
    audit's oracle both rerun their choice here."""
    spec = registry.get(method)
    values = search.values_of(spec, best)
    return [resolved_trial(suite, {"method": method, "d": d, "seed": seed, "profile": profile,
                                   **options, "name": selected_name(method, d, values, seed),
                                   **search.config_of(spec, values)}, checkpoint_root)
            for seed in seeds]


def plan_selected(suite, plan: Plan, records: list, checkpoint_root: Path,
                  options: dict) -> tuple[list[dict], list[str]]:
    """The search's reported trials: per (method, d), the best search trial on validation
    (among this plan's search trials only) rerun with the plan's seeds. Returns (trials,
    notes on cells that have no choice)."""
    chosen, notes = [], []
    # the configurations that reached the full budget (the last rung of their cell; with
    # ASHA, every trial of the cell, of which `search.choose` prefers those not stopped)
    planned = {t["name"] for t in plan.trials if t.get("phase") == "search"
               and t.get("rung", 0) == len(t.get("rungs", [0])) - 1}
    cells = []
    for t in plan.trials:
        if t.get("phase") == "search" and (t["method"], t["d"]) not in cells:
            cells.append((t["method"], t["d"]))
    for method, d in cells:
        best, cell = cell_choice(records, method, d, planned)
        if best is None:
            notes.append(f"{method} d={d}: no search trial ended with a validation "
                         f"correlation ({len(cell)} tried); nothing to rerun")
            continue
        chosen += rerun_trials(suite, method, d, best, range(plan.seeds), plan.profile,
                               checkpoint_root, options)
    return chosen, notes


def make_plan(suite, profile: str, methods: list[str], dims: list[int], strengths, n_search: int,
              seeds: int, checkpoint_root: Path, options: dict, data_digest: str = "",
              search_mode: str = "asha") -> Plan:
    """The plan of a sweep: its search trials (where it searches) and grid trials, and the
    snapshot its tables are rendered from. Raises ConfigError on any trial that cannot run."""
    to_search = searched(suite, methods, n_search)
    trials = search_trials(suite, profile, methods, dims, n_search, checkpoint_root, options,
                           search_mode)
    trials += grid_trials(suite, profile, [m for m in methods if m not in to_search], dims,
                          strengths, seeds, checkpoint_root, options)
    order = {name: i for i, name in enumerate(registry.list_methods())}
    infos = {m: MethodInfo.of(registry.get(m), suite.family, order[m]) for m in methods}
    return Plan(suite=suite.name, family=suite.family, profile=profile, trials=trials,
                methods=infos, columns=tuple(suite.columns),
                reference=suite.reference or {}, reference_dims=tuple(suite.reference_dims),
                search_trials=n_search, search=search_mode if to_search else "",
                seeds=seeds, dims=tuple(sorted(dims)),
                data_digest=data_digest, git_commit=git_commit(), hardware=hardware(),
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def reusable(plan: Plan, trials: list[dict], other_plan: Plan, other_records: list) -> dict:
    """Records of another sweep that are trials of this plan: same identity (method, d,
    parameters, lr, seed, phase, profile, epochs, batch, precision, hidden widths, objective
    code version, data digest). Returns {this plan's trial name: record, renamed to it}."""
    from dataclasses import replace
    theirs = {}
    for record in other_records:
        if record.status in ("ok", "stopped", "diverged"):
            key = identity(record, other_plan.methods.get(record.method), other_plan.data_digest)
            theirs[key] = record
    found = {}
    for trial in trials:
        key = identity(trial, plan.methods.get(trial["method"]), plan.data_digest)
        if key in theirs:
            found[trial["name"]] = replace(theirs[key], name=trial["name"], run_id="")
    return found
