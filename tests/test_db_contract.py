"""The results database contract, on a SQLite file and on the real PostgreSQL server."""

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, insert, select

from db import DatabaseInputError, DatabaseUnreachable, NoSuchStudy, NotOurDatabase, ResultsDB
from db.errors import BadDatabaseURL, DatabaseUnavailable
from db.schema import StudyRow, TrialRow
from tests.fake_results import diverged_result, fake_result
from workers.config import TrialConfig

STATIC = TrialConfig(method="static", weights=(3.0, 1.0), steps=20, log_every=10)
GRADNORM = TrialConfig(method="gradnorm", alpha=0.5, steps=20, log_every=10)
SPEC = {"study": "fig4", "kind": "random-static", "runs": 3}


@pytest.fixture
def results(database_url):
    with ResultsDB(database_url) as store:
        store.create_study("fig4", "random-static", SPEC)
        yield store


def record(store, config, result, study="fig4"):
    return store.record(study, config.key(), config.to_dict(), result)


def test_a_recorded_run_reads_back_with_its_numbers(results):
    record(results, STATIC, fake_result(final_test_losses=(0.5, 20.0), initial_losses=(1.0, 100.0)))
    runs = results.runs("fig4")
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["key"] == STATIC.key() and run["state"] == "COMPLETE" and run["method"] == "static"
    assert run["value"] == pytest.approx(0.5 / 1.0 + 20.0 / 100.0)
    assert run["test_loss.a"] == 0.5 and run["test_loss.b"] == 20.0
    assert run["initial_loss.b"] == 100.0
    assert (run["time_averaged_weight.a"], run["time_averaged_weight.b"]) == (1.5, 0.5)
    assert run["mse.b"] == 20.0
    assert run["wall_time_s"] == 1.25


def test_wall_times_are_the_recorded_trials_and_a_stored_value_that_is_no_time_is_left_out(results):
    for seed in range(4):
        record(results, TrialConfig(method="equal", seed=seed, steps=20, log_every=10), fake_result())
    assert results.wall_times("fig4") == [1.25] * 4
    with results.session() as session:  # rows damaged by hand: untrusted, so not summed
        trial_ids = session.scalars(select(TrialRow.id).order_by(TrialRow.id)).all()
        for trial_id, damaged in zip(trial_ids, (-5.0, None, float("nan"))):
            session.get(TrialRow, trial_id).wall_time_s = damaged
        session.commit()
    assert results.wall_times("fig4") == [1.25]


def test_traces_are_rows_per_step_and_task(results):
    record(results, GRADNORM, fake_result(steps=(0, 10, 20)))
    traces = results.traces("fig4")
    assert len(traces) == 3 * 2
    at_10 = traces[(traces.step == 10)].set_index("task")
    # fake_result: train = step + i + 1, test = step + i + 2, G_i = 0.1 (i + 1)
    assert at_10.loc["b", "train_loss"] == 12.0 and at_10.loc["b", "test_loss"] == 13.0
    assert at_10.loc["a", "grad_norm"] == pytest.approx(0.1) and at_10.loc["b", "grad_norm"] == pytest.approx(0.2)
    assert traces[traces.step == 0]["grad_norm"].isna().all()
    assert set(traces["method"]) == {"gradnorm"}


def test_recording_the_same_key_twice_leaves_one_trial(results, database_url):
    first = record(results, STATIC, fake_result())
    again = record(results, STATIC, fake_result(final_test_losses=(9.0, 9.0)))
    assert first.created and not again.created and first.trial_id == again.trial_id
    assert len(results.runs("fig4")) == 1
    assert results.runs("fig4").iloc[0]["test_loss.a"] == 0.5  # the first recording stands
    assert len(optuna.load_study(study_name="fig4", storage=database_url).trials) == 1
    assert len(results.traces("fig4")) == 3 * 2


def claim_left_by_a_dead_writer(url, key, config):
    """The state a writer killed between claiming a key and creating its Optuna trial leaves:
    an unfinished gns_trials row owned by a token nobody holds, silent for long."""
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    engine = create_engine(url)
    with engine.begin() as connection:
        study_id = connection.execute(select(StudyRow.id).where(StudyRow.name == "fig4")).scalar_one()
        connection.execute(
            insert(TrialRow).values(study_id=study_id, key=key, complete=False, status="recording", claim_token="dead",
                                    attempt=0, heartbeat_at=long_ago, config=config, recorded_at=long_ago)
        )
    engine.dispose()
    return study_id


