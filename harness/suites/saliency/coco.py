"""The COCO 2017 data of the suites `coco_ooi` and `coco_pairs` (paper
Tables 2–4): the COCO counterpart of `harness.suites.saliency.scenes.scenes_data`.

- "ooi" (Table 2): extractor A = ResNet50 up to global average pooling (2048-d), text = the
  mean-pooled last hidden state of BERT on "the image contains {category}". Train pairs: every
  (train image, category in it) → (A(image), text(category)).
- "pairs" (Tables 3–4): A = ResNet50, B = the CLIP-ResNet50 visual tower (its output
  embedding). Train pairs: images sharing exactly one category → (A(first), B(second)).

Splits: training images come from train2017; val2017, sorted by image id, is cut in half: the
first half is our validation split, the second our test split (the paper's test annotations
are not public). Each split keeps the images with at least one category, capped by the
saliency profile (`harness.profiles.SALIENCY`). Images are RGB, resized to S×S (bilinear, aspect ratio not
kept), in [0, 1]; class masks (union of the class's instances) are resized the same way with
nearest-neighbour. Every extractor normalises its input itself, so GradCAM sees [0, 1] images.

`options`: `data_root` (the COCO root, layout in `harness.data.coco`) and `weights`, a dict
{"resnet50": torchvision state dict file, "bert": transformers folder, "clip_rn50": OpenAI's
RN50.pt or an open_clip RN50 checkpoint}; the value "random" gives an untrained stand-in, for
pipeline tests only. Everything is checked before any image is read.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.common import default_device
from harness.data.coco import CocoDataError, caption, check_coco_root, load_coco
from harness.data.scenes import Pairs, make_pairs
from harness.extractors import mean_pooled, minilm_dir
from harness.profiles import get_profile
from harness.suites.saliency.evaluation import OOIEval, PairsEval, SaliencyData

FEATURE_BATCH = 64
PAIR_SEED = 0
RANDOM = "random"  # weights value: an untrained network of the right interface
RANDOM_BERT_HIDDEN = 32  # hidden size of the tiny random BERT stand-in

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

# weights key -> (what it is, what to pass, a file or a folder)
WEIGHTS = {
    "resnet50": ("ResNet50", "a torchvision resnet50 state dict (.pth)", "file"),
    "bert": ("BERT", "a local transformers model folder (e.g. bert-base-uncased)", "folder"),
    "clip_rn50": ("CLIP-ResNet50", "OpenAI's RN50.pt or an open_clip RN50 checkpoint", "file"),
}
NEEDS = {"ooi": ("resnet50", "bert"), "pairs": ("resnet50", "clip_rn50")}


def coco_data(experiment: str, profile: str, options: dict | None = None,
              log=print) -> SaliencyData:
    """Features and evaluation sets of `coco_{experiment}` for `profile` (module doc)."""
    if experiment not in NEEDS:
        raise ValueError(f"unknown experiment {experiment!r}; choose one of: {', '.join(NEEDS)}")
    root, weights = check_inputs(experiment, options or {})
    s = get_profile(profile, "saliency")
    size = s.image_size  # S: images and masks are S×S
    device = default_device()

    # Networks before annotations: a bad weights file fails in seconds, not after parsing JSON.
    nets = {"A": resnet50_extractor(weights["resnet50"], seed=0)}
    if experiment == "pairs":
        nets["B"] = clip_extractor(weights["clip_rn50"])
    encode_text = text_features(weights["bert"]) if experiment == "ooi" else None

    log(f"coco_{experiment}: reading COCO annotations under {root}")
    train_split, val_split = load_coco(root, "train"), load_coco(root, "val")
    if train_split.category_ids != val_split.category_ids:  # class indices must mean the same
        raise CocoDataError(f"{root}: instances_train2017.json and instances_val2017.json list "
                            f"different categories; use the two files of one COCO 2017 release")
    train_index = _with_categories(train_split, range(len(train_split)))[:s.n_train]
    half = len(val_split) // 2  # image ids ascend: first half validation, second half test
    eval_index = {"val": _with_categories(val_split, range(half))[:s.n_val],
                  "test": _with_categories(val_split, range(half, len(val_split)))[:s.n_test]}
    for name, index in (("train2017", train_index), ("the val half of val2017", eval_index["val"]),
                        ("the test half of val2017", eval_index["test"])):
        if not index:
            raise CocoDataError(f"no annotated image in {name} under {root}; use the full COCO "
                                f"2017 annotations")

    log(f"coco_{experiment}: features of {len(train_index)} train images at {size}×{size} "
        f"on {device}")
    feats = image_features(nets, [train_split.paths[i] for i in train_index], size, device)
    train_labels = train_split.labels[train_index] > 0
    info = {"n_train_images": float(len(train_index)), "image_size": float(size)}
    evals = {k: _eval_images(val_split, idx, size) for k, idx in eval_index.items()}

    if experiment == "ooi":
        text = encode_text(val_split.category_names)
        image_of, classes = np.nonzero(train_labels)
        train = {"A/text": (feats["A"][image_of], text[classes])}
        ev = {k: _ooi_eval(*evals[k], text) for k in evals}
        info["n_train_items"] = float(len(image_of))
        return SaliencyData("ooi", nets, train, ev["val"], ev["test"], info)

    pairs = sample_pairs(train_labels, s.n_pairs("train"), seed=PAIR_SEED, shared=True)
    if not len(pairs):
        raise CocoDataError(f"no two train2017 images under {root} share exactly one category: "
                            f"no training pairs; use the full train2017 annotations")
    train = {"A/B": (feats["A"][pairs.first], feats["B"][pairs.second])}
    ev = {k: _pairs_eval(*evals[k], s.n_pairs(k), k) for k in evals}
    info["n_train_pairs"] = float(len(pairs))
    return SaliencyData("pairs", nets, train, ev["val"], ev["test"], info)


# ------------------------------------------------------------------------------ input checks
def check_inputs(experiment: str, options: dict) -> tuple[Path, dict]:
    """(COCO root, {weights key: Path or "random"}) or a one-line CocoDataError naming what is
    missing and how to pass it. Cheap: reads no image and no annotation file."""
    suite = f"coco_{experiment}"
    if not options.get("data_root"):
        raise CocoDataError(f"{suite} needs the COCO 2017 root: pass --data-root DIR holding "
                            f"annotations/instances_train2017.json, "
                            f"annotations/instances_val2017.json, train2017/ and val2017/")
    root = Path(options["data_root"])
    for split in ("train", "val"):
        check_coco_root(root, split)
    given = options.get("weights") or {}
    weights = {}
    for key in NEEDS[experiment]:
        title, what, kind = WEIGHTS[key]
        value = given.get(key)
        if not value:
            raise CocoDataError(f"{suite} needs {title} weights: pass --weights {key}=PATH with "
                                f"{what} ({key}={RANDOM} gives an untrained stand-in, for "
                                f"pipeline tests only)")
        if value == RANDOM:
            weights[key] = RANDOM
            continue
        path = Path(value).expanduser()
        if not (path.is_dir() if kind == "folder" else path.is_file()):
            raise CocoDataError(f"{title} weights not found: no {kind} at {path}; pass "
                                f"--weights {key}=PATH with {what}")
        weights[key] = path
    if weights.get("clip_rn50", RANDOM) != RANDOM and importlib.util.find_spec("open_clip") is None:
        raise CocoDataError("CLIP-ResNet50 weights are read with open_clip, which is not "
                            "installed: run `pip install open_clip_torch`")
    if weights.get("bert") == RANDOM:
        minilm_dir()  # the random BERT borrows MiniLM's tokenizer (MissingTextEncoder if absent)
    return root, weights


# -------------------------------------------------------------------------------- extractors
class ImageExtractor(nn.Module):
    """[0, 1] images (N, 3, S, S) → features (N, p): the network's own input normalisation,
    then the network. `size`: the resolution the network requires (CLIP's attention pooling has
    a fixed positional embedding), the input is resized to it inside the module so that GradCAM
    maps still come back at S×S."""

    def __init__(self, net: nn.Module, mean, std, size: int | None = None):
        super().__init__()
        self.net, self.size = net, size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                          align_corners=False)
        return self.net((x - self.mean) / self.std)


def _random_resnet50(seed: int) -> nn.Module:
    import torchvision
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        return torchvision.models.resnet50(weights=None)


def _unwrap(state):
    """A checkpoint's state dict: {"state_dict": …} unwrapped, DataParallel's "module." dropped."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_error(title: str, path, err: Exception) -> CocoDataError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return CocoDataError(f"{title} weights {path} could not be loaded ({type(err).__name__}: "
                         f"{first[:200]})")


