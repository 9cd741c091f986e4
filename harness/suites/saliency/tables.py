"""Tables 2–4 (saliency AP and magnitude), the gallery and the summary, from a sweep's rows.

The paper's numbers are on COCO 2017; beside the scenes suites they are a different data set,
and the tables say so.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness import report
from harness.suites.saliency import gallery

TABLE3_KEYS = ("ap_common", "ap_ind", "ap_ind_bg")
TABLE4_KEYS = ("mag_cosine", "mag_dot", "mag_norm")

# The paper's COCO 2017 numbers (its Tables 2–4). Keys: our method names.
PAPER_TABLE2 = {"uniform": 10.9, "contrastive": 20.6, "muc2m": 18.1, "muc2m_regu": 21.2}
# AP_common / AP_ind / AP_ind−bg; base A/B = the paper's base ResNet50 / base CLIP-ResNet50
PAPER_TABLE3 = {"uniform": (14.9, 20.1, 65.5), "base_a": (16.5, 21.5, 65.1),
                "base_b": (18.9, 26.9, 57.4), "muc2m": (18.1, 26.9, 68.2),
                "muc2m_regu": (22.7, 27.5, 70.1)}
# saliency magnitude for the scores cosine (Eq. 4) / dot / norm; lower is better
PAPER_TABLE4 = {"base_a": (16.2, 18.3, 47.6), "base_b": (2.6, 4.0, 11.7),
                "muc2m": (15.7, 16.6, 41.4), "muc2m_regu": (14.3, 16.2, 34.9)}


PAPER = {"table2": PAPER_TABLE2, "table3": PAPER_TABLE3, "table4": PAPER_TABLE4}


def _rows(sel: pd.DataFrame, catalog):
    return sorted(sel.to_dict("records"), key=lambda r: catalog.rank(r["method"]))


def _paper_note(on_coco: bool) -> str:
    if on_coco:
        return "Paper: the paper's COCO 2017 number (same data set)."
    return ("Paper: the paper's COCO 2017 number — a DIFFERENT data set (COCO with ResNet50/BERT/"
            "CLIP), shown for orientation only; our numbers are on the MNIST scenes.")


def _line(r: dict, keys, paper: dict, catalog) -> str:
    """`| title | cells of keys | the paper's numbers |` of one selected row."""
    ref = paper.get(r["method"])
    ref_text = "–" if ref is None else " / ".join(f"{v:g}" for v in ref)
    return (f"| {catalog.title(r['method'])} | " + " | ".join(report.fmt(r, k) for k in keys)
            + f" | {ref_text} |")


def markdown(sel: pd.DataFrame, results, prov: str, experiment: str,
             on_coco: bool) -> dict[str, str]:
    """The tables' Markdown, titles and the paper's numbers from the sweep's plan."""
    out = {}
    plan, catalog = results.plan, results.catalog
    suite, profile, paper = plan.suite, plan.profile, plan.reference
    rows = _rows(sel, catalog)
    _title = catalog.title
    data = ("COCO 2017" if on_coco else
            "cluttered MNIST scenes" if suite.startswith("clutter") else "MNIST scenes")
    cell = report.fmt
    if experiment == "ooi":
        lines = ["| method | AP (%) | val AP | paper (COCO) | strength |", "|---|---|---|---|---|"]
        for r in rows:
            ref = paper.get("table2", {}).get(r["method"])
            lines.append(f"| {_title(r['method'])} | {cell(r, 'ap')} | {cell(r, 'val_ap')} | "
                         f"{'–' if ref is None else ref} | {report.strength_text(r, '–')} |")
        out["table2.md"] = "\n\n".join([
            f"# Table 2 — object-of-interest saliency AP, {data} (suite `{suite}`, profile `{profile}`)",
            "One GradCAM map of the common score per (test image, class in it) against the text "
            "\"the image contains {class}\"; precision = Σ S·M / Σ S against the class's mask; "
            "AP = mean over maps (%). Uniform = mask area fraction. Strength chosen on the "
            "validation split (`val AP`).",
            "\n".join(lines), _paper_note(on_coco), prov]) + "\n"
        return out
    lines = ["| method | AP_common | AP_ind | AP_ind−bg | paper (COCO) | strength | s_ind CV |",
             "|---|---|---|---|---|---|---|"]
    lines += [_line(r, TABLE3_KEYS, paper.get("table3", {}), catalog)
              + f" {report.strength_text(r, '–')} | "
              f"{_spread_cell(r)} |" for r in rows]
    out["table3.md"] = "\n\n".join([
        f"# Table 3 — pair saliency AP (%), {data} (suite `{suite}`, profile `{profile}`)",
        "Test pairs of images sharing one class; view 1 through extractor A, view 2 through "
        "extractor B (base rows: both through the same extractor, raw-feature scores). "
        "AP_common: common-score maps against the shared class; AP_ind: individual-score maps "
        "against the classes not shared; AP_ind−bg: the same with the background removed. Each "
        "pair averages its two images. Strength chosen on the validation split (mean of the "
        "three validation APs); cells are mean ± std over the seeds of the selected strength. "
        "s_ind CV: the individual score's coefficient of variation (std / mean) over the test "
        "pairs, averaged over the two views: near 0, the score is almost the same for every "
        "input and its gradient carries little about the image.",
        "\n".join(lines), individual_claim(rows, _title), _paper_note(on_coco), prov]) + "\n"
    lines = ["| method | cosine (Eq. 4) | dot | norm | paper (COCO) |", "|---|---|---|---|---|"]
    # a constant map has magnitude 100 by definition: no row
    lines += [_line(r, TABLE4_KEYS, paper.get("table4", {}), catalog) for r in rows
              if not catalog.constant_maps(r["method"])]
    out["table4.md"] = "\n\n".join([
        f"# Table 4 — common-score saliency magnitude on pairs with nothing in common, {data} "
        f"(suite `{suite}`, profile `{profile}`)",
        "Each common map normalised to max 1; magnitude = 100 × mean pixel value, averaged over "
        "both images and the test pairs. Lower is better: with nothing in common, a good common "
        "score should light up little. Same selected models as Table 3; mean ± std over seeds.",
        "\n".join(lines), cosine_claim(rows, catalog), _paper_note(on_coco), prov]) + "\n"
    return out


