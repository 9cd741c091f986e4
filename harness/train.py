"""The one training loop every gradient method shares, and the single-trial CLI.

    python -m harness.train --method muc2m --d 50 [--strength X] [--seed S] [--profile quick]

prints progress on stderr and the trial's result as one JSON object on the last line of stdout.
`run_trial` is the function the Ray runner calls too: Ray only schedules it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from harness import metrics
from harness.data import mnist_halves
from harness.models import PRECISIONS, TwoViewModel
from harness.profiles import get_profile
from harness.registry import get as get_method

CHECKPOINT_FILE = "trial_state.pt"
EVAL_CHUNK = 8192


class ConfigError(ValueError):
    """A trial configuration that cannot run; the message says what to change."""


class TrialDiverged(RuntimeError):
    """The loss or the representations became NaN/inf."""


def run_name(method: str, d: int, strength_name: str | None, strength, seed: int) -> str:
    """Deterministic trial name, reused as the MLflow run name: `muc2m[d=50,lam=0.005,seed=0]`."""
    parts = [f"d={d}"]
    if strength_name is not None:
        parts.append(f"{strength_name}={strength:g}")
    parts.append(f"seed={seed}")
    return f"{method}[{','.join(parts)}]"


def resolve(config: dict) -> dict:
    """Validate a trial configuration and fill in its defaults (raises ConfigError)."""
    try:
        spec = get_method(config["method"])
        profile = get_profile(config.get("profile", "quick"))
        params = spec.params(config.get("strength"), config.get("overrides"))
    except (KeyError, ValueError) as err:
        raise ConfigError(err.args[0]) from None
    d = config["d"]
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ConfigError(f"d={d!r} must be a positive integer")
    batch = config.get("batch") or profile.batch
    if spec.closed_form is None and batch <= d:
        raise ConfigError(f"batch size {batch} is not larger than d={d}: a batch covariance has rank "
                          f"≤ batch−1, so its correlations are meaningless; use d < {batch} or a "
                          f"larger batch")
    strength = params[spec.strength] if spec.strength else None
    seed = int(config.get("seed", 0))
    precision = config.get("precision") or "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of: {', '.join(PRECISIONS)}")
    return {"method": spec.name, "d": d, "seed": seed, "profile": profile.name,
            "strength_name": spec.strength, "strength": strength, "params": params,
            "batch": batch, "lr": config.get("lr") or profile.lr,
            "epochs": config.get("epochs") or profile.epochs_for(d, spec.epoch_cost),
            "eval_every": config.get("eval_every") or profile.eval_every, "precision": precision,
            "name": run_name(spec.name, d, spec.strength, strength, seed)}


def load_data(profile_name: str, mnist_dir=None) -> dict:
    """MNIST halves, cut to the profile's subset sizes."""
    profile = get_profile(profile_name)
    data = mnist_halves.load(mnist_dir)
    sizes = {"train": profile.n_train, "val": profile.n_val, "test": profile.n_test}
    return {split: views.head(sizes[split]) for split, views in data.items()}


def to_device(views, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(views.x1, device=device), torch.as_tensor(views.x2, device=device))


@torch.no_grad()
def represent_all(represent, h1, h2, chunk: int = EVAL_CHUNK):
    """Representations of a whole split, in chunks (models in eval mode)."""
    outs = [represent(h1[i:i + chunk], h2[i:i + chunk]) for i in range(0, len(h1), chunk)]
    z1, z2 = (torch.cat([o[k] for o in outs]).double().cpu() for k in (0, 1))
    if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
        raise TrialDiverged("representations contain NaN/inf")
    return z1, z2


def validation_corr(represent, train, val, k: int) -> float:
    """Held-out correlation of the validation split (CCA fitted on train outputs)."""
    tr = represent_all(represent, *train)
    va = represent_all(represent, *val)
    return metrics.corr_heldout(*tr, *va, k)