def test_a_crash_between_claim_and_optuna_trial_is_repaired_on_retry(results, database_url):
    claim_left_by_a_dead_writer(database_url, STATIC.key(), STATIC.to_dict())
    assert results.recorded_keys("fig4") == set()
    record(results, STATIC, fake_result())
    assert results.recorded_keys("fig4") == {STATIC.key()}
    assert len(optuna.load_study(study_name="fig4", storage=database_url).trials) == 1


def test_a_crash_after_the_optuna_trial_reuses_it(results, database_url):
    claim_left_by_a_dead_writer(database_url, STATIC.key(), STATIC.to_dict())
    frozen = optuna.trial.create_trial(value=1.0, user_attrs={"key": STATIC.key(), "attempt": 0})
    optuna.load_study(study_name="fig4", storage=database_url).add_trial(frozen)  # ...and died here
    record(results, STATIC, fake_result())
    trials = optuna.load_study(study_name="fig4", storage=database_url).trials
    assert len(trials) == 1 and len(results.runs("fig4")) == 1


def test_a_trial_shows_running_until_it_is_recorded(results, database_url):
    results.start_trial("fig4", STATIC.key(), STATIC.to_dict())
    assert results.progress("fig4") == {"running": 1}
    assert results.recorded_keys("fig4") == set() and results.runs("fig4").empty
    (trial,) = optuna.load_study(study_name="fig4", storage=database_url).trials
    assert trial.state == TrialState.RUNNING and trial.params["method"] == "static"
    record(results, STATIC, fake_result())
    (trial,) = optuna.load_study(study_name="fig4", storage=database_url).trials  # the same trial, finished
    assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(0.7)
    assert results.progress("fig4") == {"ok": 1}


def test_requeue_keeps_history_and_the_key_is_recorded_once_more(results, database_url):
    results.start_trial("fig4", STATIC.key(), STATIC.to_dict())  # its driver dies here
    record(results, GRADNORM, diverged_result())
    with ResultsDB(database_url) as next_driver:
        assert next_driver.requeue("fig4") == 1  # the stale RUNNING trial
        assert next_driver.requeue("fig4", failed=True) == 1  # the diverged one
        assert next_driver.progress("fig4") == {"pending": 2}
        record(next_driver, STATIC, fake_result())
        record(next_driver, GRADNORM, fake_result())
        assert next_driver.progress("fig4") == {"ok": 2}
    trials = optuna.load_study(study_name="fig4", storage=database_url).trials
    history = sorted((t.user_attrs["key"] == STATIC.key(), t.user_attrs["attempt"], t.state.name) for t in trials)
    assert history == [(False, 0, "FAIL"), (False, 1, "COMPLETE"), (True, 0, "FAIL"), (True, 1, "COMPLETE")]
    stale = [t for t in trials if t.user_attrs["key"] == STATIC.key() and t.user_attrs["attempt"] == 0]
    assert stale[0].user_attrs["status"] == "stale"
    assert len(results.runs("fig4")) == 2


def test_optuna_sees_params_values_and_states(results, database_url):
    record(results, STATIC, fake_result())
    record(results, GRADNORM, diverged_result())
    crashed = TrialConfig(method="equal", seed=7)
    results.record("fig4", crashed.key(), crashed.to_dict(), failure="RuntimeError: worker died")

    study = optuna.load_study(study_name="fig4", storage=database_url)
    by_key = {t.user_attrs["key"]: t for t in study.trials}
    static = by_key[STATIC.key()]
    assert static.state == TrialState.COMPLETE and static.value == pytest.approx(0.7)
    assert static.params["method"] == "static" and static.params["seed"] == 0
    assert static.params["w_0"] == pytest.approx(1.5) and static.params["w_1"] == pytest.approx(0.5)
    assert json.loads(static.user_attrs["config"])["weights"] == [3.0, 1.0]
    gradnorm = by_key[GRADNORM.key()]
    assert gradnorm.state == TrialState.FAIL and gradnorm.value is None
    assert gradnorm.params["alpha"] == 0.5
    assert "non-finite" in gradnorm.user_attrs["failure_reason"]
    assert by_key[crashed.key()].state == TrialState.FAIL
    assert by_key[crashed.key()].user_attrs["failure_reason"] == "RuntimeError: worker died"

    runs = results.runs("fig4").set_index("key")
    assert runs.loc[GRADNORM.key(), "state"] == "FAIL" and math.isnan(runs.loc[GRADNORM.key(), "value"])
    assert runs.loc[crashed.key(), "status"] == "crashed"
    assert results.progress("fig4") == {"ok": 1, "diverged": 1, "crashed": 1}


