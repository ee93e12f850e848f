"""`gns train --study`, `gns studies`, `gns query` and `gns delete` on real databases."""

import csv
import io
import json
from pathlib import Path

import pytest

from db import ResultsDB
from study.cli import main
from tests.fake_results import diverged_result, fake_result
from tests.helpers import file_digest
from workers.config import TrialConfig


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def recorded(database_url):
    with ResultsDB(database_url) as store:
        store.create_study("fig4", "random-static", {"study": "fig4"})
        for seed, losses in ((0, (0.5, 20.0)), (1, (0.25, 40.0))):
            config = TrialConfig(method="static", weights=(1.0, 3.0), seed=seed)
            store.record("fig4", config.key(), config.to_dict(), fake_result(final_test_losses=losses))
        gradnorm = TrialConfig(method="gradnorm", alpha=2.0)
        store.record("fig4", gradnorm.key(), gradnorm.to_dict(), diverged_result())
    return database_url


def test_real_gns_train_runs_recorded_and_queried(capsys, sqlite_url):
    for method in ("equal", "gradnorm"):
        code, _, err = run_cli(
            capsys, "train", "--method", method, "--steps", "30", "--log-every", "10",
            "--option", "train_size=500", "--study", "adhoc", "--storage", sqlite_url,
        )
        assert code == 0 and "recorded: study 'adhoc'" in err
    code, out, _ = run_cli(capsys, "query", "adhoc", "--storage", sqlite_url, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["method"] for r in rows] == ["equal", "gradnorm"]
    assert rows[0]["initial_loss.task0"] == rows[1]["initial_loss.task0"]  # same seed, same start
    assert rows[0]["time_averaged_weight.task0"] == 1.0 and rows[1]["time_averaged_weight.task0"] > 1.0
    code, out, _ = run_cli(capsys, "query", "adhoc", "--storage", sqlite_url, "--traces", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(out)))) == 2 * 4 * 2  # runs x log points x tasks


def test_studies_table_lists_counts(capsys, recorded):
    code, out, _ = run_cli(capsys, "studies", "--storage", recorded)
    header, rule, row = out.strip().splitlines()
    assert code == 0 and header.split()[:5] == ["study", "kind", "trials", "ok", "failed"]
    assert row.split()[:5] == ["fig4", "random-static", "3", "2", "1"]


def test_query_table_is_aligned_and_has_default_columns(capsys, recorded):
    code, out, _ = run_cli(capsys, "query", "fig4", "--storage", recorded)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2 + 3
    assert lines[0].split() == ["number", "key", "state", "method", "alpha", "seed", "value", "validation_value", "time_averaged_weight.a", "time_averaged_weight.b"]
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule the same width


def test_query_csv_where_and_columns(capsys, recorded):
    code, out, _ = run_cli(
        capsys, "query", "fig4", "--storage", recorded, "--format", "csv",
        "--where", "method=static", "--where", "test_loss.b>30", "--columns", "seed,value,test_loss.*",
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 1
    assert rows[0]["seed"] == "1" and float(rows[0]["value"]) == pytest.approx(0.25 + 0.4)
    assert set(rows[0]) == {"seed", "value", "test_loss.a", "test_loss.b"}


def test_query_json_has_nulls_for_failed_runs(capsys, recorded):
    code, out, _ = run_cli(capsys, "query", "fig4", "--storage", recorded, "--format", "json", "--where", "state=FAIL")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1
    assert rows[0]["value"] is None and rows[0]["status"] == "diverged" and rows[0]["alpha"] == 2.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", "missing"], "no study named 'missing'"),
        (["query", "fig4", "--where", "nosuch=1"], "--where: no column 'nosuch'"),
        (["query", "fig4", "--where", "value=abc"], "--where: column 'value' is numeric"),
        (["query", "fig4", "--where", "garbage"], "--where: expected COLUMN=VALUE"),
        (["query", "fig4", "--columns", "nothing*"], "--columns: no column matches 'nothing*'"),
        (["delete", "fig4"], "without --yes"),
    ],
)
def test_query_bad_input_exits_2_with_one_line(capsys, recorded, argv, message):
    code, out, err = run_cli(capsys, *argv, "--storage", recorded)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "url, message",
    [
        ("sqlite:///{tmp}/missing.db", "no database at"),
        ("postgresql://postgres@127.0.0.1:1/test", "cannot connect"),
        ("oracle://x@y/z", "unsupported database"),
        ("::::", "cannot parse"),
    ],
)
def test_unreachable_or_garbled_storage_exits_2_and_writes_nothing(capsys, tmp_path, url, message):
    url = url.format(tmp=tmp_path)
    for argv in (["studies"], ["query", "fig4"]):
        code, out, err = run_cli(capsys, *argv, "--storage", url)
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_delete_removes_the_study(capsys, recorded):
    code, out, _ = run_cli(capsys, "delete", "fig4", "--yes", "--storage", recorded)
    assert code == 0 and "deleted study 'fig4' (3 trials)" in out
    code, _, err = run_cli(capsys, "query", "fig4", "--storage", recorded)
    assert code == 2


