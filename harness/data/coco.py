"""COCO 2017: images, per-image categories and object masks, read with pycocotools
from a root the user gives. Expected layout:

    <root>/annotations/instances_{split}2017.json   (from annotations_trainval2017.zip)
    <root>/{split}2017/*.jpg                         (from {split}2017.zip)

Categories are indexed 0..K-1 in ascending COCO category id (COCO's 80 ids run 1..90 with
gaps). Masks are bool arrays at the image's resolution (height × width from the annotation
file), decoded by `COCO.annToMask` (polygons and RLE alike); the mask of a class in an image is
the union of its instances. Crowd annotations (iscrowd=1) count as objects unless
`include_crowd=False`. Images without annotations are kept, with no categories.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.common import HarnessError

COCO_SPLITS = ("train", "val")
DOWNLOAD = "https://cocodataset.org/#download"


class CocoDataError(HarnessError, RuntimeError):
    """COCO data is missing or unreadable; the one-line message names the path and the fix."""


def annotation_path(root, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}2017.json"


def image_dir(root, split: str) -> Path:
    return Path(root) / f"{split}2017"


def check_coco_root(root, split: str = "val") -> tuple[Path, Path]:
    """(annotation file, image folder) of `split`, or CocoDataError naming what is missing."""
    if split not in COCO_SPLITS:
        raise CocoDataError(f"unknown COCO split {split!r}; use one of {', '.join(COCO_SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise CocoDataError(f"COCO root {root} does not exist; pass the directory that holds "
                            f"annotations/instances_{split}2017.json and {split}2017/")
    ann, images = annotation_path(root, split), image_dir(root, split)
    if not ann.is_file():
        raise CocoDataError(f"COCO annotations missing: {ann} not found; unzip "
                            f"annotations_trainval2017.zip ({DOWNLOAD}) into {root} so that "
                            f"{ann} exists")
    if not images.is_dir():
        raise CocoDataError(f"COCO images missing: folder {images} not found; unzip "
                            f"{split}2017.zip ({DOWNLOAD}) into {root} so that the images are "
                            f"{images}/*.jpg")
    return ann, images


@dataclass
class CocoSplit:
    root: Path
    split: str
    coco: object                    # pycocotools.coco.COCO
    image_ids: list[int]            # COCO image ids, ascending
    paths: list[Path]               # image files, aligned with image_ids
    sizes: np.ndarray               # (n, 2) int (height, width)
    category_ids: list[int]         # COCO category id of each class index
    category_names: list[str]
    categories: list[set[int]]      # class indices present in each image
    include_crowd: bool = True
    _class_of: dict = field(default_factory=dict, repr=False)

    def __len__(self):
        return len(self.image_ids)

    @property
    def labels(self) -> np.ndarray:
        """(n, K) float32 multi-hot of the categories per image."""
        out = np.zeros((len(self), len(self.category_ids)), np.float32)
        for i, cats in enumerate(self.categories):
            out[i, sorted(cats)] = 1.0
        return out

    def _annotations(self, i: int) -> list[dict]:
        crowd = None if self.include_crowd else False
        ids = self.coco.getAnnIds(imgIds=[self.image_ids[i]], iscrowd=crowd)
        return self.coco.loadAnns(ids)

    def instance_masks(self, i: int) -> list[tuple[int, np.ndarray]]:
        """[(class index, H×W bool mask)] of every object instance in image i."""
        with warnings.catch_warnings():  # pycocotools' decode warns under numpy 2 (harmless)
            warnings.simplefilter("ignore", DeprecationWarning)
            return [(self._class_of[a["category_id"]], self.coco.annToMask(a).astype(bool))
                    for a in self._annotations(i)]

    def class_masks(self, i: int) -> dict[int, np.ndarray]:
        """{class index: H×W bool union of that class's instances} for image i."""
        h, w = (int(v) for v in self.sizes[i])
        out: dict[int, np.ndarray] = {}
        for c, m in self.instance_masks(i):
            out[c] = out.get(c, np.zeros((h, w), bool)) | m
        return out


def coco_object_masks(data: CocoSplit, i: int, by_class: bool = True):
    """Object masks of image i at image resolution: {class: union mask} (by_class) or the list
    of (class, instance mask)."""
    return data.class_masks(i) if by_class else data.instance_masks(i)


def caption(name: str) -> str:
    """The text of a COCO class: "the image contains {category name}"."""
    return f"the image contains {name}"


def load_coco(root, split: str = "val", include_crowd: bool = True,
              check_images: bool = True) -> CocoSplit:
    """The `split` of COCO 2017 under `root` (layout in the module doc). With `check_images`
    every image file the annotations list must exist (else CocoDataError naming the first)."""
    ann, images = check_coco_root(root, split)
    from pycocotools.coco import COCO
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress lines
            coco = COCO(str(ann))
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as err:
        raise CocoDataError(f"{ann} is not a COCO instances file ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}); re-extract it from "
                            f"annotations_trainval2017.zip") from None
    image_ids = sorted(coco.getImgIds())
    infos = coco.loadImgs(image_ids)
    paths = [images / info["file_name"] for info in infos]
    if check_images:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise CocoDataError(f"COCO images missing: {missing[0]} not found ({len(missing)} of "
                                f"{len(paths)} files listed in {ann.name} are absent); unzip "
                                f"{split}2017.zip into {Path(root)}")
    category_ids = sorted(coco.getCatIds())
    class_of = {cid: k for k, cid in enumerate(category_ids)}
    names = [coco.cats[cid]["name"] for cid in category_ids]
    categories = []
    for image_id in image_ids:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id],
                                            iscrowd=None if include_crowd else False))
        categories.append({class_of[a["category_id"]] for a in anns})
    sizes = np.array([(info["height"], info["width"]) for info in infos], dtype=np.int64)
    return CocoSplit(Path(root), split, coco, image_ids, paths, sizes.reshape(-1, 2),
                     category_ids, names, categories, include_crowd, class_of)
