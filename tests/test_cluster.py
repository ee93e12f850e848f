"""A local multi-process Ray cluster (a head and a worker node) mirroring docker-compose.yml:
`gns launch --address` joins it and records into PostgreSQL."""

import contextlib
import os
import secrets
import signal
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from db import ResultsDB
from study.cli import main
from tests.helpers import GENEROUS_S, free_port

pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture
def ray_cluster(monkeypatch):
    # Every node and the driver share one token, as in docker-compose.yml; a fresh
    # machine has no ~/.ray/auth_token, and `ray start` does not make one.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    temp_dir = tempfile.mkdtemp(prefix="gnsray-", dir="/tmp")  # Ray's socket paths must stay short
    port = free_port()
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run(
            [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}", *common],
            check=True, capture_output=True, env=os.environ,
        )
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], check=True, capture_output=True, env=os.environ)
        yield f"127.0.0.1:{port}"
    finally:
        stop_processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_processes_under(temp_dir: str) -> None:
    """Kill this cluster's processes and their children, and nothing else.

    (`ray stop` would also stop any other Ray on the machine, such as a study
    a developer is running.) Ray's daemons name the temp dir in their command
    lines; their helpers are their children.
    """
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    doomed = {pid for pid, command in commands.items() if temp_dir in command}
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        doomed |= children
        grew = bool(children)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_launch_joins_a_two_node_cluster_and_records_into_postgres(tmp_path, ray_cluster, postgres_url):
    # Each node has one CPU and a trial takes one, so two trials at once run on both nodes;
    # the rendezvous workload makes the first two wait for each other, so both nodes train.
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "study": "cluster",
                "kind": "random-static",
                "workload": "tests.flaky_workload:rendezvous",
                "workload_options": {"folder": str(meeting), "parties": 2},
                "training": {"steps": 40, "log_every": 20},
                "random_static": {"runs": 5, "gradnorm_static": False, "inverse_initial_loss": False},
                "max_concurrent": 2,
            }
        )
    )
    # The driver is a process of its own, as in docker-compose.yml; this also keeps
    # Ray's per-process authentication state out of the test process.
    driver = subprocess.run(
        [sys.executable, "-m", "study", "launch", str(spec_path), "--address", ray_cluster, "--storage", postgres_url],
        capture_output=True, text=True, env=os.environ, timeout=GENEROUS_S,
    )
    assert driver.returncode == 0, driver.stderr
    assert "cluster: 6/6 recorded" in driver.stderr
    with ResultsDB(postgres_url, create=False) as results:
        runs = results.runs("cluster")
    assert len(runs) == 6 and (runs["state"] == "COMPLETE").all()
    nodes = {worker.split("/")[1] for worker in runs["worker"]}
    assert len(nodes) == 2  # both nodes trained trials
    assert all(worker.endswith("/cpu") for worker in runs["worker"])


def test_an_unreachable_address_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"study": "x", "kind": "methods", "methods": {"methods": ["equal"]}}))
    fresh = tmp_path / "fresh.db"
    code = main(["launch", str(spec_path), "--address", f"127.0.0.1:{free_port()}", "--storage", f"sqlite:///{fresh}"])
    err = capsys.readouterr().err
    assert code == 2 and "--address: cannot join the Ray cluster" in err
    assert not fresh.exists()
