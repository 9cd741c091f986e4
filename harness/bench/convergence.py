"""How many epochs a method needs to converge under a learning-rate schedule, and what it
reaches: the measurement behind the quick profile's convergence rule.

    python -m harness.bench.convergence --method muc2m --d 200 --lr 1e-3 --decay 0.3 \\
        --decay-after 2 --patience 5 --cap 300 --precision fp32

trains one trial (the method's registry defaults, seed 0, the quick profile's data, batch and
network) under the given rule and prints one JSON line: epochs trained, whether the rule
stopped it (converged) or the cap did, its best validation correlation and epoch, test
`corr_heldout` and `corr_diag`, the learning rate it ended at, and seconds. Compare the line
with the same method trained as the paper trains (`harness.train --profile paper`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from harness.cli import OneLineParser, run_cli
from harness.loop import converged
from harness.profiles import FAMILIES


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m harness.bench.convergence",
                           description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="mnist_halves")
    parser.add_argument("--method", required=True)
    parser.add_argument("--d", type=int, required=True)
    parser.add_argument("--profile", default="quick", help="whose data, batch and network")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decay", type=float, default=1.0, help="lr factor on a plateau "
                        "(1: a constant rate)")
    parser.add_argument("--decay-after", type=int, default=2, help="passes without gain "
                        "before the rate decays")
    parser.add_argument("--patience", type=int, default=5, help="passes without gain before "
                        "training stops")
    parser.add_argument("--min-delta", type=float, default=0.002, help="relative gain that "
                        "counts as one")
    parser.add_argument("--cap", type=int, default=300, help="at most this many epochs")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default=None)
    args = parser.parse_args(argv)

    def run(args) -> int:
        from harness.suites import get_suite
        suite = get_suite(args.suite)
        base = suite.profile(args.profile)
        # this process's profile carries the rule under test (the registry's is unchanged)
        FAMILIES[suite.family][args.profile] = dataclasses.replace(
            base, lr=args.lr, epochs=args.cap, epochs_by_d=(), budgeted=False,
            eval_every=args.eval_every, patience=args.patience, min_delta=args.min_delta,
            lr_decay=args.decay, decay_after=args.decay_after)
        config = {"method": args.method, "d": args.d, "seed": args.seed,
                  "profile": args.profile, "precision": args.precision}
        suite.resolve(config)
        data = suite.load_data(args.profile, {})
        started = time.time()
        rec = suite.trial(config, data=data, log=lambda msg: print(msg, file=sys.stderr,
                                                                   flush=True))
        history = rec.history
        print(json.dumps({
            "method": args.method, "d": args.d, "lr": args.lr, "decay": args.decay,
            "decay_after": args.decay_after, "patience": args.patience,
            "min_delta": args.min_delta, "cap": args.cap, "precision": rec.precision,
            "epochs_trained": history[-1]["epoch"] if history else 0,
            "converged": converged(history, args.patience),
            "best_epoch": rec.metrics.get("best_epoch"),
            "val_corr_best": round(rec.metrics.get("val_corr_best", float("nan")), 2),
            "corr_heldout": round(rec.metrics.get("corr_heldout", float("nan")), 2),
            "corr_diag": round(rec.metrics.get("corr_diag", float("nan")), 2),
            "final_lr": history[-1].get("lr") if history else None,
            "seconds": round(time.time() - started, 1), "status": rec.status}), flush=True)
        return 0 if rec.status == "ok" else 1
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
