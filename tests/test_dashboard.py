"""optuna-dashboard, started on our database, serves the study we recorded."""

from db import ResultsDB
from tests.fake_results import diverged_result, fake_result
from tests.helpers import answer, dashboard_on
from workers.config import TrialConfig


def test_dashboard_serves_the_recorded_study(database_url):
    with ResultsDB(database_url) as store:
        store.create_study("shown", "random-static", {"study": "shown"})
        good = TrialConfig(method="static", weights=(1.0, 2.0))
        bad = TrialConfig(method="gradnorm", alpha=3.0)
        running = TrialConfig(method="equal")
        store.record("shown", good.key(), good.to_dict(), fake_result())
        store.record("shown", bad.key(), bad.to_dict(), diverged_result())
        store.start_trial("shown", running.key(), running.to_dict())
    with dashboard_on(database_url) as base:
        summaries = answer(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["shown"]
        study = answer(f"{base}/api/studies/{summaries[0]['study_id']}")
        states = sorted(t["state"] for t in study["trials"])
        assert states == ["Complete", "Fail", "Running"]  # a trial in training shows live
        complete = next(t for t in study["trials"] if t["state"] == "Complete")
        assert complete["values"] == [0.7]
        assert {p["name"] for p in complete["params"]} >= {"method", "seed", "w_0", "w_1"}
