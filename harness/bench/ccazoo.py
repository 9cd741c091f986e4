"""cca-zoo's deep CCA models side by side with ours: seconds per epoch and held-out correlation.

    python -m harness.bench.ccazoo [--dims 50] [--epochs 3] [--batch 2048] [--lr 1e-3]
        [--seed 0] [--subset N] [--pairs dcca,dccae,sdcca,softcca|all] [--device cpu|cuda]
        [--threads T] [--zoo-defaults] [--ours K=V,...] [--json]

Pairs (cca-zoo class vs our registered method):  DCCA ↔ dcca,  DCCAE ↔ dccae,
DCCANOI ↔ sdcca,  DCCASDL ↔ softcca (the default), and on request (`--pairs`, or `all`) the
objectives beyond the paper, DCCAEY ↔ dcca_ey,  BarlowTwins ↔ barlow_twins,  VICReg ↔ vicreg.
Everything else is shared, in one process:

* networks: both sides train `harness.models.encoder` modules (392-500-300-d), built from the
  same seed, so a pair starts from identical weights; DCCAE's decoders are our
  `harness.models.decoder` (d-300-500-392) for both; BN (affine-free) where the method has it;
* data: MNIST-halves train (the first `--subset` pairs), test = the 10k test split;
* optimisation: Adam(lr), batch `--batch`, `--epochs` epochs, the partial last batch dropped on
  both sides (so both take the same steps on batches of the same size), and the same shuffles:
  ours draws `torch.randperm(n, generator=g)` each epoch, cca-zoo's DataLoader gets a
  `RandomSampler` whose generator `g` is seeded alike, which draws exactly that;
* cca-zoo trains the way its docs say: `lightning.pytorch.Trainer(logger=False,
  enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)` over a
  `DataLoader(MultiviewDataset([X1, X2]), batch_size, shuffle)` (shuffle given as the sampler
  above, num_workers 0), accelerator cpu unless `--device cuda`. Ours trains with our own loop
  (as `harness.bench.stepper`: Adam over shuffled index batches of device-resident tensors,
  calling the registered `spec.two_view.objective`).

Timing: s/epoch is the MEDIAN wall time of epochs 2..E (epoch 1 is a warm-up, still trained and
counted for quality); with `--epochs 1` it is the single, warm-up-inclusive epoch. Epochs are
timed by the same clock on both sides (a Lightning callback's on_train_epoch_start/end for
cca-zoo, around our epoch loop for ours; CUDA synchronised). cca-zoo's epoch therefore includes
its input pipeline (per-sample `__getitem__` + collate on the host, host→device copies), which is
part of training it "the documented way"; the time of that pipeline alone is printed too.

Quality: after the same E epochs, each model's encoders (eval mode; BN on running statistics
for the soft-CCA and Barlow Twins pairs) encode train and test, and
`harness.metrics.corr_heldout` (linear CCA fitted on the train outputs, per-dimension
correlations of the test projections, summed; k = d).

FAIRNESS NOTE. cca-zoo's DCCA (and DCCAE's correlation term) maximises ||T||_F² = Σ_k σ_k², the
sum of SQUARED canonical correlations, with autograd through `eigh` in float32; our `dcca`
maximises the trace norm Σ_k σ_k (Andrew et al.'s objective) in float64 with the closed-form
backward. The two objectives are different (and Σσ² barely rewards weak directions), so the
dcca and dccae pairs also run OUR networks on −||T||_F² ("ours (Frobenius)", a pure float64
loss in this file, autograd through Cholesky whitening built on `harness.linalg`). Likewise
cca-zoo's DCCASDL uses each batch's covariance where Chang et al. (and our softcca, α = 0.9)
keep a running average, so the softcca pair also runs ours with α = 0 ("ours (α=0)").

Hyperparameters are mapped from our registry defaults so that each cca-zoo loss is a positive
multiple of the corresponding ours (Adam is invariant to a constant factor on the loss, up to
its ε); `--zoo-defaults` runs cca-zoo with its own defaults instead. The mapping is printed:
  DCCA:    reg_covar = ridge (both add ridge·I to Σ11, Σ22 normalised by m−1).
  DCCAE:   lam_zoo = λp/(1+λp): cca-zoo = (1−lam_zoo)·[−||T||_F² + lam_zoo/((1−lam_zoo)p) ·
           (1/m)Σ_j ||h_j−ĥ_j||²] because its MSE averages over the p features; reg_covar = ridge.
  DCCANOI: rho = rho (both: running ← ρ·old + (1−ρ)·batch), reg_covar = ridge (both whiten by
           (Σ + ridge·I)^{-1/2} with eigenvalues floored at ridge); cca-zoo sums the squared
           errors over the batch where we average: a factor m.
  DCCASDL: lam_zoo = λ(d−1): cca-zoo = (1/d)·[||Z1−Z2||²/m + lam_zoo/(d−1) Σ_{k≠l}|C_kl|]
           because it averages over the d features and the d(d−1) off-diagonal entries.
  BarlowTwins: lam = λ, the same loss (factor 1) on the same affine-free BN outputs.
  VICReg:  sim_coeff, std_coeff, cov_coeff = λ, μ, ν, the same loss (factor 1).
  DCCAEY:  no hyperparameters and NO multiple: cca-zoo's EY is that of the shifted problem
           (A+B)u = (1+ρ)Bu, −tr(A) − tr(B) + ¼ tr(B B′) (on √2·outputs: ours − 2 tr(B)), with
           the same-batch (biased) B′ under Lightning, where our dcca_ey pairs the batch's two
           halves; both minimisers span the top-d canonical subspace.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from harness import metrics
from harness.common import TrialDiverged
from harness.common import synchronize as _sync
from harness.linalg import center, cholesky_whitened_cross
from harness.loop import batches, represent_all, train_epoch
from harness.models import PRECISIONS, TwoViewModel
from harness.registry import get as get_method
from harness.suites.mnist_halves import load_data

DEFAULT_PAIRS = ("dcca", "dccae", "sdcca", "softcca")  # the paper's rows (and gpu_check's run)
PAIRS = DEFAULT_PAIRS + ("dcca_ey", "barlow_twins", "vicreg")
ZOO_CLASS = {"dcca": "DCCA", "dccae": "DCCAE", "sdcca": "DCCANOI", "softcca": "DCCASDL",
             "dcca_ey": "DCCAEY", "barlow_twins": "BarlowTwins", "vicreg": "VICReg"}
TIMING_NOTE = ("s/epoch = median wall time of epochs 2..E (epoch 1 = warm-up); "
               "with 1 epoch, that single warm-up-inclusive epoch")
FAIRNESS_NOTE = (
    "cca-zoo's DCCA/DCCAE maximise ||T||_F^2 (sum of SQUARED canonical correlations, float32, "
    "autograd through eigh); our dcca/dccae maximise the trace norm (sum of correlations, float64, "
    "closed-form backward) -- different objectives, so 'ours (Frobenius)' rows run our networks "
    "on -||T||_F^2 too. cca-zoo's DCCASDL uses each batch's covariance, our softcca a running "
    "average (alpha=0.9), hence the 'ours (alpha=0)' row.")


# ---------------------------------------------------------------- our Frobenius-norm DCCA loss

def frobenius_dcca_loss(f1: torch.Tensor, f2: torch.Tensor, *, ridge: float = 1e-3) -> dict:
    """−||T||_F² = −Σ_k σ_k(T)², T = Σ11^{-1/2} Σ12 Σ22^{-1/2}, in float64 with autograd.

    With Cholesky factors Σii = Li Liᵀ, L1⁻¹ Σ12 L2⁻ᵀ = Q1 T Q2ᵀ (Qi orthogonal) has T's singular
    values, hence its Frobenius norm; autograd through `cholesky`/`solve_triangular` is well
    defined at repeated canonical correlations (unlike through `eigh`'s eigenvectors)."""
    t, _, _ = cholesky_whitened_cross(center(f1.double()), center(f2.double()), ridge)
    corr2 = t.pow(2).sum()
    return {"loss": (-corr2).to(f1.dtype), "corr2": corr2.detach()}


def frobenius_dcca_objective(model, h1, h2, state, params):
    f1, f2 = model(h1, h2)
    return frobenius_dcca_loss(f1, f2, ridge=params["ridge"])


def frobenius_dccae_objective(model, h1, h2, state, params):
    """Our dccae with its correlation term replaced by −||T||_F² (the reconstruction is ours)."""
    from baselines.dccae import reconstruction
    f1, f2 = model(h1, h2)
    terms = frobenius_dcca_loss(f1, f2, ridge=params["ridge"])
    recon = reconstruction(h1, model.dec1(f1)) + reconstruction(h2, model.dec2(f2))
    return {"loss": terms["loss"] + params["lam"] * recon, "recon": recon.detach()}


# ---------------------------------------------------------------- what runs

@dataclass
class Variant:
    """One of our configurations: the registered spec (network layout, state) and a loss."""
    label: str
    method: str
    objective: Callable
    params: dict


def our_variants(pair: str, extra: dict | None = None) -> list[Variant]:
    """Ours at the registry defaults, the variants of the fairness note, and with `extra`
    (`--ours`, e.g. a sweep's selected configuration) ours at those parameters too."""
    spec = get_method(pair)
    params = spec.params()
    out = [Variant("ours", pair, spec.two_view.objective, params)]
    if pair == "dcca":
        out.append(Variant("ours (Frobenius)", pair, frobenius_dcca_objective, params))
    elif pair == "dccae":
        out.append(Variant("ours (Frobenius)", pair, frobenius_dccae_objective, params))
    elif pair == "softcca":
        out.append(Variant("ours (alpha=0)", pair, spec.two_view.objective,
                           spec.params(overrides={"alpha": 0.0})))
    if extra:
        out.append(Variant("ours (" + ",".join(f"{k}={v:g}" for k, v in extra.items()) + ")",
                           pair, spec.two_view.objective, spec.params(overrides=extra)))
    return out


def zoo_kwargs(pair: str, d: int, p: int, params: dict, zoo_defaults: bool = False) -> dict:
    """cca-zoo constructor arguments matching our registered parameters `params` (see docstring)."""
    if zoo_defaults:
        return {}
    if pair == "dcca":
        return {"reg_covar": params["ridge"]}
    if pair == "dccae":
        lam = params["lam"] * p
        return {"lam": lam / (1 + lam), "reg_covar": params["ridge"]}
    if pair == "sdcca":
        return {"rho": params["rho"], "reg_covar": params["ridge"]}
    if pair == "softcca":
        return {"lam": params["lam"] * (d - 1)}
    if pair == "dcca_ey":
        return {}
    if pair == "barlow_twins":
        return {"lam": params["lam"]}
    if pair == "vicreg":
        return {"sim_coeff": params["lam"], "std_coeff": params["mu"], "cov_coeff": params["nu"]}
    raise KeyError(pair)


MAPPING_WHY = {
    "dcca": "reg_covar=ridge: both add ridge*I to Sigma11, Sigma22 (normalised by m-1); "
            "objective differs: ||T||_F^2 vs trace norm (see 'ours (Frobenius)')",
    "dccae": "lam_zoo = lam*p/(1+lam*p): zoo loss = (1-lam_zoo)*[CCA + lam_zoo/((1-lam_zoo)*p) * "
             "(1/m) sum_j ||h_j - h_hat_j||^2] since its MSE also averages over p features; "
             "reg_covar=ridge; decoders read the raw encoder outputs on both sides",
    "sdcca": "rho=rho (both: running <- rho*old + (1-rho)*batch); reg_covar=ridge (both whiten "
             "by (Sigma+ridge*I)^-1/2, eigenvalues floored at ridge); zoo sums squared errors "
             "over the batch, we average (factor m, Adam-invariant)",
    "softcca": "lam_zoo = lam*(d-1): zoo loss = (1/d)*[||Z1-Z2||^2/m + lam_zoo/(d-1) * "
               "sum_{k!=l} |C_kl|] since it averages over d features and d(d-1) off-diagonals; "
               "zoo has no running covariance (our alpha=0.9 vs per-batch: 'ours (alpha=0)')",
    "dcca_ey": "no hyperparameters; objectives differ: zoo's EY is that of (A+B)u = (1+rho)Bu, "
               "-tr(A) - tr(B) + tr(B B')/4 with B' = B of the same batch (biased); ours "
               "-2tr(A) + tr(B B') with B, B' from the batch's two halves (unbiased); same "
               "minimising subspace",
    "barlow_twins": "lam=lam: the same loss (factor 1) on the same affine-free BN outputs",
    "vicreg": "sim_coeff, std_coeff, cov_coeff = lam, mu, nu: the same loss (factor 1)",
}


def build_zoo(pair: str, d: int, p1: int, p2: int, lr: float, seed: int, kwargs: dict,
              precision: str = "fp32"):
    """The cca-zoo model of `pair` on our networks, initialised exactly as ours (same seed, same
    construction order as `TwoViewModel`)."""
    from cca_zoo import deep
    spec = get_method(pair)
    torch.manual_seed(seed)
    # bf16: cca-zoo gets the same mixed-precision nets
    nets = TwoViewModel.for_method(spec, p1, p2, d, precision=precision)
    encoders = [nets.enc1, nets.enc2]
    cls = getattr(deep, ZOO_CLASS[pair])
    if pair == "dccae":
        return cls(n_components=d, encoders=encoders, decoders=[nets.dec1, nets.dec2],
                   learning_rate=lr, **kwargs)
    return cls(n_components=d, encoders=encoders, learning_rate=lr, **kwargs)


def build_ours(pair: str, d: int, p1: int, p2: int, seed: int,
               precision: str = "fp32") -> TwoViewModel:
    spec = get_method(pair)
    torch.manual_seed(seed)
    return TwoViewModel.for_method(spec, p1, p2, d, precision=precision)


# ---------------------------------------------------------------- training and timing

def summarise(times: list[float]) -> float:
    """The reported s/epoch: median of the epochs after the first (warm-up) one."""
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def train_ours(variant: Variant, train, d, batch, epochs, lr, seed, device, precision="fp32"):
    """Adam over shuffled index batches of device-resident tensors calling the objective.
    Returns (model, per-epoch seconds)."""
    spec = get_method(variant.method)
    p1, p2 = train[0].shape[1], train[1].shape[1]
    model = build_ours(variant.method, d, p1, p2, seed, precision).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = spec.two_view.fresh_state(d, device)
    shuffle = torch.Generator(device="cpu").manual_seed(seed)
    n = train[0].shape[0]
    times = []
    model.train()
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        train_epoch(optimizer, lambda h1, h2: variant.objective(model, h1, h2, state, variant.params),
                    batches(train, order, batch))
        _sync(device)
        times.append(time.perf_counter() - start)
    model.eval()
    return model, times


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*validation_step.*no `val_dataloader`.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


def zoo_loader(train_np, batch: int, seed: int):
    """cca-zoo's documented input pipeline; shuffled by a RandomSampler whose generator draws
    the same permutations as our loop (shuffle=True would also seed the workers from it)."""
    from cca_zoo.deep import MultiviewDataset
    from torch.utils.data import DataLoader, RandomSampler
    dataset = MultiviewDataset([train_np[0], train_np[1]])
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=True)


