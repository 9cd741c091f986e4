"""The COCO saliency suites' data path (`harness.suites.saliency.coco`) end to end
on a tiny COCO-format fixture written here, with randomly initialised networks."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.coco import CocoDataError
from harness.profiles import get_profile
from harness.suites import get_suite
from harness.suites.saliency import coco as CS
from muc2m.saliency import last_conv

torch.set_num_threads(1)

SIZE = get_profile("smoke", "saliency").image_size  # 64: evaluation images are 128×128, so masks halve exactly
EVAL_SIDE = 128
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 18, "name": "dog", "supercategory": "animal"}]  # gapped ids → index 0, 1, 2
# Category sets (class indices) per image. train: varied sizes (resizing), val2017 in id order:
# the first 8 are our validation split, the last 8 our test split (one without annotations).
TRAIN_SETS = [{0, 1}, {0, 2}, {1, 2}, {0}, {1}, {2}] * 2
VAL_SETS = [{0, 1}, {0, 2}, {1, 2}, {0}, {1}, {2}, {0, 1, 2}, {0, 1},
            {0, 1}, {1, 2}, {0, 2}, {2}, {0}, set(), {1}, {0, 1, 2}]
TRAIN_SIZES = [(96, 128), (128, 96), (80, 80)]
RANDOM_WEIGHTS = {"resnet50": "random", "bert": "random", "clip_rn50": "random"}


def _rect(rng, h, w):
    """(x0, y0, x1, y1) with even coordinates, so a 2× nearest downscale keeps it exact."""
    rw, rh = (2 * int(v) for v in rng.integers(12, 32, size=2))
    x0 = 2 * int(rng.integers(0, (w - rw) // 2 + 1))
    y0 = 2 * int(rng.integers(0, (h - rh) // 2 + 1))
    return x0, y0, x0 + rw, y0 + rh


def write_split(root: Path, split: str, sets, sizes, first_id: int, rng) -> list[dict]:
    """Images (noise) + one or two rectangle instances per category; returns the ground truth."""
    (root / f"{split}2017").mkdir(parents=True)
    images, anns, truth = [], [], []
    for k, cats in enumerate(sets):
        image_id, (h, w) = first_id + k, sizes[k % len(sizes)]
        name = f"{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            root / f"{split}2017" / name)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        rects = {}
        for c in sorted(cats):
            rects[c] = [_rect(rng, h, w) for _ in range(1 + (image_id + c) % 2)]  # some have 2
            for x0, y0, x1, y1 in rects[c]:
                anns.append({"id": len(anns) + 1, "image_id": image_id,
                             "category_id": CATEGORIES[c]["id"], "iscrowd": 0,
                             "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                             "area": float((x1 - x0) * (y1 - y0)),
                             "bbox": [x0, y0, x1 - x0, y1 - y0]})
        truth.append({"id": image_id, "path": root / f"{split}2017" / name, "rects": rects})
    rng.shuffle(images)  # the loader must sort by id itself
    doc = {"images": images, "annotations": anns, "categories": CATEGORIES}
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(doc))
    return truth


def expected_mask(item: dict, c: int) -> np.ndarray:
    """The class's union mask at SIZE, built from the rectangles (halving 128 → 64)."""
    m = np.zeros((EVAL_SIDE, EVAL_SIDE), bool)
    for x0, y0, x1, y1 in item["rects"][c]:
        m[y0:y1, x0:x1] = True
    return m[::2, ::2]


def expected_image(item: dict) -> np.ndarray:
    with Image.open(item["path"]) as img:
        rgb = img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255.0


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    rng = np.random.default_rng(0)
    write_split(root, "train", TRAIN_SETS, TRAIN_SIZES, 100, rng)
    val = write_split(root, "val", VAL_SETS, [(EVAL_SIDE, EVAL_SIDE)], 300, rng)
    # our splits keep the annotated images: val2017's first half (by id) and its second half
    splits = {"val": [v for v in val[:8] if v["rects"]], "test": [v for v in val[8:] if v["rects"]]}
    return root, splits


