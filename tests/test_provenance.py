"""Which code a study's runs trained with: fingerprints by hand, a changed factory refused at relaunch
unless allowed (and the override kept), results from before fingerprints still read."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from db import ResultsDB
from db.schema import TrialRow
from records import product_version
from study.cli import main
from study.provenance import CodeFingerprint, code_fingerprint, code_lines, machine_lines, sources_digest, what_changed
from tests.fake_results import fake_result
from tests.helpers import file_digest
from tests.test_user_code import FACTORY, clean_env, write_package
from workers.config import TrialConfig
from workers.environment import cpu_model
from workers.modules import allow_imports_from

ROOT = Path(__file__).parents[1]
GNS = str(Path(sys.executable).parent / "gns")


def test_a_digest_covers_each_files_path_and_content_in_a_fixed_order(tmp_path):
    import hashlib

    (tmp_path / "b.py").write_text("x = 1\n")
    (tmp_path / "a.py").write_text("y = 2\n")
    expected = hashlib.sha256(b"a.py\0" + b"y = 2\n\0" + b"b.py\0" + b"x = 1\n\0").hexdigest()
    assert sources_digest([tmp_path / "b.py", tmp_path / "a.py"], tmp_path) == expected
    (tmp_path / "a.py").rename(tmp_path / "c.py")  # same contents, another name: another digest
    assert sources_digest([tmp_path / "b.py", tmp_path / "c.py"], tmp_path) != expected


def test_a_factorys_fingerprint_follows_its_source_and_a_builtins_is_the_training_code(tmp_path):
    write_package(tmp_path, "fppkg")
    allow_imports_from(tmp_path)
    before = code_fingerprint("fppkg.mtl:build")
    assert before == code_fingerprint("fppkg.mtl:build")  # deterministic
    assert before.factory_module == "fppkg.mtl" and before.product == product_version()
    builtin = code_fingerprint("toy")
    assert builtin.factory is None and builtin.training == before.training
    (tmp_path / "fppkg" / "mtl.py").write_text(FACTORY.replace('options.get("hidden", 16)', 'options.get("hidden", 24)'))
    after = code_fingerprint("fppkg.mtl:build")
    assert after.factory != before.factory and after.training == before.training
    assert what_changed(before, after) == f"your factory fppkg.mtl ({before.factory[:12]} -> {after.factory[:12]})"
    assert what_changed(before, before) is None
    moved = CodeFingerprint(before.product, "0" * 64)
    assert what_changed(moved, builtin) == (f"gradnorm-study's training code ({builtin.product}: 000000000000 -> "
                                            f"{builtin.training[:12]})")


def test_the_report_and_status_name_the_code_and_warn_when_trials_mix_versions(capsys, tmp_path, sqlite_url):
    old, new = CodeFingerprint("0.1.0", "a" * 64), CodeFingerprint("0.1.0", "b" * 64)
    with ResultsDB(sqlite_url) as results:
        results.create_study("mixed", "methods", {"study": "mixed", "kind": "methods", "workload": "toy"})
        for seed, code in ((0, old), (1, old), (2, new)):
            config = TrialConfig(method="equal", seed=seed)
            results.record("mixed", config.key(), config.to_dict(), fake_result(), provenance={"code": code.to_dict()})
        assert sorted(count for _, count in results.code_fingerprints("mixed")) == [1, 2]
    assert main(["status", "mixed", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert ("warning: the trials trained with 2 versions of the code, so they may not be comparable: "
            "gradnorm-study 0.1.0 training code aaaaaaaaaaaa (2 trials); "
            "gradnorm-study 0.1.0 training code bbbbbbbbbbbb (1 trials)") in out
    assert code_lines([(old.to_dict(), 3)], []) == ["code: gradnorm-study 0.1.0 training code aaaaaaaaaaaa "
                                                    "(every fingerprinted trial: 3)"]


def test_status_and_the_report_name_the_machines_and_warn_when_two_round_differently(capsys, tmp_path, database_url):
    """Trials from two CPU models warn; a trial from before the CPU model was recorded is listed, never
    taken for a third machine; damaged provenance rows are ignored, not trusted."""
    from study.report.build import build_report

    epyc = {"torch": "2.13.0+cpu", "python": "3.11.9", "device": "cpu", "cpu": "AMD EPYC 7B13"}
    xeon, older = {**epyc, "cpu": "Intel Xeon 8481C"}, {k: v for k, v in epyc.items() if k != "cpu"}
    with ResultsDB(database_url) as results:
        results.create_study("machines", "methods", {"study": "machines", "kind": "methods", "workload": "toy"})
        for seed, environment in enumerate((epyc, epyc, older, xeon)):
            config = TrialConfig(method="equal", seed=seed)
            result = dataclasses.replace(fake_result(), environment=environment)
            results.record("machines", config.key(), config.to_dict(), result, provenance={})
        config = TrialConfig(method="equal", seed=9)  # no environment at all: nothing to count
        results.record("machines", config.key(), config.to_dict(), fake_result(), provenance={"worker": "garbage"})
        machines = results.machines("machines")
        assert machines == [({"cpu": "AMD EPYC 7B13", "device": "cpu", "torch": "2.13.0+cpu"}, 2),
                            ({"cpu": "not recorded", "device": "cpu", "torch": "2.13.0+cpu"}, 1),
                            ({"cpu": "Intel Xeon 8481C", "device": "cpu", "torch": "2.13.0+cpu"}, 1)]
        report = build_report(results, "machines", tmp_path / "report", png=False)
    warning = ("warning: the trials trained on 3 different machines; float32 rounds differently on each and training "
               "amplifies it, so runs compared across them differ by more than their weightings: "
               "cpu AMD EPYC 7B13, device cpu, torch 2.13.0+cpu (2 trials); "
               "cpu not recorded, device cpu, torch 2.13.0+cpu (1 trial); "
               "cpu Intel Xeon 8481C, device cpu, torch 2.13.0+cpu (1 trial)")
    assert report.summary["machines"]["lines"] == [warning] and warning in report.summary["problems"]
    assert main(["status", "machines", "--storage", database_url]) == 0
    assert f"  {warning}\n" in capsys.readouterr().out
    # one CPU, and trials that did not record theirs: one machine as far as anyone knows, no warning
    assert machine_lines(machines[:2]) == ["machine: cpu AMD EPYC 7B13, device cpu, torch 2.13.0+cpu (2 trials); "
                                           "cpu not recorded, device cpu, torch 2.13.0+cpu (1 trial)"]
    assert machine_lines([]) == ["machine: not recorded (its trials were recorded before gradnorm-study kept it)"]
    on_gpu = {"cpu": "AMD EPYC 7B13", "device": "cuda:0 (NVIDIA H100)", "torch": "2.13.0+cpu"}
    assert machine_lines([(machines[0][0], 1), (on_gpu, 1)])[0].startswith("warning: the trials trained on 2 ")


def test_status_warns_that_a_search_begun_before_proposals_were_recorded_replays_per_machine(capsys, tmp_path):
    path = tmp_path / "digits.db"
    shutil.copy(ROOT / "docs/results/digits.db", path)  # digits-std-search: schema 2, proposals not recorded
    assert main(["status", "digits-std-search", "--storage", str(path)]) == 0
    assert ("warning: its search proposals were not recorded (begun before schema 6): a report or relaunch replays "
            "the search on the machine it runs on") in capsys.readouterr().out
    assert main(["status", "digits-std-alpha", "--storage", str(path)]) == 0  # not a search: nothing to say
    assert "proposals" not in capsys.readouterr().out


def test_a_database_of_the_previous_schema_reads_unchanged_and_a_writer_upgrades_it(capsys, tmp_path):
    path = tmp_path / "v2.db"
    shutil.copy(ROOT / "docs/results/toy.db", path)  # recorded by the previous release (schema version 2)
    before = file_digest(path)
    assert main(["status", "toy2-fig4-paper", "--storage", str(path)]) == 0
    assert "code: not recorded (its trials were recorded before" in capsys.readouterr().out
    with ResultsDB(str(path), create=False) as reader:  # the tables of later versions are never asked for
        assert reader.proposals("toy2-fig4-paper") == {} and reader.checkpoint_count("toy2-fig4-paper") == 0
    assert file_digest(path) == before
    with ResultsDB(str(path)) as writer:  # a writer adds versions 3 to 6's columns and tables, keeps every row
        assert writer.schema_version == 6 and len(writer.runs("toy2-fig4-paper")) == 36
        config = TrialConfig(method="equal", seed=99)
        writer.record("toy2-fig4-paper", config.key(), config.to_dict(), fake_result(),
                      provenance={"code": CodeFingerprint("x", "c" * 64).to_dict()})
        assert writer.code_fingerprints("toy2-fig4-paper") == [(CodeFingerprint("x", "c" * 64).to_dict(), 1)]
    with ResultsDB(str(path), create=False) as reader:
        assert reader.schema_version == 6 and len(reader.runs("toy2-fig4-paper")) == 37
        assert reader.runs("toy2-fig4-paper")[["selected_step", "resumed_step"]].isna().all().all()
        assert reader.traces("toy2-fig4-paper")["validation_loss"].isna().all()  # not logged before version 4


@pytest.mark.slow
@pytest.mark.ray
def test_a_changed_factory_is_refused_at_relaunch_unless_allowed_and_the_override_is_kept(tmp_path):
    write_package(tmp_path, "provpkg")
    spec = {"study": "prov", "kind": "methods", "workload": "provpkg.mtl:build", "training": {"steps": 6},
            "methods": {"methods": ["equal"], "inverse_initial_loss": False}, "resources": {"cpu": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'prov.db'}"

    def gns(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([GNS, *argv], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600)

    first = gns("launch", "spec.yaml", "--storage", url)
    assert first.returncode == 0, first.stderr
    with ResultsDB(url, create=False) as reader:
        [(recorded, count)] = reader.code_fingerprints("prov")
        with reader.session() as session:
            [provenance] = session.scalars(select(TrialRow.provenance)).all()
    assert count == 1 and recorded["factory_module"] == "provpkg.mtl"
    import torch

    assert provenance["worker"]["torch"] == torch.__version__ and provenance["worker"]["device"] == "cpu"
    assert provenance["worker"]["cpu"] == cpu_model() and cpu_model() not in ("", "unknown")  # results differ by CPU
    assert set(provenance["driver"]) == {"optuna", "ray", "python"}

    # the user edits the model (hidden 16 -> 24), as in the issue
    (tmp_path / "provpkg" / "mtl.py").write_text(FACTORY.replace('options.get("hidden", 16)', 'options.get("hidden", 24)'))
    before = file_digest(tmp_path / "prov.db")
    refused = gns("launch", "spec.yaml", "--storage", url)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "study 'prov' was trained with other code: your factory provpkg.mtl (" in refused.stderr
    assert "--allow-code-change" in refused.stderr and file_digest(tmp_path / "prov.db") == before

    allowed = gns("launch", "spec.yaml", "--storage", url, "--allow-code-change")
    assert allowed.returncode == 0, allowed.stderr
    assert "--allow-code-change: study 'prov' goes on with gradnorm-study" in allowed.stderr
    status = gns("status", "prov", "--storage", url)
    assert "code changed on purpose (--allow-code-change) at " in status.stdout
    with ResultsDB(url, create=False) as reader:
        [change] = reader.code_changes("prov")
    assert change["from"]["fingerprints"] == [recorded] and change["to"]["factory"] != recorded["factory"]
