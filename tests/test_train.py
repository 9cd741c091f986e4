"""The shared training loop (`harness.loop`) through the two-view trial: checkpoint/restore,
refusals, the single-trial CLI."""
import json
import subprocess
import sys

import pytest
import torch

from harness.common import ConfigError
from harness.loop import batches
from harness.suites.mnist_halves import SUITE as MNIST

resolve = MNIST.resolve
run_trial = MNIST.trial


class Interrupted(Exception):
    pass


def interrupt_at(epoch_to_stop):
    def report(epoch, row):
        if epoch == epoch_to_stop:
            raise Interrupted()
    return report


@pytest.mark.parametrize("method", ["sdcca", "softcca", "muc2m"])
def test_restored_trial_ends_with_the_same_metrics(method, mnist_smoke, tmp_path):
    config = {"method": method, "d": 10, "seed": 3, "profile": "smoke", "epochs": 4,
              "eval_every": 1}
    straight = run_trial(config, data=mnist_smoke, device="cpu")
    with pytest.raises(Interrupted):
        run_trial(config, data=mnist_smoke, checkpoint_dir=tmp_path, report=interrupt_at(2),
                  device="cpu")
    resumed = run_trial(config, data=mnist_smoke, checkpoint_dir=tmp_path, device="cpu")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.metrics.pop("resumed_from") == 2 and straight.metrics.pop("resumed_from") == 0
    assert resumed.metrics == straight.metrics
    assert resumed.history == straight.history


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(mnist_smoke):
    """Also whatever trial ran before in the process: Ray Tune reuses a worker for trial
    after trial (`reuse_actors`), so nothing a trial sets may leak into the next."""
    config = {"method": "muc2m", "d": 8, "seed": 0, "profile": "smoke", "epochs": 2}
    a = run_trial(config, data=mnist_smoke, device="cpu")
    run_trial({"method": "sdcca", "d": 8, "seed": 5, "profile": "smoke", "epochs": 1,
               "precision": "bf16"}, data=mnist_smoke, device="cpu")
    b = run_trial(config, data=mnist_smoke, device="cpu")
    c = run_trial({**config, "seed": 1}, data=mnist_smoke, device="cpu")
    assert a.metrics == b.metrics
    assert a.metrics != c.metrics


@pytest.mark.parametrize("d", [256, 300])
def test_batch_not_larger_than_d_is_refused(d):
    with pytest.raises(ConfigError, match="not larger than d"):
        resolve({"method": "muc2m", "d": d, "profile": "smoke"})  # smoke batch is 256


@pytest.mark.parametrize("config, message", [
    ({"method": "nope", "d": 10}, "unknown method"),
    ({"method": "dcca", "d": 0}, "positive integer"),
    ({"method": "dcca", "d": 10, "profile": "huge"}, "unknown profile"),
    ({"method": "sdcca", "d": 10, "strength": 1.5}, "outside its valid range"),
    ({"method": "muc2m", "d": 10, "overrides": {"gama": 1.0}}, "no parameter"),
    ({"method": "muc2m", "d": 10, "overrides": {"ind_score": "bogus"}},
     "'ind_score' of method 'muc2m' is one of bn, pre_bn, affine_bn, not 'bogus'"),
    ({"method": "muc2m", "d": 10, "epochs": 0}, "epochs=0 must be a whole number"),  # not 'unset'
    ({"method": "muc2m", "d": 10, "epochs": 2.5}, "epochs=2.5 must be a whole number"),
    ({"method": "muc2m", "d": 10, "lr": -1.0}, "lr=-1.0 must be a finite number > 0"),
    ({"method": "muc2m", "d": 10, "lr": float("nan")}, "lr=nan must be a finite number > 0"),
])
def test_bad_configurations_are_refused_with_a_clear_message(config, message):
    with pytest.raises(ConfigError, match=message):
        resolve(config)


