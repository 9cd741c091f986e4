"""A sweep's results as data: its plan (`plan.json`) and its ledger (`records.jsonl`).

The plan is written when a sweep starts: every trial it will run, as a typed spec, and a
snapshot of all that rendering needs (each method's title, row order, search ranges and
alignment; the suite's columns and reference numbers; the code version; a digest of the data).
The ledger gets one line per finished trial, its whole `TrialRecord` (history, warnings and
gallery included), appended and flushed as the trial ends.

Everything downstream reads these two files and nothing else: resume is the plan minus the
ledger, the tables and plots are a function of both (`tables.build`), and MLflow is a mirror
written from the ledger (`harness.tracking.mirror`). A committed results folder holds both,
so a clean checkout rebuilds its tables without the store or today's registry.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.common import HarnessError, save_atomic
from harness.record import TrialRecord

PLAN_FILE, LEDGER_FILE = "plan.json", "records.jsonl"
PLAN_FORMAT = 1


class SweepFolderError(HarnessError):
    """A folder that is not a sweep's (no plan), or folders that cannot be merged."""


# ------------------------------------------------------------------------------- the snapshot
@dataclass(frozen=True)
class MethodInfo:
    """What the tables need to know of a method, frozen into the plan when the sweep starts:
    editing the registry later (a title, a search range) changes no committed table."""
    name: str
    title: str
    order: int
    strength: str | None = None
    valid: tuple = (0.0, math.inf)
    search: dict = field(default_factory=dict)
    aligned: bool = True
    closed_form: bool = False
    constant_maps: bool = False
    code_version: str = ""

    @classmethod
    def of(cls, spec, family: str, order: int) -> "MethodInfo":
        # a method without a part shows that part's defaults (a saliency method: aligned, as
        # every plan has recorded it)
        two_view, saliency = spec.two_view, spec.saliency
        return cls(name=spec.name, title=spec.title_for(family), order=order,
                   strength=spec.strength, valid=tuple(spec.valid),
                   search={k: tuple(v) for k, v in spec.search.items()},
                   aligned=two_view is None or two_view.aligned,
                   closed_form=two_view is not None and two_view.closed_form is not None,
                   constant_maps=saliency is not None and saliency.constant_maps,
                   code_version=code_version(spec))

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["valid"] = [_finite_or_text(v) for v in self.valid]
        # a list, not an object: the plan is written with sorted keys, and the order of the
        # ranges is the order the tables show the selected values in
        data["search"] = [[name, *rng] for name, rng in self.search.items()]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "MethodInfo":
        data = dict(data)
        data["valid"] = tuple(float(v) for v in data.get("valid", (0.0, math.inf)))
        data["search"] = {item[0]: tuple(item[1:]) for item in data.get("search", [])}
        return cls(**data)


def _finite_or_text(value: float):
    return value if math.isfinite(value) else str(value)  # JSON has no inf


class Catalog:
    """The methods of one or more plans, by name: titles, row order and flags for the
    renderers. A method no plan names (a store or ledger from elsewhere) shows its name."""

    def __init__(self, methods: dict[str, MethodInfo] | None = None):
        self.methods = dict(methods or {})

    def get(self, method: str) -> MethodInfo | None:
        return self.methods.get(method)

    def title(self, method: str) -> str:
        info = self.get(method)
        return info.title if info else method

    def rank(self, method: str) -> int:
        info = self.get(method)
        return info.order if info else len(self.methods)

    def ordered(self, methods) -> list[str]:
        return sorted(methods, key=lambda m: (self.rank(m), m))

    def constant_maps(self, method: str) -> bool:
        info = self.get(method)
        return info is not None and info.constant_maps

    def merged(self, other: "Catalog") -> "Catalog":
        """Both catalogs (this one's entry where both name a method). Row orders are the
        registry's as each sweep saw it, built-ins first and plug-ins after them, so a
        plug-in's rows fall below the field's whichever folder comes first."""
        return Catalog({**other.methods, **self.methods})


def code_version(spec, source=None) -> str:
    """A digest of the source of the module(s) that define a method's objective, closed form
    or score model: a changed objective is a different method for reuse. `source(module)`
    gives a module's text (default: as imported; `tables.from_csv` reads it from git)."""
    source = source or inspect.getsource
    digest = hashlib.sha256()
    for fn in spec.code:
        try:
            digest.update(source(inspect.getmodule(fn)).encode())
        except (OSError, TypeError):  # defined interactively: its qualified name only
            digest.update(getattr(fn, "__qualname__", repr(fn)).encode())
    return digest.hexdigest()[:16]