def batches(views, order: torch.Tensor, batch: int):
    """Each full batch of `order` taken from every view (the last partial batch is dropped,
    so every batch exceeds d and batch-norm sees full batches). `index_select` gathers the
    same rows as `view[idx]` at a fifth of its cost on CPU (a tenth of a bf16 epoch)."""
    for b in range(len(order) // batch):
        idx = order[b * batch:(b + 1) * batch]
        yield tuple(view.index_select(0, idx) for view in views)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _state_copy(module_or_dict):
    items = module_or_dict.state_dict() if hasattr(module_or_dict, "state_dict") else module_or_dict
    return {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in items.items()}


def run_trial(config: dict, data: dict | None = None, checkpoint_dir=None, report=None,
              device: str | None = None, log=None) -> dict:
    """Train (or fit) one configuration and return its result.

    config: method, d, and optionally strength, seed, profile, overrides (parameter → value),
    batch/lr/epochs/eval_every (profile overrides). data: the splits from `load_data`.
    checkpoint_dir: where the full state is saved every `eval_every` epochs and restored from.
    report(epoch, row): called after each validation pass (the Ray runner reports through it).
    """
    cfg = resolve(config)
    spec = get_method(cfg["method"])
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = data or load_data(cfg["profile"], config.get("mnist_dir"))
    profile = get_profile(cfg["profile"])
    train = to_device(data["train"], device)
    val, test = to_device(data["val"], device), to_device(data["test"], device)
    train_fit = tuple(h[:profile.val_fit_n] for h in train)
    d, started = cfg["d"], time.time()

    if spec.closed_form is not None:
        represent = spec.closed_form(*train, d, cfg["params"])
        k = represent.n_components
        history = [{"epoch": 0, "val_corr": validation_corr(represent, train_fit, val, k)}]
        best_epoch = resumed_from = 0
    else:
        represent, history, best_epoch, resumed_from = _train(
            spec, cfg, train, train_fit, val, device, checkpoint_dir, report, log)
        k = d
    train_seconds = time.time() - started
    out = metrics.all_metrics(represent_all(represent, *train), represent_all(represent, *test),
                              data["test"].y, k, aligned=spec.aligned)
    out["val_corr_best"] = max(row["val_corr"] for row in history)  # the selection metric
    out["n_components"] = k
    out["best_epoch"] = best_epoch
    out["resumed_from"] = resumed_from  # the epoch a restored checkpoint continued from
    return {**{key: cfg[key] for key in ("name", "method", "d", "seed", "profile", "strength_name",
                                         "strength", "batch", "lr", "epochs", "precision")},
            "params": cfg["params"], "n_components": k, "best_epoch": best_epoch,
            "metrics": out, "history": history, "train_seconds": train_seconds,
            "device": str(device)}


def _train(spec, cfg, train, train_fit, val, device, checkpoint_dir, report, log):
    """Build the method's model and running statistics and train them with `fit_loop`."""
    torch.manual_seed(cfg["seed"])
    p1, p2, d = train[0].shape[1], train[1].shape[1], cfg["d"]
    model = TwoViewModel(p1, p2, d, batchnorm=spec.batchnorm, decoders=spec.decoders,
                         precision=cfg["precision"]).to(device)
    state = {k: v.to(device) for k, v in (spec.init_state(d) if spec.init_state else {}).items()}

    def represent(h1, h2):
        model.eval()
        return model.represent(h1, h2)

    history, best_epoch, start_epoch = fit_loop(
        model, lambda h1, h2: spec.objective(model, h1, h2, state, cfg["params"]), train,
        epochs=cfg["epochs"], batch=cfg["batch"], lr=cfg["lr"], seed=cfg["seed"],
        eval_every=cfg["eval_every"], validate=lambda: validation_corr(represent, train_fit, val, d),
        state=state, checkpoint_dir=checkpoint_dir, name=cfg["name"], log=log, report=report)
    return represent, history, best_epoch, start_epoch


def fit_loop(module, batch_loss, train, *, epochs: int, batch: int, lr: float, seed: int,
             eval_every: int = 1, validate=None, val_key: str = "val_corr", maximize: bool = True,
             state: dict | None = None, checkpoint_dir=None, name: str = "trial", log=None,
             report=None):
    """The one training loop: Adam on `module`'s trainable parameters over shuffled full
    batches (`batches`) of the device-resident views `train`.

    batch_loss(h1, h2) -> {"loss": ...} may update `state` (running statistics) in place.
    Every `eval_every` epochs and at the last, `validate()` scores the module (None: keep the
    last state); the best state is restored at the end. With `checkpoint_dir`, the full state
    (module, optimizer, `state`, RNGs, epoch, history, best) is saved there at each validation
    pass and restored from it on the next call. Returns (history, best_epoch, resumed_from).
    """
    log = log or (lambda msg: None)
    state = {} if state is None else state
    device = train[0].device
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    shuffle = torch.Generator(device="cpu").manual_seed(seed)
    history, best, start_epoch = [], None, 0

    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir else None
    if ckpt_path and ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location=device, weights_only=True)
        module.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state.update({k: v.to(device) for k, v in saved["method_state"].items()})
        shuffle.set_state(saved["shuffle_rng"])
        torch.set_rng_state(saved["torch_rng"])
        history, best, start_epoch = saved["history"], saved["best"], saved["epoch"]
        log(f"{name}: resumed from epoch {start_epoch}")

    sign = 1.0 if maximize else -1.0
    n = train[0].shape[0]
    n_batches = n // batch
    epoch_started = time.time()
    for epoch in range(start_epoch + 1, epochs + 1):
        module.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros((), device=device)
        for views in batches(train, order, batch):
            try:
                terms = batch_loss(*views)
            except torch.linalg.LinAlgError as err:
                raise TrialDiverged(f"linear algebra failed at epoch {epoch}: {err}") from None
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            loss_sum += terms["loss"].detach()
        if epoch % eval_every and epoch != epochs:
            continue
        # Validation pass (the only host sync of the epoch loop).
        train_loss = float(loss_sum) / n_batches
        if not math.isfinite(train_loss):
            raise TrialDiverged(f"training loss became {train_loss} at epoch {epoch}")
        row = {"epoch": epoch, "loss": train_loss}
        if validate is not None:
            row[val_key] = float(validate())
        history.append(row)
        if validate is None or best is None or sign * row[val_key] > sign * best["score"]:
            best = {"score": row.get(val_key), "epoch": epoch, "model": _state_copy(module)}
        seconds_per_epoch = (time.time() - epoch_started) / (epoch - start_epoch)
        val_text = f" {val_key} {row[val_key]:.4g}" if validate is not None else ""
        log(f"{name}: epoch {epoch}/{epochs} loss {train_loss:.4f}{val_text} "
            f"({seconds_per_epoch:.2f} s/epoch)")
        if ckpt_path:
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            _save_atomic({"epoch": epoch, "model": _state_copy(module),
                          "optimizer": optimizer.state_dict(), "method_state": _state_copy(state),
                          "shuffle_rng": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
                          "history": history, "best": best}, ckpt_path)
        if report:
            report(epoch, row)
    if best is not None:
        module.load_state_dict(best["model"])
    module.eval()
    return history, (best["epoch"] if best else start_epoch), start_epoch


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, for example --set gamma=0.1")
        try:
            out[key] = float(value)
        except ValueError:
            raise ConfigError(f"--set {pair!r}: {value!r} is not a number") from None
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help="a registered method (cca, dcca, ...)")
    parser.add_argument("--d", required=True, type=int, help="latent dimension")
    parser.add_argument("--strength", type=float, help="the method's swept strength "
                        "(default: the method's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="quick", help="paper | quick | smoke (default quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override another parameter of the method, e.g. --set gamma=0.1")
    parser.add_argument("--epochs", type=int, help="override the profile's epochs")
    parser.add_argument("--checkpoint-dir", help="save/restore the full trial state here")
    parser.add_argument("--mnist-dir", help="directory with the MNIST IDX files (torchvision layout)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="the networks' arithmetic: fp32 (default) or bf16 (mixed precision: "
                        "bf16 matmuls, fp32 weights, objectives unchanged)")
    args = parser.parse_args(argv)
    try:
        config = {"method": args.method, "d": args.d, "strength": args.strength, "seed": args.seed,
                  "profile": args.profile, "overrides": parse_overrides(args.overrides),
                  "epochs": args.epochs, "mnist_dir": args.mnist_dir, "precision": args.precision}
        resolve(config)  # refuse bad input before loading data
        result = run_trial(config, checkpoint_dir=args.checkpoint_dir, device=args.device)
    except (ConfigError, mnist_halves.DataError, TrialDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