def test_studies_metadata_counts_and_delete(results, database_url):
    record(results, STATIC, fake_result())
    record(results, GRADNORM, diverged_result())
    results.create_study("other", "methods", {"study": "other"})
    frame = results.studies().set_index("study")
    assert frame.loc["fig4", ["trials", "ok", "failed"]].tolist() == [2, 1, 1]
    assert frame.loc["other", "trials"] == 0
    info = results.find_study("fig4")
    assert info.spec == SPEC and info.kind == "random-static" and len(info.spec_hash) == 64
    assert info.updated_at >= info.created_at and info.product_version != ""

    results.delete_study("fig4")
    assert results.find_study("fig4") is None
    assert list(results.studies()["study"]) == ["other"]
    assert "fig4" not in [s.study_name for s in optuna.get_all_study_summaries(database_url)]
    with pytest.raises(NoSuchStudy):
        results.runs("fig4")


def test_time_averaged_weights_of_a_recorded_gradnorm_run(results):
    record(results, GRADNORM, fake_result(time_averaged_weights=(1.2, 0.8)))
    assert results.time_averaged_weights("fig4", GRADNORM.key()) == (1.2, 0.8)
    assert results.time_averaged_weights("fig4", "missing") is None


def test_one_database_holds_many_studies_with_the_same_keys(results):
    results.create_study("second", "random-static", SPEC)
    record(results, STATIC, fake_result())
    record(results, STATIC, fake_result(final_test_losses=(1.0, 1.0)), study="second")
    assert len(results.runs("fig4")) == len(results.runs("second")) == 1


def test_creating_an_existing_study_is_refused(results):
    with pytest.raises(DatabaseInputError, match="already exists"):
        results.create_study("fig4", "random-static", SPEC)


def test_reader_open_does_not_create_anything(tmp_path):
    path = tmp_path / "absent.db"
    with pytest.raises(DatabaseUnreachable, match="no database"):
        ResultsDB(f"sqlite:///{path}", create=False)
    assert not path.exists()


def test_a_database_without_our_tables_is_refused_for_reading(tmp_path):
    import sqlite3

    path = tmp_path / "foreign.db"
    sqlite3.connect(path).execute("create table x (y int)").connection.commit()
    with pytest.raises(NotOurDatabase, match="another application's database"):
        ResultsDB(f"sqlite:///{path}", create=False)


@pytest.mark.parametrize(
    "url, error, message",
    [
        ("postgresql://u@host:notaport/db", BadDatabaseURL, "cannot parse"),
        ("mysql://root@localhost/test", BadDatabaseURL, "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@h/db", BadDatabaseURL, "psycopg"),
        ("sqlite://", BadDatabaseURL, "names no SQLite file"),
        ("sqlite:////no/such/dir/x.db", DatabaseUnreachable, "does not exist"),
        ("postgresql://postgres@127.0.0.1:5432/no_such_database_here", DatabaseUnreachable, "cannot connect"),
    ],
)
def test_bad_urls_raise_errors_naming_the_problem(url, error, message):
    with pytest.raises(error, match=message):
        ResultsDB(url)


def test_a_server_that_does_not_answer_is_waited_for_by_writers_and_not_by_readers(monkeypatch):
    """Nobody listens on port 1: an outage to a writer (retried, then exit 4), bad input to a reader (exit 2)."""
    url = "postgresql://postgres@127.0.0.1:1/test"
    with pytest.raises(DatabaseUnreachable, match="cannot connect"):
        ResultsDB(url, create=False)
    monkeypatch.setenv("GNS_DB_RETRY_S", "1")
    with pytest.raises(DatabaseUnavailable, match="database unavailable for 1 s while connecting to postgresql"):
        ResultsDB(url)


