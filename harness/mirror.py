"""Write a sweep folder's ledger to an MLflow store: each trial once, however often it runs.

    python -m harness.mirror FOLDER [--mlflow-uri URI]

For a store that was lost, moved or never written (a committed results folder): the sweep's
run is the one its folder records (`sweep_run_id`) where the store has it, else a new one,
and every record of the ledger that the store lacks is logged. The tables do not need it:
they are built from the folder (`python -m tables.build FOLDER`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import tracking
from harness.common import HarnessError
from harness.ledger import Ledger, Plan


def mirror(folder: Path, uri: str) -> tuple[str, int]:
    """(the sweep's run id, how many records the store holds afterwards)."""
    plan = Plan.load(folder)
    records = Ledger(folder).records()
    store = tracking.Mirror.open(uri, Path(folder).parent / "mlartifacts", plan.suite,
                                 plan.profile, folder,
                                 {"profile": plan.profile, "rebuilt_from": "ledger"}, resume=True)
    if store.sync(records):
        raise tracking.TrackingError(f"the MLflow store {uri} did not take every trial; "
                                     f"run the same command again when it is reachable")
    return store.sweep_id, len(tracking.prepare_resume(store.client, store.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.mirror", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a sweep folder (plan.json + records.jsonl)")
    parser.add_argument("--mlflow-uri", default=None,
                        help="the store (default: sqlite:///<FOLDER>/../mlflow.db, beside the "
                        "folder as harness.run keeps it)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    uri = args.mlflow_uri or tracking.default_uri(folder.parent)
    try:
        run_id, held = mirror(folder, uri)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"sweep {run_id} in {uri}: {held} trials, each once\nbrowse it: "
          f"{tracking.ui_command(uri)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
