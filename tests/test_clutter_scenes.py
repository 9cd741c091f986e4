"""Cluttered MNIST scenes (harness.data.clutter_scenes): determinism, exact boxes, bounded
overlap, unlabeled distractors, disjoint splits, cache; the clutter extractors' keys and suites."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from harness import extractors
from harness.data import clutter_scenes as C
from harness.data import mnist_halves
from harness.data import scenes as S

torch.set_num_threads(1)
N = 50
# recipe_key("A" / "B", 10000) computed with harness/extractors.py BEFORE the `scenes` argument
# was added: the keys of the existing cached quadrant-scene extractors (cnnA-n10000-*.pt, ...)
PRE_A, PRE_B = "3337e2db9cde7f07", "7b6c11f91570ffe0"


@pytest.fixture(scope="module")
def mnist():
    return mnist_halves.load(allow_download=False)


@pytest.fixture(scope="module")
def train_layers(mnist):
    return C.make_clutter_layers(N, "train", seed=3, mnist=mnist)


@pytest.fixture(scope="module")
def train(train_layers):
    return train_layers[0]


@pytest.fixture(scope="module")
def test_scenes(mnist):
    return C.make_clutter_scenes(20, "test", seed=3, mnist=mnist)


_DIGITS = {}  # (id of the loaded MNIST, split) -> its full digits, built once (~50 ms each)


def resized_source(mnist, split, src, size):
    """The source digit resized independently of the generator's helper."""
    key = (id(mnist), split)
    if key not in _DIGITS:
        _DIGITS[key] = S.digit_images(mnist[split])
    digit = torch.from_numpy(_DIGITS[key][src].copy())[None, None]
    out = F.interpolate(digit, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)
    return out[0, 0].clamp(0, 1).numpy()


def rebuilt_digit_layer(mnist, scenes, i):
    """(digit layer, {class: canvas box}) of scene i rebuilt from the stored size/position."""
    layer, boxes = np.zeros((64, 64), np.float32), {}
    for c in scenes.classes(i):
        size, (row, col) = int(scenes.digit_size[i, c]), scenes.position[i, c].astype(int)
        assert C.SIZE_RANGE[0] <= size <= C.SIZE_RANGE[1]
        assert 0 <= row and row + size <= 64 and 0 <= col and col + size <= 64  # frame inside
        digit = resized_source(mnist, scenes.split, int(scenes.source_index[i, c]), size)
        on = digit > 0.05 * digit.max()
        rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
        boxes[c] = (row + rows[0], col + cols[0], row + rows[-1] + 1, col + cols[-1] + 1)
        frame = layer[row:row + size, col:col + size]
        np.maximum(frame, scenes.contrast[i, c] * digit, out=frame)
    return layer, boxes


def test_same_seed_identical_different_seed_different(mnist, train):
    again = C.make_clutter_scenes(N, "train", seed=3, mnist=mnist)
    assert set(train.arrays()) == set(again.arrays()) >= set(S.OPTIONAL_FIELDS)
    for name, arr in train.arrays().items():
        np.testing.assert_array_equal(arr, again.arrays()[name], err_msg=name)
    other = C.make_clutter_scenes(N, "train", seed=4, mnist=mnist)
    assert not np.array_equal(train.images, other.images)
    assert not np.array_equal(train.source_index, other.source_index)
    head = C.make_clutter_scenes(10, "train", seed=3, mnist=mnist)  # scene i does not depend on n
    np.testing.assert_array_equal(head.images, train.images[:10])
    np.testing.assert_array_equal(head.boxes, train.boxes[:10])
    wider = C.make_clutter_scenes(10, "train", seed=3, n_digits=(2, 3), mnist=mnist)
    assert not np.array_equal(wider.images, head.images)  # n_digits is part of the stream


def test_shapes_counts_and_bookkeeping(train):
    assert train.images.shape == (N, 1, 64, 64) and train.images.dtype == np.float32
    assert 0 <= train.images.min() and train.images.max() <= 1
    assert train.labels.shape == (N, 10) and train.boxes.shape == (N, 10, 4)
    counts = train.labels.sum(1)
    assert set(np.unique(counts)) == {2, 3, 4}  # every size occurs at n = 50
    present = train.labels > 0
    assert np.array_equal(present, train.source_index >= 0)
    assert np.array_equal(present, train.quadrant == 0)
    assert np.array_equal(~present, train.quadrant == -1)
    assert np.array_equal(present, train.boxes[..., 0] >= 0)
    assert np.array_equal(present, train.digit_size > 0)
    assert np.array_equal(present, (train.position >= 0).all(-1))
    assert np.array_equal(present, train.contrast > 0)
    assert ((train.contrast[present] >= 0.7) & (train.contrast[present] <= 1.0)).all()
    assert train.split == "train" and train.seed == 3 and train.n_digits == (2, 4)
    masks = train.masks()
    for i in range(N):
        assert len(train.objects(i)) == counts[i]
        for c in range(10):
            assert np.array_equal(masks[i, c], train.mask(i, c))


