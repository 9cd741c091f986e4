"""MUC2M common component (paper Eq. 2–4 and 7; docs/methods.md, MUC2M).

C = Z1ᵀZ2/m, S_i = Z_iᵀZ_i/m,  L_common = Σ_k (1 − C_kk)² + λ Σ_i Σ_{k≠l} (S_i)_kl²,
plus γ · (1/m) Σ_j [R(∂s_c(j)/∂h1_j) + R(∂s_c(j)/∂h2_j)] when γ > 0 ("MUC2M w/ regu").
"""
from __future__ import annotations

import math

from harness.lowrank import diag_gram, off_diagonal_sq
from harness.registry import MethodSpec, Presentation, Saliency, TwoView, register
from muc2m.individual import LAM_IND, SCORE_SPACES
from muc2m.regularization import gradient_penalty, score_input_gradients
from muc2m.scores import cosine_score


def common_loss(z1, z2, *, lam: float = 5e-3) -> dict:
    """z1, z2: m × d tensors, or `harness.lowrank.LowRank` factors of them (large d)."""
    m = z1.shape[0]
    c_diag = diag_gram(z1, z2) / m
    on_diag = (1 - c_diag).pow(2).sum()
    decorrelation = off_diagonal_sq(z1, z1, 1 / m) + off_diagonal_sq(z2, z2, 1 / m)
    return {"loss": on_diag + lam * decorrelation, "on_diag": on_diag.detach(),
            "decorrelation": decorrelation.detach(), "corr_diag": c_diag.sum().detach()}


# The saliency suites' individual stage (muc2m.individual): γ_ind = ind_gamma_ratio · γ, so "w/
# regu" regularizes both components with the swept γ ("the same applies for the individual
# component", Sec. 3.3) and "orig" (γ = 0) neither; ind_score is the representation the
# individual score reads: "pre_bn" had the best mean validation AP_ind−bg over scenes_pairs and
# clutter_pairs in the ablation (63.4, against 63.0 affine_bn and 62.4 for the paper's "bn"; one
# seed, within noise: README "Saliency results"); lam_ind is λ_ind of L_ind. Unused by the
# two-view suites.
INDIVIDUAL_DEFAULTS = {"ind_gamma_ratio": 1.0, "ind_score": "pre_bn", "lam_ind": LAM_IND}


# With the penalty, the cosine score is differentiated twice; from the factors its row products
# cost ~3 m k² each way against the m × k × d outputs, so factors pay only from d ≈ 2k
# (measured at k = 301, s/epoch direct against factored: d = 500 6.1–6.6 against 7.6, d = 700
# 7.5 against 7.0; BENCHMARKS.md "Large d").
REGU_FACTORS_ABOVE = 2.0


def objective(model, h1, h2, state, params):
    gamma = params["gamma"]
    if gamma > 0:
        h1, h2 = h1.detach().requires_grad_(True), h2.detach().requires_grad_(True)
    factored = gamma == 0 or model.factors_pay(REGU_FACTORS_ABOVE)
    z1, z2 = model.represent(h1, h2, factored=factored)  # factors at large d (harness/lowrank.py)
    terms = common_loss(z1, z2, lam=params["lam"])
    if gamma > 0:
        grads = score_input_gradients(cosine_score(z1, z2), (h1, h2))
        penalty = gradient_penalty(grads, alpha=params["alpha"])
        terms["loss"] = terms["loss"] + gamma * penalty
        terms["grad_penalty"] = penalty.detach()
    return terms


def score_model(cfg, train, device, checkpoint_dir, log, individual):
    """The saliency suites' MUC2M: the common stage on the train features, then (where
    individual maps are scored) the individual stage with the common component frozen."""
    from harness.common import TrialDiverged
    from muc2m.model import MUC2M  # muc2m.model builds on this module
    params = cfg["params"]
    model = MUC2M(cfg["d"], lam=params["lam"], gamma=params["gamma"], alpha=params["alpha"],
                  gamma_ind=params["gamma"] * params["ind_gamma_ratio"],
                  ind_score=params["ind_score"], lam_ind=params["lam_ind"], epochs=cfg["epochs"], ind_epochs=cfg["epochs"] if individual else 0,
                  batch_size=cfg["batch"], lr=cfg["lr"], seed=cfg["seed"], device=device)
    model.fit(*train, checkpoint_dir=checkpoint_dir)
    history = model.history["common"]
    if history and not math.isfinite(history[-1]["loss"]):
        raise TrialDiverged(f"MUC2M loss became {history[-1]['loss']}")
    return model, history


SPEC = register(MethodSpec(  # γ (gamma) > 0 adds the contractive gradient regularization
    name="muc2m", presentation=Presentation("MUC2M", titles={"saliency": "MUC2M orig"}),
    defaults={"lam": 5e-3, "gamma": 0.0, "alpha": 0.5, **INDIVIDUAL_DEFAULTS}, strength="lam", grid=(5e-3, 5e-2),
    valid=(0.0, 1e6), search={"lam": (1e-4, 10.0)}, choices={"ind_score": SCORE_SPACES},
    loss_fn=common_loss, two_view=TwoView(objective=objective, batchnorm=True),
    saliency=Saliency(score_model=score_model),
))


# "MUC2M w/ regu" (paper Tables 2–3): the same objective with the contractive regularization
# on, sweeping γ at the default λ. At initialisation on MNIST halves the penalty is ~12 against
# an on-diagonal term of ~50 (d = 50), so γ ∈ {0.01, 0.1} adds 0.2–2 % to 20 % of the loss.
# On the saliency suites (pooled CNN features, d = 64) the grid reaches up to γ = 10, where the
# penalty overshoots (README, "Saliency results"). Off by default in the two-view sweep, whose
# Tables 1 and 5 have no "w/ regu" row.
REGU_SPEC = register(MethodSpec(
    name="muc2m_regu", presentation=Presentation("MUC2M w/ regu"),
    defaults={"lam": 5e-3, "gamma": 1e-2, "alpha": 0.5, **INDIVIDUAL_DEFAULTS}, strength="gamma", grid=(1e-2, 1e-1),
    grids={"saliency": (1e-2, 1e-1, 1.0, 10.0)}, default_off=("two_view",),
    search={"gamma": (1e-4, 10.0), "lam": (1e-4, 10.0)},
    valid=(0.0, 1e6), choices={"ind_score": SCORE_SPACES}, loss_fn=common_loss,
    two_view=TwoView(objective=objective, batchnorm=True, input_gradient_penalty=True),
    saliency=Saliency(score_model=score_model),
))
