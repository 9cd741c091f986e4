import numpy as np
import pytest
import torch

torch.set_num_threads(2)


def correlated_views(n: int, rhos, p1: int, p2: int, seed: int = 0, mix_seed: int = 0):
    """Two views whose canonical correlations are exactly `rhos` (plus zeros) in population:
    latent pairs (u_k, v_k) with corr ρ_k, the rest independent, mixed by random invertible maps."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, p1))
    v = rng.standard_normal((n, p2))
    for k, rho in enumerate(rhos):
        v[:, k] = rho * u[:, k] + np.sqrt(1 - rho ** 2) * v[:, k]
    mix = np.random.default_rng(10_000 + mix_seed)
    m1 = mix.standard_normal((p1, p1)) + 3 * np.eye(p1)
    m2 = mix.standard_normal((p2, p2)) + 3 * np.eye(p2)
    return u @ m1 + 1.0, v @ m2 - 2.0


@pytest.fixture(scope="session")
def mnist_smoke():
    from harness.suites.mnist_halves import load_data
    return load_data("smoke")


def pytest_collection_modifyitems(config, items):
    """The slow tests that start Ray first: with `-n 2` the fast ones then fill the gaps, so no
    sweep test starts last and runs alone (~1 minute off the whole suite)."""
    items.sort(key=lambda item: item.get_closest_marker("sweep") is None)


@pytest.fixture
def factoring_calls(monkeypatch):
    """A list that grows by one each time a model hands an objective its outputs as factors
    (`harness.lowrank.factor_linear_output`)."""
    from harness import lowrank
    calls = []
    real = lowrank.factor_linear_output
    monkeypatch.setattr(lowrank, "factor_linear_output",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls
