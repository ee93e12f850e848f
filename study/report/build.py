"""Reports: from the database to DataFrames and statistics, then figures, then a page.

`build_report` draws the sections the study's kind names (study.kinds), then those
every study gets (convergence, code). The built-in kinds' sections:
    random-static  Figure 4, the weights in parallel coordinates, GradNorm's w_i(t)
    alpha-sweep    Figure 7, dynamics per alpha
    search         best found vs compute per searcher, against GradNorm
    methods, runs  the method table, dynamics per method
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from db import ResultsReader
from records import Status
from study.errors import BadInput
from study.provenance import code_lines, machine_lines, machines_mixed
from study import kinds
from study.kinds.search import halving_log_every, search_proposals
from study.plan import Recorded, recorded_outcomes
from study.report.best_found import best_found_data, best_found_plot
from study.report.frames import task_names
from study.report.alpha_cost import AlphaCost, sweep_cost
from study.report.alpha_cost import alpha_source as alpha_sweep_of
from study.report.budgets import budget_plot, budget_table
from study.report.convergence import convergence_check
from study.report.search import crossing_point, random_search_curve, search_plot
from study.report.dynamics import (
    RISE_FACTOR,
    DynamicsData,
    changing_weights,
    dynamics_data,
    losses_plot,
    rising_test_losses,
    weights_plot,
)
from study.report.figure4 import figure4_data, figure4_plot, weights_parallel_plot
from study.report.figure7 import figure7_data, figure7_plot
from study.report.page import Section, WrittenReport, write_report
from study.report.tables import (DELTA_M, SINGLE_TASK, chosen_on_validation, method_table, table_html, table_stats)
from study.searchers import DamagedProposals, rungs_of
from study.spec import STUDY_NAME, StudySpec, parse_stored_spec


OK = str(Status.OK)


@dataclass
class Report:
    written: WrittenReport
    summary: dict[str, Any]


def build_report(
    results: ResultsReader, study: str, out_dir: Path, png: bool = True, say: Callable[[str], None] | None = None
) -> Report:
    """The report of `study` under `out_dir`; `say(line)` hears of the slow steps (PNG export)."""
    info = results.find_study(study)
    if info is None:
        results.runs(study)  # raises NoSuchStudy with the database named
    runs = results.runs(study)
    ok = int((runs["status"] == OK).sum())
    summary: dict[str, Any] = {
        "study": study,
        "kind": info.kind,
        "workload": info.spec.get("workload"),
        "trials_recorded": int(len(runs)),
        "trials_ok": ok,
        "trials_failed": int(len(runs) - ok),
        "problems": [],
    }
    sections = kinds.for_report(info.kind).report(results, study, runs, summary, info.spec)
    if not summary["trials_ok"]:
        summary["problems"].insert(0, "No trial of this study has finished yet: nothing to plot.")
    elif info.planned_trials and summary["trials_recorded"] < info.planned_trials:
        summary["problems"].insert(0, f"incomplete: {summary['trials_recorded']} of the {info.planned_trials} planned "
                                      "trials have finished; every number here may change as the rest land")
    sections += _convergence(results, study, runs, summary, info.spec)
    fingerprints, changes = results.code_fingerprints(study), results.code_changes(study)
    summary["code"] = {"fingerprints": [{**code, "trials": count} for code, count in fingerprints],
                       "changes": changes, "lines": code_lines(fingerprints, changes)}
    if len(fingerprints) > 1:  # results of two versions of the code side by side: the reader must know
        summary["problems"].append(summary["code"]["lines"][0])
    sections.append(Section("code", "Code the trials trained with", summary["code"]["lines"]))
    machines = results.machines(study)
    summary["machines"] = {"machines": [{**machine, "trials": count} for machine, count in machines],
                           "lines": machine_lines(machines)}
    if machines_mixed(machines):  # rounding noise between machines: the reader must know
        summary["problems"].append(summary["machines"]["lines"][0])
    sections.append(Section("machines", "Machines the trials trained on", summary["machines"]["lines"]))
    title = f"{study}: {info.kind} on {info.spec.get('workload', '?')}"
    written = write_report(out_dir, title, summary, info.spec, sections, png=png, say=say)
    return Report(written, summary)


def random_static_sections(
    results: ResultsReader, study: str, runs: pd.DataFrame, summary: dict[str, Any], spec: dict[str, Any]
) -> list[Section]:
    data = figure4_data(runs)
    summary["problems"] += data.problems
    section = spec_section(spec, "random_static")
    stats = data.stats.with_sampler(str(section.get("sampler", "uniform")))
    summary["figure4"] = stats.to_dict()
    text = stats.sentences() + alpha_source(spec)
    sections = [Section("figure4", "Figure 4: performance vs distance to GradNorm's weights", text, figure4_plot(data), data.points)]
    if len(data.weightings):
        sections.append(
            Section("weights-parallel", "Static weights in parallel coordinates",
                    ["Each line is one static weighting, coloured by its % change vs GradNorm (mean over seeds); the "
                     "black line is GradNorm's time-averaged weights."],
                    weights_parallel_plot(data), data.weightings)
        )
    curve = random_search_curve(data.points)
    if len(curve):
        steps = spec_section(spec, "training").get("steps")
        steps = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None
        cost = _alpha_cost(results, spec, summary)
        gradnorm_runs = gradnorm_in_static_runs(runs, cost, steps)
        search = crossing_point(curve, gradnorm_runs, cost.to_dict(steps) if cost and steps else None)
        summary["random_search"] = {**search.to_dict(), "curve": curve.to_dict(orient="records")}
        sections.append(Section(
            "random-search", "Random search at equal compute", search.sentences(),
            search_plot(curve, steps, stats.gradnorm_static_change_pct, gradnorm_runs, cost is not None),
            curve,
        ))
    stored = section.get("budgets")
    budgets = [b for b in stored if isinstance(b, int) and not isinstance(b, bool)] if isinstance(stored, list) else []
    if budgets and len(data.weightings):
        keys = runs.loc[runs["method"].isin(["static", "gradnorm"]), "key"].tolist()
        table = budget_table(runs, results.traces(study, keys=keys), budgets)
        summary["figure4_by_budget"] = table.to_dict(orient="records")
        sections.append(Section(
            "budgets", "Figure 4 against the step budget",
            ["The same comparison at each budget in the spec, read from the runs' traces: test losses at that step, "
             "GradNorm's E_t[w] averaged over the logged steps up to it. Shares with Wilson 95 % intervals, slopes and "
             "r with bootstrap 95 % intervals over weightings."],
            budget_plot(table), table, table.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–"),
        ))
    keys = runs.loc[runs["method"] != "static", "key"].tolist()
    return sections + _dynamics_sections(results, study, runs, keys)


def _convergence(
    results: ResultsReader, study: str, runs: pd.DataFrame, summary: dict[str, Any], spec: dict[str, Any]
) -> list[Section]:
    """The convergence guard (study.report.convergence): a warning among the problems when a group was still falling."""
    budget = spec_section(spec, "training").get("steps")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1 or not summary["trials_ok"]:
        return []  # a study of single runs (no shared budget), or nothing finished
    check = convergence_check(runs, results.traces(study), budget)
    summary["convergence"] = check.to_dict()
    if check.headline():
        summary["problems"].insert(0, check.headline())
    return [Section("convergence", "Did the runs converge within the budget?", check.lines())]


def search_sections(
    results: ResultsReader, study: str, runs: pd.DataFrame, summary: dict[str, Any], spec: dict[str, Any]
) -> list[Section]:
    try:
        parsed = parse_stored_spec(spec)  # the stored spec is untrusted: validated like a user's
    except BadInput as error:
        summary["problems"].append(f"The stored spec cannot be read ({error}): the search cannot be replayed.")
        return []
    draws = results.proposals(study)
    try:
        order = search_order(parsed, runs, draws)
    except DamagedProposals as error:  # recorded proposals that do not fit the stored spec (untrusted)
        summary["problems"].append(f"The search cannot be replayed: {error}.")
        return []
    data = best_found_data(runs, order, parsed.training.steps, _alpha_cost(results, spec, summary))
    summary["problems"] += data.problems
    strays = set(runs.loc[runs["method"] == "static", "key"]) - set(order["key"])
    if strays:
        summary["problems"].append(f"{len(strays)} recorded static runs are not among the replayed search's proposals "
                                   "(recorded by another version?); they are left out.")
    if len(runs) and not draws:
        summary["problems"].append("This study's proposals were not recorded at launch (a study begun before they "
                                   "were): its search is replayed on this machine, and TPE's proposals can differ in "
                                   "the last bits between CPUs, enough to choose other weightings than those trained.")
    stats = replace(data.stats, budget_steps=parsed.section.budget_steps)
    summary["search"] = {**stats.to_dict(), "curve": data.curve.to_dict(orient="records")}
    text = search_explanation(parsed, stats.seeds) + stats.findings() + alpha_source(spec)
    table = data.curve.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="–")
    sections = [
        Section("best-found", "Best found vs training steps spent", text, best_found_plot(data, "compute_steps"), data.runs, table),
        Section("best-found-time", "Best found vs worker time spent",
                ["The same curves against the worker seconds spent (each packed run is charged its share of its "
                 "pack's time; GradNorm's own overhead per step shows here and not in steps)."],
                best_found_plot(data, "compute_s")),
    ]
    keys = runs.loc[runs["method"] != "static", "key"].tolist()
    return sections + _dynamics_sections(results, study, runs, keys)


def gradnorm_in_static_runs(runs: pd.DataFrame, cost: AlphaCost | None, steps: int | None) -> float:
    """GradNorm's compute per seed (its own steps plus its alpha sweep's) in static runs' worth.

    The unit is the mean steps a static run of the study trained: training.steps, or fewer where
    patience stopped the runs early (a GradNorm run that stopped early costs less, too).
    """
    ok = runs[runs["status"] == OK]
    static_steps = pd.to_numeric(ok.loc[ok["method"] == "static", "steps_completed"], errors="coerce").dropna()
    gradnorm_steps = pd.to_numeric(ok.loc[ok["method"] == "gradnorm", "steps_completed"], errors="coerce").dropna()
    unit = float(static_steps.mean()) if len(static_steps) else float(steps or 0)
    if not unit > 0:
        return 1.0
    own = float(gradnorm_steps.mean()) if len(gradnorm_steps) else unit
    return (own + (cost.steps_per_seed if cost is not None else 0.0)) / unit


def _alpha_cost(results: ResultsReader, spec: dict[str, Any], summary: dict[str, Any]) -> AlphaCost | None:
    """The sweep GradNorm's alpha came from, as a cost (study.report.alpha_cost); None where alpha was set."""
    source = alpha_sweep_of(spec)
    if source is None:
        return None
    info = results.find_study(source) if STUDY_NAME.fullmatch(source) else None
    if info is None or info.kind != "alpha-sweep":
        summary["problems"].append(f"GradNorm's α came from {source[:60]!r}, which this database does not hold as an "
                                   "alpha sweep: the sweep's cost is not charged to GradNorm.")
        return None
    return sweep_cost(source, results.runs(source))


def search_order(spec: StudySpec, runs: pd.DataFrame, draws: Mapping[tuple[int, str, int], tuple[float, ...]]) -> pd.DataFrame:
    """The search replayed from the recorded outcomes and proposals (`draws`, by seed, searcher and
    index): each searcher's proposals in order, with keys."""
    recorded = Recorded(recorded_outcomes(runs), draws)
    tasks = len(task_names(runs)) if len(runs) else 0
    rows = []
    for seed in spec.seeds if tasks else ():
        for proposal, trial in search_proposals(spec, seed, tasks, recorded):
            rows.append({"searcher": proposal.searcher, "seed": seed, "index": proposal.index, "key": trial.key,
                         "steps": proposal.steps, "rung": proposal.rung})
    return pd.DataFrame(rows, columns=["searcher", "seed", "index", "key", "steps", "rung"])


def search_explanation(spec: StudySpec, seeds: int) -> list[str]:
    """What the search study's curves are, from its spec."""
    section = spec.section
    steps = spec.training.steps
    return [
        f"Each searcher spends up to {section.budget_steps} training steps per seed ({section.budget_steps / steps:g} "
        f"runs of {steps} steps) on static weights w = T·u/Σu, each u_i log-uniform in [{section.smallest:g}, 1]; after "
        "each run its choice is its full-length run with the best validation value so far, scored on the test set "
        "as 100 · mean_i (L_i^GN − L_i^choice) / L_i^GN against the GradNorm run of the same seed (positive: better "
        f"than GradNorm). Lines: mean over {seeds} seeds; bands: their range.",
        f"TPE: {section.startup} random weightings, then {section.batch} per round modelled on all earlier rounds. "
        f"Successive halving: rungs of {', '.join(map(str, rungs_of(section, steps, halving_log_every(spec)).lengths()))} steps, "
        f"the best 1/{section.eta} of each rung promoted and "
        + ("continued from its rung's saved state (charged only its new steps)" if section.promoted == "continue"
           else "retrained from scratch") + "; its shorter rungs spend compute but are "
        "never the choice (a short run scored against a full GradNorm run would credit it with early stopping), so its "
        "curve starts at its first full-length run.",
    ]


