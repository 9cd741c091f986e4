"""A saliency trial (paper Tables 2–4, docs/methods.md): train a method's score model on frozen
features, explain held-out items with GradCAM through the frozen extractor, score the maps
against object masks.

Two experiments, each on the scenes or on COCO:
- "ooi" (Table 2): image–text pairs (an image, "the image contains {class}" for a class in it);
  one common-score map per (image, class), its precision against that class's mask.
- "pairs" (Tables 3–4): two images sharing one class (view 1 through extractor A, view 2
  through extractor B, or as the method's `feature_views` say); common maps against the shared
  class, individual maps against the classes not shared (with and without background); on
  pairs with nothing in common, the magnitude of the `cosine`, `dot` and `norm` common maps.

A suite's data (`SaliencyData`) holds train features and evaluation sets (images, partner
features, masks) for a validation and a test split; strengths are selected on validation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from harness.extractors import features
from harness.record import TrialRecord
from harness.suites.saliency import metrics as sm
from harness.suites.saliency.gallery import GALLERY_ITEMS, encode_gallery
from muc2m import saliency as explain
from muc2m.scores import COMMON_SCORES

MAP_BATCH = 64


@dataclass
class OOIEval:
    """Object-of-interest items: image `image_of[k]` with the text of its class `classes[k]`."""
    images: np.ndarray      # (n, C, H, W) float32, the extractor's input
    image_of: np.ndarray    # (k,) int index into images
    text: np.ndarray        # (k, p2) text features of the item's class
    masks: np.ndarray       # (k, H, W) bool mask of the item's class
    classes: np.ndarray     # (k,) int


@dataclass
class PairsEval:
    """Pairs of images sharing one class (`shared`) and pairs with nothing in common (`apart`)."""
    images1: np.ndarray     # (m, C, H, W)
    images2: np.ndarray
    common1: np.ndarray     # (m, H, W) bool: the shared class in image 1
    common2: np.ndarray
    ind1: np.ndarray        # (m, H, W) bool: union of image 1's classes not shared
    ind2: np.ndarray
    apart1: np.ndarray      # (m', C, H, W) images of the no-common pairs
    apart2: np.ndarray


@dataclass
class SaliencyData:
    experiment: str                       # "ooi" | "pairs"
    extractors: dict[str, nn.Module]      # "A" (view 1 images) and, for pairs, "B"
    train: dict[str, tuple[np.ndarray, np.ndarray]]  # feature pairs by feature views:
    # "A/B" (pairs: A(img1), B(img2)), "A/A", "B/B"; ooi: "A/text"
    val: OOIEval | PairsEval
    test: OOIEval | PairsEval
    info: dict = field(default_factory=dict)  # extractor F1s, sizes (logged with every trial)


def run_trial(config: dict, data: SaliencyData, checkpoint_dir=None, report=None,
              device: str | None = None, log=None, suite=None) -> TrialRecord:
    """Train one saliency method on the suite's features and score its maps on val and test."""
    cfg, spec, device, log = suite.begin(config, device, log)
    started = time.time()
    torch.manual_seed(cfg["seed"])
    views = ("A", "text") if data.experiment == "ooi" else spec.saliency.feature_views
    key = "/".join(views)
    train = (tuple(torch.as_tensor(a, dtype=torch.float32, device=device) for a in data.train[key])
             if key in data.train else None)  # a method that trains nothing needs no features
    model, history = spec.saliency.score_model(cfg, train, device, checkpoint_dir, log,
                                               data.experiment == "pairs")
    train_seconds = time.time() - started
    extractors = {k: v.to(device) for k, v in data.extractors.items()}
    evaluate = evaluate_ooi if data.experiment == "ooi" else evaluate_pairs
    val = evaluate(model, extractors, views, data.val, device)
    test = evaluate(model, extractors, views, data.test, device, gallery=True)
    gallery = test.pop("gallery", None)
    metrics = {**test, **{f"val_{k}": v for k, v in val.items()}}
    val_aps = [v for k, v in val.items() if k.startswith("ap")]
    metrics["val_select"] = float(np.mean(val_aps))  # strength selection: mean validation AP
    metrics["eval_seconds"] = time.time() - started - train_seconds
    for k, value in data.info.items():
        if isinstance(value, (int, float)):
            metrics[f"data_{k}"] = float(value)
    if report and history:
        report(history[-1]["epoch"], {"val_corr": metrics["val_select"]})
    return TrialRecord.of(cfg, metrics=metrics, history=history, train_seconds=train_seconds,
                          device=str(device), gallery=gallery)


def _batched_maps(model, extractor, images, partner, view, score, device, index=None
                  ) -> np.ndarray:
    """GradCAM maps (n, H, W) of `score` for view `view` through `extractor`, in batches; item
    k is image `index[k]` (default k) with partner features `partner[k]`. Images are gathered
    per batch, never copied per item."""
    index = np.arange(len(partner)) if index is None else index
    out = []
    for i in range(0, len(index), MAP_BATCH):
        x = torch.as_tensor(images[index[i:i + MAP_BATCH]], device=device)
        p = torch.as_tensor(partner[i:i + MAP_BATCH], dtype=torch.float32, device=device)
        out.append(explain.gradcam(model, extractor, x, p, view=view, score=score).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[-2:]))