def resnet50_extractor(weights, seed: int = 0) -> ImageExtractor:
    """Extractor A: torchvision ResNet50 up to global average pooling (fc dropped), 2048-d.
    GradCAM's default layer (the last Conv2d) is layer4[-1].conv3."""
    net = _random_resnet50(seed)
    if weights != RANDOM:
        try:
            net.load_state_dict(_unwrap(torch.load(weights, map_location="cpu", weights_only=True)))
        except Exception as err:  # noqa: BLE001 - any unreadable file: the same one line
            raise _load_error("ResNet50", weights, err) from None
    net.fc = nn.Identity()
    return ImageExtractor(net, IMAGENET_MEAN, IMAGENET_STD).eval()


def clip_extractor(weights) -> ImageExtractor:
    """Extractor B: the CLIP-ResNet50 visual tower (open_clip's ModifiedResNet, attention-pooled
    1024-d embedding; its last Conv2d is layer4[-1].conv3). With "random": a randomly
    initialised torchvision ResNet50 with another seed than A — a stand-in with the same
    interface, not CLIP (open_clip may not be installed where the pipeline is tested)."""
    if weights == RANDOM:
        net = _random_resnet50(seed=1)
        net.fc = nn.Identity()
        return ImageExtractor(net, CLIP_MEAN, CLIP_STD).eval()
    import open_clip
    try:
        # The architecture from open_clip, the weights loaded here into the visual tower only:
        # open_clip versions differ in how (and whether) they read OpenAI's TorchScript file.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # "initialized randomly": true until the next lines
        try:
            visual = open_clip.create_model("RN50", pretrained=None).visual
        finally:
            logging.disable(previous)
        state = _read_clip_checkpoint(weights)
        visual.load_state_dict({k.removeprefix("visual."): v for k, v in state.items()
                                if k.startswith("visual.")})
    except Exception as err:  # noqa: BLE001
        raise _load_error("CLIP-ResNet50", weights, err) from None
    size = visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    return ImageExtractor(visual.float(), CLIP_MEAN, CLIP_STD, size=size).eval()