def spec_section(spec: Any, name: str) -> dict[str, Any]:
    """A section of a stored spec, or {} where it is missing or not a mapping (the database is untrusted)."""
    section = spec.get(name) if isinstance(spec, dict) else None
    return section if isinstance(section, dict) else {}


def alpha_source(spec: dict[str, Any]) -> list[str]:
    """Which split chose GradNorm's alpha, as the stored spec says."""
    alpha, source = spec_section(spec, "gradnorm").get("alpha"), alpha_sweep_of(spec)
    if not isinstance(alpha, (int, float)):
        return []
    if source is not None:
        return [f"GradNorm's α = {alpha:g}, chosen on the validation split by the alpha-sweep study {source!r}."]
    return [f"GradNorm's α = {alpha:g}, set in the spec (not chosen by this tool on any split)."]


def alpha_sweep_sections(
    results: ResultsReader, study: str, runs: pd.DataFrame, summary: dict[str, Any], spec: dict[str, Any]
) -> list[Section]:
    data = figure7_data(runs)
    summary["problems"] += data.problems
    summary["figure7"] = {**data.stats.to_dict(), "by_alpha": data.by_alpha.to_dict(orient="records")}
    text = [
        "Gain = 100 · mean_i (L_i^equal − L_i^α) / L_i^equal on the test set, against the equal-weights run of the "
        "same seed (positive: GradNorm does better). Mean ± std over seeds; red crosses mark α where runs diverged. "
        "The table gives each α's Student-t 95 % interval of the mean gain over seeds."
    ] + data.stats.sentences()
    by_alpha_html = data.by_alpha.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–")
    sections = [Section("figure7", "Figure 7: gain over equal weights vs α", text, figure7_plot(data), data.gains, by_alpha_html)]
    return sections + _dynamics_sections(results, study, runs, runs["key"].tolist())


