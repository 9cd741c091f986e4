"""A reported trial's encoders, logged as MLflow models by `tracking.log_trial`, load back with
`mlflow.pytorch.load_model` and reproduce the trial's own test representations; the trial's run
also carries its dataset input, source tags and system metrics."""
import numpy as np
import pytest
import torch

from harness import mlflow_extras, tracking
from harness.suites import get_suite


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    suite = get_suite("mnist_halves")
    data = suite.load_data("smoke", {})
    cfg = suite.resolve({"method": "muc2m", "d": 10, "seed": 0, "profile": "smoke"})
    record = suite.trial(cfg, data=data, checkpoint_dir=str(out / "ck" / cfg["name"]))
    client = tracking.open_client(tracking.default_uri(out), artifact_dir=out / "mlartifacts")
    parent = tracking.start_sweep(client, "mnist_halves", "smoke", {"methods": "muc2m"})
    run_id = tracking.log_trial(client, parent, record)
    import mlflow
    mlflow.set_tracking_uri(tracking.default_uri(out))  # where models:/ URIs resolve
    return client, parent, client.get_run(run_id), record, data


def test_logged_encoders_reproduce_the_trials_test_representations(logged):
    import mlflow
    client, _, run, record, data = logged
    assert record.status == "ok" and record.encoder_path
    assert "models_not_logged" not in run.data.tags
    model_ids = [o.model_id for o in run.outputs.model_outputs]
    assert len(model_ids) == 2
    saved = mlflow_extras.load_saved(record.encoder_path)
    n = mlflow_extras.CHECK_ITEMS
    test = data["test"]
    for model_id in model_ids:
        logged_model = mlflow.get_logged_model(model_id)
        view = logged_model.name[-1]  # encoder_view1 / encoder_view2
        encoder = mlflow.pytorch.load_model(f"models:/{model_id}")
        x = getattr(test, "x" + view)[:n]
        with torch.no_grad():
            z = encoder(torch.as_tensor(x)).double()
        assert z.shape == (n, record.d)
        # the trial's own representations of these test items (computed in the trial)
        assert torch.allclose(z, saved["z" + view], atol=1e-5), (z - saved["z" + view]).abs().max()
    # and the loaded pair scores what the trial reported, on the whole test split
    from harness import metrics
    enc = {m.name[-1]: mlflow.pytorch.load_model(f"models:/{m.model_id}")
           for m in map(mlflow.get_logged_model, model_ids)}
    train = data["train"]
    with torch.no_grad():
        reps = [enc[v](torch.as_tensor(getattr(split, "x" + v))).double()
                for split in (train, test) for v in "12"]
    corr = metrics.corr_heldout(*reps, record.d)
    assert np.isclose(corr, record.metrics["corr_heldout"], rtol=1e-4), (corr, record.metrics)


def test_trial_run_has_dataset_source_and_system_metrics(logged):
    client, parent, run, record, _ = logged
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "mnist_halves-smoke"
    assert dataset_input.dataset.digest == record.dataset["digest"]
    assert run.data.tags["mlflow.source.type"] == "LOCAL"
    assert run.data.tags["mlflow.source.name"] == "harness/run.py"
    assert run.data.tags["mlflow.source.git.commit"].startswith(record.git_commit[:7])
    assert run.data.tags[tracking.SWEEP_TAG] == parent.info.run_id
    assert tracking.PARENT_RUN_ID_TAG not in run.data.tags  # top-level: visible in the UI
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(cpu) == len(record.system_metrics) >= 1
    assert [m.step for m in cpu] == sorted(m.step for m in cpu)
    assert "system/system_memory_usage_megabytes" in run.data.metrics
    assert [r.info.run_id for r in tracking.child_runs(client, parent)] == [run.info.run_id]


def test_logging_encoders_drops_mlflows_pickle_warning_and_only_it(logged, monkeypatch):
    """MLflow warns of pickle on every logged model (two lines per trial in a sweep's log):
    the warning is dropped while the encoders are logged, and the filter goes with it."""
    import logging
    client, _, run, record, _ = logged
    logger = logging.getLogger("mlflow.pytorch")
    seen = []

    class Keep(logging.Handler):
        def emit(self, rec):
            seen.append(rec.getMessage())
    handler = Keep(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        mlflow_extras.log_encoders(client, run.info.run_id, record.encoder_path)
        assert not [m for m in seen if "Pickle" in m]
        assert not logger.filters  # removed after the call
        # the control: without the filter the same call does warn, by that message
        monkeypatch.setattr(mlflow_extras._DropMessage, "filter", lambda self, rec: True)
        mlflow_extras.log_encoders(client, run.info.run_id, record.encoder_path)
        assert [m for m in seen if m.startswith("Saving pytorch model by Pickle")]
    finally:
        logger.removeHandler(handler)
