"""Start the MLflow UI on a sweep's store and print where its trials are.

    python -m harness.ui runs                      # an --out folder (its mlflow.db)
    python -m harness.ui sqlite:///runs/mlflow.db  # or the store's URI
    python -m harness.ui runs --print-only         # the URLs, without starting the UI

For every sweep in the store (newest first) it prints the URL of its runs table, of its chart
view and of its trials grouped by seed; then runs `mlflow ui` on 127.0.0.1 until Ctrl-C. The
URLs open the experiment's runs in the UI's "Model training" view, whatever the UI showed last.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness import tracking
from harness.common import first_line


def store_uri(target: str) -> str:
    """An --out folder (or a sweep folder inside one), a .db file, or a URI, as a store URI."""
    if "://" in target:
        return target
    path = Path(target)
    if path.suffix == ".db":
        return f"sqlite:///{path.resolve()}"
    for folder in (path, path.parent):
        if (folder / "mlflow.db").exists():
            return tracking.default_uri(folder)
    raise SystemExit(f"error: {target}: no mlflow.db there (nor in its parent folder); give a "
                     f"sweep's --out folder or its --mlflow-uri")


def sweeps(client) -> list:
    """Every sweep run in the store, newest first."""
    exps = client.search_experiments(max_results=1000)
    if not exps:
        return []
    return client.search_runs([e.experiment_id for e in exps], "tags.kind = 'sweep'",
                              max_results=1000, order_by=["attributes.start_time DESC"])


def urls(client, host: str, port: int) -> list[tuple[str, dict]]:
    """(sweep label, {table, charts, seeds}) per sweep; writes each sweep's shared views (a
    store from before they existed gets them here)."""
    out = []
    for parent in sweeps(client):
        tracking.share_views(client, parent)
        out.append((f"{parent.info.run_name} ({parent.info.run_id[:8]})", {
            "table": tracking.runs_url(parent, host, port),
            "charts": tracking.runs_url(parent, host, port, charts=True),
            "seeds": tracking.runs_url(parent, host, port, seeds_grouped=True)}))
    return out


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "health", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.ui", description=__doc__.split("\n")[0])
    p.add_argument("store", nargs="?", default="runs", help="a sweep's --out folder (default "
                   "./runs), its mlflow.db, or a tracking URI")
    p.add_argument("--host", default=tracking.UI_HOST)
    p.add_argument("--port", type=int, default=tracking.UI_PORT)
    p.add_argument("--print-only", action="store_true", help="print the URLs; start no UI")
    args = p.parse_args(argv)
    uri = store_uri(args.store)
    try:
        client = tracking.open_client(uri)
        found = urls(client, args.host, args.port)
    except tracking.TrackingError as err:
        print(f"error: {first_line(err)}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: no sweep in {uri}", file=sys.stderr)
        return 2
    for label, links in found:
        print(f"sweep {label}\n  trials: {links['table']}\n  charts: {links['charts']}\n"
              f"  seeds grouped: {links['seeds']}", flush=True)
    if args.print_only:
        return 0
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1"]  # starts in
    # seconds on a small machine (the default 4 take ~40 s on 2 cores); one is enough for one
    # person's browser
    proc = subprocess.Popen(cmd, env={**os.environ, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "1"})
    signal.signal(signal.SIGTERM, _interrupt)  # a `kill`: stop the UI with it
    try:
        if wait_until_up(f"http://{args.host}:{args.port}/", proc):
            print(f"\nthe MLflow UI is up: open {found[0][1]['table']}  (Ctrl-C stops it)",
                  flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)
        return 0


if __name__ == "__main__":
    sys.exit(main())
