"""The saliency suites (SPEC §4.3, paper Tables 2–4): one trial = train a method's heads on
frozen features, explain test items with GradCAM through the frozen extractor, score the maps
against object masks.

Two experiments, each on the scenes (built here) or on COCO (`harness.data.coco_suite`):
- "ooi" (Table 2): image–text pairs (an image, "the image contains {class}" for a class in it);
  one common-score map per (image, class), its precision against that class's mask.
- "pairs" (Tables 3–4): two images sharing one class (view 1 through extractor A, view 2
  through extractor B); common maps against the shared class, individual maps against the
  classes not shared (with and without background); on pairs with nothing in common, the
  magnitude of the `cosine`, `dot` and `norm` common maps.

A suite's data (`SaliencyData`) holds train features and evaluation sets (images, partner
features, masks) for a validation and a test split; strengths are selected on validation.
"""
from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from harness import saliency_metrics as sm
from harness.extractors import features
from harness.train import ConfigError, TrialDiverged, fit_loop, run_name
from muc2m import saliency as explain
from muc2m.model import MUC2M
from muc2m.scores import COMMON_SCORES

D_DEFAULT = 64  # the paper's common/individual dimension for the COCO experiments
GALLERY_ITEMS = 6
MAP_BATCH = 64

# Per profile: how much data and training. quick fits a 2-core CPU in minutes per trial.
SETTINGS = {
    "paper": dict(n_train=20000, n_val=1000, n_test=2000, n_pairs_train=40000, n_pairs_val=500,
                  n_pairs_test=2000, epochs=100, batch=256, lr=1e-3, extractor_n_train=20000),
    "quick": dict(n_train=8000, n_val=400, n_test=1000, n_pairs_train=16000, n_pairs_val=200,
                  n_pairs_test=600, epochs=15, batch=256, lr=1e-3, extractor_n_train=10000),
    "smoke": dict(n_train=400, n_val=40, n_test=60, n_pairs_train=400, n_pairs_val=16,
                  n_pairs_test=24, epochs=2, batch=128, lr=1e-3, extractor_n_train=400),
}


# ------------------------------------------------------------------------------------ methods
@dataclass(frozen=True)
class SaliencyMethod:
    name: str
    title: str
    strength: str | None = None
    grid: tuple = ()
    valid: tuple = (0.0, float("inf"))
    defaults: dict = field(default_factory=dict)
    experiments: tuple = ("ooi", "pairs")


METHODS = {m.name: m for m in (
    SaliencyMethod("uniform", "uniform"),
    SaliencyMethod("contrastive", "contrastive (CLIP-style heads)", "temperature", (0.05, 0.2),
                   (1e-3, 10.0), {"temperature": 0.1}, experiments=("ooi",)),
    SaliencyMethod("base_a", "base A", experiments=("pairs",)),
    SaliencyMethod("base_b", "base B", experiments=("pairs",)),
    SaliencyMethod("muc2m", "MUC2M orig", "lam", (5e-3, 5e-2), (0.0, 1e6),
                   {"lam": 5e-3, "gamma": 0.0, "alpha": 0.5}),
    SaliencyMethod("muc2m_regu", "MUC2M w/ regu", "gamma", (0.01, 0.1, 1.0, 10.0), (0.0, 1e6),
                   {"lam": 5e-3, "gamma": 0.1, "alpha": 0.5}),
)}


def method_names(experiment: str) -> tuple[str, ...]:
    return tuple(n for n, m in METHODS.items() if experiment in m.experiments)


def resolve(config: dict, experiment: str) -> dict:
    """Check a saliency trial's configuration; the same keys as `harness.train.resolve`."""
    name = config["method"]
    if name not in METHODS or experiment not in METHODS[name].experiments:
        raise ConfigError(f"method {name!r} is not part of this saliency suite; choose one of: "
                          f"{', '.join(method_names(experiment))}")
    method = METHODS[name]
    profile = config.get("profile", "quick")
    if profile not in SETTINGS:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(SETTINGS)}")
    d = config["d"]
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ConfigError(f"d={d!r} must be a positive integer")
    settings = SETTINGS[profile]
    batch = config.get("batch") or settings["batch"]
    if batch <= d:
        raise ConfigError(f"batch size {batch} is not larger than d={d}; use d < {batch}")
    params = dict(method.defaults)
    strength = config.get("strength")
    if method.strength is None:
        strength = None
    elif strength is None:
        strength = params[method.strength]
    if strength is not None:
        lo, hi = method.valid
        if not lo <= float(strength) <= hi:
            raise ConfigError(f"{name}: {method.strength}={strength} is outside its valid range "
                              f"[{lo}, {hi}]; pick a value inside it")
        params[method.strength] = strength = float(strength)
    if config.get("precision", "fp32") != "fp32":
        raise ConfigError(f"precision {config['precision']!r}: the saliency suites train small "
                          f"heads in fp32 only; drop --precision")
    seed = int(config.get("seed", 0))
    return {"method": name, "d": d, "seed": seed, "profile": profile,
            "strength_name": method.strength, "strength": strength, "params": params,
            "batch": batch, "lr": config.get("lr") or settings["lr"],
            "epochs": config.get("epochs") or settings["epochs"],
            "name": run_name(name, d, method.strength, strength, seed)}


