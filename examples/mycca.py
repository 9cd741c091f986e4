"""A plug-in objective: load it with `--plugin examples/mycca.py` (README, "Plug in your own
objective"). My CCA maximises the sum of per-dimension correlations of batch-normalised
outputs, −Σ_k corr(z1_k, z2_k); its one searched setting is the learning rate, sampled like
every other method's (`search`), so it joins a committed field on the same budget."""
from harness.registry import MethodSpec, Presentation, TwoView, register


def mycca_loss(z1, z2, *, scale: float = 1.0) -> dict:
    a, b = z1 - z1.mean(0), z2 - z2.mean(0)
    corr = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0) + 1e-8)
    return {"loss": -scale * corr.sum(), "corr": corr.sum().detach()}  # every term is logged


def objective(model, h1, h2, state, params):
    return mycca_loss(*model.represent(h1, h2), scale=params["scale"])


SPEC = register(MethodSpec(name="mycca", presentation=Presentation("My CCA"),
                           defaults={"scale": 1.0}, strength="scale", grid=(0.5, 1.0),
                           search={"lr": (1e-4, 1e-2)}, loss_fn=mycca_loss,
                           two_view=TwoView(objective=objective, batchnorm=True)))
