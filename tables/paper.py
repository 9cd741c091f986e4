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
