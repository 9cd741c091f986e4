"""The user-facing `MUC2M` API: fitting stages, outputs, persistence and input checks."""
import numpy as np
import pytest
import torch
from test_muc2m_fixtures import one_thread  # noqa: F401 (fixture)

from muc2m.model import MUC2M


def views(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, 2))
    x1 = np.hstack([shared, rng.standard_normal((n, 4))]) @ rng.standard_normal((6, 6))
    x2 = np.hstack([shared, rng.standard_normal((n, 3))]) @ rng.standard_normal((5, 5))
    return x1.astype(np.float32), x2.astype(np.float32)


SMALL = dict(d=3, hidden=(16,), epochs=3, batch_size=64, lr=1e-3, device="cpu")


@pytest.fixture(scope="module")
def small_fit():
    x1, x2 = views(400)
    v1, v2 = views(200, seed=1)
    return MUC2M(**SMALL, seed=0).fit(x1, x2, v1, v2), (x1, x2), (v1, v2)


def test_transform_and_score_shapes_and_types(small_fit):
    model, (x1, x2), _ = small_fit
    out = model.transform(x1, x2)
    assert set(out) == {"common", "individual"}
    for z in (*out["common"], *out["individual"]):
        assert isinstance(z, np.ndarray) and z.shape == (400, 3)
    torch_out = model.transform(torch.from_numpy(x1), torch.from_numpy(x2))
    assert isinstance(torch_out["common"][0], torch.Tensor)
    np.testing.assert_allclose(torch_out["common"][0].numpy(), out["common"][0])
    # batching in transform does not change anything (eval-mode BN)
    np.testing.assert_allclose(model.transform(x1, x2, batch_size=7)["individual"][1],
                               out["individual"][1], rtol=1e-5, atol=1e-6)
    z1, z2 = out["common"]
    cos = (z1 * z2).sum(1) / np.linalg.norm(z1, axis=1) / np.linalg.norm(z2, axis=1)
    np.testing.assert_allclose(model.score(x1, x2, kind="cosine"), cos, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(x1, x2, kind="dot"), (z1 * z2).sum(1), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(model.score(x1, x2, kind="norm", view=2),
                               np.linalg.norm(z2, axis=1), rtol=1e-5)
    ind = model.score(x1, x2, kind="individual")
    assert ind.shape == (400,) and (ind >= 0).all()
    assert (ind <= np.linalg.norm(out["individual"][0], axis=1) + 1e-5).all()  # a projection


def test_validation_keeps_the_best_epoch(small_fit):
    """With validation arrays each stage restores its lowest-validation-loss state."""
    model, _, (v1, v2) = small_fit
    h1, h2 = model._tensor(v1), model._tensor(v2)
    params = {k: model.config[k] for k in ("lam", "gamma", "alpha")}
    from muc2m.common import objective
    common_val = objective(model.common, h1, h2, {}, params)["loss"].item()
    individual_val = model.individual_terms(h1, h2)["loss"].item()
    for stage, value in (("common", common_val), ("individual", individual_val)):
        history = model.history[stage]
        assert len(history) == SMALL["epochs"]
        assert value == pytest.approx(min(r["val_loss"] for r in history), rel=1e-5)


def test_common_is_frozen_during_the_individual_stage():
    x1, x2 = views(300)
    model = MUC2M(**{**SMALL, "ind_epochs": 0}, seed=0).fit(x1, x2)
    frozen = {k: v.clone() for k, v in model.common.state_dict().items()}
    model.run_stage(model.individual, model.individual_terms,
                    (model._tensor(x1), model._tensor(x2)), None, epochs=2)
    for key, value in model.common.state_dict().items():  # weights and BN running statistics
        torch.testing.assert_close(value, frozen[key])


def test_save_load_round_trip(small_fit, tmp_path):
    model, (x1, x2), _ = small_fit
    path = tmp_path / "muc2m.pt"
    model.save(path)
    loaded = MUC2M.load(path, device="cpu")
    assert loaded.config == model.config
    before, after = model.transform(x1, x2), loaded.transform(x1, x2)
    for key in ("common", "individual"):
        for a, b in zip(before[key], after[key]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.score(x1, x2, kind="individual"),
                                  loaded.score(x1, x2, kind="individual"))
    torch.load(path, weights_only=True)  # plain tensors and JSON-able config only


def test_fitting_is_seeded():
    x1, x2 = views(200)
    a = MUC2M(**SMALL, seed=3).fit(x1, x2).transform(x1, x2)
    b = MUC2M(**SMALL, seed=3).fit(x1, x2).transform(x1, x2)
    np.testing.assert_array_equal(a["individual"][0], b["individual"][0])


def test_input_checks():
    x1, x2 = views(100)
    with pytest.raises(ValueError, match="must exceed d"):
        MUC2M(**{**SMALL, "batch_size": 3}).fit(x1, x2)
    with pytest.raises(ValueError, match="pairs must align"):
        MUC2M(**SMALL).fit(x1, x2[:50])
    with pytest.raises(RuntimeError, match="not fitted"):
        MUC2M(**SMALL).transform(x1, x2)
    model = MUC2M(**SMALL).build(6, 5)
    with pytest.raises(ValueError, match="cosine, dot, norm, individual"):
        model.score(x1, x2, kind="cos")
    with pytest.raises(ValueError, match="view must be 1 or 2"):
        model.saliency(x1, x2, kind="cosine", view=3)


def test_fit_checkpoints_both_stages_and_a_rerun_resumes_identically(tmp_path):
    x1, x2 = views(300)
    first = MUC2M(**SMALL, seed=0).fit(x1, x2, checkpoint_dir=tmp_path)
    assert (tmp_path / "common" / "trial_state.pt").exists()
    assert (tmp_path / "individual" / "trial_state.pt").exists()
    again = MUC2M(**SMALL, seed=0).fit(x1, x2, checkpoint_dir=tmp_path)  # nothing left to train
    a, b = first.transform(x1, x2), again.transform(x1, x2)
    for key in ("common", "individual"):
        for u, v in zip(a[key], b[key]):
            np.testing.assert_array_equal(u, v)
