"""CLIP-style contrastive heads (paper Table 2, "contrastive"): a linear head per view trained
with symmetric InfoNCE at temperature τ.

Pairs whose view-2 features are identical (several images, one caption) are all positives of
each other (soft targets), since only a handful of distinct captions exist.
"""
from __future__ import annotations

import torch
from torch import nn

from harness.loop import fit_loop
from harness.registry import MethodSpec, Presentation, Saliency, register
from muc2m.scores import COMMON_SCORES


def contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, same: torch.Tensor, *,
                     temperature: float = 0.1) -> dict:
    """Symmetric InfoNCE of L2-normalised z1, z2 with soft targets `same / row sums`."""
    z1, z2 = nn.functional.normalize(z1, dim=-1), nn.functional.normalize(z2, dim=-1)
    logits = z1 @ z2.T / temperature
    targets = same / same.sum(1, keepdim=True)
    loss = 0.5 * (torch.sum(-targets * logits.log_softmax(1), 1).mean()
                  + torch.sum(-targets * logits.log_softmax(0).T, 1).mean())
    return {"loss": loss}


class ContrastiveHeads(nn.Module):
    def __init__(self, p1: int, p2: int, d: int, temperature: float):
        super().__init__()
        self.head1, self.head2 = nn.Linear(p1, d), nn.Linear(p2, d)
        self.temperature = temperature

    def loss(self, h1, h2) -> dict:
        same = (h2[:, None, :] == h2[None, :, :]).all(-1).float()  # exact: the diagonal is 1
        return contrastive_loss(self.head1(h1), self.head2(h2), same,
                                temperature=self.temperature)

    def score_tensor(self, h1, h2, kind="cosine", view=1):
        z1, z2 = self.head1(h1), self.head2(h2)
        own, other = (z1, z2) if view == 1 else (z2, z1)
        if kind not in COMMON_SCORES:
            raise ValueError(f"the contrastive baseline has no {kind!r} score")
        return COMMON_SCORES[kind](own, other)


def train_heads(cfg, train, device, checkpoint_dir, log, individual):
    h1, h2 = train
    heads = ContrastiveHeads(h1.shape[1], h2.shape[1], cfg["d"],
                             cfg["params"]["temperature"]).to(device)
    history, _, _ = fit_loop(heads, heads.loss, (h1, h2), epochs=cfg["epochs"],
                             batch=min(cfg["batch"], len(h1)), lr=cfg["lr"], seed=cfg["seed"],
                             eval_every=cfg["epochs"], checkpoint_dir=checkpoint_dir,
                             name=cfg["name"], log=log)
    return heads.eval(), history


SPEC = register(MethodSpec(
    name="contrastive", presentation=Presentation("contrastive (CLIP-style heads)"),
    defaults={"temperature": 0.1}, strength="temperature", grid=(0.05, 0.2), valid=(1e-3, 10.0),
    loss_fn=contrastive_loss, saliency=Saliency(score_model=train_heads, experiments=("ooi",)),
))