def test_the_digits_are_exactly_the_labelled_distinct_classes(mnist, train_layers):
    """The digit layer is rebuilt exactly from one source digit per labelled class: no other
    (or repeated) digit is in the scene, and each source digit is of its class."""
    train, layers = train_layers
    y = mnist["train"].y
    for i in range(N):
        for c in train.classes(i):
            assert y[train.source_index[i, c]] == c
        layer, _ = rebuilt_digit_layer(mnist, train, i)
        np.testing.assert_allclose(layers["digits"][i], layer, atol=1e-5)


def test_boxes_are_the_tight_boxes_of_the_resized_source_digits(mnist, train):
    for i in range(N):
        _, boxes = rebuilt_digit_layer(mnist, train, i)
        for c in range(10):
            if c not in boxes:
                assert (train.boxes[i, c] == -1).all()
                continue
            r0, c0, r1, c1 = (int(v) for v in train.boxes[i, c])
            assert (r0, c0, r1, c1) == boxes[c]
            assert 0 <= r0 < r1 <= 64 and 0 <= c0 < c1 <= 64  # inside the canvas, non-empty
            assert train.mask(i, c).sum() == (r1 - r0) * (c1 - c0)


def test_overlap_between_objects_is_bounded(train):
    n_touching = 0
    for i in range(N):
        boxes = [train.boxes[i, c].astype(int) for c in train.classes(i)]
        for j, a in enumerate(boxes):
            for b in boxes[j + 1:]:
                h = min(a[2], b[2]) - max(a[0], b[0])
                w = min(a[3], b[3]) - max(a[1], b[1])
                inter = max(h, 0) * max(w, 0)
                n_touching += inter > 0
                for box in (a, b):
                    assert inter <= C.MAX_OVERLAP * (box[2] - box[0]) * (box[3] - box[1])
    assert n_touching > 0  # objects do overlap sometimes: overlap is allowed, only bounded


def test_distractors_are_unlabeled_ink_outside_the_boxes(train_layers):
    train, layers = train_layers
    np.testing.assert_array_equal(
        train.images[:, 0],
        np.maximum(np.maximum(layers["background"], layers["digits"]), layers["distractors"]))
    assert ((train.n_distractors >= 1) & (train.n_distractors <= 3)).all()
    assert (layers["distractors"].reshape(N, -1).max(1) > 0.3).all()  # every scene has some
    outside = ~train.masks().any(1)  # (N, 64, 64): no object's box
    # ink outside every box, well above the background there
    bright = (train.images[:, 0] > layers["background"] + 0.2) & outside
    assert bright.any((1, 2)).mean() >= 0.9
    # and it is the distractors' ink: digit pixels never leave their own boxes
    assert not (layers["digits"] > 0.05)[outside].any()


def test_background_is_textured_and_reaches_half_the_digit_ink(train_layers):
    _, layers = train_layers
    bg = layers["background"].reshape(N, -1)
    assert bg.max() > 0.4 and bg.max() <= 0.65
    assert (bg.std(1) > 0.01).all()  # no flat background
    assert np.median(bg.max(1)) > 0.15


def test_splits_use_disjoint_digit_sources(mnist, train, test_scenes):
    assert test_scenes.split == "test"
    assert test_scenes.source_index.max() < len(mnist["test"])
    y = mnist["test"].y
    for i in range(len(test_scenes)):
        for c in test_scenes.classes(i):
            assert y[test_scenes.source_index[i, c]] == c
        layer, _ = rebuilt_digit_layer(mnist, test_scenes, i)
        assert (test_scenes.images[i, 0] >= layer - 1e-5).all()  # test digits are in the image
    test_set = {d.tobytes() for d in S.digit_images(mnist["test"])}
    train_digits = S.digit_images(mnist["train"])
    used = np.unique(train.source_index[train.source_index >= 0])
    assert not any(train_digits[k].tobytes() in test_set for k in used)


def test_pairs_work_on_clutter_scenes(train):
    pairs = S.make_pairs(train, 20, seed=0, shared=True)
    lab = train.labels > 0
    for i, j, c in zip(pairs.first, pairs.second, pairs.shared_class):
        assert np.flatnonzero(lab[i] & lab[j]).tolist() == [c]


