"""TrialRecord's rows: what results.csv gets from a live record and from the store's copy."""
import math

from harness.record import TrialRecord
from harness.suites import mnist_halves


def test_a_live_record_keeps_its_training_time_in_the_csv_row():
    # During a sweep results.csv is written from live records, whose time is not a metric yet;
    # the suite's columns name train_seconds, which must not blank it.
    live = TrialRecord(name="dcca[d=8,ridge=0.001,seed=0]", method="dcca", d=8,
                       metrics={"corr_heldout": 3.5}, train_seconds=12.5)
    row = live.csv_row(mnist_halves.COLUMNS)
    assert row["train_seconds"] == 12.5 and row["corr_heldout"] == 3.5
    assert math.isnan(row["recog_acc"])  # a metric it lacks stays a blank cell
    stored = TrialRecord(name=live.name, method="dcca", d=8,
                         metrics={"corr_heldout": 3.5, "train_seconds": 12.5}, train_seconds=12.5)
    assert stored.csv_row(("corr_heldout", "train_seconds"))["train_seconds"] == 12.5


def test_hardware_names_the_cpu_model_where_linux_gives_it(tmp_path, monkeypatch):
    """Two 2-core machines of one kind were different CPUs (an AVX2 EPYC, an AVX-512 Xeon),
    with different speeds and float results: the provenance must tell them apart."""
    from harness import record
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: avx2\n")
    assert record.cpu_model(str(info)) == "AMD EPYC 7B13"
    assert record.cpu_model(str(tmp_path / "missing")) == ""
    monkeypatch.setattr(record, "cpu_model", lambda: "AMD EPYC 7B13")
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "(AMD EPYC 7B13)" in record.hardware()
