"""The method registry: one `MethodSpec` per objective, looked up by name.

A spec names the method's defaults, its swept strength and grid, and its capabilities
(batch-norm on the outputs, decoders, running statistics, closed-form fit), so the shared
training loop never branches on a method's name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

_REGISTRY: dict[str, "MethodSpec"] = {}
_PLUGIN_PACKAGES = ("baselines", "muc2m")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    title: str                         # the row name in the paper's tables
    defaults: dict                     # every parameter of the objective with its default
    strength: str | None               # name of the parameter the sweep varies
    grid: tuple = ()                   # default sweep values of `strength`
    valid: tuple = (0.0, float("inf"))  # closed range a strength must lie in
    objective: Callable | None = None  # (model, h1, h2, state, params) -> {"loss": ..., terms}
    loss_fn: Callable | None = None    # the pure loss whose keyword defaults must match `defaults`
    batchnorm: bool = False            # representations are BN(f(h)) (SPEC: "column-whitened")
    aligned: bool = True               # outputs match dimension-wise across views (else recognition
                                       # uses the CCA projections of the outputs, fitted on train)
    decoders: str | None = None        # None | "views" (decoder per view) | "joint" (one for [h1;h2])
    init_state: Callable | None = None  # (d) -> dict of running statistics, checkpointed
    closed_form: Callable | None = None  # (h1, h2, d, params) -> representation function
    input_gradient_penalty: bool = False  # the loss differentiates ∂score/∂h (a second,
                                          # double backward): the bench floor includes one
    epoch_cost: float = 1.0            # an epoch's cost relative to DCCA's; budget profiles
                                       # (quick) divide their epochs by it
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def params(self, strength: float | None = None, overrides: dict | None = None) -> dict:
        """The objective's parameters: defaults, then the swept strength, then overrides."""
        params = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise ValueError(f"method {self.name!r} has no parameter {key!r}; "
                                 f"its parameters are {sorted(params)}")
            params[key] = type(params[key])(value) if params[key] is not None else value
        if strength is not None:
            if self.strength is None:
                raise ValueError(f"method {self.name!r} has no swept strength")
            params[self.strength] = float(strength)
        if self.strength is not None:
            self.check_strength(params[self.strength])
        return params

    def check_strength(self, value: float) -> None:
        lo, hi = self.valid
        if not (lo <= value <= hi):
            raise ValueError(f"{self.name}: {self.strength}={value} is outside its valid range "
                             f"[{lo}, {hi}]; pick a value inside it")


def register(spec: MethodSpec) -> MethodSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_plugins() -> None:
    for package in _PLUGIN_PACKAGES:
        importlib.import_module(package)


def get(name: str) -> MethodSpec:
    _load_plugins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; choose one of: {', '.join(list_methods())}")
    return _REGISTRY[name]


def list_methods() -> list[str]:
    _load_plugins()
    return list(_REGISTRY)