def test_a_bare_file_path_is_an_sqlite_database(tmp_path):
    path = tmp_path / "plain path.db"
    with ResultsDB(str(path)) as results:
        results.create_study("here", "methods", SPEC)
    assert path.read_bytes().startswith(b"SQLite format 3")
    with ResultsDB(str(path), create=False) as results:
        assert list(results.studies()["study"]) == ["here"]


@pytest.mark.parametrize("create", [True, False])
def test_three_slashes_before_an_absolute_path_get_a_hint(tmp_path, monkeypatch, create):
    """sqlite:///tmp/x/gns.db is the relative path tmp/x/gns.db; the absolute one exists, so say so."""
    absolute = tmp_path / "gns.db"
    if not create:
        ResultsDB(f"sqlite:///{absolute}").close()
    monkeypatch.chdir(tmp_path)  # where tmp/... (relative) does not exist
    three = f"sqlite://{absolute}"
    with pytest.raises(DatabaseUnreachable) as caught:
        ResultsDB(three, create=create)
    assert f"for the absolute path {absolute} write sqlite:///{absolute} (four slashes) or just the path" in str(caught.value)
    with pytest.raises(DatabaseUnreachable) as caught:  # no hint where the absolute path would not fit either
        ResultsDB(f"sqlite://{tmp_path}/no/such/folder/gns.db", create=create)
    assert "four slashes" not in str(caught.value)


def test_sqlite_file_is_where_the_url_says(tmp_path):
    path = tmp_path / "here.db"
    with ResultsDB(f"sqlite:///{path}"):
        pass
    assert Path(path).exists()


def test_a_database_of_another_schema_version_is_refused(sqlite_url):
    from sqlalchemy import update

    from db.schema import SchemaInfo

    with ResultsDB(sqlite_url) as store:
        with store.session() as session:
            session.execute(update(SchemaInfo).values(version=99))  # as a later release would leave it
    with pytest.raises(DatabaseInputError, match="schema version 99"):
        ResultsDB(sqlite_url, create=False)


def test_best_value_is_the_lowest_successful_value(results):
    assert results.best_value("fig4") is None
    record(results, GRADNORM, diverged_result())
    assert results.best_value("fig4") is None
    record(results, STATIC, fake_result(final_test_losses=(0.5, 20.0)))  # 0.5 + 0.2
    record(results, TrialConfig(method="equal"), fake_result(final_test_losses=(0.25, 10.0)))  # 0.25 + 0.1
    assert results.best_value("fig4") == pytest.approx(0.35)


def test_a_study_recorded_before_new_methods_existed_keeps_recording(results, database_url, monkeypatch):
    """Optuna refuses a categorical param whose choices change within a study: a release that
    adds methods keeps each study's own choices, and a method outside them lives in the config only."""
    import db.store

    older = ("equal", "static", "uncertainty", "gradnorm", "gradnorm-static", "single-task")
    monkeypatch.setattr(db.store, "METHODS", older)
    results.create_study("old", "methods", {"study": "old"})
    results.record("old", TrialConfig(method="equal").key(), TrialConfig(method="equal").to_dict(), fake_result())
    monkeypatch.undo()  # the release with more methods opens the same database
    with ResultsDB(database_url) as newer:
        for method in ("gradnorm", "famo"):
            config = TrialConfig(method=method)
            newer.start_trial("old", config.key(), config.to_dict())
            newer.record("old", config.key(), config.to_dict(), fake_result())
        assert sorted(newer.runs("old")["method"]) == ["equal", "famo", "gradnorm"]
    optuna_study = optuna.load_study(study_name="old", storage=database_url)
    assert [t.params.get("method") for t in optuna_study.trials] == ["equal", "gradnorm", None]
    assert optuna_study.trials[1].distributions["method"].choices == older


