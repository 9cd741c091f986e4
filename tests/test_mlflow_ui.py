"""The MLflow UI after a smoke sweep, in headless Chromium: the URL `python -m harness.ui`
prints opens the sweep's trials with their metrics, Dataset, Source and Models filled, and the
chart view holds corr_heldout. Screenshots go to $MLFLOW_UI_SCREENSHOTS (default: tmp)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
METHODS, DIMS = "muc2m,dcca", "10,50"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=2400,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)  # no selenium-manager


def wait_for(driver, predicate, what: str, timeout: float = 90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = driver.find_element("tag name", "body").text
        if predicate(text):
            return text
        time.sleep(1)
    raise AssertionError(f"the page never showed {what}; it showed:\n{text[:3000]}")


@pytest.mark.sweep
@pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                    reason="Debian's chromium and chromium-driver are not installed (.ci/run "
                           "installs them)")
def test_printed_url_opens_the_trials_with_metrics_dataset_source_and_charts(tmp_path):
    out = tmp_path / "runs"
    sweep = subprocess.run([sys.executable, "-m", "harness.run", "--suite", "mnist_halves",
                            "--profile", "smoke", "--methods", METHODS, "--dims", DIMS,
                            "--out", str(out)], capture_output=True, text=True, timeout=900,
                           cwd=REPO)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    from harness import tracking
    client = MlflowClient(tracking.default_uri(out))
    parent = tracking.find_sweep(client, "mnist_halves", "smoke")
    trials = tracking.child_runs(client, parent)
    names = sorted(r.info.run_name for r in trials)
    assert len(names) >= 4 and all(r.data.metrics.get("corr_heldout") for r in trials)

    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "harness.ui", str(out), "--port", str(port)],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          start_new_session=True)
    shots = Path(os.environ.get("MLFLOW_UI_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    driver = None
    try:
        printed, url = [], None
        deadline = time.time() + 180
        while url is None and time.time() < deadline:
            line = ui.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("the MLflow UI is up: open "):
                url = line.split("open ", 1)[1].split()[0]
        assert url is not None, "".join(printed)
        assert url == tracking.runs_url(parent, port=port)  # the URL a sweep prints
        charts_url = next(l.split("charts: ", 1)[1].strip() for l in printed if "charts: " in l)

        driver = browser()
        driver.get(url)
        # every trial, without a click: top-level runs in the sweep's shared view
        text = wait_for(driver, lambda t: all(n[:20] in t for n in names) and "run.py" in t,
                        "every trial with its Source")
        assert "Model training" in text and f"{len(names)} matching runs" in text
        assert text.count("mnist_halves-smoke (") == len(names)  # the Dataset column, filled
        assert text.count("run.py") == len(names)                # the Source column
        assert text.count("encoder_view") >= len(names)          # the Models column
        for metric in ("corr_heldout", "recog_acc"):  # the compared metrics are columns
            assert metric in text
        best = max(trials, key=lambda r: r.data.metrics["corr_heldout"])
        assert f"{best.data.metrics['corr_heldout']:.2f}"[:4] in text.replace(",", "")
        driver.save_screenshot(str(shots / "mlflow_runs.png"))

        driver.get(charts_url)
        section = re.compile(r"Model metrics\s*\((\d+)\)")
        text = wait_for(driver, lambda t: section.search(t) and "corr_heldout" in t,
                        "the chart view with corr_heldout")
        assert int(section.search(text).group(1)) >= 3  # not "Model metrics (0)"
        deadline = time.time() + 60  # the charts are drawn (plotly) after their titles show
        while time.time() < deadline and not driver.execute_script(
                "return document.querySelectorAll('.js-plotly-plot .main-svg').length"):
            time.sleep(1)
        time.sleep(3)
        driver.save_screenshot(str(shots / "mlflow_charts.png"))
        lines = set(text.splitlines())  # chart titles are lines of their own
        for _ in range(6):  # the UI draws the charts scrolled into view: scroll down the grid
            driver.execute_script(
                "document.querySelectorAll('*').forEach(e => { if (e.scrollHeight > "
                "e.clientHeight + 10) e.scrollTop += 600; });")
            time.sleep(2)
            lines |= set(driver.find_element("tag name", "body").text.splitlines())
        missing = {"corr_heldout", "recog_acc", "val_corr"} - lines
        assert not missing, (missing, sorted(lines))
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(ui.pid, 15)
        ui.wait(timeout=60)