@pytest.fixture(scope="module")
def ooi(coco):
    return CS.coco_data("ooi", "smoke", {"data_root": str(coco[0]), "weights": RANDOM_WEIGHTS},
                        log=lambda msg: None)


@pytest.fixture(scope="module")
def pairs(coco):
    return CS.coco_data("pairs", "smoke", {"data_root": str(coco[0]), "weights": RANDOM_WEIGHTS},
                        log=lambda msg: None)


def n_pairs(sets, shared: bool) -> int:
    want = 1 if shared else 0
    return sum(len(sets[i] & sets[j]) == want
               for i in range(len(sets)) for j in range(i + 1, len(sets)))


# ------------------------------------------------------------------------------------- ooi
def test_ooi_features_items_and_masks(coco, ooi):
    _, splits = coco
    assert ooi.experiment == "ooi" and set(ooi.extractors) == {"A"}
    assert ooi.info == {"n_train_images": 12.0, "image_size": float(SIZE),
                        "n_train_items": float(sum(map(len, TRAIN_SETS)))}
    h, t = ooi.train["A/text"]
    assert h.shape == (sum(map(len, TRAIN_SETS)), 2048)
    assert t.shape == (len(h), CS.RANDOM_BERT_HIDDEN)
    assert np.isfinite(h).all() and np.isfinite(t).all()
    # the text rows of one category are one vector; three categories, three distinct vectors
    texts = np.unique(t, axis=0)
    assert len(texts) == 3
    train_classes = [c for s in TRAIN_SETS for c in sorted(s)]
    text_of = {c: t[train_classes.index(c)] for c in range(3)}
    for row, c in zip(t, train_classes):
        np.testing.assert_array_equal(row, text_of[c])
    for name in ("val", "test"):
        ev, items = getattr(ooi, name), splits[name]
        assert ev.images.shape == (len(items), 3, SIZE, SIZE) and ev.images.dtype == np.float32
        assert 0.0 <= ev.images.min() and ev.images.max() <= 1.0
        expected = [(k, c) for k, item in enumerate(items) for c in sorted(item["rects"])]
        assert len(ev.masks) == len(ev.classes) == len(ev.image_of) == len(ev.text) == len(expected)
        assert list(zip(ev.image_of.tolist(), ev.classes.tolist())) == expected
        for k, item in enumerate(items):
            np.testing.assert_allclose(ev.images[k], expected_image(item), atol=1e-6)
        for (k, c), mask, text in zip(expected, ev.masks, ev.text):
            assert mask.dtype == bool and mask.shape == (SIZE, SIZE)
            np.testing.assert_array_equal(mask, expected_mask(items[k], c))
            np.testing.assert_array_equal(text, text_of[c])


def test_ooi_trials_end_to_end(coco, ooi):
    _, splits = coco
    uniform = get_suite("coco_ooi").trial({"method": "uniform", "d": 4, "profile": "smoke"}, data=ooi)
    fractions = [expected_mask(item, c).mean() for item in splits["test"] for c in item["rects"]]
    assert uniform.metrics["ap"] == pytest.approx(100 * np.mean(fractions), abs=1e-9)
    # batch 8: the fixture has 18 training items, fewer than the smoke batch of 128, and the
    # contrastive baseline's loop drops an incomplete last batch
    result = get_suite("coco_ooi").trial({"method": "contrastive", "d": 4, "profile": "smoke",
                                          "strength": 0.1, "batch": 8}, data=ooi)
    m = result.metrics
    assert all(np.isfinite(v) for v in m.values())
    assert 0.0 <= m["ap"] <= 100.0 and 0.0 <= m["val_ap"] <= 100.0
    assert m["n_items"] == len(fractions) and m["data_image_size"] == SIZE


