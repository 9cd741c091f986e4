"""The paper's reference numbers (SPEC §5), by table, method and d."""

DIMS = (50, 100, 200, 500, 1000)

# Table 1: total correlation on the MNIST-halves test set (None = not reported).
TABLE1 = {
    "cca": (28.3, 34.2, 48.7, 74.0, None),
    "dcca": (29.5, 44.9, 59.0, 84.7, None),
    "dccae": (29.3, 44.2, 58.1, 84.4, None),
    "corrnet": (44.5, None, None, None, None),
    "sdcca": (46.4, 89.5, 166.1, 307.4, None),
    "softcca": (45.5, 87.0, 166.3, 356.8, 437.7),
    "muc2m": (46.1, 89.8, 169.8, 422.3, 638.2),
}

# Table 5: cross-modality recognition accuracy (%).
TABLE5 = {
    "cca": (70, 70, 70, 70, None),
    "dcca": (72, None, None, None, None),
    "dccae": (71, 75, 76, 79, None),
    "corrnet": (80, None, None, None, None),
    "sdcca": (80, 80, 81, 82, None),
    "softcca": (82, 84, 85, 86, 87),
    "muc2m": (87.1, 88.3, 88.8, 90.1, 90.9),
}


def paper_value(table: dict, method: str, d: int):
    row = table.get(method)
    if row is None or d not in DIMS:
        return None
    return row[DIMS.index(d)]

# Tables 2–4 (COCO 2017; the scenes suites are a different data set). Keys: our method names.
TABLE2 = {"uniform": 10.9, "contrastive": 20.6, "muc2m": 18.1, "muc2m_regu": 21.2}
# AP_common / AP_ind / AP_ind−bg; base A/B = the paper's base ResNet50 / base CLIP-ResNet50
TABLE3 = {"uniform": (14.9, 20.1, 65.5), "base_a": (16.5, 21.5, 65.1),
          "base_b": (18.9, 26.9, 57.4), "muc2m": (18.1, 26.9, 68.2),
          "muc2m_regu": (22.7, 27.5, 70.1)}
# saliency magnitude for the scores cosine (Eq. 4) / dot / norm; lower is better
TABLE4 = {"base_a": (16.2, 18.3, 47.6), "base_b": (2.6, 4.0, 11.7),
          "muc2m": (15.7, 16.6, 41.4), "muc2m_regu": (14.3, 16.2, 34.9)}
