"""Choices one study takes from another: the alpha an alpha-sweep chose on validation.

A spec's `gradnorm.alpha_from: STUDY` is read here, at `gns plan` and `gns
launch`, from the same database; the chosen alpha is written into the spec
(and so into every planned trial and the stored spec), with alpha_from kept
beside it to say where it came from.
"""

from __future__ import annotations

import dataclasses

from db import DatabaseUnreachable, open_reader
from study.errors import BadInput
from study.spec import StudySpec


def resolve_choices(spec: StudySpec, storage: str) -> StudySpec:
    """`spec` with gradnorm.alpha read from the study its alpha_from names (unchanged without one)."""
    source = spec.gradnorm.alpha_from
    if source is None:
        return spec
    try:
        results = open_reader(storage)
    except DatabaseUnreachable as error:
        raise BadInput(f"gradnorm.alpha_from: no study {source!r}: {str(error).removeprefix('storage: ')}") from None
    with results:
        info = results.find_study(source)
        if info is None:
            raise BadInput(f"gradnorm.alpha_from: no study {source!r} in {results.display_url}")
        if info.kind != "alpha-sweep":
            raise BadInput(f"gradnorm.alpha_from: study {source!r} is a {info.kind} study, not an alpha-sweep")
        wanted = spec.to_dict()
        for name in ("workload", "workload_options", "training"):
            if info.spec.get(name) != wanted[name]:
                raise BadInput(f"gradnorm.alpha_from: study {source!r} has a different {name}: its alpha was chosen for another setting")
        runs = results.runs(source)
    if info.planned_trials is not None and len(runs) < info.planned_trials:  # a choice from part of a sweep is another choice
        raise BadInput(f"gradnorm.alpha_from: study {source!r} is not finished ({len(runs)} of {info.planned_trials} trials "
                       "recorded): launch it to the end first")
    alpha = alpha_chosen_on_validation(runs)
    if alpha is None:
        raise BadInput(f"gradnorm.alpha_from: study {source!r} has no alpha chosen on validation yet "
                       "(it needs finished GradNorm and equal-weights runs with validation losses)")
    return dataclasses.replace(spec, gradnorm=dataclasses.replace(spec.gradnorm, alpha=alpha))


def alpha_chosen_on_validation(runs) -> float | None:
    """The alpha with the best mean validation gain over equal weights (study.report.sweep)."""
    try:
        from study.report.sweep import figure7_data
    except ImportError as error:  # its statistics need the `report` extra (scipy)
        raise BadInput(f"gradnorm.alpha_from needs {error.name}: pip install 'gradnorm-study[report]'") from None
    return figure7_data(runs).stats.alpha_chosen_on_validation
