"""COCO loader on a tiny COCO-format fixture the test writes itself."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from harness.data import coco as C

torch.set_num_threads(1)

# category ids with a gap, as in COCO (class index = rank of the id)
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 18, "name": "dog", "supercategory": "animal"}]
IMAGES = [(101, "000000000101.jpg", 40, 50), (102, "000000000102.jpg", 32, 32),
          (103, "000000000103.png", 24, 36), (104, "000000000104.jpg", 20, 20)]


def rect(x0, y0, x1, y1):
    """A rectangle polygon; pycocotools rasterises it to rows y0..y1-1, columns x0..x1-1."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def rect_mask(h, w, x0, y0, x1, y1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def blob(h, w):
    """An irregular mask stored as compressed RLE."""
    m = np.zeros((h, w), np.uint8)
    m[3:9, 4:6] = 1
    m[5, 6:20] = 1
    m[15:20, 25:33] = 1
    return m


def write_fixture(root, split="val"):
    (root / "annotations").mkdir(parents=True)
    (root / f"{split}2017").mkdir()
    rng = np.random.default_rng(0)
    for _, name, h, w in IMAGES:
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            root / f"{split}2017" / name)
    rle = mask_utils.encode(np.asfortranarray(blob(24, 36)))
    rle["counts"] = rle["counts"].decode("ascii")
    anns = [
        {"id": 1, "image_id": 101, "category_id": 1, "segmentation": rect(10, 10, 30, 20),
         "area": 200.0, "bbox": [10, 10, 20, 10], "iscrowd": 0},
        {"id": 2, "image_id": 101, "category_id": 3, "segmentation": rect(0, 25, 8, 40),
         "area": 120.0, "bbox": [0, 25, 8, 15], "iscrowd": 0},
        {"id": 3, "image_id": 101, "category_id": 1, "segmentation": rect(40, 0, 50, 5),
         "area": 50.0, "bbox": [40, 0, 10, 5], "iscrowd": 0},
        {"id": 4, "image_id": 102, "category_id": 18, "segmentation": rect(4, 4, 12, 28),
         "area": 192.0, "bbox": [4, 4, 8, 24], "iscrowd": 0},
        {"id": 5, "image_id": 103, "category_id": 3, "segmentation": rle,
         "area": float(blob(24, 36).sum()), "bbox": [4, 3, 29, 17], "iscrowd": 1},
    ]  # image 104 has no annotation
    doc = {"images": [{"id": i, "file_name": n, "height": h, "width": w} for i, n, h, w in IMAGES],
           "annotations": anns, "categories": CATEGORIES}
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(doc))
    return root


@pytest.fixture
def root(tmp_path):
    return write_fixture(tmp_path / "coco")


def test_images_categories_and_sizes(root):
    data = C.load_coco(root, "val")
    assert len(data) == 4 and data.image_ids == [101, 102, 103, 104]
    assert [p.name for p in data.paths] == [n for _, n, _, _ in IMAGES]
    assert all(p.is_file() for p in data.paths)
    assert data.sizes.tolist() == [[h, w] for *_, h, w in IMAGES]
    assert data.category_ids == [1, 3, 18] and data.category_names == ["person", "car", "dog"]
    assert data.categories == [{0, 1}, {2}, {1}, set()]
    np.testing.assert_array_equal(data.labels, [[1, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]])
    assert C.caption(data.category_names[2]) == "the image contains dog"


def test_masks_match_the_known_polygons_and_rle(root):
    data = C.load_coco(root, "val")
    inst = data.instance_masks(0)
    assert [c for c, _ in inst] == [0, 1, 0]
    expected = [rect_mask(40, 50, 10, 10, 30, 20), rect_mask(40, 50, 0, 25, 8, 40),
                rect_mask(40, 50, 40, 0, 50, 5)]
    for (_, m), e in zip(inst, expected):
        assert m.dtype == bool and m.shape == (40, 50)
        np.testing.assert_array_equal(m, e)
    assert [m.sum() for _, m in inst] == [200, 120, 50]
    per_class = C.coco_object_masks(data, 0)
    assert set(per_class) == {0, 1}
    np.testing.assert_array_equal(per_class[0], expected[0] | expected[2])  # union of persons
    assert per_class[0].sum() == 250
    np.testing.assert_array_equal(C.coco_object_masks(data, 1)[2], rect_mask(32, 32, 4, 4, 12, 28))
    np.testing.assert_array_equal(C.coco_object_masks(data, 2)[1], blob(24, 36).astype(bool))
    assert C.coco_object_masks(data, 3) == {}
    assert len(C.coco_object_masks(data, 0, by_class=False)) == 3


def test_crowd_annotations_can_be_left_out(root):
    data = C.load_coco(root, "val", include_crowd=False)
    assert data.categories == [{0, 1}, {2}, set(), set()]
    assert data.class_masks(2) == {}


def test_missing_annotations_file_is_named_in_one_line(root):
    ann = root / "annotations" / "instances_val2017.json"
    ann.unlink()
    with pytest.raises(C.CocoDataError) as err:
        C.load_coco(root, "val")
    msg = str(err.value)
    assert "\n" not in msg and str(ann) in msg and "annotations_trainval2017.zip" in msg
    with pytest.raises(C.CocoDataError, match="instances_train2017.json"):
        C.check_coco_root(root, "train")


def test_missing_image_folder_is_named_in_one_line(root):
    folder = root / "val2017"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    with pytest.raises(C.CocoDataError) as err:
        C.check_coco_root(root, "val")
    msg = str(err.value)
    assert "\n" not in msg and str(folder) in msg and "val2017.zip" in msg


def test_missing_image_file_and_root_are_named(root, tmp_path):
    gone = root / "val2017" / "000000000102.jpg"
    gone.unlink()
    with pytest.raises(C.CocoDataError) as err:
        C.load_coco(root, "val")
    assert "\n" not in str(err.value) and str(gone) in str(err.value) and "1 of 4" in str(err.value)
    assert len(C.load_coco(root, "val", check_images=False)) == 4
    with pytest.raises(C.CocoDataError, match="does not exist"):
        C.check_coco_root(tmp_path / "nowhere")


def test_corrupt_annotation_file_is_refused(root):
    (root / "annotations" / "instances_val2017.json").write_text("{not json")
    with pytest.raises(C.CocoDataError) as err:
        C.load_coco(root, "val")
    assert "\n" not in str(err.value) and "instances_val2017.json" in str(err.value)
