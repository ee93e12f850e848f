"""`gns report STUDY`: an offline HTML page with PNG and CSV per figure, and summary.json."""

from __future__ import annotations

import argparse
import sys
import re
from pathlib import Path

from db import open_reader
from study.cli.common import add_storage_argument
from study.errors import BadInput
from study.output import same_decimals
from study.progress import plural
from study.spec import check_study_name


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write the reports that fit a study's kind")
    parser.add_argument("study", help="the study's name (see gns studies)")
    add_storage_argument(parser)
    parser.add_argument("--out", type=Path, help="output folder (default: reports/STUDY)")
    parser.add_argument("--no-png", action="store_true", help="skip PNG export (which needs a Chromium)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from study.report import build_report
    except ImportError as error:  # plotly and scipy are the `report` extra
        raise BadInput(f"gns report needs {error.name}: pip install 'gradnorm-study[report]'") from None

    check_study_name(args.study, "study")  # also bounds the default folder's name
    out_dir = args.out or Path("reports") / folder_name(args.study)
    check_output_folder(out_dir)
    with open_reader(args.storage) as results:
        try:
            report = build_report(results, args.study, out_dir, png=not args.no_png,
                                  say=lambda line: print(line, file=sys.stderr, flush=True))
        except OSError as error:  # a folder we may not write, a full disk, a name too long
            raise BadInput(f"--out: cannot write the report to {str(out_dir)!r}: {error.strerror or error}") from None
    for problem in report.summary["problems"]:
        print(f"note: {problem}")
    for note in report.written.notes:
        print(f"note: {note}")
    for line in headline(report.summary):
        print(line)
    for line in report.summary["code"]["lines"]:
        if not line.startswith("warning:"):  # a warning is among the notes above already
            print(line)
    print(f"report: {report.written.index.resolve().as_uri()}")
    return 0


def check_output_folder(out_dir: Path) -> None:
    """The report goes into a real folder (or one to make): never through a symbolic link."""
    shown = str(out_dir) if len(str(out_dir)) <= 80 else str(out_dir)[:77] + "..."
    try:
        link, exists = out_dir.is_symlink(), out_dir.exists()
    except OSError as error:  # e.g. a name longer than the filesystem allows
        raise BadInput(f"--out: {shown!r} cannot be used: {error.strerror or error}") from None
    if link:
        raise BadInput(f"--out: {shown!r} is a symbolic link; name the folder itself")
    if exists and not out_dir.is_dir():
        raise BadInput(f"--out: {shown!r} exists and is not a folder")


def folder_name(study: str) -> str:
    """A study name as one folder under reports/: never '.', '..' or a path."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", study).strip(".")
    return name or "_"


def headline(summary: dict) -> list[str]:
    """The statistics worth printing on the terminal."""
    lines = [f"{summary['study']} ({summary['kind']}): {summary['trials_ok']} trials ok, {summary['trials_failed']} failed"]
    fig4 = summary.get("figure4")
    if fig4 and "ols_slope" in fig4:
        slope, low, high, intercept = same_decimals(fig4["ols_slope"], fig4["bootstrap_slope_low"],
                                                    fig4["bootstrap_slope_high"], fig4["ols_intercept"])
        lines.append(
            f"Figure 4: slope {slope} %/unit distance (bootstrap 95 % CI {low} to "
            f"{high}), intercept {intercept} %, Pearson r = {fig4['ols_pearson_r']:.3f} "
            f"(p = {fig4['ols_p_value']:.3g}), Spearman rho = {fig4['spearman_rho']:.3f}"
        )
    if fig4 and "confound" in fig4:
        from study.report.figure4 import confound_sentence  # loaded with the report already

        lines.append("Figure 4: " + confound_sentence(fig4["ols_pearson_r"], fig4["confound"]))
    if fig4 and fig4.get("weightings"):
        lines.append(
            f"Figure 4: {fig4['weightings_beating_gradnorm']}/{fig4['weightings']} weightings beat GradNorm over "
            f"{plural(fig4['static_seeds'], 'seed')} (Wilson 95 % CI {100 * fig4['share_ci_low']:.1f}-{100 * fig4['share_ci_high']:.1f} %)"
        )
    for row in summary.get("figure4_by_budget", []):
        lines.append(f"  at {row['steps']} steps: {row['beating_gradnorm']}/{row['weightings']} beat GradNorm "
                     f"({row['share_ci_low_pct']:.1f}-{row['share_ci_high_pct']:.1f} %), median {row['median_change_pct']:+.2f} %")
    search = summary.get("random_search")
    if search:
        lines.append(
            f"Random search: from {search['runs_to_match_gradnorm']} static runs on (chosen on validation) it stays at or "
            "above one GradNorm run on average"
            if search["runs_to_match_gradnorm"] else
            f"Random search: the best of {search['runs_searched']} static runs does not stay at or above one GradNorm run on average"
        )
        if search.get("alpha_cost"):
            at = search["change_at_gradnorm_compute"]
            lines.append(f"Honest compute: GradNorm charged {search['gradnorm_runs_charged']:.3g} runs per seed for its "
                         f"run and its α sweep {search['alpha_cost']['source']!r}; a random search of that many runs: "
                         + (f"{at:+.2f} % vs GradNorm" if at is not None else "not known"))
    if fig4 and "gradnorm_static_change_pct" in fig4:
        lines.append(f"GradNorm-Static vs GradNorm: {fig4['gradnorm_static_change_pct']:+.2f} %")
    searchers = summary.get("search", {}).get("searchers", {})
    cost = summary.get("search", {}).get("alpha_cost")
    if searchers and cost:
        lines.append(f"Honest compute: GradNorm charged {summary['search']['gradnorm_compute_steps']:g} steps per seed "
                     f"({1 + cost['runs_worth']:.3g} runs' worth: its run and its α sweep {cost['source']!r})")
    for name, entry in searchers.items():
        if entry.get("final_change_pct") is None:
            continue
        reached = (f"on average at or above GradNorm from {entry['runs_to_match_gradnorm']:.3g} runs' worth of steps"
                   if entry["steps_to_match_gradnorm"] is not None else "on average below GradNorm at the end of its budget")
        at = entry.get("change_at_gradnorm_compute")
        lines.append(f"Search {name}: {reached}; its choice {entry['final_change_pct']:+.2f} % vs GradNorm on test "
                     f"(seeds {entry['final_change_low']:+.2f} to {entry['final_change_high']:+.2f})"
                     + (f"; at GradNorm's compute {at:+.2f} %" if at is not None else ""))
    if searchers and "gradnorm_static_change_pct" in summary["search"]:
        lines.append(f"GradNorm-Static vs GradNorm: {summary['search']['gradnorm_static_change_pct']:+.2f} %")
    fig7 = summary.get("figure7")
    if fig7 and "alpha_chosen_on_validation" in fig7:
        lines.append(
            f"Figure 7: alpha chosen on validation {fig7['alpha_chosen_on_validation']:g}, test gain "
            f"{fig7['test_gain_pct_at_chosen']:+.2f} % vs equal weights (best on test, in hindsight: "
            f"{fig7['best_alpha']:g}, {fig7['best_mean_gain_pct']:+.2f} %)"
        )
    elif fig7 and "best_alpha" in fig7:
        lines.append(f"Figure 7: best alpha {fig7['best_alpha']:g} ({fig7['best_mean_gain_pct']:+.2f} % vs equal weights)")
    convergence = summary.get("convergence")
    if convergence and convergence["converged"]:
        lines.append(f"Convergence: every group's {convergence['split']} losses had flattened by step "
                     f"{convergence['budget']} (or the runs stopped early)")
    table = summary.get("methods_table")
    if table and "delta_m_pct" in table:
        intervals = table.get("score_intervals", {})

        def with_interval(label: str, value: float) -> str:
            ci = intervals.get(label)
            return f"{label} {value:+.2f}" + (f" ({ci['ci_low']:+.1f} to {ci['ci_high']:+.1f})"
                                               if ci and ci["ci_low"] == ci["ci_low"] else "")

        lines.append("Delta_m % vs single-task (t 95 % CI over seeds): "
                     + ", ".join(with_interval(k, v) for k, v in table["delta_m_pct"].items()))
    if table and table.get("best_by_mean"):
        supported = [c for c in table["paired"] if c["other"] == table["best_by_mean"] and c["verdict"] == "not distinguishable"]
        lines.append(f"Best by mean {table['score']}: {table['best_by_mean']}; not distinguishable from it over "
                     f"seeds (paired t 95 % CI spans 0): {', '.join(c['method'] for c in supported) or 'none'}")
    return lines
