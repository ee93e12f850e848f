"""Study kinds: one module each, looked up here by name.

A kind module declares one `KIND = StudyKind(...)`: its spec section (a frozen
dataclass read from the YAML key `name` with '-' as '_'), its plan (pure and
replayable: the same spec and recorded outcomes give the same trials), whether it
is adaptive (plans later trials from recorded outcomes), the checks it adds to a
spec and to the workload's shape, its report sections and its terminal headline.
The spec loader, the planner, the driver, the report and `gns report` read only
this registry. Adding a kind: write its module, add it to the list in `_builtin` below (or, in a
test, `monkeypatch.setitem(KINDS, name, kind)`); docs/extending.md.

Nothing here imports torch, Ray or plotly: a kind's report and its helpers are
imported by its `report` function when a report is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import pandas as pd

    from db import ResultsReader
    from study.report.page import Section
    from study.spec import StudySpec
    from study.trials import PlannedTrial, Recorded
    from workers.workloads import WorkloadShape

# plan(spec, seed, tasks, recorded): the trials of one seed; `recorded` (study.trials.Recorded: the
# recorded keys' validation values and proposals) is read only by adaptive kinds.
Plan = Callable[["StudySpec", int, int, "Recorded"], list["PlannedTrial"]]
# report(results, study, runs, summary, stored spec): the page's sections; adds to `summary`.
Report = Callable[["ResultsReader", str, "pd.DataFrame", dict, dict], list["Section"]]


@dataclass(frozen=True)
class StudyKind:
    name: str
    summary: str  # one line for docs and `gns plan`
    section: type  # the spec section's dataclass; every field has a default
    plan: Plan
    report: Report
    headline: Callable[[dict], list[str]]  # the summary's statistics worth printing on the terminal
    adaptive: bool = False  # plans later trials from the outcomes recorded so far (rounds)
    needs_validation: bool = False  # chooses among its runs on a validation split
    check: Callable[["StudySpec"], Any] | None = None  # cross-field checks; may return the completed section
    check_shape: Callable[["StudySpec", "WorkloadShape"], None] | None = None  # checks against the built workload
    # trials trained in all, where the plan cannot list them yet (an adaptive kind's later rounds)
    planned_count: Callable[["StudySpec"], int] | None = None

    @property
    def section_name(self) -> str:
        return self.name.replace("-", "_")


def _builtin() -> dict[str, StudyKind]:
    from study.kinds import alpha_sweep, methods, random_static, search

    return {module.KIND.name: module.KIND for module in (random_static, alpha_sweep, methods, search)}


KINDS: dict[str, StudyKind] = _builtin()


def kind_names() -> tuple[str, ...]:
    return tuple(KINDS)


def for_report(name: Any) -> StudyKind:
    """The kind whose report a study gets: its own, or the methods table for a study of single
    `gns train` runs (kind 'runs') and any kind this version does not know (the database is untrusted)."""
    return KINDS.get(name) if isinstance(name, str) and name in KINDS else KINDS["methods"]
