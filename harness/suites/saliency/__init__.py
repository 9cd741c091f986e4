"""The saliency suites (paper Tables 2–4): on MNIST scenes (built offline) and on COCO 2017.

`scenes_ooi` / `clutter_ooi` / `coco_ooi`: image–text object of interest (Table 2);
`scenes_pairs` / `clutter_pairs` / `coco_pairs`: common and individual maps on image pairs
(Tables 3 and 4). The `scenes_*` suites use the quadrant scenes of `harness.data.scenes`, the
`clutter_*` suites the harder, COCO-like cluttered scenes of `harness.data.clutter_scenes`.
One trial (`evaluation.run_trial`) trains a method's score model on frozen features and scores
its GradCAM maps against object masks.
"""
from __future__ import annotations

from harness.suites import Suite, register_suite
from harness.suites.saliency import evaluation, tables

D_DEFAULT = 64  # the paper's common/individual dimension for the COCO experiments


def _headline(experiment: str):
    if experiment == "ooi":
        return lambda m: f"AP {m['ap']:.1f} (val {m['val_ap']:.1f})"

    def headline(m):
        mags = f" | mag cos {m['mag_cosine']:.1f}" if "mag_cosine" in m else ""
        return (f"AP common {m['ap_common']:.1f} ind {m['ap_ind']:.1f} "
                f"ind-bg {m['ap_ind_bg']:.1f}{mags}")
    return headline


def _scenes(experiment: str, kind: str = "mnist"):
    def load(profile, options):
        from harness.suites.saliency.scenes import scenes_data
        return scenes_data(experiment, profile, options, kind=kind)
    return load


def _coco(experiment: str) -> dict:
    def load(profile, options):
        from harness.suites.saliency.coco import coco_data
        return coco_data(experiment, profile, options)

    def check(options):
        from harness.suites.saliency.coco import check_inputs
        check_inputs(experiment, options)
    return {"load_data": load, "check_inputs": check}


def saliency_suite(name: str, experiment: str, description: str, *, load_data, on_coco: bool,
                   check_inputs=lambda options: None) -> Suite:
    # the scenes are drawn from MNIST; COCO suites read a root and local weights
    options = ("data_root", "weights") if on_coco else ("mnist_dir",)
    return Suite(
        name=name, description=description, family="saliency", needs=experiment,
        dims=(D_DEFAULT,), load_data=load_data, run_trial=evaluation.run_trial,
        render=tables.renderer(experiment, on_coco), summary=tables.summarizer(experiment),
        select_metric="val_select", headline=_headline(experiment), check_inputs=check_inputs,
        reference=tables.PAPER, options=options,
        batch_must_exceed_d="batch correlations need more rows than dimensions")


register_suite(saliency_suite("scenes_ooi", "ooi", "MNIST scenes, image–text object of interest "
                              "(Table 2)", load_data=_scenes("ooi"), on_coco=False))
register_suite(saliency_suite("scenes_pairs", "pairs", "MNIST scene pairs: common/individual "
                              "maps (Tables 3 and 4)", load_data=_scenes("pairs"), on_coco=False))
register_suite(saliency_suite("clutter_ooi", "ooi", "Cluttered MNIST scenes, image–text object of "
                              "interest (Table 2)", load_data=_scenes("ooi", "clutter"),
                              on_coco=False))
register_suite(saliency_suite("clutter_pairs", "pairs", "Cluttered MNIST scene pairs: "
                              "common/individual maps (Tables 3 and 4)",
                              load_data=_scenes("pairs", "clutter"), on_coco=False))
register_suite(saliency_suite("coco_ooi", "ooi", "COCO 2017 image–caption object of interest, "
                              "ResNet50 + BERT (Table 2)", **_coco("ooi"), on_coco=True))
register_suite(saliency_suite("coco_pairs", "pairs", "COCO 2017 image pairs, ResNet50 + "
                              "CLIP-ResNet50 (Tables 3 and 4)", **_coco("pairs"), on_coco=True))