def methods_sections(
    results: ResultsReader, study: str, runs: pd.DataFrame, summary: dict[str, Any], spec: dict[str, Any]
) -> list[Section]:
    table = method_table(runs, results.metric_directions(study))
    summary["problems"] += table.problems
    stats = table_stats(table)
    summary["methods_table"] = stats.to_dict()
    text = ["Final test metrics, mean ± std over seeds; the highest mean per column in bold (↑ higher is better, "
            "↓ lower): bold marks a mean, not a difference the seeds support (the paired comparisons below do)."]
    if table.delta_m is not None:
        text.append(
            f"{DELTA_M}: the mean over every metric of the signed relative change vs the single-task run trained for "
            "that metric's task, 100/K · Σ_j (−1)^h_j (M_j − M_single,j) / M_single,j with h_j = 1 where higher is "
            "better. Lower is better; 0 matches training each task alone. Its interval: Student-t 95 % over seeds."
        )
    text += stats.sentences()
    text += alpha_source(spec) if "gradnorm" in runs["method"].unique() else []
    chosen = chosen_on_validation(runs)
    if chosen:
        summary["chosen_on_validation"] = chosen
        text += [f"{method}: {choice['label']} chosen on validation (mean validation value {choice['validation_value']:.4g}, "
                 "lower is better; the other variants' rows are shown for reference, not as separate methods)."
                 for method, choice in chosen.items()]
    sections = [Section("methods", "Per-task test metrics per method", text, None, table.long(), table_html(table))]
    validation = validation_view(runs)
    if validation is not None:
        validation_table = method_table(validation, results.metric_directions(study))
        summary["methods_table_validation"] = table_stats(validation_table).to_dict()
        sections.append(Section(
            "methods-validation", "The same on the validation split",
            ["What a choice between methods (or their settings) should be made on; the test table above reports it."],
            None, validation_table.long(), table_html(validation_table),
        ))
    multitask = runs.loc[runs["method"] != SINGLE_TASK, "key"].tolist()  # single-task runs are the table's baseline
    return sections + _dynamics_sections(results, study, runs, multitask)


def validation_view(runs: pd.DataFrame) -> pd.DataFrame | None:
    """The runs with their validation columns under the test columns' names, or None without any."""
    renamed = {column: column.removeprefix("validation_") for column in runs.columns
               if column.startswith("validation_") and column != "validation_value"}
    if not renamed or runs[list(renamed)].isna().all().all():
        return None
    return runs.drop(columns=list(renamed.values()), errors="ignore").rename(columns=renamed)


def _dynamics_sections(results: ResultsReader, study: str, runs: pd.DataFrame, keys: list[str]) -> list[Section]:
    finished = runs[(runs["status"] == OK) & runs["key"].isin(keys)]
    if finished.empty:
        return []
    data: DynamicsData = dynamics_data(finished, results.traces(study, keys=finished["key"].tolist()))
    losses = pd.concat(
        [data.losses, data.normalized.rename(columns={"normalized_test_loss": "test_loss"}).assign(task="task-normalized")]
    )
    sections = []
    if changing_weights(data.weights):
        sections.append(Section("weights", "Loss weights w_i(t)", ["Mean over seeds per method."], weights_plot(data), data.weights))
    text = ["Task-normalized test loss Σ_i L_i(t) / L_i(0), and each task's train and test loss (log scale where "
            "they span more than 100×)."]
    rising = rising_test_losses(data.losses)
    if rising:
        shown = ", ".join(f"{task} under {label}" for label, task in rising[:6]) + (", ..." if len(rising) > 6 else "")
        text.append(
            f"Rising test loss ({shown}: it ends more than {RISE_FACTOR - 1:.0%} above its own minimum). While the "
            "dotted train loss keeps falling this is over-fitting at this step budget; when both rise, the task's "
            "weight was lowered (or the run is unstable) and the shared layers moved away from it."
        )
    return sections + [Section("losses", "Loss curves", text, losses_plot(data), losses)]