def _features(extractor, images, device) -> np.ndarray:
    return features(extractor, images, batch=256, device=device)


def _ap(maps, masks) -> float:
    """AP of maps against masks; `maps` may be one H×W map broadcast to every mask."""
    return float(np.mean(sm.precision(maps, masks)))


def _ap_without_background(maps, ind, common) -> float:
    return float(np.nanmean(sm.precision_without_background(maps, ind, common)))


def individual_score_spread(model, f1: np.ndarray, f2: np.ndarray, device) -> dict:
    """How much the individual score varies over the items (a score that is nearly the
    same for every input has a gradient that is mostly noise): its mean, and its coefficient of
    variation std/mean over the items of each view, averaged over the two views."""
    stats = []
    with torch.no_grad():
        a = torch.as_tensor(f1, dtype=torch.float32, device=device)
        b = torch.as_tensor(f2, dtype=torch.float32, device=device)
        for view in (1, 2):
            s = model.score_tensor(a, b, "individual", view=view).double().cpu().numpy()
            stats.append((s.mean(), s.std() / max(abs(s.mean()), 1e-12)))
    return {"ind_score_mean": float(np.mean([m for m, _ in stats])),
            "ind_score_cv": float(np.mean([cv for _, cv in stats]))}


def evaluate_ooi(model, extractors, views, ev: OOIEval, device, gallery=False) -> dict:
    """AP of the common-score maps of every (image, class) item (Table 2)."""
    if model is None:  # one uniform map: its precision is each mask's area fraction
        maps = np.ones(ev.masks.shape[-2:], np.float32)
    else:
        maps = _batched_maps(model, extractors["A"], ev.images, ev.text, 1, "cosine", device,
                             index=ev.image_of)
    out = {"ap": 100 * _ap(maps, ev.masks), "n_items": float(len(ev.masks))}
    if gallery:
        k = min(GALLERY_ITEMS, len(ev.masks))
        out["gallery"] = encode_gallery(images=ev.images[ev.image_of[:k]],
                                        common=None if model is None else maps[:k],
                                        masks=ev.masks[:k], labels=ev.classes[:k])
    return out


def evaluate_pairs(model, extractors, views, ev: PairsEval, device, gallery=False) -> dict:
    """AP_common, AP_ind, AP_ind−bg on shared pairs (Table 3); the magnitude of the common
    maps on pairs with nothing in common for the cosine, dot and norm scores (Table 4)."""
    e1, e2 = extractors[views[0]], extractors[views[1]]
    out = {"n_pairs": float(len(ev.images1)), "n_pairs_apart": float(len(ev.apart1))}
    if model is None:  # one uniform map for every image
        c1 = c2 = i1 = i2 = np.ones(ev.common1.shape[-2:], np.float32)
    else:
        f1, f2 = _features(e1, ev.images1, device), _features(e2, ev.images2, device)
        out.update(individual_score_spread(model, f1, f2, device))
        c1 = _batched_maps(model, e1, ev.images1, f2, 1, "cosine", device)
        c2 = _batched_maps(model, e2, ev.images2, f1, 2, "cosine", device)
        i1 = _batched_maps(model, e1, ev.images1, f2, 1, "individual", device)
        i2 = _batched_maps(model, e2, ev.images2, f1, 2, "individual", device)
    out["ap_common"] = 50 * (_ap(c1, ev.common1) + _ap(c2, ev.common2))
    out["ap_ind"] = 50 * (_ap(i1, ev.ind1) + _ap(i2, ev.ind2))
    out["ap_ind_bg"] = 50 * (_ap_without_background(i1, ev.ind1, ev.common1)
                             + _ap_without_background(i2, ev.ind2, ev.common2))
    if model is not None and len(ev.apart1):  # a constant map's magnitude is 100 by definition
        a1, a2 = _features(e1, ev.apart1, device), _features(e2, ev.apart2, device)
        for score in COMMON_SCORES:
            m1 = _batched_maps(model, e1, ev.apart1, a2, 1, score, device)
            m2 = _batched_maps(model, e2, ev.apart2, a1, 2, score, device)
            out[f"mag_{score}"] = 0.5 * float(np.mean(sm.saliency_magnitude(m1))
                                              + np.mean(sm.saliency_magnitude(m2)))
    if gallery:
        k = min(GALLERY_ITEMS, len(ev.images1))
        out["gallery"] = encode_gallery(
            images=ev.images1[:k], common=None if model is None else c1[:k],
            individual=None if model is None else i1[:k], masks=ev.common1[:k],
            ind_masks=ev.ind1[:k])
    return out