# ----------------------------------------------------------------------------------- pairs
def _identify(image, items) -> int:
    """The index of the fixture image an evaluation image was loaded from."""
    hits = [k for k, item in enumerate(items)
            if np.allclose(image, expected_image(item), atol=1e-6)]
    assert len(hits) == 1
    return hits[0]


def test_pairs_extractors_and_training_pairs(pairs):
    assert pairs.experiment == "pairs" and set(pairs.extractors) == {"A", "B"}
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        a, b = (pairs.extractors[k](x) for k in ("A", "B"))
    assert a.shape == b.shape == (2, 2048) and not torch.allclose(a, b)  # two different nets
    for net in pairs.extractors.values():  # GradCAM's layer: the last conv of ResNet50's layer4
        assert last_conv(net) is net.net.layer4[-1].conv3
    h1, h2 = pairs.train["A/B"]
    assert h1.shape == h2.shape == (n_pairs(TRAIN_SETS, shared=True), 2048)  # capped at all
    assert pairs.info["n_train_pairs"] == len(h1) and pairs.info["n_train_images"] == 12


@pytest.mark.parametrize("split", ["val", "test"])
def test_pairs_masks_match_the_annotations(coco, pairs, split):
    _, splits = coco
    ev, items = getattr(pairs, split), splits[split]
    sets = [set(item["rects"]) for item in items]
    multi = [s for s in sets if len(s) >= 2]
    assert len(ev.images1) == n_pairs(multi, shared=True) > 0
    assert len(ev.apart1) == n_pairs(sets, shared=False) > 0
    seen = set()
    for k in range(len(ev.images1)):
        i, j = _identify(ev.images1[k], items), _identify(ev.images2[k], items)
        (c,) = sets[i] & sets[j]  # exactly one class in common
        seen.add(frozenset((i, j)))
        for idx, common, ind in ((i, ev.common1[k], ev.ind1[k]), (j, ev.common2[k], ev.ind2[k])):
            np.testing.assert_array_equal(common, expected_mask(items[idx], c))
            others = [expected_mask(items[idx], o) for o in sets[idx] - {c}]
            assert others  # each image of a shared pair has a class of its own
            np.testing.assert_array_equal(ind, np.any(others, axis=0))
    assert len(seen) == len(ev.images1)  # distinct pairs
    for k in range(len(ev.apart1)):
        i, j = _identify(ev.apart1[k], items), _identify(ev.apart2[k], items)
        assert i != j and not sets[i] & sets[j]


def test_pairs_trials_end_to_end(coco, pairs):
    _, splits = coco
    items, ev = splits["test"], pairs.test
    area1, area2 = [], []  # the shared class's area fraction, from the fixture's rectangles
    for a, b in zip(ev.images1, ev.images2):
        i, j = _identify(a, items), _identify(b, items)
        (c,) = set(items[i]["rects"]) & set(items[j]["rects"])
        area1.append(expected_mask(items[i], c).mean())
        area2.append(expected_mask(items[j], c).mean())
    uniform = get_suite("coco_pairs").trial({"method": "uniform", "d": 4, "profile": "smoke"},
                                            data=pairs)
    assert uniform.metrics["ap_common"] == pytest.approx(50 * (np.mean(area1) + np.mean(area2)),
                                                            abs=1e-9)
    for method, strength in (("muc2m_regu", 0.1), ("base_a", None)):
        result = get_suite("coco_pairs").trial({"method": method, "d": 4, "profile": "smoke",
                                                "strength": strength}, data=pairs)
        m = result.metrics
        assert all(np.isfinite(v) for v in m.values()), (method, m)
        for key in ("ap_common", "ap_ind", "ap_ind_bg", "val_ap_common", "val_ap_ind"):
            assert 0.0 <= m[key] <= 100.0, (method, key, m[key])
        assert {"mag_cosine", "mag_dot", "mag_norm"} <= set(m)


