"""The gallery: maps of a few fixed test items, carried with a trial's record as a compressed
.npz (base64), logged to MLflow as an artifact, and drawn as gallery.png by the tables."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness import report

GALLERY_ITEMS = 6
GALLERY_SIZE = 64  # maps and images are stored at most this large (the record travels via Ray)


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


def draw(rows: list[dict], galleries: dict, catalog, out_dir: Path, suite: str,
         experiment: str) -> list[Path]:
    """gallery.png: the fixed test items with each selected method's maps overlaid
    (common maps; for pairs also individual maps). Rows: methods; columns: items.
    `rows`: the selected cells in table order, each naming its `gallery_trial`; `galleries`:
    trial name -> its record's gallery (base64 .npz, as the ledger keeps it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = []
    for r in rows:
        encoded = galleries.get(r.get("gallery_trial") or "")
        if r.get("status") != "ok" or not encoded or catalog.constant_maps(r["method"]):
            continue
        items.append((r["method"], load_gallery(io.BytesIO(base64.b64decode(encoded)))))
    if not items:
        return []
    kinds = ["common"] + (["individual"] if experiment == "pairs" else [])
    n_items = len(items[0][1]["images"])
    n_rows = 1 + len(items) * len(kinds)
    fig, axes = plt.subplots(n_rows, n_items, figsize=(1.8 * n_items, 1.9 * n_rows), squeeze=False)
    first = items[0][1]
    for j in range(n_items):
        axes[0, j].imshow(_gray(first["images"][j]), cmap="gray")
        axes[0, j].contour(first["masks"][j], levels=[0.5], colors="lime", linewidths=0.8)
        if "ind_masks" in first:
            axes[0, j].contour(first["ind_masks"][j], levels=[0.5], colors="orange", linewidths=0.8)
    axes[0, 0].set_ylabel("image", fontsize=8)
    row = 1
    for method, arrs in items:
        for kind in kinds:
            for j in range(n_items):
                ax = axes[row, j]
                ax.imshow(_gray(arrs["images"][j]), cmap="gray")
                if kind in arrs:
                    ax.imshow(arrs[kind][j], cmap="jet", alpha=0.5)
            axes[row, 0].set_ylabel(f"{catalog.title(method)}\n{kind}", fontsize=7)
            row += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{suite}: saliency of fixed test items (green: common/target mask, orange: "
                 f"individual mask)", fontsize=8)
    return [report.save_figure(fig, out_dir / "gallery.png", dpi=100)]


def _gray(img: np.ndarray) -> np.ndarray:
    """(C, H, W) → what imshow takes: (H, W) for one channel, (H, W, 3) for colour."""
    return img[0] if img.shape[0] == 1 else np.clip(np.moveaxis(img, 0, -1), 0, 1)