def _read_clip_checkpoint(path: Path) -> dict:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        return _unwrap(load_file(str(path)))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            torchscript = any(n.endswith("constants.pkl") for n in z.namelist())
        if torchscript:  # OpenAI's own RN50.pt is a TorchScript archive (fp16 weights)
            return _unwrap(torch.jit.load(str(path), map_location="cpu").state_dict())
    return _unwrap(torch.load(path, map_location="cpu", weights_only=True))


def text_features(weights):
    """A function category names → (K, hidden) float32: BERT's last hidden state, mean-pooled
    over the tokens of `caption(name)`. The model loads now (so a bad folder fails early)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    try:
        if weights == RANDOM:
            # MiniLM's (BERT uncased) tokenizer, used only to tokenise; the network is random.
            tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
            config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=RANDOM_BERT_HIDDEN,
                                num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=2 * RANDOM_BERT_HIDDEN)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = BertModel(config)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(weights), local_files_only=True)
            model = AutoModel.from_pretrained(str(weights), local_files_only=True)
    except Exception as err:  # noqa: BLE001
        raise _load_error("BERT", weights, err) from None
    model.eval()

    def encode(names: list[str]) -> np.ndarray:
        return mean_pooled(model, tokenizer, [caption(n) for n in names]).numpy()
    return encode


# ----------------------------------------------------------------------------- images, masks
def load_image(path, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]: RGB, bilinear resize."""
    from PIL import Image
    with Image.open(path) as img:
        rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255.0


