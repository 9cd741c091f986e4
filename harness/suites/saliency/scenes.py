"""The data of `scenes_ooi` / `scenes_pairs` and of `clutter_ooi` / `clutter_pairs`:
scenes drawn by `harness.data.scenes` (kind "mnist": one digit per quadrant on black) or by
`harness.data.clutter_scenes` (kind "clutter": 2–4 digits of random scale on a textured
background, overlapping boundedly, with unlabeled distractor strokes), features of the
project's CNN extractors A and B trained on scenes of the same kind, MiniLM text features, and
the evaluation sets with their masks. Computed once per sweep; scenes and extractors come from
their on-disk caches after the first run."""
from __future__ import annotations

import numpy as np

from harness import extractors as ex
from harness.data.clutter_scenes import load_clutter_scenes
from harness.data.scenes import caption, load_scenes, make_pairs
from harness.profiles import get_profile
from harness.suites.saliency.evaluation import OOIEval, PairsEval, SaliencyData

SCENE_KINDS = ("mnist", "clutter")


def _load(kind: str, n: int, split: str, mnist_dir):
    if kind == "clutter":
        return load_clutter_scenes(n, split, seed=0, n_digits=ex.CLUTTER_N_DIGITS,
                                   mnist_dir=mnist_dir)
    return load_scenes(n, split, seed=0, mnist_dir=mnist_dir)


def scenes_data(experiment: str, profile: str, options: dict | None = None, log=print,
                kind: str = "mnist") -> SaliencyData:
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown scenes kind {kind!r}; choose one of: {', '.join(SCENE_KINDS)}")
    options = options or {}
    s = get_profile(profile, "saliency")
    mnist_dir = options.get("mnist_dir")
    scenes = {split: _load(kind, s.n_images(split), split, mnist_dir)
              for split in ("train", "val", "test")}
    nets, info = {}, {}
    for name in ("A", "B") if experiment == "pairs" else ("A",):
        nets[name], meta = ex.load_extractor(name, s.extractor_n_train, log=log, scenes=kind)
        info[f"f1_{name}"] = meta["test_f1"]
    feats_a = ex.features(nets["A"], scenes["train"].images)  # val/test: GradCAM on pixels
    if experiment == "ooi":
        text = ex.encode_text([caption(c) for c in range(10)])
        items = {k: _ooi_items(v) for k, v in scenes.items()}
        image_of, classes = items["train"]
        train = {"A/text": (feats_a[image_of], text[classes])}
        evals = {k: OOIEval(scenes[k].images, items[k][0], text[items[k][1]],
                            _class_masks(scenes[k], *items[k]), items[k][1]) for k in ("val", "test")}
        info.update(n_train_items=float(len(image_of)))
        return SaliencyData("ooi", nets, train, evals["val"], evals["test"], info)

    feats_b = ex.features(nets["B"], scenes["train"].images)
    pairs = make_pairs(scenes["train"], s.n_pairs("train"), seed=0, shared=True)
    train = {"A/B": (feats_a[pairs.first], feats_b[pairs.second])}
    evals = {k: _pairs_eval(scenes[k], s.n_pairs(k)) for k in ("val", "test")}
    info.update(n_train_pairs=float(len(pairs)))
    return SaliencyData("pairs", nets, train, evals["val"], evals["test"], info)


def _ooi_items(scenes) -> tuple[np.ndarray, np.ndarray]:
    """Every (scene, class present) of a split, as (scene index, class) arrays."""
    image_of, classes = np.nonzero(scenes.labels > 0)
    return image_of.astype(np.int64), classes.astype(np.int64)


def _class_masks(scenes, image_of, classes) -> np.ndarray:
    return np.stack([scenes.mask(i, c) for i, c in zip(image_of, classes)])


def _pairs_eval(scenes, n: int) -> PairsEval:
    shared = make_pairs(scenes, n, seed=0, shared=True)
    apart = make_pairs(scenes, n, seed=0, shared=False)
    masks = scenes.masks()  # (n_scenes, 10, H, W)

    def split_masks(index, cls):
        common = masks[index, cls]
        others = scenes.labels[index].astype(bool)
        others[np.arange(len(index)), cls] = False
        ind = (masks[index] & others[:, :, None, None]).any(1)
        return common, ind

    common1, ind1 = split_masks(shared.first, shared.shared_class)
    common2, ind2 = split_masks(shared.second, shared.shared_class)
    return PairsEval(scenes.images[shared.first], scenes.images[shared.second], common1, common2,
                     ind1, ind2, scenes.images[apart.first], scenes.images[apart.second])