def train_zoo(pair, train_np, d, batch, epochs, lr, seed, device, kwargs, precision="fp32"):
    """cca-zoo's model trained by a Lightning Trainer. Returns (model, per-epoch s, fit s)."""
    import lightning.pytorch as pl

    class EpochTimer(pl.Callback):
        def __init__(self):
            self.times, self._start = [], None

        def on_train_epoch_start(self, trainer, pl_module):
            _sync(device)
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            _sync(device)
            self.times.append(time.perf_counter() - self._start)

    _quiet_lightning()
    p1, p2 = train_np[0].shape[1], train_np[1].shape[1]
    model = build_zoo(pair, d, p1, p2, lr, seed, kwargs, precision)
    loader = zoo_loader(train_np, batch, seed)
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cuda" if device.type == "cuda" else "cpu",
                         devices=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[timer])
    _sync(device)
    start = time.perf_counter()
    trainer.fit(model, loader)
    _sync(device)
    fit_seconds = time.perf_counter() - start
    model = model.to(device).eval()
    return model, timer.times, fit_seconds


def loader_seconds(train_np, batch: int, seed: int) -> float:
    """One pass of cca-zoo's input pipeline alone (no model): its share of a cca-zoo epoch."""
    start = time.perf_counter()
    for _ in zoo_loader(train_np, batch, seed):
        pass
    return time.perf_counter() - start


