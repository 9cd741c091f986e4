"""The one method registry: a `MethodSpec` per method, looked up by name.

A spec names the method's defaults, its swept strength and grids, and what it is, so neither
the training loop, the suites nor the tables ever branch on a method's name. Beside what every
method has, a spec holds one part per kind of method, and `capabilities` (which suites can run
it) follows from the parts it has:

- `two_view` (`TwoView`): a representation trained by `objective`, or fitted by `closed_form`,
  on two paired views (mnist_halves and its like): capability "two_view".
- `saliency` (`Saliency`): a score model for the saliency suites, built by `score_model`:
  capabilities "ooi" and/or "pairs", its `experiments`.
- `presentation` (`Presentation`): its row names in the tables.
- `grids`: per suite family ("two_view", "saliency"), where they differ from `grid`.
- `search`: the ranges the two-view search (`harness.search`, ASHA) samples; bounds from the
  references (original papers, cca-zoo's defaults), widened. The grid stays for `--search-trials 0`.

Built-in methods live one per file in `baselines/` and `muc2m/`; importing those packages
registers them, in the paper's row order (which is the tables' row order).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Callable

from harness.common import HarnessError, Registry

_REGISTRY: Registry = Registry("method")  # name -> MethodSpec
_BUILTIN_PACKAGES = ("baselines", "muc2m")
ENTRY_POINT_GROUP = "muc2m_harness.methods"  # installed plug-ins: modules that register methods
_entry_points_loaded = False


class PluginError(HarnessError, ImportError):
    """A plug-in that cannot be loaded; the message names it and says why, in one line."""


@dataclass(frozen=True)
class Presentation:
    """How a method shows in the tables."""
    title: str                                   # the row name in the paper's tables
    titles: dict = field(default_factory=dict)   # suite family -> row name, where not `title`

    def title_for(self, family: str) -> str:
        return self.titles.get(family, self.title)


@dataclass(frozen=True)
class TwoView:
    """A representation learnt on two paired views: trained by `objective` or fitted by
    `closed_form` (exactly one), and the networks it trains."""
    objective: Callable | None = None  # (model, h1, h2, state, params) -> {"loss": ..., terms}
    closed_form: Callable | None = None  # (h1, h2, d, params) -> representation function
    batchnorm: bool = False            # representations are BN(f(h)) (paper: "column-whitened")
    aligned: bool = True               # outputs match dimension-wise across views (else recognition
                                       # uses the CCA projections of the outputs, fitted on train)
    decoders: str | None = None        # None | "views" (decoder per view) | "joint" (one for [h1;h2])
    init_state: Callable | None = None  # (d) -> dict of running statistics, checkpointed
    input_gradient_penalty: bool = False  # the loss differentiates ∂score/∂h (a second,
                                          # double backward): the bench floor includes one
    epoch_cost: float = 1.0            # an epoch's cost relative to DCCA's; budget profiles
                                       # (quick) divide their epochs by it
    hidden: tuple | None = None        # its own encoder hidden widths where the suite's would not
                                       # be its reference setting (None: the suite's)
    code_activation: str | None = None  # "sigmoid": representations are σ(f(h)) (CorrNet's code)

    def fresh_state(self, d: int, device=None) -> dict:
        """The running statistics a trial starts from (empty when the method keeps none)."""
        initial = self.init_state(d) if self.init_state else {}
        return {key: value.to(device) for key, value in initial.items()}


@dataclass(frozen=True)
class Saliency:
    """A score model whose input gradients are the method's saliency maps."""
    score_model: Callable              # (cfg, (h1, h2) train features or None, device,
                                       # checkpoint_dir, log, individual: bool)
                                       # -> (model with score_tensor, or None; history)
    experiments: tuple = ("ooi", "pairs")  # the saliency suites it runs in: "ooi" (image–text
                                           # object of interest), "pairs" (maps on image pairs)
    feature_views: tuple = ("A", "B")  # pairs: the extractor feeding each view
    constant_maps: bool = False        # its maps are uniform (no map to show or measure)


