"""A storage that already holds Optuna's studies welcomes a gns study and keeps its own studies as they were."""

import sqlite3

import optuna
import pytest

from db import NotOurDatabase, ResultsDB
from study.cli import main
from tests.helpers import answer, dashboard_on, file_digest


def lab_studies(url: str) -> dict[str, list[tuple]]:
    """Every Optuna study in `url` with each trial's number, params, value and state."""
    return {
        summary.study_name: [(t.number, t.params, t.value, t.state, t.user_attrs)
                             for t in optuna.load_study(study_name=summary.study_name, storage=url).trials]
        for summary in optuna.get_all_study_summaries(storage=url)
    }


def make_lab_storage(url: str) -> dict[str, list[tuple]]:
    """A lab's Optuna storage: one study with trials, one empty one."""
    lab = optuna.create_study(study_name="lab", storage=url, direction="maximize",
                              sampler=optuna.samplers.RandomSampler(seed=0))
    lab.set_user_attr("owner", "someone else")
    lab.optimize(lambda trial: trial.suggest_float("x", 0, 1) ** 2, n_trials=3)
    optuna.create_study(study_name="empty", storage=url)
    return lab_studies(url)


def gns_train(capsys, url: str, study: str) -> tuple[int, str]:
    code = main(["train", "--workload", "toy", "--tasks", "2", "--option", "train_size=200", "--option",
                 "test_size=50", "--method", "equal", "--steps", "4", "--study", study, "--storage", url])
    return code, capsys.readouterr().err


def test_a_gns_study_joins_an_optuna_storage_which_keeps_its_studies(capsys, database_url):
    before = make_lab_storage(database_url)
    code, err = gns_train(capsys, database_url, "mine")
    assert code == 0, err

    after = lab_studies(database_url)
    assert {name: after[name] for name in before} == before  # their studies, trials and values untouched
    assert [state for *_, state, _ in after["mine"]] == [optuna.trial.TrialState.COMPLETE]
    assert optuna.load_study(study_name="lab", storage=database_url).user_attrs == {"owner": "someone else"}

    assert main(["studies", "--storage", database_url, "--format", "csv"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in listed[1:]] == ["mine"]  # gns lists its own studies only

    with dashboard_on(database_url) as base:
        summaries = answer(f"{base}/api/studies")["study_summaries"]
        assert sorted(s["study_name"] for s in summaries) == ["empty", "lab", "mine"]
        lab = next(s for s in summaries if s["study_name"] == "lab")
        trials = answer(f"{base}/api/studies/{lab['study_id']}")["trials"]
        assert sorted(t["values"][0] for t in trials) == sorted(value for _, _, value, _, _ in before["lab"])


def test_a_name_taken_by_an_optuna_users_study_is_refused_and_it_stays(capsys, database_url):
    before = make_lab_storage(database_url)
    for name in ("lab", "empty"):
        code, err = gns_train(capsys, database_url, name)
        assert code == 2
        assert f"an Optuna study named {name!r}, not made by gradnorm-study, already exists" in err
        assert main(["delete", name, "--storage", database_url, "--yes"]) == 2
        capsys.readouterr()
    assert lab_studies(database_url) == before


def test_reading_an_optuna_storage_without_gns_studies_lists_none(capsys, database_url):
    before = make_lab_storage(database_url)
    assert main(["studies", "--storage", database_url]) == 0
    captured = capsys.readouterr()
    assert "no gradnorm-study studies in" in captured.err and "(no rows)" in captured.out
    assert main(["status", "lab", "--storage", database_url]) == 2
    assert "no study named 'lab'" in capsys.readouterr().err
    assert lab_studies(database_url) == before


def test_an_optuna_storage_with_another_applications_table_is_still_refused_unchanged(tmp_path):
    path = tmp_path / "mixed.db"
    url = f"sqlite:///{path}"
    make_lab_storage(url)
    with sqlite3.connect(path) as connection:
        connection.execute("create table customers (id int)")
    digest = file_digest(path)
    with pytest.raises(NotOurDatabase, match=r"another application's database \(tables customers\)"):
        ResultsDB(url)
    assert file_digest(path) == digest


def test_an_empty_postgresql_database_lists_no_studies_like_one_emptied_by_delete(capsys, postgres_url):
    assert main(["studies", "--storage", postgres_url]) == 0
    empty = capsys.readouterr()
    assert gns_train(capsys, postgres_url, "gone")[0] == 0
    assert main(["delete", "gone", "--storage", postgres_url, "--yes"]) == 0
    capsys.readouterr()
    assert main(["studies", "--storage", postgres_url]) == 0
    assert capsys.readouterr().out == empty.out == "(no rows)\n"
    assert "no gradnorm-study studies in" in empty.err
