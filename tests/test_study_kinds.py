"""Study kinds are a registry (study.kinds): a new kind is one module, here this one.

The `lr-pair` kind below trains equal weights at each of a list of learning rates
and reports which one did best. Registering it is all it takes for the spec
loader, `gns plan`, `gns launch` (a real local Ray), `gns report` and the
relaunch check to handle it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import pytest
import yaml

from records import Status
from study import kinds
from study.cli import main
from study.kinds import KINDS, StudyKind
from study.plan import plan_study, planned_count
from study.spec import SpecError, parse_spec
from study.spec_checks import distinct_values
from study.trials import PlannedTrial, planned_trial

TINY_TOY = {"tasks": 2, "train_size": 200, "test_size": 50}


@dataclass(frozen=True)
class LrPair:
    lrs: tuple[float, ...] = (0.01, 0.001)

    def __post_init__(self) -> None:
        distinct_values("lrs", self.lrs, "learning rate")


def plan(spec: Any, seed: int, tasks: int, outcomes: Mapping[str, float]) -> list[PlannedTrial]:
    return [planned_trial(spec, seed, method="equal", lr=lr) for lr in spec.section.lrs]


def report(results, study, runs, summary, spec):  # noqa: ANN001
    from study.report.page import Section

    ok = runs[runs["status"] == str(Status.OK)]
    best = ok.loc[ok["value"].idxmin()]
    summary["lr_pair"] = {"best_lr": float(best["lr"]), "best_value": float(best["value"])}
    return [Section("lr-pair", "Learning rates", [f"Best learning rate: {best['lr']:g}."])]


def headline(summary: dict) -> list[str]:
    entry = summary.get("lr_pair")
    return [f"lr-pair: best lr {entry['best_lr']:g}"] if entry else []


LR_PAIR = StudyKind(name="lr-pair", summary="equal weights at each learning rate", section=LrPair, plan=plan,
                    report=report, headline=headline)


@pytest.fixture
def lr_pair(monkeypatch):
    monkeypatch.setitem(KINDS, LR_PAIR.name, LR_PAIR)


def lr_pair_spec(**section: Any) -> dict:
    return {"study": "pair", "kind": "lr-pair", "workload": "toy", "workload_options": TINY_TOY, "seeds": [0, 1],
            "training": {"steps": 30, "log_every": 30}, "lr_pair": section or None}


def test_a_registered_kind_is_read_planned_and_replanned_from_its_stored_spec(lr_pair):
    spec = parse_spec(lr_pair_spec(lrs=[0.02, 0.005, 0.001]))
    assert spec.section == LrPair(lrs=(0.02, 0.005, 0.001))
    planned = plan_study(spec)
    assert [(p.config.seed, p.config.lr) for p in planned] == [(0, 0.02), (0, 0.005), (0, 0.001),
                                                               (1, 0.02), (1, 0.005), (1, 0.001)]
    assert planned_count(spec, planned) == 6
    assert spec.to_dict()["lr_pair"] == {"lrs": [0.02, 0.005, 0.001]}
    assert parse_spec(spec.to_dict()).identity() == spec.identity()
    assert parse_spec(lr_pair_spec()).section == LrPair()  # a section left out takes its defaults


def test_a_registered_kind_checks_its_section_and_refuses_other_kinds_sections(lr_pair):
    with pytest.raises(SpecError, match=r"^lr_pair\.lrz: unknown field \(did you mean 'lrs'\?\)$"):
        parse_spec(lr_pair_spec(lrz=[0.1]))
    with pytest.raises(SpecError, match=r"^lr_pair\.lrs: lists a learning rate twice$"):
        parse_spec(lr_pair_spec(lrs=[0.1, 0.1]))
    with pytest.raises(SpecError, match=r"^random_static: does not apply to a lr-pair study \(its section is lr_pair\)$"):
        parse_spec({**lr_pair_spec(), "random_static": {"runs": 3}})
    # and the built-in kinds know of it: its section is not theirs
    with pytest.raises(SpecError, match=r"^lr_pair: does not apply to a methods study"):
        parse_spec({"study": "m", "kind": "methods", "lr_pair": {"lrs": [0.1]}})


def test_an_unregistered_kind_is_refused_with_the_registered_names():
    with pytest.raises(SpecError, match=r"^kind: unknown study kind 'lr-pair' \(choose from random-static, alpha-sweep, "
                                        r"methods, search\)$"):
        parse_spec(lr_pair_spec())


@pytest.mark.ray
def test_a_registered_kind_launches_on_ray_and_reports_through_its_own_sections(lr_pair, capsys, tmp_path):
    spec_path = tmp_path / "pair.yaml"
    spec_path.write_text(yaml.safe_dump(lr_pair_spec(lrs=[0.02, 0.001])))
    url = f"sqlite:///{tmp_path / 'results.db'}"
    assert main(["launch", str(spec_path), "--storage", url]) == 0, capsys.readouterr().err
    assert "pair: 4/4 recorded (4 now, 0 failed)" in capsys.readouterr().err
    assert main(["launch", str(spec_path), "--storage", url]) == 0  # relaunch: the stored spec reads back the same
    assert "nothing to run" in capsys.readouterr().err

    assert main(["report", "pair", "--storage", url, "--out", str(tmp_path / "report"), "--no-png"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["kind"] == "lr-pair" and summary["trials_ok"] == 4
    assert summary["lr_pair"]["best_lr"] in (0.02, 0.001)
    assert f"lr-pair: best lr {summary['lr_pair']['best_lr']:g}" in printed
    assert "Learning rates" in (tmp_path / "report" / "index.html").read_text()


def test_every_builtin_kind_declares_a_complete_kind_and_round_trips_its_default_spec():
    for name, kind in KINDS.items():
        assert kind.name == name and kind.section_name == name.replace("-", "_")
        spec = parse_spec({"study": "s", "kind": name})
        assert isinstance(spec.section, kind.section)
        assert parse_spec(spec.to_dict()).identity() == spec.identity()
    assert kinds.for_report("runs") is KINDS["methods"]  # a study of `gns train` runs reads as a methods table
    assert kinds.for_report(None) is KINDS["methods"]  # and so does a kind a database made up
