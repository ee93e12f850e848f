"""A researcher's own `module:factory`, found where docs/workloads.md says, without PYTHONPATH."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from db import ResultsDB
from workers.modules import allow_imports_from
from workers.workloads import WorkloadError, build_workload, code_to_ship

GNS = str(Path(sys.executable).parent / "gns")  # the console script: its sys.path holds no working directory

FACTORY = textwrap.dedent('''
    import torch
    from torch import nn
    from workers.model import MultiTaskNet
    from workers.workloads.base import CLASSIFICATION, REGRESSION, Split, Task, Workload

    def build(options):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(600, 8, generator=g)
        data = Split(x, ((x[:, 0] > 0).long(), x[:, 1:2] * 10))
        train, validation, test = (data.take(torch.arange(a, b)) for a, b in ((0, 400), (400, 500), (500, 600)))
        model = MultiTaskNet(body=nn.Sequential(nn.Linear(8, options.get("hidden", 16)), nn.ReLU()),
                             shared_layer=nn.Linear(options.get("hidden", 16), 16), after_shared=nn.ReLU(),
                             heads=[nn.Linear(16, 2), nn.Linear(16, 1)])
        return Workload("mine", (Task("sign", CLASSIFICATION), Task("value", REGRESSION)), train, test, model,
                        validation=validation)
''')


def write_package(folder: Path, package: str) -> None:
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("")
    (folder / package / "mtl.py").write_text(FACTORY)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def test_gns_train_imports_a_factory_from_the_directory_it_runs_in(tmp_path):
    write_package(tmp_path, "cwdpkg")
    done = subprocess.run([GNS, "train", "--workload", "cwdpkg.mtl:build", "--method", "equal", "--steps", "5"],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cwdpkg.mtl:build equal seed 0: ok after 5 steps" in done.stdout


def test_a_factory_beside_the_spec_trains_on_ray_workers_run_from_elsewhere(tmp_path):
    """The spec's folder is neither the working directory nor on PYTHONPATH: Ray ships the package."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_package(project, "specpkg")
    spec = {"study": "own", "kind": "methods", "workload": "specpkg.mtl:build", "workload_options": {"hidden": 12},
            "training": {"steps": 10, "log_every": 5}, "gradnorm": {"alpha": 1.0},
            "methods": {"methods": ["equal", "gradnorm"], "inverse_initial_loss": False}, "resources": {"cpu": 1}}
    (project / "spec.yaml").write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'own.db'}"
    done = subprocess.run([GNS, "launch", str(project / "spec.yaml"), "--storage", url],
                          cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "starting a local Ray" in done.stderr and "first trials started" in done.stderr
    with ResultsDB(url, create=False) as results:
        runs = results.runs("own")
    assert sorted(runs["method"]) == ["equal", "gradnorm"] and (runs["status"] == "ok").all()


def test_an_import_failure_says_where_it_looked_and_how_to_fix_it(tmp_path):
    allow_imports_from(tmp_path)
    with pytest.raises(WorkloadError) as caught:
        build_workload("nowhere_pkg.mtl:build", {}, seed=0)
    message = str(caught.value)
    assert "No module named 'nowhere_pkg'" in message and str(tmp_path) in message
    assert "put nowhere_pkg/ or nowhere_pkg.py in the directory you run gns from or beside the spec" in message


def test_a_module_that_fails_on_its_own_import_is_named_as_such(tmp_path):
    (tmp_path / "brokenmod.py").write_text("import not_installed_anywhere\n")
    allow_imports_from(tmp_path)
    with pytest.raises(WorkloadError, match="importing 'brokenmod' for 'brokenmod:build' failed: No module named "
                                            "'not_installed_anywhere'"):
        build_workload("brokenmod:build", {}, seed=0)


def test_only_code_from_the_allowed_folders_is_shipped(tmp_path):
    write_package(tmp_path, "shippkg")
    (tmp_path / "single_file_factory.py").write_text(FACTORY)
    allow_imports_from(tmp_path)
    assert code_to_ship("shippkg.mtl:build") == [str((tmp_path / "shippkg").resolve())]
    assert code_to_ship("single_file_factory:build") == [str((tmp_path / "single_file_factory.py").resolve())]
    assert code_to_ship("toy") == []
    assert code_to_ship("json:loads") == []  # an installed module: every worker has it already
