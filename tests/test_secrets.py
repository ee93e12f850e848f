"""No command prints a database password: not in messages, summaries, "next:" hints or --help."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from study.cli import main

SECRET = "S3cretPassw0rd"


def with_password(url: str) -> str:
    """The same PostgreSQL URL with a password (the test server trusts local connections and ignores it)."""
    return url.replace("postgres@", f"postgres:{SECRET}@", 1)


@pytest.mark.ray
def test_a_launch_on_a_url_with_a_password_never_prints_it(capsys, tmp_path, postgres_url):
    spec = {"study": "quiet", "kind": "methods", "methods": {"methods": ["equal"]}, "training": {"steps": 4},
            "workload_options": {"train_size": 200, "test_size": 50}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    url = with_password(postgres_url)
    assert main(["launch", str(tmp_path / "spec.yaml"), "--storage", url]) == 0
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err
    assert "postgres:***@127.0.0.1" in printed.err and "password shown as ***" in printed.err
    for argv in (["status", "quiet"], ["studies"], ["query", "quiet"], ["delete", "nosuch", "--yes"]):
        main([*argv, "--storage", url])
        printed = capsys.readouterr()
        assert SECRET not in printed.out + printed.err, argv


@pytest.mark.parametrize("url", [f"postgresql://u:{SECRET}@host:notaport/db", f"oracle://u:{SECRET}@host/db",
                                 f"postgresql://u:{SECRET}@127.0.0.1:1/test"])
def test_a_bad_url_is_named_without_its_password(capsys, url):
    assert main(["studies", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err and "u:***@" in err


def test_help_names_the_environment_variable_not_its_value():
    env = {"GNS_STORAGE": f"postgresql://u:{SECRET}@db.internal:5432/results", "PATH": "/usr/bin:/bin"}
    for command in ("status", "launch", "query", "report", "studies", "train", "delete", "plan"):
        done = subprocess.run([sys.executable, "-m", "study", command, "--help"], capture_output=True, text=True,
                              env=env, cwd=Path(__file__).parent.parent, timeout=300)
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout and "db.internal" not in done.stdout
        assert "$GNS_STORAGE, set in the environment" in " ".join(done.stdout.split())