class FeatureScores(nn.Module):
    """The "base" rows of Table 3: scores of the raw extractor features themselves.
    individual = ‖h_own − (h_own·ĥ_p) ĥ_p‖, the feature component orthogonal to the partner's."""

    def score_tensor(self, h1, h2, kind="cosine", view=1):
        own, other = (h1, h2) if view == 1 else (h2, h1)
        if kind in COMMON_SCORES:
            return COMMON_SCORES[kind](own, other)
        unit = nn.functional.normalize(other, dim=-1)
        return (own - (own * unit).sum(-1, keepdim=True) * unit).norm(dim=-1)


class ContrastiveHeads(nn.Module):
    """CLIP-style baseline: a linear head per view trained with symmetric InfoNCE. Pairs whose
    view-2 features are identical (several images, one caption) are all positives of each
    other (soft targets), since only a handful of distinct captions exist."""

    def __init__(self, p1: int, p2: int, d: int, temperature: float):
        super().__init__()
        self.head1, self.head2 = nn.Linear(p1, d), nn.Linear(p2, d)
        self.temperature = temperature

    def loss(self, h1, h2) -> dict:
        z1 = nn.functional.normalize(self.head1(h1), dim=-1)
        z2 = nn.functional.normalize(self.head2(h2), dim=-1)
        logits = z1 @ z2.T / self.temperature
        same = (h2[:, None, :] == h2[None, :, :]).all(-1).float()  # exact: the diagonal is 1
        targets = same / same.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-targets * logits.log_softmax(1), 1).mean()
                      + torch.sum(-targets * logits.log_softmax(0).T, 1).mean())
        return {"loss": loss}

    def score_tensor(self, h1, h2, kind="cosine", view=1):
        z1, z2 = self.head1(h1), self.head2(h2)
        own, other = (z1, z2) if view == 1 else (z2, z1)
        if kind not in COMMON_SCORES:
            raise ValueError(f"the contrastive baseline has no {kind!r} score")
        return COMMON_SCORES[kind](own, other)


# ------------------------------------------------------------------------------------- data
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
    train: dict[str, tuple[np.ndarray, np.ndarray]]  # feature pairs per method family:
    # "A/B" (pairs: A(img1), B(img2)), "A/A", "B/B"; ooi: "A/text"
    val: OOIEval | PairsEval
    test: OOIEval | PairsEval
    info: dict = field(default_factory=dict)  # extractor F1s, sizes (logged with every trial)


# ----------------------------------------------------------------------------------- trials
def run_trial(config: dict, data: SaliencyData, checkpoint_dir=None, report=None,
              device: str | None = None, log=None) -> dict:
    """Train one saliency method on the suite's features and score its maps on val and test."""
    cfg = resolve(config, data.experiment)
    log = log or (lambda msg: None)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    started = time.time()
    torch.manual_seed(cfg["seed"])
    views = _views(cfg["method"], data.experiment)
    model, history = _fit(cfg, data, views, device, checkpoint_dir, log)
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
    for key, value in data.info.items():
        if isinstance(value, (int, float)):
            metrics[f"data_{key}"] = float(value)
    if report and history:
        report(history[-1]["epoch"], {"val_corr": metrics["val_select"]})
    out = {**{k: cfg[k] for k in ("name", "method", "d", "seed", "profile", "strength_name",
                                  "strength", "batch", "lr", "epochs")},
           "params": cfg["params"], "metrics": metrics, "history": history,
           "train_seconds": train_seconds, "device": str(device)}
    if gallery is not None:
        out["gallery"] = gallery
    return out


def _views(method: str, experiment: str) -> tuple[str, str]:
    """Which extractor feeds each view: ("A", "text") for ooi; pairs: A/B, or A/A, B/B (base)."""
    if experiment == "ooi":
        return ("A", "text")
    return {"base_a": ("A", "A"), "base_b": ("B", "B")}.get(method, ("A", "B"))


