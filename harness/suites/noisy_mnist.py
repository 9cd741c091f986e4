"""Noisy MNIST (Wang et al. 2015, the DCCAE paper's benchmark): view 1 a rotated
digit, view 2 another image of the same class under uniform noise (`harness.data.noisy_mnist`).

The two-view trial, metrics and Tables 1/5 of MNIST halves, plus the DCCAE paper's protocol
(`classification.md`): a linear SVM on view-1 representations of the training set, tested on
view 1 of the test set. The DCCAE paper's own figures are not shown beside ours: we have not
been able to check them against the paper here.
"""
from __future__ import annotations

from pathlib import Path

from harness import metrics, report
from harness.data import noisy_mnist
from harness.suites import register_suite
from harness.suites.two_view import COLUMNS, cut_to_profile, render, two_view_suite


def load(profile: str, options: dict) -> dict:
    return cut_to_profile(noisy_mnist.load(options.get("mnist_dir")), profile)


def view1_svm(train_reps, test_reps, data) -> dict:
    acc = metrics.view1_classification(train_reps[0], data["train"].y, test_reps[0],
                                       data["test"].y)
    return {"view1_svm_acc": 100 * acc}


def render_with_classification(df, results, out_dir: Path):
    written, sel = render(df, results, out_dir)
    profile, suite_name = results.plan.profile, results.plan.suite
    dims = sorted(df.d.unique())
    text = "\n\n".join([
        f"# Classification accuracy (%), {suite_name} (profile `{profile}`): the DCCAE paper's "
        f"protocol",
        "LinearSVC(C=1) on standardised view-1 representations of the first 10,000 training "
        "pairs, tested on view 1 of the test set; the strength selected as in Table 1 "
        "(validation correlation).",
        report.markdown_table(results.catalog, sel, dims,
                              lambda r, m, d: report.fmt(r, "view1_svm_acc")),
        report.provenance(df, results.plan)])
    (out_dir / "classification.md").write_text(text + "\n")
    return written + [out_dir / "classification.md"], sel


SUITE = register_suite(two_view_suite(
    "noisy_mnist", "Noisy MNIST (DCCAE paper): rotated digit / noisy other image of the class",
    load, dims=(10, 50), columns=COLUMNS + ("view1_svm_acc",), extra_metrics=view1_svm,
    render=render_with_classification, options=("mnist_dir", "hidden")))
