"""MNIST scenes: determinism, layout, tight masks, disjoint splits, pairs, cache."""
import numpy as np
import pytest
import torch

from harness.data import mnist_halves
from harness.data import scenes as S

torch.set_num_threads(1)
N = 150


@pytest.fixture(scope="module")
def mnist():
    return mnist_halves.load(allow_download=False)


@pytest.fixture(scope="module")
def train(mnist):
    return S.make_scenes(N, "train", seed=3, mnist=mnist)


@pytest.fixture(scope="module")
def test_scenes(mnist):
    return S.make_scenes(N, "test", seed=3, mnist=mnist)


def test_same_seed_identical_different_seed_different(mnist, train):
    again = S.make_scenes(N, "train", seed=3, mnist=mnist)
    for name, arr in train.arrays().items():
        np.testing.assert_array_equal(arr, again.arrays()[name], err_msg=name)
    other = S.make_scenes(N, "train", seed=4, mnist=mnist)
    assert not np.array_equal(train.images, other.images)
    assert not np.array_equal(train.source_index, other.source_index)


def test_shapes_counts_and_distinct_classes(train):
    assert train.images.shape == (N, 1, 64, 64) and train.images.dtype == np.float32
    assert train.labels.shape == (N, 10) and train.boxes.shape == (N, 10, 4)
    counts = train.labels.sum(1)
    assert set(np.unique(counts)) == {2, 3}  # both sizes occur at n = 150
    # one digit per present class (so classes are distinct), bookkeeping agrees with labels
    present = train.labels > 0
    assert np.array_equal(present, train.source_index >= 0)
    assert np.array_equal(present, train.quadrant >= 0)
    assert np.array_equal(present, train.boxes[..., 0] >= 0)
    for i in range(N):
        quads = train.quadrant[i][present[i]]
        assert len(set(quads.tolist())) == len(quads)  # each digit has its own quadrant
        assert len(train.classes(i)) == len(train.objects(i)) == counts[i]


def test_each_digit_is_its_source_inside_its_quadrant(mnist, train):
    digits = S.digit_images(mnist["train"])
    labels_y = mnist["train"].y
    for i in range(N):
        covered = np.zeros((64, 64), bool)
        for c in train.classes(i):
            q, src = int(train.quadrant[i, c]), int(train.source_index[i, c])
            assert labels_y[src] == c
            qr, qc = S.QUADRANT_ORIGIN[q]
            r0, c0, r1, c1 = train.boxes[i, c]
            assert qr <= r0 < r1 <= qr + 32 and qc <= c0 < c1 <= qc + 32
            # the digit's pixels sit at an offset 0..4 inside the quadrant: find it from the box
            br0, bc0, _, _ = S.tight_box(digits[src])
            dr, dc = r0 - br0 - qr, c0 - bc0 - qc
            assert 0 <= dr <= 4 and 0 <= dc <= 4
            np.testing.assert_array_equal(
                train.images[i, 0, qr + dr:qr + dr + 28, qc + dc:qc + dc + 28], digits[src])
            covered[qr:qr + 32, qc:qc + 32] = True
        assert not train.images[i, 0][~covered].any()  # nothing outside the used quadrants


def test_masks_are_tight_bounding_boxes(train):
    masks = train.masks()
    assert masks.shape == (N, 10, 64, 64) and masks.dtype == bool
    for i in range(N):
        for c in range(10):
            assert np.array_equal(masks[i, c], train.mask(i, c))
            if c not in train.classes(i):
                assert not masks[i, c].any()
                continue
            q = int(train.quadrant[i, c])
            qr, qc = S.QUADRANT_ORIGIN[q]
            cell = np.zeros((64, 64), bool)
            cell[qr:qr + 32, qc:qc + 32] = True
            ink = (train.images[i, 0] > S.MASK_THRESHOLD) & cell  # this digit's pixels
            m = masks[i, c]
            assert not (ink & ~m).any()  # every non-zero pixel inside the box
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            # the box touches a non-zero pixel on each of its four sides
            assert ink[rows[0], cols].any() and ink[rows[-1], cols].any()
            assert ink[rows, cols[0]].any() and ink[rows, cols[-1]].any()
            assert m.sum() == len(rows) * len(cols)  # a filled rectangle
    assert [c for c, _ in train.objects(0)] == train.classes(0)


