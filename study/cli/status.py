"""`gns status STUDY`: how far a study is, from the database alone.

Read-only, and it runs nothing named in the database: the planned count was
stored by the last launch, so no spec (and no workload factory) is loaded.
"""

from __future__ import annotations

import argparse

from db import open_reader
from records import Status
from study.cli.common import add_storage_argument
from study.output import TIME_FORMAT
from study.progress import plural
from study.provenance import code_lines, machine_lines


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("status", help="a study's progress: done, running, failed, remaining, best value")
    parser.add_argument("study", help="the study's name (see gns studies)")
    add_storage_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_reader(args.storage) as results:
        info = results.find_study(args.study)
        if info is None:
            results.runs(args.study)  # raises NoSuchStudy naming the database
        counts = results.progress(args.study)
        best = results.best_value(args.study)
        holder = results.lease_holder(args.study)
        code = code_lines(results.code_fingerprints(args.study), results.code_changes(args.study))
        machine = machine_lines(results.machines(args.study))
        checkpoints = results.checkpoint_count(args.study)
        compute = compute_line(results.wall_times(args.study))
        replay = search_replay_line(len(results.proposals(args.study)), counts) if info.kind == "search" else None
    print(headline(args.study, info.planned_trials, counts, None if holder is None else holder.describe(), best,
                   checkpoints))
    for status, count in sorted(counts.items()):
        print(f"  {status}: {count}")
    print(f"  created {info.created_at:{TIME_FORMAT}}, last recorded {info.updated_at:{TIME_FORMAT}}")
    for line in ([compute] if compute else []) + code + machine:
        print(f"  {line}")
    if replay:
        print(f"  {replay}")
    return 0


def compute_line(wall_times: list[float]) -> str | None:
    """The training time a study's recorded trials add up to (each trained on one core or GPU share; a
    pack's runs share its time, so the sum is the pack's). Wall-clock time: trials recorded on a busy
    machine count longer than the same trials alone, so the line says so."""
    if not wall_times:
        return None
    total = sum(wall_times)
    spent = f"{total / 3600:.2f} h" if total >= 3600 else f"{total / 60:.1f} min" if total >= 60 else f"{total:.1f} s"
    return (f"compute: {spent} of training summed over {plural(len(wall_times), 'recorded trial')} "
            "(wall-clock, each on one core or GPU share; a pack's runs share its time; a busy machine counts longer)")


def search_replay_line(proposals: int, counts: dict[str, int]) -> str | None:
    """Whether a search study's report and relaunch replay its recorded proposals (the same on any
    machine) or recompute them here (TPE can choose otherwise on another CPU)."""
    if proposals:
        return f"search: {plural(proposals, 'proposal')} recorded; a report or relaunch replays them on any machine"
    if sum(counts.values()):
        return ("warning: its search proposals were not recorded (begun before schema 6): a report or relaunch "
                "replays the search on the machine it runs on, and TPE can propose other weightings on another CPU")
    return None


def headline(study: str, planned: int | None, counts: dict[str, int], driver: str | None, best: float | None,
             checkpoints: int = 0) -> str:
    """One line that says the study's state first (complete, running under a driver, or interrupted)
    and counts consistent with it: without a driver nothing is running, whatever rows say RUNNING.
    `checkpoints`: how many unfinished trials saved one (the next launch restores them from there)."""
    ok = counts.get(Status.OK, 0)
    failed = sum(counts.get(status, 0) for status in Status if status.failed)
    total = planned if planned is not None else ok + failed
    best_part = f", best {best:.4g}" if best is not None else ""
    if driver is not None:
        running = counts.get(Status.RUNNING, 0)
        waiting = max(total - ok - failed - running, 0)
        return (f"{study}: running under {driver}; {ok + failed}/{total} done, {running} running, {failed} failed, "
                f"{waiting} waiting{best_part}")
    left = max(total - ok - failed, 0)
    if not left:
        return f"{study}: complete; {ok + failed}/{total} done, {failed} failed{best_part}"
    in_flight = sum(counts.get(status, 0) for status in (Status.RUNNING, Status.RECORDING))
    notes = ([f"{in_flight} of them in flight when its driver stopped"] if in_flight else []) + (
        [f"{checkpoints} to go on from a checkpoint"] if checkpoints else [])
    return (f"{study}: interrupted, no driver running; {ok + failed}/{total} done, {failed} failed{best_part}; "
            f"{plural(left, 'trial')} to run at the next gns launch" + (f" ({', '.join(notes)})" if notes else ""))
