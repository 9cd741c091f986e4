"""`MUC2M`: fit the common and individual components on two arrays of features, then score and
explain pairs (docs/methods.md, MUC2M).

    model = MUC2M(d=64).fit(X1, X2)                  # X_i: (n, p_i), numpy or torch
    out = model.transform(X1, X2)                    # {"common": (z1, z2), "individual": (w1, w2)}
    s = model.score(X1, X2, kind="cosine")           # (n,)
    maps = model.saliency(X1, X2, kind="individual") # (n, p_1) input gradients

Stage 1 minimises L_common (+ γ · contractive penalty, Eq. 7) via `muc2m.common.objective`;
stage 2 freezes the common component (eval mode, no gradients) and minimises
L_ind,1 + L_ind,2 (`muc2m.individual.individual_loss`). Both use Adam on shuffled batches of
device-resident tensors; with validation arrays, each stage keeps its best-validation epoch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.common import default_device
from harness.loop import fit_loop
from harness.models import HIDDEN, TwoViewModel
from muc2m import saliency as _saliency
from muc2m.common import objective as common_objective
from muc2m.individual import (
    LAM_IND,
    IndividualComponent,
    individual_gradient_penalty,
    individual_loss,
    individual_score,
)
from muc2m.scores import COMMON_SCORES

SCORES = (*COMMON_SCORES, "individual")


class MUC2M:
    """Common + individual components of MUC2M (Shi & Niethammer 2023).

    d: latent dimension of both components (64 in the paper); lam: λ of L_common (off-diagonal
    auto-correlations); gamma, alpha: contractive regularization γ·R, R = α‖g‖₁ + (1−α)‖g‖₂²
    (γ = 0 is "MUC2M orig"); lam_ind: λ_ind of L_ind; gamma_ind: γ_ind, the same regularization
    of the individual score in stage 2; ind_score: the representation the individual score reads
    ("bn", the paper's reading, "pre_bn" or "affine_bn"; `muc2m.individual`); epochs / ind_epochs: epochs of the two
    stages (ind_epochs defaults to epochs); hidden: MLP hidden sizes of every encoder (decoders
    mirror them; the paper's MNIST setup is (500, 300)); lr, batch_size: Adam and batch
    (the paper: lr 2e-4 or 1e-3, batch 2048); batch_size must exceed d.
    """

    def __init__(self, d: int = 64, *, lam: float = 5e-3, gamma: float = 0.0, alpha: float = 0.5,
                 lam_ind: float = LAM_IND, gamma_ind: float = 0.0, ind_score: str = "bn",
                 epochs: int = 100, ind_epochs: int | None = None,
                 batch_size: int = 256, lr: float = 1e-3, hidden=HIDDEN, seed: int = 0,
                 device: str | torch.device | None = None):
        self.config = dict(d=int(d), lam=float(lam), gamma=float(gamma), alpha=float(alpha),
                           lam_ind=float(lam_ind), gamma_ind=float(gamma_ind),
                           ind_score=str(ind_score), epochs=int(epochs),
                           ind_epochs=int(epochs if ind_epochs is None else ind_epochs),
                           batch_size=int(batch_size), lr=float(lr),
                           hidden=[int(h) for h in hidden], seed=int(seed))
        self.device = default_device(device)
        self.common: TwoViewModel | None = None
        self.individual: IndividualComponent | None = None
        self.history: dict[str, list[dict]] = {}

    # ----------------------------------------------------------------- construction and fitting
    def build(self, p1: int, p2: int) -> "MUC2M":
        """Fresh (untrained) networks for inputs of p1 and p2 features, seeded by `seed`."""
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c["seed"])
            self.common = TwoViewModel(p1, p2, c["d"], batchnorm=True, hidden=c["hidden"])
            self.individual = IndividualComponent(p1, p2, c["d"], hidden=c["hidden"],
                                                  score_space=c["ind_score"])
        self.dims = (int(p1), int(p2))
        self.common.to(self.device).eval()
        self.individual.to(self.device).eval()
        return self

    def fit(self, X1, X2, X1_val=None, X2_val=None, checkpoint_dir=None) -> "MUC2M":
        """Stage 1 (common), then stage 2 (individual, common frozen). Returns self.
        With `checkpoint_dir`, each stage checkpoints into its own subfolder and a rerun resumes."""
        h1, h2 = self._tensor(X1), self._tensor(X2)
        if h1.shape[0] != h2.shape[0]:
            raise ValueError(f"the views hold {h1.shape[0]} and {h2.shape[0]} rows; pairs must align")
        batch = min(self.config["batch_size"], h1.shape[0])
        if batch <= self.config["d"]:
            raise ValueError(f"batch size {batch} must exceed d={self.config['d']}: batch "
                             "correlations need more rows than dimensions")
        val = None if X1_val is None else (self._tensor(X1_val), self._tensor(X2_val))
        self.build(h1.shape[1], h2.shape[1])
        params = {k: self.config[k] for k in ("lam", "gamma", "alpha")}
        self.history["common"] = self.run_stage(
            self.common, lambda a, b: common_objective(self.common, a, b, {}, params),
            (h1, h2), val, self.config["epochs"], _stage_dir(checkpoint_dir, "common"))
        self.common.requires_grad_(False)  # frozen from here on (and kept in eval mode)
        if self.config["ind_epochs"] == 0:  # common component only (e.g. object-of-interest maps)
            self.history["individual"] = []
            return self
        self.history["individual"] = self.run_stage(
            self.individual, self.individual_terms, (h1, h2), val, self.config["ind_epochs"],
            _stage_dir(checkpoint_dir, "individual"))
        return self

    def individual_terms(self, h1: torch.Tensor, h2: torch.Tensor) -> dict:
        """L_ind,1 + L_ind,2 on a batch, with the common component frozen (eval-mode BN).

        Eval mode is right for a frozen module (its running statistics must not move) and costs
        nothing in the constraint: W is batch-centred by its own BN, so WᵀZ/m ignores Z's mean.
        With γ_ind > 0 the contractive penalty of the individual score is added (Sec. 3.3).
        """
        gamma_ind = self.config["gamma_ind"]
        if gamma_ind > 0:
            h1, h2 = h1.detach().requires_grad_(True), h2.detach().requires_grad_(True)
        with torch.no_grad():
            z1, z2 = self.common.eval().represent(h1, h2)
        w1, w2 = self.individual.represent(h1, h2)
        t1 = individual_loss(h1, self.individual.reconstruct(1, z1, w1), w1, z1,
                             lam_ind=self.config["lam_ind"])
        t2 = individual_loss(h2, self.individual.reconstruct(2, z2, w2), w2, z2,
                             lam_ind=self.config["lam_ind"])
        terms = {"loss": t1["loss"] + t2["loss"],
                 **{f"{k}_{i}": v for i, t in ((1, t1), (2, t2)) for k, v in t.items() if k != "loss"}}
        if gamma_ind > 0:
            penalty = individual_gradient_penalty(self.individual, h1, h2, z1, z2,
                                                  alpha=self.config["alpha"])
            terms["loss"] = terms["loss"] + gamma_ind * penalty
            terms["ind_grad_penalty"] = penalty.detach()
        return terms

    def run_stage(self, module: torch.nn.Module, terms_fn, data, val, epochs: int,
                  checkpoint_dir=None) -> list[dict]:
        """Train `module` with the harness's one training loop (`harness.loop.fit_loop`):
        Adam over shuffled batches, one record per epoch; with `val`, the state at the epoch of
        lowest validation loss (same terms, eval mode) is restored at the end."""
        c = self.config

        def val_loss():  # not under no_grad: the contractive penalty differentiates the score
            module.eval()
            return terms_fn(*val)["loss"].item()

        history, _, _ = fit_loop(
            module, terms_fn, data, epochs=epochs, batch=min(c["batch_size"], data[0].shape[0]),
            lr=c["lr"], seed=c["seed"], eval_every=1, validate=None if val is None else val_loss,
            val_key="val_loss", maximize=False, checkpoint_dir=checkpoint_dir)
        return history

    # ------------------------------------------------------------------------------ inference
    def score_tensor(self, h1: torch.Tensor, h2: torch.Tensor, kind: str = "cosine",
                     view: int = 1) -> torch.Tensor:
        """Differentiable score per pair, (n,). Common scores read z = BN_eval(f(h));
        "norm" is ‖z_view‖; "individual" is ‖P u_view‖ (u per `ind_score`)."""
        if kind not in SCORES:
            raise ValueError(f"unknown score {kind!r}; choose one of: {', '.join(SCORES)}")
        if view not in (1, 2):
            raise ValueError(f"view must be 1 or 2, got {view!r}")
        self._check_fitted()
        z1, z2 = self.common.represent(h1, h2)
        own, other = (z1, z2) if view == 1 else (z2, z1)
        if kind in COMMON_SCORES:
            return COMMON_SCORES[kind](own, other)
        u = self.individual.score_representation(h1 if view == 1 else h2, view)
        return individual_score(u, z1, z2)

    @torch.no_grad()
    def transform(self, X1, X2, batch_size: int = 4096) -> dict:
        """{"common": (z1, z2), "individual": (w1, w2)}, each (n, d); numpy in → numpy out."""
        self._check_fitted()
        h1, h2 = self._tensor(X1), self._tensor(X2)
        parts = [(*self.common.represent(a, b), *self.individual.represent(a, b))
                 for a, b in zip(h1.split(batch_size), h2.split(batch_size))]
        z1, z2, w1, w2 = (self._like(X1, torch.cat(cols)) for cols in zip(*parts))
        return {"common": (z1, z2), "individual": (w1, w2)}

    @torch.no_grad()
    def score(self, X1, X2, kind: str = "cosine", view: int = 1, batch_size: int = 4096):
        """Scores of the n pairs, (n,): kind in "cosine" | "dot" | "norm" | "individual"."""
        h1, h2 = self._tensor(X1), self._tensor(X2)
        s = torch.cat([self.score_tensor(a, b, kind, view)
                       for a, b in zip(h1.split(batch_size), h2.split(batch_size))])
        return self._like(X1, s)

    def saliency(self, X1, X2, kind: str = "cosine", view: int = 1, *, extractor=None,
                 layer=None, absolute: bool = True):
        """Saliency of view `view` (see `muc2m.saliency.saliency`). Without `extractor`, X1 and X2
        are features and the result is |∂s/∂h_view| (n, p_view). With an image `extractor`, the
        explained view holds images (n, C, H, W), the other view holds features, and the result
        is GradCAM maps (n, H, W)."""
        self._check_fitted()
        x, partner = (X1, X2) if view == 1 else (X2, X1)
        x_t = self._tensor(x) if isinstance(x, np.ndarray) else x.to(self.device)
        out = _saliency.saliency(self, x_t, self._tensor(partner), view=view, score=kind,
                                 extractor=extractor, layer=layer, absolute=absolute)
        return self._like(x, out)

    # --------------------------------------------------------------------------- persistence
    def save(self, path) -> None:
        """torch.save of plain state dicts + the JSON-able config (loadable with weights_only)."""
        self._check_fitted()
        torch.save({"config": self.config, "dims": list(self.dims),
                    "common": self.common.state_dict(),
                    "individual": self.individual.state_dict()}, path)

    @classmethod
    def load(cls, path, device: str | torch.device | None = None) -> "MUC2M":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(**blob["config"], device=device).build(*blob["dims"])
        model.common.load_state_dict(blob["common"])
        model.individual.load_state_dict(blob["individual"])
        model.common.requires_grad_(False)
        return model

    # ------------------------------------------------------------------------------- helpers
    def _tensor(self, x) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
        return x.to(self.device, torch.float32)

    @staticmethod
    def _like(reference, out: torch.Tensor):
        return out if isinstance(reference, torch.Tensor) else out.detach().cpu().numpy()

    def _check_fitted(self) -> None:
        if self.common is None:
            raise RuntimeError("MUC2M is not fitted: call fit(X1, X2) (or build(p1, p2)) first")


def _stage_dir(checkpoint_dir, stage: str):
    return None if checkpoint_dir is None else Path(checkpoint_dir) / stage
