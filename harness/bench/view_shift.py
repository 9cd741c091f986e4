"""Why a reported trial's cross-modal recognition is low: are its two views' codes shifted?

    python -m harness.bench.view_shift runs/mnist_halves-quick --method corrnet

Recognition trains a linear SVM on view-1 codes and tests it on view-2 codes, both
standardised with the view-1 training statistics (`metrics.cross_modal_recognition`). Codes
that correlate dimension by dimension can still differ in mean or scale between the views,
and such a shift moves every view-2 code across the classifier's boundaries. For each
reported trial of the method, from its checkpoint (the run's `checkpoints/` folder), this
prints one JSON line: per dimension, the median of |mean2 − mean1| / std1, of |std2/std1 − 1|
and of the two views' correlation, on the test split; then recognition as the tables measure
it, and again with each view standardised by its own statistics (a diagnosis only: the
tables keep the protocol).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from harness import metrics
from harness.cli import OneLineParser, UsageError, run_cli


def shift_stats(z1: np.ndarray, z2: np.ndarray, labels=None) -> dict:
    """The view-2 codes' shift from view 1's, per dimension (medians), and recognition with
    the protocol's scaling and with each view scaled by its own statistics."""
    mean1, std1 = z1.mean(0), z1.std(0)
    out = {"offset_median": float(np.median(np.abs(z2.mean(0) - mean1) / std1)),
           "scale_median": float(np.median(np.abs(z2.std(0) / std1 - 1))),
           "corr_median": float(np.median([np.corrcoef(a, b)[0, 1]
                                           for a, b in zip(z1.T, z2.T)]))}
    if labels is not None:
        own = lambda z: (z - z.mean(0)) / z.std(0)  # noqa: E731 - each view its own scale
        out["recog_acc"] = 100 * metrics.cross_modal_recognition(z1, z2, labels)[0]
        out["recog_acc_own_scaling"] = 100 * metrics.cross_modal_recognition(
            own(z1), own(z2), labels)[0]
    return out


def trial_codes(trial: dict, folder: Path, suite, data) -> tuple[np.ndarray, np.ndarray]:
    """The test codes of a finished trial's best state, read from its checkpoint."""
    from harness.loop import CHECKPOINT_FILE, represent_all
    from harness.models import TwoViewModel
    from harness.suites.two_view import to_device

    cfg, spec, _, _ = suite.begin(trial, "cpu")
    path = folder / "checkpoints" / trial["name"] / CHECKPOINT_FILE
    if not path.is_file():
        raise UsageError(f"{path}: no checkpoint; run this on the folder the sweep wrote "
                         f"(checkpoints are not committed)")
    test = to_device(data["test"], "cpu")
    model = TwoViewModel.for_method(spec, test[0].shape[1], test[1].shape[1], cfg["d"],
                                    cfg["hidden"], cfg["precision"], factored=cfg["factored"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["best"]["model"])
    model.eval()
    with torch.no_grad():
        z1, z2 = represent_all(model.represent, *test)
    return np.asarray(z1.double()), np.asarray(z2.double())


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m harness.bench.view_shift",
                           description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a sweep folder with its checkpoints")
    parser.add_argument("--method", required=True)

    def go(argv):
        from harness.ledger import Plan
        from harness.suites import get_suite

        args = parser.parse_args(argv)
        if not (args.folder / "plan.json").is_file():
            raise UsageError(f"{args.folder}: no plan.json; give a sweep folder")
        plan = Plan.load(args.folder)
        trials = [t for t in plan.trials if t["method"] == args.method and not t.get("phase")]
        if not trials:
            raise UsageError(f"{args.folder} has no reported trial of {args.method}")
        suite = get_suite(plan.suite)
        data = suite.load_data(plan.profile, trials[0])
        for trial in trials:
            z1, z2 = trial_codes(trial, args.folder, suite, data)
            row = {"trial": trial["name"], **shift_stats(z1, z2, data["test"].y)}
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
        return 0

    return run_cli(go, argv)


if __name__ == "__main__":
    sys.exit(main())