def test_cache_key_and_round_trip(tmp_path, monkeypatch, mnist):
    base = C.cache_key(30, "train", 0, (2, 4), None)
    variants = [C.cache_key(31, "train", 0, (2, 4), None), C.cache_key(30, "val", 0, (2, 4), None),
                C.cache_key(30, "train", 1, (2, 4), None), C.cache_key(30, "train", 0, (2, 3), None),
                C.cache_key(30, "train", 0, (2, 4), "/some/mnist"),
                S.cache_key(30, "train", 0, (2, 4), None)]
    assert len({base, *variants}) == 7
    monkeypatch.setattr(C, "MAX_OVERLAP", 0.5)
    assert C.cache_key(30, "train", 0, (2, 4), None) != base
    monkeypatch.undo()

    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setattr(mnist_halves, "load", lambda **kwargs: mnist)
    first = C.load_clutter_scenes(30, "train", seed=0)
    (path,) = (tmp_path / "scenes").glob("*.npz")
    assert path.name == f"clutter-train-n30-s0-{base}.npz"
    monkeypatch.setattr(C, "make_clutter_scenes", lambda *a, **k: pytest.fail("cache miss"))
    hit = C.load_clutter_scenes(30, "train", seed=0)
    assert set(hit.arrays()) == set(first.arrays()) >= set(S.OPTIONAL_FIELDS)
    for name, arr in first.arrays().items():
        np.testing.assert_array_equal(arr, hit.arrays()[name], err_msg=name)
        assert arr.dtype == hit.arrays()[name].dtype, name
    assert hit.split == "train" and hit.seed == 0 and hit.n_digits == (2, 4)
    # the quadrant scenes keep their fields (and cache files) as before
    quadrant = S.make_scenes(5, "train", seed=0, mnist=mnist)
    assert set(quadrant.arrays()) == {"images", "labels", "boxes", "quadrant", "source_index",
                                      "split", "seed", "n_digits"}
    assert S.Scenes.from_arrays(quadrant.arrays()).digit_size is None


@pytest.mark.parametrize("kwargs, match", [
    ({"split": "dev"}, "split must be one of"),
    ({"n_digits": (0, 2)}, "n_digits must satisfy"),
    ({"n_digits": (3, 2)}, "n_digits must satisfy"),
    ({"n_digits": (2, 5)}, "n_digits must satisfy"),
    ({"n_digits": 3}, "n_digits must be a pair"),
    ({"n": -1}, "n must be a non-negative integer"),
    ({"n": 2.5}, "n must be a non-negative integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_arguments_are_a_clear_value_error(kwargs, match, tmp_path):
    args = {"n": 5, "split": "train", "seed": 0, "n_digits": (2, 4), **kwargs}
    with pytest.raises(ValueError, match=match):
        C.make_clutter_scenes(args["n"], args["split"], args["seed"], args["n_digits"], mnist={})
    with pytest.raises(ValueError, match=match):
        C.load_clutter_scenes(args["n"], args["split"], args["seed"], args["n_digits"],
                              cache_dir=tmp_path)


def test_mnist_extractor_keys_are_unchanged_and_clutter_keys_differ():
    # the pre-change keys (computed with extractors.py before the `scenes` argument was added)
    # of the existing cached quadrant-scene extractors cnnA-n10000 / cnnB-n10000
    assert extractors.recipe_key("A", 10000) == PRE_A
    assert extractors.recipe_key("B", 10000) == PRE_B
    assert extractors.recipe_key("A", 10000, scenes="mnist") == PRE_A
    clutter = {extractors.recipe_key(n, 10000, scenes="clutter") for n in ("A", "B")}
    assert len(clutter) == 2 and not clutter & {PRE_A, PRE_B}
    assert extractors.recipe_of("A", "clutter")["scenes_seed"] == 201
    assert extractors.recipe_of("B", "clutter")["scenes_seed"] == 202
    with pytest.raises(ValueError, match="unknown scenes kind"):
        extractors.recipe_key("A", 10000, scenes="coco")


def test_clutter_suites_are_registered_after_the_scenes_suites():
    from harness.suites import all_suites
    names = list(all_suites())
    assert names.index("scenes_pairs") < names.index("clutter_ooi") < names.index("clutter_pairs")
    assert names.index("clutter_pairs") < names.index("coco_ooi")
    suites = all_suites()
    assert suites["clutter_ooi"].needs == "ooi" and suites["clutter_pairs"].needs == "pairs"
    assert suites["clutter_ooi"].family == suites["clutter_pairs"].family == "saliency"
