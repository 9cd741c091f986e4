"""Adding a method and a suite from outside the package: a throwaway objective and a throwaway
data set are registered here, in the test file, and run through a real (smoke) sweep with Ray
and MLflow; their rows must reach results.csv and the tables."""
import csv

import numpy as np
import pytest
import torch

from harness import registry, run
from harness.data.mnist_halves import TwoViews
from harness.registry import MethodSpec, Presentation, TwoView
from harness.suites import register_suite, unregister_suite
from harness.suites.two_view import two_view_suite

pytestmark = pytest.mark.sweep


def centred_cosine_loss(z1: torch.Tensor, z2: torch.Tensor, *, scale: float = 1.0) -> dict:
    """−scale · Σ_k corr(z1_k, z2_k): the per-dimension correlations of the batch, maximised."""
    a, b = z1 - z1.mean(0), z2 - z2.mean(0)
    corr = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0) + 1e-8)
    return {"loss": -scale * corr.sum(), "corr": corr.sum().detach()}


def objective(model, h1, h2, state, params):
    return centred_cosine_loss(*model.represent(h1, h2), scale=params["scale"])


MIX = np.random.default_rng(100).standard_normal((2, 8, 8))  # one mixing per view, every split


def planted_views(n: int, seed: int) -> TwoViews:
    """Two 8-d views that share exactly 3 latent factors (canonical correlations 1, 1, 1, then
    0), each mixed with 5 factors of its own; the label is the sign pattern of two shared ones."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, 3))
    x1 = np.hstack([shared, rng.standard_normal((n, 5))]) @ MIX[0]
    x2 = np.hstack([shared, rng.standard_normal((n, 5))]) @ MIX[1]
    labels = (shared[:, 0] > 0).astype(np.int64) * 2 + (shared[:, 1] > 0)
    return TwoViews(x1.astype(np.float32), x2.astype(np.float32), labels)


def load_planted(profile, options):
    return {"train": planted_views(3000, 0), "val": planted_views(600, 1),
            "test": planted_views(1000, 2)}


@pytest.fixture
def throwaway_method_and_suite():
    spec = registry.register(MethodSpec(
        name="toy_corr", presentation=Presentation("Toy correlation"), defaults={"scale": 1.0},
        strength="scale", grid=(0.5, 1.0), loss_fn=centred_cosine_loss,
        two_view=TwoView(objective=objective, batchnorm=True)))
    suite = register_suite(two_view_suite("toy_planted", "8-d views with 3 planted shared factors",
                                          load_planted, dims=(4,)))
    yield spec, suite
    registry.unregister("toy_corr")
    unregister_suite("toy_planted")


def test_a_method_and_a_suite_registered_from_a_test_file_run_through_a_smoke_sweep(
        throwaway_method_and_suite, tmp_path, capsys):
    out = tmp_path / "runs"
    code = run.main(["--suite", "toy_planted", "--profile", "smoke", "--methods", "toy_corr,cca",
                     "--out", str(out), "--epochs", "10"])
    assert code == 0, capsys.readouterr().err[-3000:]
    sweep = out / "toy_planted-smoke"
    with open(sweep / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["name"] for r in rows) == sorted([
        "toy_corr[d=4,scale=0.5,seed=0]", "toy_corr[d=4,scale=1,seed=0]",
        "cca[d=4,ridge=0.001,seed=0]", "cca[d=4,ridge=0.1,seed=0]"])
    assert all(r["status"] == "ok" for r in rows)
    toy = [r for r in rows if r["method"] == "toy_corr"]
    assert {r["param_scale"] for r in toy} == {"0.5", "1.0"} and all(r["version_torch"] for r in toy)
    # canonical correlations 1, 1, 1, 0: held-out linear CCA at d = 4 sums to 3 (+ sampling
    # noise of the fourth, ~0.03); the learned codes recover most of it in 10 smoke epochs
    cca = [float(r["corr_heldout"]) for r in rows if r["method"] == "cca"]
    assert all(abs(c - 3.0) < 0.1 for c in cca), cca
    assert all(2.0 < float(r["corr_heldout"]) <= 4.0 for r in toy), [r["corr_heldout"] for r in toy]
    table1 = (sweep / "table1.md").read_text()
    assert "| Toy correlation |" in table1 and "| CCA |" in table1
    assert "toy_planted test set" in table1


PLUGIN = '''"""A plug-in from outside the package: one objective, registered on import."""
from harness.registry import MethodSpec, Presentation, TwoView, register


def mean_corr_loss(z1, z2, *, scale: float = 1.0) -> dict:
    a, b = z1 - z1.mean(0), z2 - z2.mean(0)
    corr = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0) + 1e-8)
    return {"loss": -scale * corr.sum(), "corr": corr.sum().detach()}


def objective(model, h1, h2, state, params):
    return mean_corr_loss(*model.represent(h1, h2), scale=params["scale"])


register(MethodSpec(name="plugged_corr", presentation=Presentation("Plugged correlation"),
                    defaults={"scale": 1.0}, strength="scale", grid=(1.0,),
                    loss_fn=mean_corr_loss, two_view=TwoView(objective=objective, batchnorm=True)))
'''


def test_a_plugin_module_in_a_temporary_folder_joins_a_sweep_by_pattern(tmp_path):
    """`--plugin FILE.py`, nothing installed: its method is matched by `--methods plug*`, runs
    on the Ray workers, and reaches results.csv and the tables; the contract check passes."""
    import subprocess
    import sys

    from tests.test_sweep import REPO
    plugin = tmp_path / "plugins" / "my_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "harness.run", "--suite", "mnist_halves",
                           "--profile", "smoke", "--plugin", str(plugin), "--methods", "plug*,cca",
                           "--dims", "8", "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plug-in " + str(plugin) + ": plugged_corr" in proc.stdout
    with open(out / "mnist_halves-smoke" / "results.csv") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert rows["plugged_corr[d=8,scale=1,seed=0]"]["status"] == "ok"
    assert float(rows["plugged_corr[d=8,scale=1,seed=0]"]["corr_heldout"]) > 0
    assert "| Plugged correlation |" in (out / "mnist_halves-smoke" / "table1.md").read_text()
    check = subprocess.run([sys.executable, "-c", "from harness import registry; "
                            f"registry.load_plugin({str(plugin)!r}); "
                            "from harness.contracts import check_method; "
                            "check_method('plugged_corr'); print('contract ok')"],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert check.stdout.strip() == "contract ok", check.stderr[-2000:]