def _spread_cell(r: dict) -> str:
    return report.fmt(r, "ind_score_cv", 3) if "ind_score_cv_mean" in r else "–"


def individual_claim(rows: list[dict], _title=str, method: str = "muc2m_regu",
                     rivals=("uniform", "base_a", "base_b")) -> str:
    """Whether MUC2M w/ regu's AP_ind−bg is above uniform's and both base rows', outside the seed
    spread (its mean − std above the rival's mean + std)."""
    by = {r["method"]: r for r in rows if r.get("status") == "ok"}
    if method not in by:
        return ""
    ours = by[method]
    lo = ours["ap_ind_bg_mean"] - (ours["ap_ind_bg_std"] if ours["n_seeds"] > 1 else 0.0)
    verdicts = []
    for rival in rivals:
        if rival not in by:
            continue
        r = by[rival]
        hi = r["ap_ind_bg_mean"] + (r["ap_ind_bg_std"] if r["n_seeds"] > 1 else 0.0)
        if lo > hi:
            verdicts.append(f"above {_title(rival)} outside the spread")
        elif ours["ap_ind_bg_mean"] > r["ap_ind_bg_mean"]:
            verdicts.append(f"above {_title(rival)} but within the spread")
        else:
            verdicts.append(f"below {_title(rival)}")
    return (f"AP_ind−bg of {_title(method)}: " + "; ".join(verdicts) + "."
            if verdicts else "")


def cosine_claim(rows: list[dict], catalog) -> str:
    """Whether the paper's Table 4 claim holds here: the cosine score (Eq. 4) gives the smallest
    magnitude of the three, per row; "clearly" when its mean plus std is below the others'
    means minus theirs."""
    verdicts = []
    for r in rows:
        if catalog.constant_maps(r["method"]) or r.get("status") != "ok":
            continue
        mean = {k: r.get(f"mag_{k}_mean") for k in ("cosine", "dot", "norm")}
        if any(v is None or pd.isna(v) for v in mean.values()):
            continue
        std = {k: (0.0 if pd.isna(r.get(f"mag_{k}_std")) else r[f"mag_{k}_std"]) for k in mean}
        smallest = min(mean, key=mean.get)
        if smallest != "cosine":
            verdicts.append(f"{catalog.title(r['method'])}: no ({smallest} is smallest)")
            continue
        clear = all(mean["cosine"] + std["cosine"] < mean[k] - std[k] for k in ("dot", "norm"))
        verdicts.append(f"{catalog.title(r['method'])}: yes{'' if clear else ' (within the seed spread)'}")
    if not verdicts:
        return "The paper's claim (the cosine score gives the smallest magnitude): no rows to judge."
    held = sum(v.split(": ")[1].startswith("yes") for v in verdicts)
    return (f"The paper's claim (the cosine score, Eq. 4, gives the smallest magnitude) holds in "
            f"{held} of {len(verdicts)} rows here: " + "; ".join(verdicts) + ".")


def _selected_names(df: pd.DataFrame, sel: pd.DataFrame) -> pd.DataFrame:
    """The trial of the selected strength (seed 0, or the lowest seed) per (method, d): its
    gallery is the one shown."""
    rows = []
    for r in sel.itertuples():
        if r.status != "ok":
            continue
        cell = df[(df.method == r.method) & (df.d == r.d) & (df.status == "ok")]
        if not pd.isna(r.strength):
            cell = cell[cell.strength == r.strength]
        rows.append({"method": r.method, "d": r.d,
                     "gallery_trial": cell.sort_values("seed")["name"].iloc[0]})
    return pd.DataFrame(rows, columns=["method", "d", "gallery_trial"])


def renderer(experiment: str, on_coco: bool):
    """The suite's `render`: Table 2 (ooi) or Tables 3–4 (pairs), tables.csv, gallery.png."""
    def render(df, results, out_dir: Path):
        sel = report.select(df, "val_select")
        sel = sel.merge(_selected_names(df, sel), on=["method", "d"], how="left")
        texts = markdown(sel, results, report.provenance(df, results.plan), experiment, on_coco)
        written = []
        for fname, text in texts.items():
            (out_dir / fname).write_text(text)
            written.append(out_dir / fname)
        report.write_cells_csv(sel, out_dir / "tables.csv")
        written.append(out_dir / "tables.csv")
        galleries = {r.name: r.gallery for r in results.records if r.gallery}
        return written + gallery.draw(_rows(sel, results.catalog), galleries, results.catalog,
                                      out_dir, results.plan.suite, experiment), sel
    return render


def summarizer(experiment: str):
    keys = ("ap",) if experiment == "ooi" else TABLE3_KEYS + TABLE4_KEYS

    def summary(df: pd.DataFrame, results=None) -> str:
        sel = report.select(df, "val_select")
        lines = ["method       " + "".join(f"{k:>12}" for k in keys)]
        for r in sel.sort_values("method").itertuples():
            cells = [f"{getattr(r, f'{k}_mean', float('nan')):>12.1f}" if r.status == "ok"
                     else f"{r.status:>12}" for k in keys]
            lines.append(f"{r.method:<13}" + "".join(cells))
        return "\n".join(lines)
    return summary



