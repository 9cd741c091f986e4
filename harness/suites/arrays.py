"""`--suite arrays --data FILE`: a user's own two views (format: `harness.data.arrays`),
through the same two-view trial, metrics, MLflow tracking, tables and plots as MNIST halves.

The encoders are sized from the data (p1, p2 inputs); their hidden widths default to the
paper's (500, 300) and are set with `--hidden 64,32`. Recognition (Table 5) runs where the
file has labels; Table 1 has no paper numbers to show beside it.

Every trial is checked against the file before Ray starts (`ArraysSuite.resolve`, which the
planner calls for each): fewer training pairs than d, or a view constant over the training
pairs, is one line and exit 2; fewer training pairs than the profile's batch runs, its batch
capped to the training split (said once).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import sys

from harness import registry
from harness.common import ConfigError
from harness.data.arrays import load_arrays
from harness.suites import Suite, register_suite
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


@functools.lru_cache(maxsize=2)
def _training_facts(path: str, stamp: tuple, n_train: int | None) -> tuple:
    """(training pairs, the constant view or None) of the file's training split as a profile
    cuts it; `stamp` (mtime, size) keys the cache, so an edited file is read again."""
    train = load_arrays(path)["train"].head(n_train)
    constant = next((name for name, x in (("view1", train.x1), ("view2", train.x2))
                     if (x == x[:1]).all()), None)
    return len(train.x1), constant


_SAID: set = set()  # the batch notes this process has printed (once each)


class ArraysSuite(Suite):
    """The two-view suite on a user's file, whose trials are also checked against the file."""

    def resolve(self, config: dict) -> dict:
        cfg = super().resolve(config)
        if not config.get("data"):  # no file yet: loading it says what to pass
            return cfg
        path = str(config["data"])
        try:
            st = os.stat(path)
        except OSError:
            load_arrays(path)  # its one line: no such file
            raise
        n, constant = _training_facts(path, (st.st_mtime_ns, st.st_size),
                                      self.profile(cfg["profile"]).n_train)
        d, profile = cfg["d"], cfg["profile"]
        if n < d:
            raise ConfigError(f"{path}: {n} training pairs (profile {profile}), fewer than the "
                              f"d={d} components asked for: no more than {n} can be estimated; "
                              f"use --dims {n} or less, or a file with more training pairs")
        if constant:
            raise ConfigError(f"{path}: {constant} is constant over the {n} training pairs (no "
                              f"column varies), so there is nothing to correlate")
        if registry.get(cfg["method"]).two_view.closed_form is None and cfg["batch"] > n:
            if n <= d:
                raise ConfigError(f"{path}: {n} training pairs cap the batch at {n}, not larger "
                                  f"than d={d}: {self.batch_must_exceed_d}; use d < {n}")
            note = (f"note: {path}: {n} training pairs, fewer than the batch of "
                    f"{cfg['batch']} (profile {profile}): the networks train on batches of {n}, "
                    f"the whole training split")
            if note not in _SAID:
                _SAID.add(note)
                print(note, file=sys.stderr, flush=True)
            cfg["batch"] = n
        return cfg


_BASE = two_view_suite(
    "arrays", "your own two views from --data FILE.npz (view1, view2, optional labels, split)",
    load, dims=(10,), check_inputs=check, options=("data", "hidden"))
SUITE = register_suite(ArraysSuite(**{f.name: getattr(_BASE, f.name)
                                      for f in dataclasses.fields(_BASE)}))
