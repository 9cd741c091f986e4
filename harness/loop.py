"""The one training loop every gradient method shares: batching, Adam epochs, validation,
best-state keeping, checkpoints and divergence handling.

`fit_loop` trains any module whose loss is `batch_loss(*views) -> {"loss": ..., other terms}`;
`train_epoch` is its epoch, reused by the benches and the extractor training.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.common import TrialDiverged, first_line, torch_save_atomic

CHECKPOINT_FILE = "trial_state.pt"
PREVIOUS_FILE = "trial_state.prev.pt"  # the checkpoint before the last: the fallback
CHECKPOINT_FORMAT = 3  # bump when the saved state changes; other versions are refused
EVAL_CHUNK = 8192


class Checkpoints:
    """A trial's checkpoints in a local folder: the latest and the one before it.

    `save` keeps the previous file, then writes the new one atomically. `load` returns the
    latest state that can be read and is of this format, else the previous one, else None
    (a fresh start); each file passed over costs one warning line naming it."""

    def __init__(self, folder, warn):
        self.folder, self.warn = Path(folder), warn
        self.latest, self.previous = self.folder / CHECKPOINT_FILE, self.folder / PREVIOUS_FILE

    def save(self, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.latest.exists():
            os.replace(self.latest, self.previous)
        torch_save_atomic({"format": CHECKPOINT_FORMAT, **state}, self.latest)

    def load(self, device, restore) -> dict | None:
        """The first usable state, after `restore(state)` accepted it (it may raise)."""
        candidates = [p for p in (self.latest, self.previous) if p.exists()]
        for i, path in enumerate(candidates):
            fallback = "its previous checkpoint" if i + 1 < len(candidates) else "a fresh start"
            try:
                state = torch.load(path, map_location=device, weights_only=True)
                found = state.get("format", 1) if isinstance(state, dict) else "unknown"
                if found != CHECKPOINT_FORMAT:
                    raise ValueError(f"it has checkpoint format v{found}, this harness reads "
                                     f"v{CHECKPOINT_FORMAT}")
                restore(state)
                return state
            except Exception as err:  # noqa: BLE001 - any unreadable file: the same one line
                self.warn(f"warning: checkpoint {path} cannot be used ({first_line(err)}); "
                          f"the trial goes on from {fallback}")
        return None


def batches(views, order: torch.Tensor, batch: int):
    """Each full batch of `order` taken from every view (the last partial batch is dropped,
    so every batch exceeds d and batch-norm sees full batches). `index_select` gathers the
    same rows as `view[idx]` at a fifth of its cost on CPU (a tenth of a bf16 epoch)."""
    for b in range(len(order) // batch):
        idx = order[b * batch:(b + 1) * batch]
        yield tuple(view.index_select(0, idx) for view in views)


def train_epoch(optimizer, batch_loss, batch_iter, after_step=None) -> dict:
    """One Adam step per batch of `batch_iter`; returns each scalar loss term summed over the
    epoch as a device tensor (no host synchronisation: the caller reads them when it must)."""
    sums: dict[str, torch.Tensor] = {}
    for views in batch_iter:
        terms = batch_loss(*views)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        for key, value in terms.items():
            if torch.is_tensor(value) and value.ndim == 0:
                if key not in sums:  # float32 sums, whatever a term's dtype
                    sums[key] = torch.zeros((), device=value.device)
                sums[key] += value.detach()
    return sums


@torch.no_grad()
def represent_all(represent, h1, h2, chunk: int = EVAL_CHUNK):
    """Representations of a whole split, in chunks (models in eval mode), float64 on the CPU."""
    outs = [represent(h1[i:i + chunk], h2[i:i + chunk]) for i in range(0, len(h1), chunk)]
    z1, z2 = (torch.cat([o[k] for o in outs]).double().cpu() for k in (0, 1))
    if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
        raise TrialDiverged("representations contain NaN/inf")
    return z1, z2


def state_copy(module_or_dict):
    items = module_or_dict.state_dict() if hasattr(module_or_dict, "state_dict") else module_or_dict
    return {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in items.items()}


@dataclass(frozen=True)
class Convergence:
    """When training stops before its cap of epochs, and how the learning rate decays.

    A validation pass gains when it beats the score of the last gain by more than
    `min_delta` (relative), so a run creeping up by less has converged though its best still
    moves. After `patience` passes without a gain, training stops (0: train every epoch).
    With `decay` < 1 the learning rate is multiplied by it after `decay_after` passes without
    a gain (PyTorch's ReduceLROnPlateau), so a run that has stalled at one rate gets a smaller
    one before it is called converged."""
    patience: int = 0
    min_delta: float = 0.0
    decay: float = 1.0
    decay_after: int = 0

    @property
    def on(self) -> bool:
        return self.patience > 0


def converged(history: list, patience: int) -> bool:
    """Whether a trial's history ends converged: its last `patience` validation passes did
    not improve (`since_best`, written by `fit_loop`). Without the rule: never."""
    return bool(patience) and bool(history) and history[-1].get("since_best", 0) >= patience


def fit_loop(module, batch_loss, train, *, epochs: int, batch: int, lr: float, seed: int,
             eval_every: int = 1, validate=None, val_key: str = "val_corr", maximize: bool = True,
             state: dict | None = None, checkpoint_dir=None, name: str = "trial", log=None,
             report=None, warn=None, convergence: Convergence = Convergence()):
    """Adam on `module`'s trainable parameters over shuffled full batches (`batches`) of the
    device-resident views `train`.

    batch_loss(h1, h2) -> {"loss": ..., other scalar terms} may update `state` (running
    statistics) in place. Every `eval_every` epochs and at the last, `validate()` scores the
    module (None: keep the last state) and a history row records the epoch's mean of every
    loss term; the best state is restored at the end. With `checkpoint_dir`, the full state
    (module, optimizer, `state`, RNGs, epoch, history, best) is saved there at each validation
    pass and restored from it on the next call; one that cannot be used is passed over with a
    `warn` line (default: stderr). With `convergence`, training stops early once validation
    stops improving (`Convergence`); each history row records the learning rate and the
    validation passes since the last improvement (`since_best`). Returns (history,
    best_epoch, resumed_from).
    """
    log = log or (lambda msg: None)
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    state = {} if state is None else state
    device = train[0].device
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    mode = "max" if maximize else "min"
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=convergence.decay, patience=convergence.decay_after,
        threshold=convergence.min_delta, threshold_mode="rel") if (
        validate is not None and convergence.decay < 1) else None
    shuffle = torch.Generator(device="cpu").manual_seed(seed)
    history, best, start_epoch = [], None, 0

    checkpoints = Checkpoints(checkpoint_dir, warn) if checkpoint_dir else None
    if checkpoints:
        fresh = {"model": state_copy(module), "optimizer": optimizer.state_dict(),
                 "plateau": plateau.state_dict() if plateau else None,
                 "method_state": state_copy(state), "shuffle_rng": shuffle.get_state(),
                 "torch_rng": torch.get_rng_state()}

        def load_into_place(saved):
            module.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            if plateau is not None and saved.get("plateau") is not None:
                plateau.load_state_dict(saved["plateau"])
            state.update({k: v.to(device) for k, v in saved["method_state"].items()})
            shuffle.set_state(saved["shuffle_rng"])
            torch.set_rng_state(saved["torch_rng"])

        def restore(saved):
            """Load a saved state; if any part fails, put the fresh one back and raise."""
            try:
                load_into_place(saved)
                for key in ("history", "best", "epoch"):
                    saved[key]  # noqa: B018 - every key must be there
            except Exception:
                load_into_place(fresh)
                raise

        saved = checkpoints.load(device, restore)
        if saved is not None:
            history, best, start_epoch = saved["history"], saved["best"], saved["epoch"]
            log(f"{name}: resumed from epoch {start_epoch}")

    def guarded_loss(*views):
        try:
            return batch_loss(*views)
        except torch.linalg.LinAlgError as err:
            raise TrialDiverged(f"linear algebra failed at epoch {epoch}: {err}") from None

    sign = 1.0 if maximize else -1.0
    n = train[0].shape[0]
    n_batches = n // batch
    epoch_started = time.time()
    # the score the stopping rule compares with: the best by more than min_delta (a run
    # creeping up by less than that has converged, though its best still moves)
    mark = next((r[val_key] for r in reversed(history) if r.get("since_best") == 0), None)
    if converged(history, convergence.patience):  # resumed after it had converged
        start_epoch = epochs = max(start_epoch, history[-1]["epoch"])
    for epoch in range(start_epoch + 1, epochs + 1):
        module.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        sums = train_epoch(optimizer, guarded_loss, batches(train, order, batch))
        if epoch % eval_every and epoch != epochs:
            continue
        # Validation pass (the only host sync of the epoch loop).
        train_loss = float(sums["loss"]) / n_batches
        if not math.isfinite(train_loss):
            raise TrialDiverged(f"training loss became {train_loss} at epoch {epoch}")
        row = {"epoch": epoch, "loss": train_loss,
               "terms": {k: float(v) / n_batches for k, v in sums.items() if k != "loss"}}
        if validate is not None:
            row[val_key] = float(validate())
        if convergence.on and validate is not None:
            row["lr"] = optimizer.param_groups[0]["lr"]
            improved = mark is None or sign * (row[val_key] - mark) > convergence.min_delta * abs(mark)
            mark = row[val_key] if improved else mark
            row["since_best"] = 0 if improved else history[-1].get("since_best", 0) + 1
            if plateau is not None:
                plateau.step(row[val_key])
        history.append(row)
        if validate is None or best is None or sign * row[val_key] > sign * best["score"]:
            best = {"score": row.get(val_key), "epoch": epoch, "model": state_copy(module)}
        seconds_per_epoch = (time.time() - epoch_started) / (epoch - start_epoch)
        val_text = f" {val_key} {row[val_key]:.4g}" if validate is not None else ""
        log(f"{name}: epoch {epoch}/{epochs} loss {train_loss:.4f}{val_text} "
            f"({seconds_per_epoch:.2f} s/epoch)")
        if checkpoints:
            checkpoints.save({"epoch": epoch, "model": state_copy(module),
                              "optimizer": optimizer.state_dict(),
                              "plateau": plateau.state_dict() if plateau else None,
                              "method_state": state_copy(state),
                              "shuffle_rng": shuffle.get_state(),
                              "torch_rng": torch.get_rng_state(),
                              "history": history, "best": best})
        if report:
            report(epoch, row)
        if converged(history, convergence.patience):
            log(f"{name}: converged at epoch {epoch} (no validation gain above "
                f"{convergence.min_delta:.1%} in {convergence.patience} passes)")
            break
    if best is not None:
        module.load_state_dict(best["model"])
    module.eval()
    return history, (best["epoch"] if best else start_epoch), start_epoch