def test_cli_bad_input_is_one_line_and_non_zero():
    proc = subprocess.run([sys.executable, "-m", "harness.train", "--method", "nope", "--d", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown method" in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "lr=-1.0 must be a finite number > 0"),  # was torch's traceback, exit 1
    (["--epochs", "0"], "epochs=0 must be a whole number"),  # ran the profile's epochs
    (["--set", "ind_score=bogus"], "is one of bn, pre_bn, affine_bn, not 'bogus'"),
    (["--device", "tpu"], "device 'tpu' is not a torch device"),
    (["--device", "cuda:7"], "device 'cuda:7': "),  # no GPU here, or fewer than eight
    (["--checkpoint-dir", "/proc/no-such-folder"], "--checkpoint-dir /proc/no-such-folder: "
                                                   "cannot write there"),
])
def test_cli_refuses_bad_flags_in_one_line_before_loading_data(
        flags, message, capsys, monkeypatch):
    from harness import train
    from harness.suites import mnist_halves
    monkeypatch.setattr(mnist_halves, "load_data", lambda *a, **k: pytest.fail("data loaded"))
    assert train.main(["--method", "muc2m", "--d", "10", "--profile", "smoke", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_a_budgeted_profile_divides_epochs_by_a_methods_epoch_cost():
    from harness import registry
    from harness.profiles import Profile
    budgeted = Profile("b", batch=2048, lr=1e-3, epochs=5, eval_every=5,
                       epochs_by_d=((100, 50), (200, 30)), budgeted=True)
    assert budgeted.epochs_for(50, registry.get("dcca").two_view.epoch_cost) == 50
    assert registry.get("corrnet").two_view.epoch_cost == 2.0
    assert budgeted.epochs_for(50, 2.0) == 25
    assert budgeted.epochs_for(1000, 2.0) == 5  # at least eval_every
    # the quick profile trains every method to convergence under one cap per d
    assert resolve({"method": "corrnet", "d": 50, "profile": "quick"})["epochs"] == \
        resolve({"method": "dcca", "d": 50, "profile": "quick"})["epochs"] == 300
    assert resolve({"method": "dcca", "d": 200, "profile": "quick"})["patience"] == 6
    assert resolve({"method": "corrnet", "d": 50, "profile": "paper"})["epochs"] == 1000


def test_batches_are_the_indexed_rows_of_every_view_and_drop_the_partial_batch():
    views = (torch.arange(30.0).reshape(10, 3), torch.arange(20.0).reshape(10, 2))
    order = torch.tensor([7, 2, 9, 0, 4, 1, 8, 3, 6, 5])
    got = list(batches(views, order, batch=4))
    assert len(got) == 2  # 10 rows: two full batches of 4, the last 2 rows dropped
    for b, batch_views in enumerate(got):
        idx = order[4 * b:4 * (b + 1)]
        assert all(torch.equal(v, full[idx]) for v, full in zip(batch_views, views))


def _smoke(epochs):
    return {"method": "muc2m", "d": 8, "seed": 0, "profile": "smoke", "epochs": epochs}


def test_a_truncated_checkpoint_is_passed_over_with_one_warning_and_the_trial_completes(
        mnist_smoke, tmp_path):
    from harness.loop import CHECKPOINT_FILE, PREVIOUS_FILE
    straight = run_trial(_smoke(6), data=mnist_smoke, device="cpu")
    run_trial(_smoke(4), data=mnist_smoke, checkpoint_dir=tmp_path, device="cpu")  # epochs 2, 4
    latest = tmp_path / CHECKPOINT_FILE
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a node died mid-write
    resumed = run_trial(_smoke(6), data=mnist_smoke, checkpoint_dir=tmp_path, device="cpu")
    assert len(resumed.warnings) == 1 and str(latest) in resumed.warnings[0]
    assert "its previous checkpoint" in resumed.warnings[0]
    assert resumed.metrics.pop("resumed_from") == 2  # the previous checkpoint: epoch 2
    straight.metrics.pop("resumed_from")
    assert resumed.metrics == straight.metrics  # the fallback loses time, not results
    # both unreadable: a fresh start, again the same result
    for path in (tmp_path / CHECKPOINT_FILE, tmp_path / PREVIOUS_FILE):
        path.write_bytes(b"not a checkpoint")
    fresh = run_trial(_smoke(6), data=mnist_smoke, checkpoint_dir=tmp_path, device="cpu")
    assert len(fresh.warnings) == 2 and "a fresh start" in fresh.warnings[1]
    assert fresh.metrics["resumed_from"] == 0
    fresh.metrics.pop("resumed_from")
    assert fresh.metrics == straight.metrics


def test_a_checkpoint_of_another_format_version_is_refused_not_misloaded(mnist_smoke, tmp_path):
    from harness.loop import CHECKPOINT_FILE, CHECKPOINT_FORMAT
    run_trial(_smoke(2), data=mnist_smoke, checkpoint_dir=tmp_path, device="cpu")
    path = tmp_path / CHECKPOINT_FILE
    saved = torch.load(path, weights_only=True)
    saved["format"] = CHECKPOINT_FORMAT + 1
    torch.save(saved, path)
    again = run_trial(_smoke(2), data=mnist_smoke, checkpoint_dir=tmp_path, device="cpu")
    assert again.metrics["resumed_from"] == 0  # retrained, not resumed from the foreign file
    assert len(again.warnings) == 1
    assert f"format v{CHECKPOINT_FORMAT + 1}, this harness reads v{CHECKPOINT_FORMAT}" in again.warnings[0]


def test_cli_prints_the_warning_of_a_truncated_checkpoint_completes_and_prints_one_json_line(
        tmp_path, capsys):
    # in this process (`python -m harness.train` itself runs in the bad-input test): the
    # subprocess paid ~8 s of imports for the same lines
    from harness import train
    from harness.loop import CHECKPOINT_FILE
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 half a zip")
    code = train.main(["--method", "muc2m", "--d", "4", "--profile", "smoke", "--epochs", "2",
                       "--checkpoint-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and str(tmp_path / CHECKPOINT_FILE) in warnings[0]
    result = json.loads(out.strip().splitlines()[-1])  # one JSON object, last line
    assert result["profile"] == "smoke" and result["method"] == "muc2m"
    assert 0 < result["metrics"]["corr_heldout"] <= 4
    assert result["status"] == "ok" and result["git_commit"] and result["versions"]["torch"]


def test_a_trials_gpus_default_to_a_quarter_where_the_cluster_has_some_and_none_are_asked_of_a_cpu_cluster():
    from harness.cli import UsageError, trial_gpus
    assert trial_gpus(None, 1.0) == 0.25 and trial_gpus(None, 0.0) == 0.0
    assert trial_gpus(0.5, 2.0) == 0.5 and trial_gpus(0.0, 0.0) == 0.0
    with pytest.raises(UsageError, match="--gpus-per-trial 0.5: the cluster has no GPU"):
        trial_gpus(0.5, 0.0)