def heldout(represent, train, test, d: int) -> float:
    """corr_heldout of a trained model's representations (NaN if they are not finite)."""
    try:
        return metrics.corr_heldout(*represent_all(represent, *train),
                                    *represent_all(represent, *test), k=d)
    except (TrialDiverged, torch.linalg.LinAlgError):
        return float("nan")


def ours_represent(model):
    return lambda h1, h2: model.represent(h1, h2)


def zoo_represent(model):
    return lambda h1, h2: tuple(model([h1, h2]))


def compare(pairs, train_np, test_np, d: int, batch: int, epochs: int, lr: float, seed: int,
            device, zoo_defaults: bool = False, log=None, precision: str = "fp32",
            ours: dict | None = None) -> list[dict]:
    """Every requested pair: our variants and cca-zoo, trained and scored alike. Rows of dicts."""
    log = log or (lambda msg: None)
    train, test = _tensors(train_np, device), _tensors(test_np, device)
    p1, p2 = train[0].shape[1], train[1].shape[1]
    p = (p1 + p2) / 2  # DCCAE's mapping needs p1 == p2 to be exact (392 and 392 on MNIST halves)
    rows = []
    for pair in pairs:
        variants = our_variants(pair, ours)
        kwargs = zoo_kwargs(pair, d, p, variants[0].params, zoo_defaults)
        log(f"{pair}: cca-zoo {ZOO_CLASS[pair]}({_fmt_kwargs(kwargs)}) ...")
        try:
            zmodel, ztimes, zfit = train_zoo(pair, train_np, d, batch, epochs, lr, seed, device,
                                             kwargs, precision)
            zcorr, zerr = heldout(zoo_represent(zmodel), train, test, d), None
        except torch.linalg.LinAlgError as err:  # eigh failing on an ill-conditioned batch
            ztimes, zfit, zcorr, zerr = [float("nan")], float("nan"), float("nan"), str(err)[:200]
        for variant in variants:
            log(f"{pair}: {variant.label} ...")
            try:
                model, times = train_ours(variant, train, d, batch, epochs, lr, seed, device,
                                          precision)
                corr, err = heldout(ours_represent(model), train, test, d), None
            except torch.linalg.LinAlgError as exc:  # Cholesky of a singular batch
                times, corr, err = [float("nan")], float("nan"), str(exc)[:200]
            ours_s, zoo_s = summarise(times), summarise(ztimes)
            row = {"pair": f"{ZOO_CLASS[pair]} vs {pair}", "method": pair, "ours": variant.label,
                   "ours_params": variant.params, "zoo_class": ZOO_CLASS[pair],
                   "zoo_kwargs": kwargs, "ours_s_per_epoch": ours_s, "zoo_s_per_epoch": zoo_s,
                   "ratio_zoo_over_ours": zoo_s / ours_s,
                   "ours_corr_heldout": corr, "zoo_corr_heldout": zcorr,
                   "ours_epoch_s": times, "zoo_epoch_s": ztimes, "zoo_fit_s": zfit}
            if err or zerr:
                row["errors"] = {"ours": err, "zoo": zerr}
            rows.append(row)
            log(f"  {_row_line(row)}")
    return rows