def test_deleting_an_unknown_study_leaves_the_file_byte_for_byte(capsys, sqlite_url):
    with ResultsDB(sqlite_url) as store:
        store.create_study("kept", "methods", {"study": "kept"})
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    before = file_digest(path)
    code, _, err = run_cli(capsys, "delete", "nosuch", "--yes", "--storage", sqlite_url)
    assert code == 2 and "no study named 'nosuch'" in err and err.count("\n") == 1
    assert file_digest(path) == before
    wal = Path(f"{path}-wal")  # SQLite's companion a read-only open of a WAL database may make: left empty
    assert not wal.exists() or wal.stat().st_size == 0


def test_train_refuses_to_record_into_a_planned_study(capsys, recorded):
    code, _, err = run_cli(capsys, "train", "--steps", "5", "--study", "fig4", "--storage", recorded)
    assert code == 2 and "is a random-static study" in err


@pytest.mark.parametrize("planned, counts, driver, expected", [
    (5, {"ok": 5}, None, "s: complete; 5/5 done, 0 failed, best 0.5"),
    (5, {"ok": 3, "diverged": 1, "running": 1}, "host pid 7 since 10:00", "s: running under host pid 7 since 10:00; "
     "4/5 done, 1 running, 1 failed, 0 waiting, best 0.5"),
    (10, {"ok": 4, "running": 2}, None, "s: interrupted, no driver running; 4/10 done, 0 failed, best 0.5; "
     "6 trials to run at the next gns launch (2 of them in flight when its driver stopped)"),
    (10, {"ok": 3, "crashed": 1, "pending": 2}, None, "s: interrupted, no driver running; 4/10 done, 1 failed, "
     "best 0.5; 6 trials to run at the next gns launch"),
])
def test_the_status_headline_states_the_driver_state_and_counts_that_agree_with_it(planned, counts, driver, expected):
    from study.cli.status import headline

    assert headline("s", planned, counts, driver, 0.5) == expected


def test_the_status_headline_says_how_many_unfinished_trials_go_on_from_a_checkpoint():
    from study.cli.status import headline

    assert headline("s", 10, {"ok": 4, "running": 2, "pending": 1}, None, 0.5, checkpoints=3) == (
        "s: interrupted, no driver running; 4/10 done, 0 failed, best 0.5; 6 trials to run at the next gns launch "
        "(2 of them in flight when its driver stopped, 3 to go on from a checkpoint)")


def test_status_sums_the_training_time_of_the_recorded_trials():
    from study.cli.status import compute_line

    # 1 h + 30 min + 6 min = 1.60 h over 3 trials
    assert compute_line([3600.0, 1800.0, 360.0]) == ("compute: 1.60 h of training summed over 3 recorded trials "
                                                     "(wall-clock, each on one core or GPU share; a pack's runs share its time; "
                                                     "a busy machine counts longer)")
    assert compute_line([90.0]).startswith("compute: 1.5 min of training summed over 1 recorded trial ")
    assert compute_line([1.25, 1.25]).startswith("compute: 2.5 s of training summed over 2 recorded trials ")
    assert compute_line([]) is None  # nothing timed: no line