def _fit(cfg, data, views, device, checkpoint_dir, log):
    """The method's score model (anything with `score_tensor`) and its training history."""
    method, params = cfg["method"], cfg["params"]
    if method == "uniform":
        return None, []
    if method in ("base_a", "base_b"):
        return FeatureScores().to(device), []
    h1, h2 = (torch.as_tensor(a, dtype=torch.float32, device=device)
              for a in data.train["/".join(views)])
    if method == "contrastive":
        heads = ContrastiveHeads(h1.shape[1], h2.shape[1], cfg["d"], params["temperature"]).to(device)
        history, _, _ = fit_loop(heads, heads.loss, (h1, h2), epochs=cfg["epochs"],
                                 batch=min(cfg["batch"], len(h1)), lr=cfg["lr"], seed=cfg["seed"],
                                 eval_every=cfg["epochs"], checkpoint_dir=checkpoint_dir,
                                 name=cfg["name"], log=log)
        return heads.eval(), history
    # MUC2M: the individual stage only where individual maps are scored (pairs)
    model = MUC2M(cfg["d"], lam=params["lam"], gamma=params["gamma"], alpha=params["alpha"],
                  epochs=cfg["epochs"], ind_epochs=cfg["epochs"] if data.experiment == "pairs" else 0,
                  batch_size=cfg["batch"], lr=cfg["lr"], seed=cfg["seed"], device=device)
    model.fit(h1, h2, checkpoint_dir=checkpoint_dir)
    history = [{"epoch": r["epoch"], "loss": r["loss"]} for r in model.history["common"]]
    if history and not np.isfinite(history[-1]["loss"]):
        raise TrialDiverged(f"MUC2M loss became {history[-1]['loss']}")
    return model, history


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


# ---------------------------------------------------------------------------------- gallery
GALLERY_SIZE = 64  # maps and images are stored at most this large (the result travels via Ray)


def _shrink(a: np.ndarray) -> np.ndarray:
    """(k, [C,] H, W) → at most GALLERY_SIZE² per map (bilinear), float16."""
    t = torch.as_tensor(np.asarray(a, np.float32))
    squeeze = t.ndim == 3
    t = t[:, None] if squeeze else t
    if t.shape[-1] > GALLERY_SIZE or t.shape[-2] > GALLERY_SIZE:
        t = nn.functional.interpolate(t, size=(GALLERY_SIZE, GALLERY_SIZE), mode="bilinear",
                                      align_corners=False)
    t = t[:, 0] if squeeze else t
    return t.numpy().astype(np.float16)


def encode_gallery(**arrays) -> str:
    """The gallery items of a trial as base64 of a compressed .npz (None entries dropped)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: _shrink(v) for k, v in arrays.items()
                                if v is not None and k != "labels"},
                        **({"labels": np.asarray(arrays["labels"])} if arrays.get("labels") is not None else {}))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def load_gallery(path_or_file) -> dict[str, np.ndarray]:
    """The arrays of a gallery .npz (as logged to MLflow), in float32."""
    with np.load(path_or_file) as arrs:
        return {k: arrs[k].astype(np.float32) for k in arrs.files}


# ----------------------------------------------------------------------------- scenes suites
def scenes_data(experiment: str, profile: str, options: dict | None = None, log=print) -> SaliencyData:
    """Features and evaluation sets of `scenes_ooi` / `scenes_pairs` (SPEC §3.2), computed once
    per sweep: scenes and extractors come from their on-disk caches after the first run."""
    from harness import extractors as ex
    from harness.data.scenes import caption, load_scenes, make_pairs
    options = options or {}
    s = SETTINGS[profile]
    mnist_dir = options.get("mnist_dir")
    scenes = {split: load_scenes(s[f"n_{split}"], split, seed=0, mnist_dir=mnist_dir)
              for split in ("train", "val", "test")}
    nets, info = {}, {}
    for name in ("A", "B") if experiment == "pairs" else ("A",):
        nets[name], meta = ex.load_extractor(name, s["extractor_n_train"], log=log)
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
    pairs = make_pairs(scenes["train"], s["n_pairs_train"], seed=0, shared=True)
    train = {"A/B": (feats_a[pairs.first], feats_b[pairs.second])}
    evals = {k: _pairs_eval(scenes[k], s[f"n_pairs_{k}"]) for k in ("val", "test")}
    info.update(n_train_pairs=float(len(pairs)))
    return SaliencyData("pairs", nets, train, evals["val"], evals["test"], info)


def _ooi_items(scenes) -> tuple[np.ndarray, np.ndarray]:
    """Every (scene, class present) of a split, as (scene index, class) arrays."""
    image_of, classes = np.nonzero(scenes.labels > 0)
    return image_of.astype(np.int64), classes.astype(np.int64)


def _class_masks(scenes, image_of, classes) -> np.ndarray:
    return np.stack([scenes.mask(i, c) for i, c in zip(image_of, classes)])


def _pairs_eval(scenes, n: int) -> PairsEval:
    from harness.data.scenes import make_pairs
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
