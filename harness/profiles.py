"""Training profiles: how long and how hard every gradient method trains.

`paper` is Appendix 7.4.2 (Adam, lr 2e-4, batch 2048, 1000 epochs). `quick` keeps the paper's
network and batch but trains far fewer epochs at a higher learning rate, sized so the whole
quick `mnist_halves` sweep fits in about 90 minutes on a 2-core CPU (see README, "Profiles").
`smoke` trains on a small subset for seconds: for tests only.
"""
from __future__ import annotations

from dataclasses import dataclass


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
    epochs_by_d: tuple = ()  # ((d_max, epochs), ...): fewer epochs where an epoch costs more
    budgeted: bool = False   # divide epochs by a method's `epoch_cost` (a time budget per trial)

    def epochs_for(self, d: int, epoch_cost: float = 1.0) -> int:
        epochs = self.epochs
        for d_max, epochs_at_d in self.epochs_by_d:
            if d <= d_max:
                epochs = epochs_at_d
                break
        if self.budgeted and epoch_cost > 1:
            epochs = max(self.eval_every, round(epochs / epoch_cost))
        return epochs


PROFILES = {
    "paper": Profile("paper", batch=2048, lr=2e-4, epochs=1000, eval_every=10),
    # Measured on the 2-core CPU: one epoch costs ~2 s at d ≤ 100 and 10–25 s at d = 1000
    # (DCCA's float64 SVD), hence fewer epochs at large d; DCCAE's and CorrNet's epochs cost
    # 2.2x and 3.5x DCCA's (their decoders), hence `budgeted`. 50 epochs at d ≤ 100 (not 60)
    # keep the whole sweep under 90 min: validation correlations at epoch 50 were within
    # 1 of epoch 60 for every selected trial (README, "Profiles").
    "quick": Profile("quick", batch=2048, lr=1e-3, epochs=5, eval_every=5,
                     epochs_by_d=((100, 50), (200, 30), (500, 10)), budgeted=True),
    "smoke": Profile("smoke", batch=256, lr=1e-3, epochs=4, eval_every=2,
                     n_train=2000, n_val=500, n_test=1000, val_fit_n=2000),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]
