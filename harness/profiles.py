"""Training profiles: how long and how hard every gradient method trains.

`paper` is Appendix 7.4.2 (Adam, lr 2e-4, batch 2048, 1000 epochs). `quick` keeps the paper's
network and batch but trains far fewer epochs at a higher learning rate, sized so the whole
quick `mnist_halves` sweep fits in about 90 minutes on a 2-core CPU (see README, "Profiles").
`smoke` trains on a small subset for seconds: for tests only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    batch: int
    lr: float
    epochs: int
    eval_every: int          # epochs between validation passes (and checkpoints)
    n_train: int | None = None  # subset sizes; None = the full split
    n_val: int | None = None
    n_test: int | None = None
    val_fit_n: int = 10000   # train rows the validation CCA is fitted on

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "paper": Profile("paper", batch=2048, lr=2e-4, epochs=1000, eval_every=10),
    "quick": Profile("quick", batch=2048, lr=1e-3, epochs=20, eval_every=5),
    "smoke": Profile("smoke", batch=256, lr=1e-3, epochs=4, eval_every=2,
                     n_train=2000, n_val=500, n_test=1000, val_fit_n=2000),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]