def data_digest(data) -> str:
    """A digest of the data a sweep hands its trials (arrays, tensors, nested containers):
    two sweeps merge or share trials only on the same data."""
    digest = hashlib.sha256()
    _feed(digest, data)
    return digest.hexdigest()[:16]


def _feed(digest, obj) -> None:
    import numpy as np
    if obj is None or isinstance(obj, (bool, int, float, str)):
        digest.update(repr(obj).encode())
    elif isinstance(obj, np.ndarray):
        digest.update(f"{obj.dtype}{obj.shape}".encode())
        digest.update(np.ascontiguousarray(obj).tobytes())
    elif hasattr(obj, "detach") and hasattr(obj, "cpu"):  # a torch tensor
        _feed(digest, obj.detach().cpu().numpy())
    elif hasattr(obj, "state_dict") and callable(obj.state_dict):  # a torch module
        _feed(digest, dict(obj.state_dict()))
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            digest.update(str(key).encode())
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _feed(digest, item)
    elif dataclasses.is_dataclass(obj):
        _feed(digest, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    elif hasattr(obj, "__dict__"):
        _feed(digest, vars(obj))
    else:
        digest.update(repr(obj).encode())


# ------------------------------------------------------------------------------------ the plan
@dataclass
class Plan:
    """A sweep's plan: its trials (resolved configurations, each with one `params` dict) and
    the snapshot its tables are rendered from."""
    suite: str
    family: str
    profile: str
    trials: list = field(default_factory=list)       # resolved trial configs, in run order
    methods: dict = field(default_factory=dict)      # name -> MethodInfo
    columns: tuple = ()
    reference: dict = field(default_factory=dict)    # table -> {method: values by d}
    reference_dims: tuple = ()
    search_trials: int = 0
    search: str = ""                                 # "asha" | "halving" | "" (no search)
    seeds: int = 1
    dims: tuple = ()
    data_digest: str = ""
    git_commit: str = ""
    hardware: str = ""
    created: str = ""

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.methods)

    def names(self, phase: str | None = None) -> list[str]:
        return [t["name"] for t in self.trials if phase is None or t.get("phase", "") == phase]

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["methods"] = {k: v.to_json() for k, v in self.methods.items()}
        data["format"] = PLAN_FORMAT
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        data = {k: v for k, v in data.items() if k != "format"}
        data["methods"] = {k: MethodInfo.from_json(v) for k, v in data.get("methods", {}).items()}
        for key in ("columns", "reference_dims", "dims"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / PLAN_FILE
        text = json.dumps(self.to_json(), indent=1, sort_keys=True, default=_json_default)
        save_atomic(path, lambda tmp: Path(tmp).write_text(text + "\n"))
        return path

    @classmethod
    def load(cls, folder: Path) -> "Plan":
        path = Path(folder) / PLAN_FILE
        if not path.is_file():
            raise SweepFolderError(f"{folder}: no {PLAN_FILE} here, so it is not a sweep's "
                                   f"folder; give the folder harness.run wrote "
                                   f"(<out>/<suite>-<profile>)")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as err:
            raise SweepFolderError(f"{path}: not a readable plan ({err}); rerun the sweep or "
                                   f"restore the file") from None


def _json_default(obj):
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


# ---------------------------------------------------------------------------------- the ledger
class Ledger:
    """`records.jsonl`: one finished trial a line, appended and fsynced as it ends, never
    rewritten. A line cut short by a crash is skipped on reading; a trial recorded twice (a
    resumed sweep that reran it) counts once, its last line."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LEDGER_FILE

    def append(self, record: TrialRecord) -> None:
        line = json.dumps(record.to_dict(), sort_keys=True, default=_json_default,
                          allow_nan=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[TrialRecord]:
        """Every recorded trial once (the last line of each name), in ledger order."""
        by_name: dict[str, TrialRecord] = {}
        if not self.path.exists():
            return []
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                record = TrialRecord.from_dict(json.loads(line))
            except (ValueError, TypeError):  # a line cut short when a driver was killed
                continue
            by_name.pop(record.name, None)
            by_name[record.name] = record
        return list(by_name.values())

    def finished(self) -> dict[str, TrialRecord]:
        """The recorded trials that count as done: everything but failures (a crash, not a
        result: a resumed sweep runs those again)."""
        return {r.name: r for r in self.records() if r.status != "failed"}


# ----------------------------------------------------------------------------- sweep folders
@dataclass
class SweepResults:
    """One or more sweep folders read together: the plans' snapshot and their records,
    restricted to what the plans contain (trials an earlier plan ran are left out)."""
    plans: list
    records: list

    @property
    def plan(self) -> Plan:
        return self.plans[0]

    @property
    def catalog(self) -> Catalog:
        catalog = Catalog()
        for plan in self.plans:
            catalog = catalog.merged(plan.catalog)
        return catalog


def read_folders(folders) -> SweepResults:
    """Plans and ledgers of sweep folders; folders of another suite, profile or data are
    refused (their numbers would not be comparable). A method's trials come from the first
    folder whose plan has it: a later folder adds the methods the earlier ones lack (a
    plug-in's sweep beside a committed field), never a second set of a method's trials."""
    plans, records, seen, methods = [], [], set(), set()
    for folder in folders:
        plan = Plan.load(folder)
        differs = plans and difference(plans[0], plan)
        if differs:
            what, a, b = differs
            raise SweepFolderError(
                f"cannot merge {folder} with {folders[0]}: their {what} differs "
                f"({b} vs {a}); merge only sweeps of one suite, profile and data")
        plans.append(plan)
        planned = set(plan.names())
        for record in Ledger(folder).records():
            if record.name in planned and record.name not in seen and record.method not in methods:
                seen.add(record.name)
                records.append(record)
        methods |= {t["method"] for t in plan.trials if "method" in t}
    return SweepResults(plans, records)


def archive_previous(folder: Path) -> None:
    """A new sweep (or audit) in a folder that holds one: the old ledger and plan are kept
    beside it under a dated name (never deleted: they are results), the new one starts
    empty."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (LEDGER_FILE, PLAN_FILE):
        path = folder / name
        if path.exists():
            path.rename(folder / f"{path.stem}.{stamp}{path.suffix}")


def plan_patience(plan: Plan) -> int:
    """The convergence rule's patience a plan's trials train under (0: none)."""
    return max((int(t.get("patience") or 0) for t in plan.trials), default=0)


def carries_references(plan: Plan) -> bool:
    """Whether the plan's successive halving carried the references on at every rung
    (`planner.next_rung`; halving plans made before that rule mark none)."""
    return any(t.get("reference") for t in plan.trials)


def search_protocol(plan: Plan) -> str:
    """How a plan searched and trained: "<asha|halving> x <configurations>" (a plan converted
    from an older sweep names no mode: ASHA, the only one there was), then " (references
    carried)" where every rung carried the references on (`planner.next_rung`; halving plans
    made before that rule lack it), or "" where nothing is searched (a grid), then
    ", patience <n>" under a convergence rule: a method joins a field only under the same
    search budget and the same stopping rule."""
    patience = plan_patience(plan)
    rule = f", patience {patience}" if patience else ""
    if not plan.search_trials or not any(t.get("phase") == "search" for t in plan.trials):
        return rule.lstrip(", ")
    carried = " (references carried)" if carries_references(plan) else ""
    return f"{plan.search or 'asha'} x {plan.search_trials}{carried}{rule}"


def difference(plan: Plan, other: Plan, search: bool = False) -> tuple | None:
    """The first of suite, profile, data (and with `search`, the search protocol) in which
    two plans differ, as (what, plan's, other's); None where they agree."""
    pairs = [("suite", plan.suite, other.suite), ("profile", plan.profile, other.profile),
             ("data", plan.data_digest, other.data_digest)]
    if search:
        pairs.append(("search", search_protocol(plan), search_protocol(other)))
    return next(((what, a, b) for what, a, b in pairs if a != b), None)


def check_mergeable(plan: Plan, folders) -> None:
    """Refuse, in one line, folders that cannot stand in one table with `plan`'s sweep."""
    for folder in folders:
        differs = difference(plan, Plan.load(folder), search=True)
        if differs:
            what, a, b = differs
            raise SweepFolderError(f"--reuse {folder}: its {what} differs from this "
                                   f"sweep's ({b} vs {a}); reuse only a sweep of the same "
                                   f"suite, profile, data and protocol")


def identity(config_or_record, info: MethodInfo | None, digest: str) -> tuple:
    """What makes two trials the same trial: method, d, parameters, lr, seed, phase, profile,
    epochs, patience, batch, precision, hidden widths, the objective's code version and the data."""
    get = (config_or_record.get if isinstance(config_or_record, dict)
           else lambda k, default=None: getattr(config_or_record, k, default))
    hidden = get("hidden", "")
    if isinstance(hidden, (list, tuple)):
        hidden = ",".join(map(str, hidden))
    return (get("method"), int(get("d")), json.dumps(get("params") or {}, sort_keys=True),
            float(get("lr") or 0), int(get("seed") or 0), get("phase") or "", get("profile"),
            int(get("epochs") or 0), int(get("patience") or 0), int(get("batch") or 0),
            get("precision") or "fp32", str(hidden), info.code_version if info else "", digest)
