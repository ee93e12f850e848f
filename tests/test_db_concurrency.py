"""Readers in other processes while the driver writes: SQLite must not say 'database is locked'."""

import multiprocessing
import time
import traceback

import optuna

from db import ResultsDB
from tests.fake_results import fake_result
from workers.config import TrialConfig

TRIALS = 120


def write(url: str, errors) -> None:
    try:
        with ResultsDB(url) as store:
            for seed in range(TRIALS):
                config = TrialConfig(method="static", weights=(1.0, 2.0), seed=seed)
                store.record("busy", config.key(), config.to_dict(), fake_result(steps=tuple(range(0, 400, 10))))
    except Exception:
        errors.put("writer: " + traceback.format_exc())


def read(url: str, writer_done, errors, reads) -> None:
    count = 0
    deadline = time.monotonic() + 180  # in case the writer never finishes
    try:
        with ResultsDB(url, create=False) as store:
            while not writer_done.is_set() and time.monotonic() < deadline:
                store.runs("busy")
                store.traces("busy")
                store.studies()
                optuna.load_study(study_name="busy", storage=url).get_trials(deepcopy=False)
                count += 1
    except Exception:
        errors.put("reader: " + traceback.format_exc())
    reads.put(count)


def test_two_readers_and_one_writer_on_one_sqlite_file(sqlite_url):
    with ResultsDB(sqlite_url) as store:
        store.create_study("busy", "random-static", {"study": "busy"})
    context = multiprocessing.get_context("spawn")
    errors, reads, writer_done = context.Queue(), context.Queue(), context.Event()
    readers = [context.Process(target=read, args=(sqlite_url, writer_done, errors, reads)) for _ in range(2)]
    for reader in readers:
        reader.start()
    writer = context.Process(target=write, args=(sqlite_url, errors))
    writer.start()
    writer.join(timeout=240)
    writer_done.set()
    assert writer.exitcode == 0
    for reader in readers:
        reader.join(timeout=120)
        assert reader.exitcode == 0
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert messages == []
    assert all(reads.get() > 0 for _ in readers)  # the readers really read meanwhile
    with ResultsDB(sqlite_url, create=False) as store:
        assert len(store.runs("busy")) == TRIALS
