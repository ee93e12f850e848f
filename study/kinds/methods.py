"""methods: the paper's Tables 1-3. Each listed method at every seed, with the 1/L_i(0)
weights, against single-task runs where listed. Also the report of a study of single
`gns train` runs (study.kinds.for_report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from study.kinds import StudyKind
from study.spec_checks import SpecError, distinct_values, fail, trial_check
from study.trials import PlannedTrial, Recorded, planned_trial, reference, retrained
from workers.config import check_field

if TYPE_CHECKING:
    from study.spec import StudySpec
    from workers.workloads import WorkloadShape


@dataclass(frozen=True)
class Methods:
    """Tables 1-3: each method at each seed."""

    methods: tuple[str, ...] = ("single-task", "equal", "uncertainty", "gradnorm", "gradnorm-static")
    weights: tuple[float, ...] | None = None  # for `static`
    # Uncertainty weighting at each of these learning rates for its log-variances; the report
    # picks one on validation (None: the one default rate).
    uncertainty_lrs: tuple[float, ...] | None = None
    inverse_initial_loss: bool = True  # the trivial baseline w ∝ 1/L_i(0) is trained too, listed or not

    def __post_init__(self) -> None:
        if not self.methods:
            fail("methods", "must list at least one method")
        for i, method in enumerate(self.methods):
            trial_check(check_field, "method", method, path=f"methods[{i}]")
        if len(set(self.methods)) != len(self.methods):
            fail("methods", "lists a method twice")
        if "gradnorm-static" in self.methods and "gradnorm" not in self.methods:
            fail("methods", "gradnorm-static retrains with a GradNorm run's weights: list gradnorm too")
        if "static" in self.methods and self.weights is None:
            fail("weights", "method 'static' needs one weight per task")
        if self.weights is not None:
            if "static" not in self.methods:
                fail("weights", "only applies when 'static' is among the methods")
            trial_check(check_field, "weights", self.weights)
        if self.uncertainty_lrs is not None:
            if "uncertainty" not in self.methods:
                fail("uncertainty_lrs", "only applies when 'uncertainty' is among the methods")
            distinct_values("uncertainty_lrs", self.uncertainty_lrs, "learning rate")
            for i, lr in enumerate(self.uncertainty_lrs):
                trial_check(check_field, "balancer_lr", lr, path=f"uncertainty_lrs[{i}]")


def plan(spec: "StudySpec", seed: int, tasks: int, recorded: Recorded) -> list[PlannedTrial]:
    section: Methods = spec.section
    planned: list[PlannedTrial] = []
    gradnorm: PlannedTrial | None = None
    methods = section.methods + (("inverse-initial-loss",) if section.inverse_initial_loss
                                 and "inverse-initial-loss" not in section.methods else ())
    for method in sorted(methods, key=lambda m: m == "gradnorm-static"):  # gradnorm first: gradnorm-static names its key
        if method == "single-task":
            planned += [planned_trial(spec, seed, method=method, task=task) for task in range(tasks)]
        elif method == "static":
            planned.append(planned_trial(spec, seed, method=method, weights=section.weights))
        elif method == "gradnorm":
            gradnorm = reference(spec, seed)
            planned.append(gradnorm)
        elif method == "gradnorm-static":
            planned.append(retrained(spec, seed, gradnorm))
        elif method == "uncertainty" and section.uncertainty_lrs is not None:
            planned += [planned_trial(spec, seed, method=method, balancer_lr=lr) for lr in section.uncertainty_lrs]
        else:
            planned.append(planned_trial(spec, seed, method=method))
    return planned


def check_shape(spec: "StudySpec", shape: "WorkloadShape") -> None:
    from workers.workload_options import check_task_count

    if spec.section.weights is not None:
        try:
            check_task_count("weights", spec.section.weights, shape.task_names, spec.workload)
        except ValueError as error:
            raise SpecError(f"methods.{error}") from None


def report(results, study, runs, summary, spec):  # noqa: ANN001 (StudyKind.report)
    from study.report.build import methods_sections

    return methods_sections(results, study, runs, summary, spec)


def headline(summary: dict[str, Any]) -> list[str]:
    """The page's findings (study.report.tables.MethodTableStats), one per line."""
    from study.report.tables import MethodTableStats

    return MethodTableStats.from_dict(summary["methods_table"]).headline() if "methods_table" in summary else []


KIND = StudyKind(
    name="methods",
    summary="Tables 1-3: each method at every seed, Delta_m against single-task runs",
    section=Methods,
    plan=plan,
    report=report,
    headline=headline,
    check_shape=check_shape,
)