def test_a_saved_run_state_is_kept_with_its_trial_until_the_study_drops_it(results, database_url):
    """Bytes in, the same bytes out, for a recorded successful trial only; replaced, dropped per study."""
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    results.start_trial("fig4", STATIC.key(), STATIC.to_dict())
    results.record_state("fig4", STATIC.key(), blob)
    assert results.run_state("fig4", STATIC.key()) is None  # not recorded yet: nothing may continue from it
    record(results, STATIC, fake_result())
    assert results.run_state("fig4", STATIC.key()) == blob
    results.record_state("fig4", STATIC.key(), b"newer")
    with ResultsDB(database_url, create=False) as reader:
        assert reader.run_state("fig4", STATIC.key()) == b"newer"
    with pytest.raises(KeyError, match="no trial"):
        results.record_state("fig4", GRADNORM.key(), blob)
    results.create_study("other", "random-static", SPEC)
    record(results, STATIC, fake_result(), study="other")
    results.record_state("other", STATIC.key(), b"kept")
    assert results.delete_run_states("fig4") == 1
    assert results.run_state("fig4", STATIC.key()) is None and results.run_state("other", STATIC.key()) == b"kept"
    # a failed run keeps no state to go on from
    record(results, GRADNORM, diverged_result())
    results.record_state("fig4", GRADNORM.key(), b"x")
    assert results.run_state("fig4", GRADNORM.key()) is None


def test_search_proposals_are_kept_once_bit_for_bit_and_go_with_their_study(results, database_url):
    """The draws a replay reuses: exact floats back (JSON), a proposal kept stays as first kept,
    per study; a damaged one is refused on read with a one-line error."""
    first = (0, "tpe", 0, (0.1 + 0.2, 1 / 3, 5e-324))  # not short decimals: every bit must come back
    assert results.record_proposals("fig4", [first, (1, "random", 3, (1.0, 0.25, 0.5))]) == 2
    assert results.record_proposals("fig4", [(0, "tpe", 0, (0.9, 0.9, 0.9)), (0, "tpe", 1, (0.5, 0.5, 0.5))]) == 1
    with ResultsDB(database_url, create=False) as reader:
        assert reader.proposals("fig4") == {(0, "tpe", 0): (0.1 + 0.2, 1 / 3, 5e-324), (1, "random", 3): (1.0, 0.25, 0.5),
                                            (0, "tpe", 1): (0.5, 0.5, 0.5)}
    with pytest.raises(ValueError, match="finite draws"):
        results.record_proposals("fig4", [(0, "tpe", 2, (math.nan, 1.0))])
    results.create_study("other", "search", SPEC)
    assert results.proposals("other") == {}
    from db.schema import ProposalRow

    with results.session() as session:  # what a damaged or hand-edited database could hold
        session.execute(insert(ProposalRow).values(study_id=results._study_row("other").id, seed=0, searcher="tpe",
                                                   index=0, draws=["0.5", None], recorded_at=datetime.now(timezone.utc)))
    with pytest.raises(DatabaseInputError, match=r"damaged search proposal \(seed 0, tpe #0\)"):
        results.proposals("other")
    results.delete_study("fig4")
    results.create_study("fig4", "search", SPEC)
    assert results.proposals("fig4") == {}


def test_a_checkpoint_outlives_a_requeue_of_its_interrupted_trial_but_not_a_retry_of_a_failed_one(results):
    """A RUNNING trial's checkpoint is read back only while it is unfinished; a requeue (its driver died)
    keeps it for the next launch; --retry-failed drops a failed trial's, which trains from step 0."""
    results.start_trial("fig4", STATIC.key(), STATIC.to_dict())
    results.record_state("fig4", STATIC.key(), b"at step 50")
    assert results.checkpoint("fig4", STATIC.key()) == b"at step 50"
    assert results.run_state("fig4", STATIC.key()) is None  # not a finished run's state
    assert results.requeue("fig4") == 1
    assert results.checkpoint("fig4", STATIC.key()) == b"at step 50" and results.checkpoint_count("fig4") == 1

    results.start_trial("fig4", GRADNORM.key(), GRADNORM.to_dict())
    results.record_state("fig4", GRADNORM.key(), b"before it diverged")
    record(results, GRADNORM, diverged_result())
    assert results.checkpoint("fig4", GRADNORM.key()) is None  # finished: no checkpoint to go on from
    assert results.requeue("fig4", failed=True) == 1
    assert results.checkpoint("fig4", GRADNORM.key()) is None

    record(results, STATIC, fake_result())
    assert results.checkpoint("fig4", STATIC.key()) is None and results.checkpoint_count("fig4") == 0
    assert results.delete_run_states("fig4", STATIC.key()) == 1
    assert results.run_state("fig4", STATIC.key()) is None
