"""How well a sweep's whole-protocol ETA foretold its end.

    python -m harness.bench.eta runs/mnist_halves-quick [--from 10] [--tolerance 0.25]

reads the sweep folder's `progress.jsonl` (written by `harness.run`), and for each run of the
sweep that finished prints one JSON line: the run's wall time, how many ETAs were checked (from
the `--from`-th trial ended in that run on), the median and the worst relative error of the ETA
against the time that was really left, and the share within `--tolerance`. `--verbose` adds a
line per ended trial (minutes left, ETA, error). `--shown LOG` checks instead the ETAs that
the live lines of a captured stderr showed at each trial's end (to the minute, or the tenth of
an hour): for a sweep run while the two could differ.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from harness.cli import OneLineParser, UsageError, run_cli
from harness.progress import check_eta, read_runs

# "[12/90 ended: ... | 1 running, ETA 5 min this phase, 1.8 h in all] NAME message"
ENDED_LINE = re.compile(r"^\[\d+/\d+ ended: .*, ([\d.]+) (h|min|s) in all\] (\S+) (.*)$")
UNIT_S = {"h": 3600.0, "min": 60.0, "s": 1.0}


def shown_etas(log_text: str) -> dict[str, float]:
    """{trial: the whole-protocol ETA, in seconds, on the line that announced its end}; the
    lines a running trial prints ("NAME epoch N val_corr X") are not ends."""
    shown: dict[str, float] = {}
    for line in log_text.splitlines():
        m = ENDED_LINE.match(line)
        if m and not re.match(r"epoch \d+ val_corr ", m.group(4)):
            shown.setdefault(m.group(3).rstrip(":"), float(m.group(1)) * UNIT_S[m.group(2)])
    return shown


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m harness.bench.eta",
                           description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--from", dest="from_trial", type=int, default=10,
                        help="check ETAs from this ended trial of a run on (default 10)")
    parser.add_argument("--tolerance", type=float, default=0.25)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--shown", type=Path, metavar="LOG",
                        help="check the ETAs this captured stderr of the sweep showed")

    def go(argv):
        args = parser.parse_args(argv)
        path = args.folder / "progress.jsonl"
        if not path.is_file():
            raise UsageError(f"{path}: no such file; give a sweep folder written by "
                             f"harness.run (it records its ETAs there)")
        shown = None
        if args.shown is not None:
            if not args.shown.is_file():
                raise UsageError(f"{args.shown}: no such file; give the sweep's captured stderr")
            shown = shown_etas(args.shown.read_text(errors="replace"))
            if not shown:
                raise UsageError(f"{args.shown}: no trial-end line with a whole-protocol ETA")
        checked = 0
        for i, run in enumerate(read_runs(path)):
            if shown is not None:
                run = [{**r, "eta_s": shown.get(r["trial"])} if r.get("event") == "ended"
                       else r for r in run]
            try:
                result = check_eta(run, args.from_trial, args.tolerance)
            except ValueError as err:
                print(json.dumps({"run": i, "skipped": str(err)}))
                continue
            checked += 1
            print(json.dumps({"run": i, "run_minutes": round(result.run_minutes, 1),
                              "checked": result.checked,
                              "median_error": round(result.median_error, 3),
                              "worst_error": round(result.worst_error, 3),
                              f"within_{args.tolerance:g}": round(result.within, 3)}))
            if args.verbose:
                for n, left, eta_min, error in result.errors:
                    print(f"  trial {n}: {left:.1f} min left, ETA {eta_min:.1f} min, "
                          f"error {error:+.1%}")
        if not checked:
            raise UsageError(f"{path}: no run finished, so no ETA can be checked yet")
        return 0
    return run_cli(go, argv)


if __name__ == "__main__":
    sys.exit(main())