@dataclass(frozen=True)
class MethodSpec:
    """What every method has, its presentation, and a part for each kind it is (module doc)."""
    name: str
    presentation: Presentation
    defaults: dict                     # every parameter of the method with its default
    strength: str | None               # name of the parameter the sweep varies
    grid: tuple = ()                   # default sweep values of `strength`
    grids: dict = field(default_factory=dict)   # suite family -> default sweep values
    valid: tuple = (0.0, float("inf"))  # closed range a strength must lie in
    search: dict = field(default_factory=dict)  # two-view search space (harness.search):
                                       # parameter (or "lr") -> (lo, hi) sampled log-uniform;
                                       # (lo, hi, "1-") samples 1−value log-uniform in [lo, hi]
                                       # (lo, hi, "lin") samples value uniformly in [lo, hi]
    references: tuple = ()             # configurations from its references the search always
                                       # tries beside its defaults, e.g. ({"alpha": 0.0},)
    choices: dict = field(default_factory=dict)  # text parameter -> the values it accepts
    default_off: tuple = ()            # suite families whose `--methods all` leaves it out
    # the pure loss whose keyword defaults must match `defaults`: a two-view objective's, or
    # the loss a score model trains (contrastive heads), so it belongs to neither part
    loss_fn: Callable | None = None
    two_view: TwoView | None = None
    saliency: Saliency | None = None

    def __post_init__(self):
        if self.two_view is None and self.saliency is None:
            raise ValueError(f"method {self.name!r} has neither a two_view nor a saliency part; "
                             f"give it one (TwoView(objective=...), Saliency(score_model=...))")
        if self.two_view is not None and \
                (self.two_view.objective is None) == (self.two_view.closed_form is None):
            raise ValueError(f"method {self.name!r}: its two_view part needs exactly one of "
                             f"objective / closed_form")
        if self.saliency is not None and self.saliency.score_model is None:
            raise ValueError(f"method {self.name!r}: its saliency part needs a score_model")

    @property
    def capabilities(self) -> tuple:
        """The suites' kinds it can run in (module doc), from the parts it has."""
        two_view = ("two_view",) if self.two_view is not None else ()
        return two_view + (tuple(self.saliency.experiments) if self.saliency is not None else ())

    @property
    def code(self) -> tuple:
        """The functions that define what the method computes, those it has: objective, pure
        loss, closed form, score model (this order: `ledger.code_version` digests it)."""
        two_view, saliency = self.two_view, self.saliency
        functions = (two_view and two_view.objective, self.loss_fn,
                     two_view and two_view.closed_form, saliency and saliency.score_model)
        return tuple(fn for fn in functions if fn is not None)

    def grid_for(self, family: str) -> tuple:
        return tuple(self.grids.get(family, self.grid))

    def title_for(self, family: str) -> str:
        return self.presentation.title_for(family)

    def params(self, strength: float | None = None, overrides: dict | None = None) -> dict:
        """The method's parameters: defaults, then the swept strength, then overrides."""
        params = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise ValueError(f"method {self.name!r} has no parameter {key!r}; "
                                 f"its parameters are {sorted(params)}")
            kind = type(params[key])
            try:
                params[key] = kind(value) if params[key] is not None else value
            except ValueError:
                raise ValueError(f"parameter {key!r} of method {self.name!r} takes a "
                                 f"{kind.__name__}, not {value!r}") from None
            if key in self.choices and params[key] not in self.choices[key]:
                raise ValueError(f"parameter {key!r} of method {self.name!r} is one of "
                                 f"{', '.join(map(str, self.choices[key]))}, not {value!r}")
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


def register(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Add `spec`; a second spec of the same name is refused unless `replace` (a Ray worker
    re-registering a driver's out-of-package method)."""
    return _REGISTRY.add(spec.name, spec, replace)


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    global _entry_points_loaded
    from harness.common import first_line
    for package in _BUILTIN_PACKAGES:
        importlib.import_module(package)
    if not _entry_points_loaded:  # installed plug-ins, once per process
        _entry_points_loaded = True
        from importlib.metadata import entry_points
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as err:  # noqa: BLE001 - a broken plug-in: one line, not a traceback
                raise PluginError(f"plug-in {ep.name!r} ({ep.value}, entry point group "
                                  f"{ENTRY_POINT_GROUP}) failed to load: "
                                  f"{type(err).__name__}: {first_line(err)}") from None


def load_plugin(target: str) -> list[str]:
    """Import a plug-in module that registers methods: a module name on the path
    (`mypkg.methods`) or a `.py` file. Returns the names of the methods it added."""
    import sys
    from pathlib import Path

    from harness.common import first_line
    _load_builtins()
    before = set(_REGISTRY)
    try:
        path = Path(target)
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(target)
    except Exception as err:  # noqa: BLE001 - any failure: one line naming the plug-in
        raise PluginError(f"--plugin {target}: cannot load it ({type(err).__name__}: "
                          f"{first_line(err)}); "
                          f"give a module name on the path or a .py file that calls "
                          f"harness.registry.register") from None
    added = [name for name in _REGISTRY if name not in before]
    if not added:
        raise PluginError(f"--plugin {target}: it registered no method; a plug-in calls "
                          f"harness.registry.register(MethodSpec(...)) when imported")
    return added


def get(name: str) -> MethodSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; choose one of: {', '.join(list_methods())}")
    return _REGISTRY[name]


def _package_rank(spec: MethodSpec) -> int:
    fn = spec.code[0]
    package = (getattr(fn, "__module__", "") or "").split(".")[0]
    return _BUILTIN_PACKAGES.index(package) if package in _BUILTIN_PACKAGES else len(_BUILTIN_PACKAGES)


def list_methods() -> list[str]:
    """Every method: the built-in packages in order (baselines, then muc2m), each in its own
    registration order, then methods registered from elsewhere, as they came."""
    _load_builtins()
    order = {name: i for i, name in enumerate(_REGISTRY)}
    return sorted(_REGISTRY, key=lambda n: (_package_rank(_REGISTRY[n]), order[n]))


def rank(name: str) -> int:
    """A method's row position in every table: its registration order (unknown: last)."""
    names = list_methods()
    return names.index(name) if name in names else len(names)


def external_specs() -> list[MethodSpec]:
    """Methods registered from outside the built-in packages (tests, plug-ins): a Ray worker
    does not import those modules, so the runner hands these specs to its trials."""
    _load_builtins()
    return [spec for spec in _REGISTRY.values() if _package_rank(spec) == len(_BUILTIN_PACKAGES)]