def test_sample_pairs_uses_every_class_and_caps_at_what_exists():
    # 12 classes, only classes 10 and 11 shared: make_pairs of the scenes would draw 0..9 only
    labels = np.zeros((5, 12), bool)
    labels[[0, 1], 10] = labels[[2, 3], 11] = True
    labels[np.arange(5), np.arange(5)] = True  # and one class of its own each
    shared = CS.sample_pairs(labels, 50, seed=0, shared=True)
    got = {(min(i, j), max(i, j), c) for i, j, c in
           zip(shared.first.tolist(), shared.second.tolist(), shared.shared_class.tolist())}
    assert got == {(0, 1, 10), (2, 3, 11)}
    apart = CS.sample_pairs(labels, 50, seed=0, shared=False)
    assert len(apart) == CS.count_pairs(labels, shared=False) == n_pairs(
        [set(np.flatnonzero(row)) for row in labels], shared=False)
    assert not (labels[apart.first] & labels[apart.second]).any()


# ---------------------------------------------------------------------------------- errors
@pytest.fixture
def no_heavy_work(monkeypatch):
    """Input errors must surface before any annotation or network is loaded."""
    def boom(*args, **kwargs):
        raise AssertionError("heavy work started before the inputs were checked")
    for name in ("load_coco", "resnet50_extractor", "clip_extractor", "text_features"):
        monkeypatch.setattr(CS, name, boom)


def _error(experiment, options) -> str:
    with pytest.raises(CocoDataError) as err:
        CS.coco_data(experiment, "smoke", options, log=lambda msg: None)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_root_or_annotations_are_named(coco, tmp_path, no_heavy_work):
    msg = _error("ooi", {"weights": RANDOM_WEIGHTS})
    assert "coco_ooi" in msg and "--data-root" in msg and "instances_train2017.json" in msg
    (tmp_path / "annotations").mkdir()
    msg = _error("pairs", {"data_root": str(tmp_path), "weights": RANDOM_WEIGHTS})
    assert str(tmp_path / "annotations" / "instances_train2017.json") in msg


@pytest.mark.parametrize("experiment, weights, named", [
    ("ooi", {"resnet50": "random"}, "--weights bert="),
    ("ooi", {"bert": "random"}, "--weights resnet50="),
    ("pairs", {"resnet50": "random", "bert": "random"}, "--weights clip_rn50="),
])
def test_missing_weights_are_named(coco, no_heavy_work, experiment, weights, named):
    msg = _error(experiment, {"data_root": str(coco[0]), "weights": weights})
    assert named in msg and f"coco_{experiment}" in msg


@pytest.mark.parametrize("key", ["resnet50", "bert", "clip_rn50"])
def test_a_missing_weights_path_is_named(coco, tmp_path, no_heavy_work, key):
    experiment = "ooi" if key == "bert" else "pairs"
    gone = tmp_path / f"no-{key}"
    weights = {**RANDOM_WEIGHTS, key: str(gone)}
    msg = _error(experiment, {"data_root": str(coco[0]), "weights": weights})
    assert str(gone) in msg


def test_an_unreadable_weights_file_is_named(coco, tmp_path):
    bad = tmp_path / "rn50.pth"
    bad.write_bytes(b"not a checkpoint")
    weights = {**RANDOM_WEIGHTS, "resnet50": str(bad)}
    msg = _error("ooi", {"data_root": str(coco[0]), "weights": weights})
    assert str(bad) in msg and "ResNet50" in msg


def test_cli_reports_a_missing_coco_root_in_one_line(tmp_path, capsys):
    # harness.run's own entry point (in this process; `python -m harness.run` is run as a
    # subprocess by tests/test_sweep.py): the check comes before Ray and the store
    from harness import run
    empty = tmp_path / "coco"
    empty.mkdir()
    code = run.main(["--suite", "coco_ooi", "--profile", "smoke", "--data-root", str(empty),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err[-2000:]
    assert len(errors) == 1 and "instances_train2017.json" in errors[0], err[-2000:]
    assert not (tmp_path / "out" / "mlflow.db").exists()