def load_images(paths, size: int) -> np.ndarray:
    """(n, 3, size, size); decoded in threads (PIL releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(lambda p: load_image(p, size), paths))
    return np.stack(images) if images else np.zeros((0, 3, size, size), np.float32)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """H×W bool → size×size bool, nearest-neighbour (the same geometry as the image)."""
    from PIL import Image
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size),
                                                              Image.Resampling.NEAREST)
    return np.asarray(img) > 0


@torch.no_grad()
def image_features(nets: dict[str, nn.Module], paths, size: int, device,
                   batch: int = FEATURE_BATCH) -> dict[str, np.ndarray]:
    """{name: (n, p) float32} of every net on the images `paths`, read batch by batch (a
    training split does not fit in memory as pixels). The nets go back to the CPU."""
    out = {k: [] for k in nets}
    for net in nets.values():
        net.to(device).eval()
    for b in range(0, len(paths), batch):
        x = torch.as_tensor(load_images(paths[b:b + batch], size), device=device)
        for k, net in nets.items():
            out[k].append(net(x).float().cpu().numpy())
    for net in nets.values():
        net.cpu()
    return {k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in out.items()}


def _with_categories(split, index) -> list[int]:
    """The images of `index` (ascending id) that hold at least one annotated category."""
    return [i for i in index if split.categories[i]]


def _eval_images(split, index: list[int], size: int):
    """(images (n, 3, S, S), masks [{class: S×S bool}], visible (n, K) bool) of an evaluation
    split. A class whose mask vanishes at S×S (a tiny object) is left out: no pixel of the map
    could fall on it, so it would score 0 whatever the method."""
    images = load_images([split.paths[i] for i in index], size)
    masks = []
    for i in index:
        resized = {c: resize_mask(m, size) for c, m in sorted(split.class_masks(i).items())}
        masks.append({c: m for c, m in resized.items() if m.any()})
    visible = np.zeros((len(index), len(split.category_ids)), bool)
    for row, m in enumerate(masks):
        visible[row, list(m)] = True
    return images, masks, visible


def _ooi_eval(images, masks, visible, text) -> OOIEval:
    """One item per (image, visible class): the image, the class's text and mask."""
    image_of, classes = np.nonzero(visible)
    size = images.shape[-1]
    stacked = (np.stack([masks[i][c] for i, c in zip(image_of, classes)]) if len(image_of)
               else np.zeros((0, size, size), bool))
    return OOIEval(images, image_of.astype(np.int64), text[classes], stacked,
                   classes.astype(np.int64))


def _pairs_eval(images, masks, visible, n: int, split: str) -> PairsEval:
    """Shared pairs among images with ≥ 2 visible classes (each then has a class of its own,
    the individual maps' target); no-common pairs among images with ≥ 1."""
    multi = np.flatnonzero(visible.sum(1) >= 2)
    shared = sample_pairs(visible[multi], n, seed=PAIR_SEED, shared=True)
    if not len(shared):
        raise CocoDataError(f"the COCO {split} split (half of val2017) holds no two images that "
                            f"share exactly one category; use the full val2017 annotations")
    first, second = multi[shared.first], multi[shared.second]
    present = np.flatnonzero(visible.any(1))
    apart = sample_pairs(visible[present], n, seed=PAIR_SEED, shared=False)

    def split_masks(index):
        common = np.stack([masks[i][c] for i, c in zip(index, shared.shared_class)])
        ind = np.stack([np.any([m for k, m in masks[i].items() if k != c], axis=0)
                        for i, c in zip(index, shared.shared_class)])
        return common, ind

    common1, ind1 = split_masks(first)
    common2, ind2 = split_masks(second)
    return PairsEval(images[first], images[second], common1, common2, ind1, ind2,
                     images[present[apart.first]], images[present[apart.second]])


# ------------------------------------------------------------------------------------ pairs
def count_pairs(labels: np.ndarray, shared: bool, chunk: int = 1024) -> int:
    """How many unordered pairs i < j share exactly one class (shared) or none (not shared)."""
    lab = labels.astype(np.float32)
    want = 1 if shared else 0
    total = 0
    for a in range(0, len(lab), chunk):
        overlap = lab[a:a + chunk] @ lab.T  # classes in common, exact in float32
        upper = np.arange(len(lab))[None, :] > np.arange(a, a + len(overlap))[:, None]
        total += int(np.count_nonzero((overlap == want) & upper))
    return total


def sample_pairs(labels: np.ndarray, n: int, seed: int = 0, shared: bool = True) -> Pairs:
    """`harness.data.scenes.make_pairs` over COCO's labels, with `n` capped at the number of
    such pairs, so a small split gives all it has instead of failing."""
    return make_pairs(labels, min(int(n), count_pairs(np.asarray(labels) > 0, shared)),
                      seed=seed, shared=shared)
