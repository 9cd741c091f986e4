"""Tables 2–4 (saliency AP and magnitude) and the gallery PNG, from a sweep's stored rows.

The paper's numbers are on COCO 2017; beside the scenes suites they are a different data set,
and the tables say so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tables import paper

ROW_ORDER = ("uniform", "contrastive", "base_a", "base_b", "muc2m", "muc2m_regu")
TABLE3_KEYS = ("ap_common", "ap_ind", "ap_ind_bg")
TABLE4_KEYS = ("mag_cosine", "mag_dot", "mag_norm")


def _title(method: str) -> str:
    from harness.saliency_suite import METHODS
    return METHODS[method].title if method in METHODS else method


def _rows(sel: pd.DataFrame):
    order = {m: i for i, m in enumerate(ROW_ORDER)}
    return sorted(sel.to_dict("records"), key=lambda r: order.get(r["method"], len(order)))


def _cell(row: dict, key: str) -> str:
    if row.get("status") != "ok":
        return row.get("status", "—")
    mean = row.get(f"{key}_mean", np.nan)
    if pd.isna(mean):
        return "–"
    text = f"{mean:.1f}"
    if row.get("n_seeds", 1) > 1:
        text += f" ± {row[f'{key}_std']:.1f}"
    return text


def _strength(row: dict) -> str:
    if row.get("status") != "ok" or pd.isna(row.get("strength")):
        return "–"
    return f"{row['strength_name']}={row['strength']:g}"


def _paper_note(suite: str) -> str:
    if suite.startswith("coco"):
        return "Paper: the paper's COCO 2017 number (same data set)."
    return ("Paper: the paper's COCO 2017 number — a DIFFERENT data set (COCO with ResNet50/BERT/"
            "CLIP), shown for orientation only; our numbers are on the MNIST scenes (SPEC §3.2).")


def render(sel: pd.DataFrame, suite: str, profile: str, prov: str, experiment: str) -> dict[str, str]:
    out = {}
    rows = _rows(sel)
    data = "COCO 2017" if suite.startswith("coco") else "MNIST scenes"
    if experiment == "ooi":
        lines = ["| method | AP (%) | val AP | paper (COCO) | strength |", "|---|---|---|---|---|"]
        for r in rows:
            ref = paper.TABLE2.get(r["method"])
            lines.append(f"| {_title(r['method'])} | {_cell(r, 'ap')} | {_cell(r, 'val_ap')} | "
                         f"{'–' if ref is None else ref} | {_strength(r)} |")
        out["table2.md"] = "\n\n".join([
            f"# Table 2 — object-of-interest saliency AP, {data} (suite `{suite}`, profile `{profile}`)",
            "One GradCAM map of the common score per (test image, class in it) against the text "
            "\"the image contains {class}\"; precision = Σ S·M / Σ S against the class's mask; "
            "AP = mean over maps (%). Uniform = mask area fraction. Strength chosen on the "
            "validation split (`val AP`).",
            "\n".join(lines), _paper_note(suite), prov]) + "\n"
        return out
    lines = ["| method | AP_common | AP_ind | AP_ind−bg | paper (COCO) | strength |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ref = paper.TABLE3.get(r["method"])
        ref_text = "–" if ref is None else " / ".join(f"{v:g}" for v in ref)
        lines.append(f"| {_title(r['method'])} | " + " | ".join(_cell(r, k) for k in TABLE3_KEYS)
                     + f" | {ref_text} | {_strength(r)} |")
    out["table3.md"] = "\n\n".join([
        f"# Table 3 — pair saliency AP (%), {data} (suite `{suite}`, profile `{profile}`)",
        "Test pairs of images sharing one class; view 1 through extractor A, view 2 through "
        "extractor B (base rows: both through the same extractor, raw-feature scores). "
        "AP_common: common-score maps against the shared class; AP_ind: individual-score maps "
        "against the classes not shared; AP_ind−bg: the same with the background removed. Each "
        "pair averages its two images. Strength chosen on the validation split (mean of the "
        "three validation APs).",
        "\n".join(lines), _paper_note(suite), prov]) + "\n"
    lines = ["| method | cosine (Eq. 4) | dot | norm | paper (COCO) |", "|---|---|---|---|---|"]
    for r in rows:
        if r["method"] == "uniform":
            continue  # a constant map has magnitude 100 by definition
        ref = paper.TABLE4.get(r["method"])
        ref_text = "–" if ref is None else " / ".join(f"{v:g}" for v in ref)
        lines.append(f"| {_title(r['method'])} | " + " | ".join(_cell(r, k) for k in TABLE4_KEYS)
                     + f" | {ref_text} |")
    out["table4.md"] = "\n\n".join([
        f"# Table 4 — common-score saliency magnitude on pairs with nothing in common, {data} "
        f"(suite `{suite}`, profile `{profile}`)",
        "Each common map normalised to max 1; magnitude = 100 × mean pixel value, averaged over "
        "both images and the test pairs. Lower is better: with nothing in common, a good common "
        "score should light up little. Same selected models as Table 3.",
        "\n".join(lines), _paper_note(suite), prov]) + "\n"
    return out


def gallery(sel: pd.DataFrame, client, out_dir: Path, suite: str, experiment: str) -> list[Path]:
    """gallery.png: the fixed test items with each selected method's maps overlaid
    (common maps; for pairs also individual maps). Rows: methods; columns: items."""
    import os
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one file per row
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness import tracking
    from harness.saliency_suite import load_gallery

    items = []
    for r in _rows(sel):
        if r.get("status") != "ok" or r["method"] == "uniform" or not r.get("run_id"):
            continue
        try:
            local = client.download_artifacts(r["run_id"], tracking.GALLERY_ARTIFACT, str(out_dir))
        except Exception:  # a run logged without a gallery
            continue
        items.append((r["method"], load_gallery(local)))
        Path(local).unlink()
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
            axes[row, 0].set_ylabel(f"{_title(method)}\n{kind}", fontsize=7)
            row += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{suite}: saliency of fixed test items (green: common/target mask, orange: "
                 f"individual mask)", fontsize=8)
    fig.tight_layout()
    path = out_dir / "gallery.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def _gray(img: np.ndarray) -> np.ndarray:
    """(C, H, W) → what imshow takes: (H, W) for one channel, (H, W, 3) for colour."""
    return img[0] if img.shape[0] == 1 else np.clip(np.moveaxis(img, 0, -1), 0, 1)