def test_train_and_test_scenes_use_disjoint_mnist_splits(mnist, train, test_scenes):
    assert train.split == "train" and test_scenes.split == "test"
    assert test_scenes.source_index.max() < len(mnist["test"])
    test_digits = S.digit_images(mnist["test"])
    i, c = np.nonzero(test_scenes.source_index >= 0)
    first = test_scenes.source_index[i[0], c[0]]
    qr, qc = S.QUADRANT_ORIGIN[test_scenes.quadrant[i[0], c[0]]]
    crop = test_scenes.images[i[0], 0, qr:qr + 32, qc:qc + 32]
    assert np.isclose(crop.sum(), test_digits[first].sum())  # test scenes hold test digits
    # no digit of a train scene is (pixel for pixel) an MNIST test digit
    test_set = {d.tobytes() for d in test_digits}
    train_digits = S.digit_images(mnist["train"])
    used = np.unique(train.source_index[train.source_index >= 0])
    assert not any(train_digits[k].tobytes() in test_set for k in used)


def test_shared_pairs_share_exactly_the_named_class(train):
    pairs = S.make_pairs(train, 60, seed=1, shared=True)
    assert len(pairs) == 60
    lab = train.labels > 0
    keys = set()
    for i, j, c in zip(pairs.first, pairs.second, pairs.shared_class):
        assert i != j and 0 <= c < 10
        assert np.flatnonzero(lab[i] & lab[j]).tolist() == [c]
        assert (lab[i] & ~lab[j]).any() and (lab[j] & ~lab[i]).any()  # each has its own class
        keys.add((min(i, j), max(i, j)))
    assert len(keys) == 60  # distinct pairs
    again = S.make_pairs(train, 60, seed=1, shared=True)
    assert np.array_equal(again.first, pairs.first) and np.array_equal(again.second, pairs.second)


def test_no_common_pairs_share_no_class(train):
    pairs = S.make_pairs(train, 60, seed=1, shared=False)
    lab = train.labels > 0
    assert (pairs.shared_class == -1).all()
    for i, j in zip(pairs.first, pairs.second):
        assert i != j and not (lab[i] & lab[j]).any()


def test_caption_words():
    assert S.caption(0) == "the image contains zero"
    assert S.caption(7) == "the image contains seven"
    assert [S.caption(c).split()[-1] for c in range(10)] == list(S.DIGIT_WORDS)


def test_cache_key_and_cache_hit(tmp_path, monkeypatch):
    base = S.cache_key(40, "train", 0, (2, 3), None)
    assert base == S.cache_key(40, "train", 0, (2, 3), None)
    variants = [S.cache_key(41, "train", 0, (2, 3), None), S.cache_key(40, "test", 0, (2, 3), None),
                S.cache_key(40, "train", 1, (2, 3), None), S.cache_key(40, "train", 0, (2, 2), None),
                S.cache_key(40, "train", 0, (2, 3), "/some/mnist")]
    assert len({base, *variants}) == 6
    monkeypatch.setattr(S, "MASK_THRESHOLD", 0.1)
    assert S.cache_key(40, "train", 0, (2, 3), None) != base
    monkeypatch.undo()

    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))
    monkeypatch.delenv("MNIST_DIR", raising=False)
    first = S.load_scenes(40, "train", seed=0)
    files = list((tmp_path / "scenes").glob("*.npz"))
    assert len(files) == 1 and base in files[0].name
    # a hit must not regenerate: make generation fail, the cache still answers
    monkeypatch.setattr(S, "make_scenes", lambda *a, **k: pytest.fail("cache miss"))
    hit = S.load_scenes(40, "train", seed=0)
    for name, arr in first.arrays().items():
        np.testing.assert_array_equal(arr, hit.arrays()[name], err_msg=name)
    assert hit.split == "train" and hit.seed == 0 and hit.n_digits == (2, 3)
    monkeypatch.undo()
    monkeypatch.setenv("MUC2M_CACHE", str(tmp_path))
    S.load_scenes(40, "train", seed=1)
    assert len(list((tmp_path / "scenes").glob("*.npz"))) == 2  # another seed, another file
    explicit = tmp_path / "elsewhere"
    S.load_scenes(40, "train", seed=0, cache_dir=explicit)
    assert len(list(explicit.glob("*.npz"))) == 1
