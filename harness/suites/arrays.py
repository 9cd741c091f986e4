"""`--suite arrays --data FILE`: a user's own two views (format: `harness.data.arrays`),
through the same two-view trial, metrics, MLflow tracking, tables and plots as MNIST halves.

The encoders are sized from the data (p1, p2 inputs); their hidden widths default to the
paper's (500, 300) and are set with `--hidden 64,32`. Recognition (Table 5) runs where the
file has labels; Table 1 has no paper numbers to show beside it.
"""
from __future__ import annotations

from harness.common import ConfigError
from harness.data.arrays import load_arrays
from harness.suites import register_suite
from harness.suites.two_view import cut_to_profile, two_view_suite


def _path(options: dict) -> str:
    if not options.get("data"):
        raise ConfigError("--suite arrays needs --data FILE: a .npz holding view1 (n × p1), "
                          "view2 (n × p2) and optionally labels (n,) and split (n,)")
    return options["data"]


def load(profile: str, options: dict) -> dict:
    return cut_to_profile(load_arrays(_path(options)), profile)


def check(options: dict) -> None:
    load_arrays(_path(options))  # every problem of the file, before Ray starts


SUITE = register_suite(two_view_suite(
    "arrays", "your own two views from --data FILE.npz (view1, view2, optional labels, split)",
    load, dims=(10,), check_inputs=check))