def _tensors(views, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Device-resident float32 tensors of two views given as a pair of arrays."""
    return tuple(torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
                 for x in views)


def _nan_to_none(obj):
    """JSON has no NaN: diverged values become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _fmt_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={v:.6g}" for k, v in kwargs.items()) or "cca-zoo defaults"


def _row_line(row: dict) -> str:
    label = f"{row['pair']} | {row['ours']}"
    return (f"{label:<36} {row['ours_s_per_epoch']:9.3f} {row['zoo_s_per_epoch']:9.3f} "
            f"{row['ratio_zoo_over_ours']:7.2f} {row['ours_corr_heldout']:8.2f} "
            f"{row['zoo_corr_heldout']:8.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.ccazoo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, default=50, help="latent dimension d (default 50)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, both sides (default 3)")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=None,
                        help="train on the first N train pairs (default: all 50k)")
    parser.add_argument("--pairs", default=",".join(DEFAULT_PAIRS),
                        help=f"comma-separated subset of {','.join(PAIRS)}, or all "
                             f"(default {','.join(DEFAULT_PAIRS)})")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--zoo-defaults", action="store_true",
                        help="run cca-zoo with its own default hyperparameters, not the mapping")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="the networks' "
                        "arithmetic on BOTH sides: cca-zoo is handed the same bf16 networks")
    parser.add_argument("--ours", default="", metavar="K=V,...",
                        help="also run ours at these parameters, e.g. a sweep's selected "
                             "configuration: --ours lam=1.05,alpha=0.3")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    pairs = list(PAIRS) if args.pairs == "all" else [p for p in args.pairs.split(",") if p]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        parser.error(f"unknown pair(s) {unknown}; choose from {', '.join(PAIRS)}")
    try:
        ours = {k.strip(): float(v) for k, v in
                (item.split("=", 1) for item in args.ours.split(",") if item.strip())}
    except ValueError:
        parser.error(f"--ours {args.ours!r}: write parameter=number pairs, e.g. lam=1,alpha=0.5")
    for pr in pairs:
        unknown = sorted(set(ours) - set(get_method(pr).defaults))
        if unknown:
            parser.error(f"--ours: {pr} has no parameter {', '.join(unknown)}; its parameters "
                         f"are {', '.join(get_method(pr).defaults)}")
    if args.epochs < 1 or args.batch <= args.dims:
        parser.error("need --epochs ≥ 1 and --batch > --dims")
    if args.subset is not None and args.subset < args.batch:
        parser.error(f"--subset {args.subset} is smaller than one batch ({args.batch})")
    try:
        import cca_zoo.deep  # noqa: F401
        import lightning.pytorch  # noqa: F401
    except ImportError as err:
        print(f"error: {err}; install cca-zoo with its deep extra: pip install 'cca-zoo[deep]'",
              file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_data("paper")
    train_np, test_np = data["train"].head(args.subset), data["test"]
    d, n = args.dims, len(train_np)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    import cca_zoo
    machine = (torch.cuda.get_device_name(0) if device.type == "cuda"
               else f"{platform.machine()} CPU")
    header = {"device": machine, "threads": torch.get_num_threads(), "batch": args.batch,
              "epochs": args.epochs, "lr": args.lr, "d": d, "seed": args.seed, "n_train": n,
              "precision": args.precision,
              "n_test": len(test_np), "steps_per_epoch": n // args.batch,
              "cca_zoo": cca_zoo.__version__, "torch": torch.__version__,
              "timing": TIMING_NOTE, "fairness": FAIRNESS_NOTE,
              "zoo_hyperparameters": "cca-zoo defaults" if args.zoo_defaults else "mapped"}
    p = (train_np.x1.shape[1] + train_np.x2.shape[1]) / 2
    mapping = [{"pair": f"{ZOO_CLASS[pr]} vs {pr}", "ours": get_method(pr).params(),
                "zoo": zoo_kwargs(pr, d, p, get_method(pr).params(), args.zoo_defaults),
                "why": MAPPING_WHY[pr]} for pr in pairs]
    if not args.json:
        print(f"device {machine}; threads {header['threads']}; batch {args.batch}; epochs "
              f"{args.epochs}; lr {args.lr:g}; d {d}; seed {args.seed}; precision "
              f"{args.precision} (both sides); train {n} pairs "
              f"({n // args.batch} steps/epoch), test {len(test_np)}; cca-zoo "
              f"{cca_zoo.__version__}, torch {torch.__version__}")
        print("hyperparameter mapping (ours -> cca-zoo"
              + (", OVERRIDDEN by --zoo-defaults" if args.zoo_defaults else "") + "):")
        for m in mapping:
            print(f"  {m['pair']:<18} ours {m['ours']} -> {m['pair'].split()[0]}"
                  f"({_fmt_kwargs(m['zoo'])})\n      {m['why']}")
        print(f"fairness: {FAIRNESS_NOTE}", flush=True)
    header["zoo_loader_s_per_epoch"] = loader_seconds((train_np.x1, train_np.x2), args.batch,
                                                      args.seed)
    rows = compare(pairs, (train_np.x1, train_np.x2), (test_np.x1, test_np.x2), d, args.batch,
                   args.epochs, args.lr, args.seed, device, args.zoo_defaults, log=log,
                   precision=args.precision, ours=ours)
    header["threads_after"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(_nan_to_none({**header, "mapping": mapping, "rows": rows})))
        return 0
    print(f"\n{'pair | our variant':<36} {'ours s/ep':>9} {'zoo s/ep':>9} {'zoo/ours':>7} "
          f"{'ours corr':>8} {'zoo corr':>8}")
    for row in rows:
        print(_row_line(row))
        if "errors" in row:
            print(f"    errors: {row['errors']}")
    print(f"\n{TIMING_NOTE}. corr = corr_heldout (k = d) after {args.epochs} epoch(s), "
          f"final weights. cca-zoo's input pipeline alone (DataLoader over MultiviewDataset, "
          f"num_workers 0): {header['zoo_loader_s_per_epoch']:.3f} s/epoch, included in its "
          f"epochs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
