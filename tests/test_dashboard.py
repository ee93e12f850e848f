"""optuna-dashboard, started on our database, serves the study we recorded."""

import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from db import ResultsDB
from tests.fake_results import diverged_result, fake_result
from tests.helpers import GENEROUS_S, free_port, wait_until
from workers.config import TrialConfig

PORT_TRIES = 5


def answer(url: str):
    """The JSON at `url`, or None while the server is not answering yet."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError):
        return None


@contextlib.contextmanager
def dashboard_on(storage: str):
    """optuna-dashboard on a free port; a port lost to a race between picking and binding is picked again."""
    executable = Path(sys.executable).with_name("optuna-dashboard")
    for _ in range(PORT_TRIES):
        port = free_port()
        process = subprocess.Popen(
            [str(executable), storage, "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: answer(f"{base}/api/studies") or process.poll() is not None, "optuna-dashboard to answer")
            if process.poll() is None:
                yield base
                return
        finally:
            process.terminate()
            process.wait(timeout=GENEROUS_S)
    raise AssertionError(f"optuna-dashboard exited at once on {PORT_TRIES} free ports")


def test_dashboard_serves_the_recorded_study(database_url):
    with ResultsDB(database_url) as store:
        store.create_study("shown", "random-static", {"study": "shown"})
        good = TrialConfig(method="static", weights=(1.0, 2.0))
        bad = TrialConfig(method="gradnorm", alpha=3.0)
        running = TrialConfig(method="equal")
        store.record("shown", good.key(), good.to_dict(), fake_result())
        store.record("shown", bad.key(), bad.to_dict(), diverged_result())
        store.start_trial("shown", running.key(), running.to_dict())
    with dashboard_on(database_url) as base:
        summaries = answer(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["shown"]
        study = answer(f"{base}/api/studies/{summaries[0]['study_id']}")
        states = sorted(t["state"] for t in study["trials"])
        assert states == ["Complete", "Fail", "Running"]  # a trial in training shows live
        complete = next(t for t in study["trials"] if t["state"] == "Complete")
        assert complete["values"] == [0.7]
        assert {p["name"] for p in complete["params"]} >= {"method", "seed", "w_0", "w_1"}
