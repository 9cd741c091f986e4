"""One trial, no Ray: the single-trial CLI.

    python -m harness.train --method muc2m --d 50 [--strength X] [--seed S] [--profile quick]
        [--suite mnist_halves]

prints progress on stderr and the trial's record (`harness.record.TrialRecord`) as one JSON
object on the last line of stdout. It runs `Suite.trial`, the very function a sweep's Ray
workers run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import registry
from harness.cli import add_suite_options, suite_options
from harness.common import (ConfigError, HarnessError, TrialDiverged, check_writable,
                            default_device)
from harness.models import PRECISIONS
from harness.suites import all_suites, get_suite


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, for example --set gamma=0.1")
        try:
            out[key] = float(value)
        except ValueError:  # a text parameter, e.g. --set ind_score=pre_bn
            out[key] = value
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="mnist_halves", help="the suite whose data and "
                        "trial to run (default mnist_halves)")
    parser.add_argument("--method", required=True, help="a registered method (cca, dcca, ...)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="a module (name or .py file) that registers methods; repeatable")
    parser.add_argument("--d", required=True, type=int, help="latent dimension")
    parser.add_argument("--strength", type=float, help="the method's swept strength "
                        "(default: the method's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="quick", help="paper | quick | smoke (default quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override another parameter of the method, e.g. --set gamma=0.1")
    parser.add_argument("--epochs", type=int, help="override the profile's epochs")
    parser.add_argument("--lr", type=float, help="override the profile's learning rate")
    parser.add_argument("--patience", type=int, help="validation passes without gain before "
                        "training stops (0: every epoch; default: the profile's)")
    parser.add_argument("--checkpoint-dir", help="save/restore the full trial state here")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="the networks' arithmetic: fp32 or bf16 (mixed precision: bf16 "
                        "matmuls, fp32 weights, objectives unchanged); default: the profile's "
                        "(bf16 for quick, fp32 otherwise)")
    add_suite_options(parser, all_suites())  # --data, --mnist-dir, --hidden, ...
    args = parser.parse_args(argv)
    try:
        for plugin in args.plugin:
            registry.load_plugin(plugin)
        suite = get_suite(args.suite)
        options = suite_options(args, suite)  # the suite's own options, checked
        suite.check_inputs(options)  # e.g. a bad --data file: one line, before any work
        config = {"method": args.method, "d": args.d, "strength": args.strength, "seed": args.seed,
                  "profile": args.profile, "overrides": parse_overrides(args.overrides),
                  "epochs": args.epochs, "lr": args.lr, "precision": args.precision,
                  "patience": args.patience, **options}
        suite.resolve(config)  # refuse bad input before loading data
        default_device(args.device)
        if args.checkpoint_dir:
            check_writable(Path(args.checkpoint_dir), "--checkpoint-dir")
        data = suite.load_data(args.profile, options)
        record = suite.trial(config, data=data, checkpoint_dir=args.checkpoint_dir,
                             device=args.device, log=lambda msg: print(msg, file=sys.stderr,
                                                                      flush=True))
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the checkpoint"
              if args.checkpoint_dir else "interrupted", file=sys.stderr)
        return 130
    except (HarnessError, TrialDiverged) as err:  # bad input, or a configuration that diverged
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyError as err:  # an unknown suite
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    out = record.to_dict()
    out.pop("gallery", None)  # pixels, not a result to read
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
