"""A suite = a data set + the methods and dimensions it sweeps + the tables it feeds.

Every suite runs through the same Ray runner, MLflow tracking and table builder: it names a
data loader (called once per sweep; its output goes to every trial), a trial function, how a
configuration is checked (`resolve`), its methods' default grids, the validation metric that
selects a strength, and a one-line headline of a finished trial for the progress view.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness import registry, saliency_suite, train


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    methods: tuple[str, ...]       # default methods (--methods all)
    dims: tuple[int, ...]          # default latent dimensions
    load_data: Callable            # (profile_name, options dict) -> data handed to every trial
    run_trial: Callable            # (config, data=, checkpoint_dir=, report=, log=) -> result
    resolve: Callable              # config -> resolved config; raises train.ConfigError
    grid: Callable                 # method name -> default strengths (empty: no strength)
    known_methods: Callable        # () -> every method name this suite accepts
    tables: tuple[str, ...]        # paper tables this suite regenerates
    select_metric: str             # validation metric maximised to choose a strength
    headline: Callable             # metrics dict -> short text for the progress line
    check_inputs: Callable = lambda options: None  # cheap data checks before Ray starts
    leader_metric: str | None = None  # test metric the progress view ranks per d (None: none)


def _mnist_headline(m: dict) -> str:
    return f"corr_heldout {m['corr_heldout']:.1f} recog {m['recog_acc']:.1f}%"


def _saliency_suite(name: str, experiment: str, description: str, load_data, tables,
                    check_inputs=lambda options: None) -> Suite:
    if experiment == "ooi":
        def headline(m):
            return f"AP {m['ap']:.1f} (val {m['val_ap']:.1f})"
    else:
        def headline(m):
            mags = f" | mag cos {m['mag_cosine']:.1f}" if "mag_cosine" in m else ""
            return (f"AP common {m['ap_common']:.1f} ind {m['ap_ind']:.1f} "
                    f"ind-bg {m['ap_ind_bg']:.1f}{mags}")
    methods = saliency_suite.method_names(experiment)
    return Suite(
        name=name, description=description, methods=methods, dims=(saliency_suite.D_DEFAULT,),
        load_data=load_data, run_trial=saliency_suite.run_trial,
        resolve=lambda config: saliency_suite.resolve(config, experiment),
        grid=lambda method: saliency_suite.METHODS[method].grid,
        known_methods=lambda: list(methods), tables=tables, select_metric="val_select",
        headline=headline, check_inputs=check_inputs)


def _coco_loader(experiment: str):
    def load(profile, options):
        from harness.data import coco_suite
        return coco_suite.coco_data(experiment, profile, options)
    return load


def _coco_check(experiment: str):
    def check(options):
        from harness.data import coco_suite
        coco_suite.check_inputs(experiment, options)
    return check


SUITES = {
    "mnist_halves": Suite(
        name="mnist_halves",
        description="MNIST left/right halves: total correlation (Table 1), recognition (Table 5)",
        methods=("cca", "dcca", "dccae", "corrnet", "sdcca", "softcca", "muc2m"),
        dims=(50, 100, 200, 500, 1000),
        load_data=lambda profile, options: train.load_data(profile, options.get("mnist_dir")),
        run_trial=train.run_trial, resolve=train.resolve,
        grid=lambda method: registry.get(method).grid, known_methods=registry.list_methods,
        tables=("table1", "table5"), select_metric="val_corr_best", headline=_mnist_headline,
        leader_metric="corr_heldout",
    ),
    "scenes_ooi": _saliency_suite(
        "scenes_ooi", "ooi", "MNIST scenes, image–text object of interest (Table 2)",
        lambda profile, options: saliency_suite.scenes_data("ooi", profile, options), ("table2",)),
    "scenes_pairs": _saliency_suite(
        "scenes_pairs", "pairs", "MNIST scene pairs: common/individual maps (Tables 3 and 4)",
        lambda profile, options: saliency_suite.scenes_data("pairs", profile, options),
        ("table3", "table4")),
    "coco_ooi": _saliency_suite(
        "coco_ooi", "ooi", "COCO 2017 image–caption object of interest, ResNet50 + BERT (Table 2)",
        _coco_loader("ooi"), ("table2",), _coco_check("ooi")),
    "coco_pairs": _saliency_suite(
        "coco_pairs", "pairs", "COCO 2017 image pairs, ResNet50 + CLIP-ResNet50 (Tables 3 and 4)",
        _coco_loader("pairs"), ("table3", "table4"), _coco_check("pairs")),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    return SUITES[name]
