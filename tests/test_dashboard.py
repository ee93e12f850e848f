"""optuna-dashboard, started on our database, serves the study we recorded."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from db import ResultsDB
from tests.fake_results import diverged_result, fake_result
from workers.config import TrialConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_dashboard_serves_the_recorded_study(database_url):
    with ResultsDB(database_url) as store:
        store.create_study("shown", "random-static", {"study": "shown"})
        good = TrialConfig(method="static", weights=(1.0, 2.0))
        bad = TrialConfig(method="gradnorm", alpha=3.0)
        store.record("shown", good.key(), good.to_dict(), fake_result())
        store.record("shown", bad.key(), bad.to_dict(), diverged_result())
    port = free_port()
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    process = subprocess.Popen(
        [str(dashboard), database_url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        summaries = get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["shown"]
        study = get_json(f"http://127.0.0.1:{port}/api/studies/{summaries[0]['study_id']}")
        states = sorted(t["state"] for t in study["trials"])
        assert states == ["Complete", "Fail"]
        complete = next(t for t in study["trials"] if t["state"] == "Complete")
        assert complete["values"] == [0.7]
        assert {p["name"] for p in complete["params"]} >= {"method", "seed", "w_0", "w_1"}
    finally:
        process.terminate()
        process.wait(timeout=20)
