"""Readers in other processes while the driver writes: SQLite must not say 'database is locked'."""

import multiprocessing
import traceback

import optuna

from db import ResultsDB
from tests.fake_results import fake_result
from tests.helpers import GENEROUS_S
from workers.config import TrialConfig

TRIALS = 120


def write(url: str, readers_reading, outcomes) -> None:
    """Record TRIALS runs once both readers have read at least once; report "ok" or the traceback."""
    try:
        readers_reading.wait(timeout=GENEROUS_S)
        with ResultsDB(url) as store:
            for seed in range(TRIALS):
                config = TrialConfig(method="static", weights=(1.0, 2.0), seed=seed)
                store.record("busy", config.key(), config.to_dict(), fake_result(steps=tuple(range(0, 400, 10))))
        outcomes.put(("writer", "ok", 0))
    except Exception:
        outcomes.put(("writer", traceback.format_exc(), 0))


def read(url: str, readers_reading, writer_done, outcomes) -> None:
    """Read in a loop until the writer is done; report "ok" and how many rounds, or the traceback."""
    count = 0
    try:
        with ResultsDB(url, create=False) as store:
            while True:
                done = writer_done.is_set()  # one more full round after the writer finished
                store.runs("busy")
                store.traces("busy")
                store.studies()
                optuna.load_study(study_name="busy", storage=url).get_trials(deepcopy=False)
                count += 1
                if count == 1:
                    readers_reading.wait(timeout=GENEROUS_S)
                if done:
                    break
        outcomes.put(("reader", "ok", count))
    except Exception:
        outcomes.put(("reader", traceback.format_exc(), count))


def test_two_readers_and_one_writer_on_one_sqlite_file(sqlite_url):
    with ResultsDB(sqlite_url) as store:
        store.create_study("busy", "random-static", {"study": "busy"})
    context = multiprocessing.get_context("spawn")
    outcomes, writer_done = context.Queue(), context.Event()
    readers_reading = context.Barrier(3)  # the writer starts once both readers have read
    readers = [context.Process(target=read, args=(sqlite_url, readers_reading, writer_done, outcomes)) for _ in range(2)]
    writer = context.Process(target=write, args=(sqlite_url, readers_reading, outcomes))
    for process in (*readers, writer):
        process.start()
    # one outcome per process, whatever the order they finish in
    first = outcomes.get(timeout=GENEROUS_S)
    reports = [first]
    if first[0] == "writer":
        writer_done.set()
    while len(reports) < 3:
        report = outcomes.get(timeout=GENEROUS_S)
        reports.append(report)
        if report[0] == "writer":
            writer_done.set()
    writer_done.set()
    for process in (*readers, writer):
        process.join(timeout=GENEROUS_S)
    assert [message for _, message, _ in reports] == ["ok"] * 3, reports
    assert all(rounds >= 2 for who, _, rounds in reports if who == "reader")  # they read while it wrote
    with ResultsDB(sqlite_url, create=False) as store:
        assert len(store.runs("busy")) == TRIALS
