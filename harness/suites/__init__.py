"""A suite = a data set + the methods and dimensions it sweeps + the tables it renders.

Every suite runs through the same Ray runner, MLflow tracking and table driver: it names a data
loader (called once per sweep; its output goes to every trial), a trial function, the
capability a method needs to run in it, the validation metric that selects a strength, its
metric columns, and its renderers (store rows -> table files and plots).

Add a suite: one module in this package that builds a `Suite` and calls `register_suite`,
plus its name in `SUITE_MODULES` below.
"""
from __future__ import annotations

import importlib
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

from harness import registry
from harness.common import ConfigError, Registry, default_device
from harness.models import HIDDEN, PRECISIONS
from harness.profiles import FAMILIES, Profile

SUITE_MODULES = ("harness.suites.mnist_halves", "harness.suites.noisy_mnist",
                 "harness.suites.arrays", "harness.suites.saliency")
_SUITES: Registry = Registry("suite")  # name -> Suite


def run_name(method: str, d: int, strength_name: str | None, strength, seed: int) -> str:
    """Deterministic trial name, reused as the MLflow run name: `muc2m[d=50,lam=0.005,seed=0]`."""
    parts = [f"d={d}"]
    if strength_name is not None:
        parts.append(f"{strength_name}={strength:g}")
    parts.append(f"seed={seed}")
    return f"{method}[{','.join(parts)}]"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    family: str                    # "two_view" | "saliency": its profiles, grids and titles
    needs: str                     # the capability a method must declare to run here
    dims: tuple[int, ...]          # default latent dimensions
    load_data: Callable            # (profile_name, options dict) -> data handed to every trial
    run_trial: Callable            # (config, data=, checkpoint_dir=, report=, log=, suite=)
                                   #   -> TrialRecord; call it through `trial`
    render: Callable               # (df of table rows, SweepResults (plan and ledger), out_dir)
                                   #   -> (paths written, selected cells)
    summary: Callable              # (df of table rows, SweepResults) -> one-screen text
    select_metric: str             # validation metric maximised to choose a strength
    headline: Callable             # metrics dict -> short text for the progress line
    columns: tuple[str, ...] = ()  # metric columns in table order (NaN where a trial has none)
    check_inputs: Callable = lambda options: None  # cheap data checks before Ray starts
    leader_metric: str | None = None  # test metric the progress view ranks per d (None: none)
    precisions: tuple[str, ...] = ("fp32",)
    extra_metrics: Callable | None = None  # two-view: (train reps, test reps, data) -> dict
    dims_by_profile: dict = field(default_factory=dict)  # profile -> its default dims
    reference: dict = field(default_factory=dict)  # table -> {method: numbers by reference_dims}
    reference_dims: tuple = ()     # the d of the reference numbers (the paper's)
    options: tuple = ()            # the command-line options it reads (harness.cli.SUITE_OPTIONS)
    batch_must_exceed_d: str = ("a batch covariance has rank ≤ batch−1, so its correlations "
                                "are meaningless")

    def trial(self, config: dict, **kwargs):
        """Run one trial of this suite (what the Ray runner and `harness.train` call)."""
        return self.run_trial(config, suite=self, **kwargs)

    def begin(self, config: dict, device=None, log=None):
        """What every trial starts with: (resolved config, method spec, device, log)."""
        cfg = self.resolve(config)
        return cfg, registry.get(cfg["method"]), default_device(device), log or (lambda msg: None)

    # ------------------------------------------------------------------------------ methods
    def accepts(self, spec: registry.MethodSpec) -> bool:
        return self.needs in spec.capabilities

    def known_methods(self) -> list[str]:
        return [m for m in registry.list_methods() if self.accepts(registry.get(m))]

    @property
    def methods(self) -> tuple[str, ...]:
        """`--methods all`: every method that can run here, less those off by default."""
        return tuple(m for m in self.known_methods()
                     if self.family not in registry.get(m).default_off)

    def grid(self, method: str) -> tuple:
        return registry.get(method).grid_for(self.family)

    def dims_for(self, profile: str) -> tuple[int, ...]:
        """Default latent dimensions under a profile (`dims_by_profile`, else `dims`)."""
        return tuple(self.dims_by_profile.get(profile, self.dims))

    def profile(self, name: str) -> Profile:
        profiles = FAMILIES[self.family]
        if name not in profiles:
            raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(profiles)}")
        return profiles[name]

    # ------------------------------------------------------------------------------ resolve
    def resolve(self, config: dict) -> dict:
        """Validate a trial configuration and fill in its defaults (raises ConfigError)."""
        try:
            spec = registry.get(config["method"])
        except KeyError as err:
            raise ConfigError(err.args[0]) from None
        if not self.accepts(spec):
            raise ConfigError(f"method {spec.name!r} is not part of suite {self.name}; choose "
                              f"one of: {', '.join(self.known_methods())}")
        profile = self.profile(config.get("profile", "quick"))
        try:
            # one route for parameters: a planned trial's `params`; `strength` and
            # `overrides` (harness.train's flags) on top of them
            params = spec.params(config.get("strength"), {**(config.get("params") or {}),
                                                          **(config.get("overrides") or {})})
        except ValueError as err:
            raise ConfigError(err.args[0]) from None
        d = config["d"]
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ConfigError(f"d={d!r} must be a positive integer")
        batch = config.get("batch") or profile.batch
        # a method with no two-view part (a saliency one): a plain network's batch, epochs
        # and widths
        two_view = spec.two_view or registry.TwoView()
        if two_view.closed_form is None and batch <= d:
            raise ConfigError(f"batch size {batch} is not larger than d={d}: "
                              f"{self.batch_must_exceed_d}; use d < {batch} or a larger batch")
        precision = config.get("precision") or (
            profile.precision if profile.precision in self.precisions else "fp32")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} is not one of: {', '.join(PRECISIONS)}")
        if precision not in self.precisions:
            raise ConfigError(f"precision {precision!r}: suite {self.name} runs in "
                              f"{', '.join(self.precisions)} only; drop --precision")
        strength = params[spec.strength] if spec.strength else None
        seed = int(config.get("seed", 0))
        epochs, lr = config.get("epochs"), config.get("lr")
        if epochs is not None and (isinstance(epochs, bool)
                                   or not isinstance(epochs, numbers.Integral) or epochs < 1):
            raise ConfigError(f"epochs={epochs!r} must be a whole number ≥ 1")
        if lr is not None and not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr={lr!r} must be a finite number > 0 (e.g. 1e-3)")
        patience = config.get("patience")
        patience = profile.patience if patience is None else patience
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ConfigError(f"patience={patience!r} must be a whole number ≥ 0 (0: train "
                              f"every epoch)")
        return {"method": spec.name, "d": d, "seed": seed, "profile": profile.name,
                "strength_name": spec.strength, "strength": strength, "params": params,
                "batch": batch, "lr": lr or profile.lr,
                "epochs": epochs or profile.epochs_for(d, two_view.epoch_cost),
                "eval_every": config.get("eval_every") or profile.eval_every,
                "patience": patience,
                "hidden": tuple(config.get("hidden") or (
                    HIDDEN if two_view.hidden is None else two_view.hidden)),
                "precision": precision,
                "phase": config.get("phase", ""),
                # False: the m × d outputs at every d (the factored path's reference)
                "factored": bool(config.get("factored", True)),
                "name": config.get("name") or run_name(spec.name, d, spec.strength, strength, seed)}


def register_suite(suite: Suite, replace: bool = False) -> Suite:
    return _SUITES.add(suite.name, suite, replace)


def unregister_suite(name: str) -> None:
    _SUITES.pop(name, None)


def _load_builtins() -> None:
    for module in SUITE_MODULES:
        importlib.import_module(module)


def all_suites() -> dict[str, Suite]:
    _load_builtins()
    return dict(_SUITES)


def get_suite(name: str) -> Suite:
    _load_builtins()
    if name not in _SUITES:
        raise KeyError(f"unknown suite {name!r}; choose one of: {', '.join(_SUITES)}")
    return _SUITES[name]
