"""A suite = a data set + the methods and dimensions it sweeps + the tables it feeds.

Saliency suites plug in here the same way: a name, a loader, a trial function, default
methods and dims, and the table builders that read its stored results.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness import train


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    methods: tuple[str, ...]
    dims: tuple[int, ...]
    load_data: Callable            # (profile_name, options dict) -> data handed to every trial
    run_trial: Callable            # harness.train.run_trial or a suite's own
    tables: tuple[str, ...]        # paper tables this suite regenerates


SUITES = {
    "mnist_halves": Suite(
        name="mnist_halves",
        description="MNIST left/right halves: total correlation (Table 1), recognition (Table 5)",
        methods=("cca", "dcca", "dccae", "corrnet", "sdcca", "softcca", "muc2m"),
        dims=(50, 100, 200, 500, 1000),
        load_data=lambda profile, options: train.load_data(profile, options.get("mnist_dir")),
        run_trial=train.run_trial,
        tables=("table1", "table5"),
    ),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    return SUITES[name]
