"""`gns train`: one training run in this process, summary or JSON on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import yaml

from db import open_writer
from records import METHODS, TracePoint, TrialResult
from study.cli.common import add_storage_argument, allow_user_code
from study.errors import BadInput
from study.output import format_value
from study.spec import check_study_name
from workers.catalog import workload_help
from workers.config import (
    BALANCER_LR,
    DEFAULT_ALPHA,
    DEFAULT_LOG_EVERY,
    INITIAL_LOSS_MODES,
    SELECT_MODES,
    WEIGHT_UPDATES,
    TrialConfig,
    default,
)
from workers.threads import DEFAULT_THREADS, set_threads

ADHOC_KIND = "runs"  # a study of single `gns train` runs, not planned from a spec


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train one run in this process and print its results")
    parser.add_argument("--workload", default=default("workload"), help=workload_help())
    parser.add_argument("--tasks", type=int, help="number of tasks (toy)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a workload option (repeatable)"
    )
    parser.add_argument("--method", default="gradnorm", choices=METHODS, help="the loss-weighting method")
    parser.add_argument("--alpha", type=float, help=f"GradNorm's alpha (default {DEFAULT_ALPHA})")
    parser.add_argument("--weights", type=_floats, help="static weights, comma-separated")
    parser.add_argument("--task", type=int, help="the task index for single-task")
    parser.add_argument("--balancer-lr", type=float, help=f"the learning rate of GradNorm's weights, uncertainty's "
                        f"log-variances or FAMO's logits (default {BALANCER_LR})")
    parser.add_argument("--weight-update", choices=WEIGHT_UPDATES,
                        help="GradNorm: additive (the paper's, the default) or log (our ablation: Adam on log w)")
    parser.add_argument("--stuck-window", type=int, metavar="STEPS",
                        help="GradNorm: every STEPS steps take tasks that stopped learning out of the update (default: off)")
    parser.add_argument(
        "--initial-loss", default=default("initial_loss"),
        help=f"GradNorm's L_i(0): {' or '.join(INITIAL_LOSS_MODES)}, or comma-separated values",
    )
    parser.add_argument("--steps", type=int, default=default("steps"), help="training steps")
    parser.add_argument("--batch-size", type=int, default=default("batch_size"), help="minibatch size")
    parser.add_argument("--lr", type=float, default=default("lr"), help="the network's Adam learning rate")
    parser.add_argument("--seed", type=int, default=default("seed"), help="network init and minibatch order")
    parser.add_argument(
        "--log-every", type=int, help=f"steps between trace points (default {DEFAULT_LOG_EVERY}, or --steps if fewer)"
    )
    parser.add_argument("--select", choices=SELECT_MODES, default="last",
                        help="read the run at its last step (default) or at its best logged validation step")
    parser.add_argument("--patience", type=int, metavar="LOGS",
                        help="with --select best_validation: stop after LOGS log points without a better validation loss")
    parser.add_argument(
        "--threads", type=int, default=DEFAULT_THREADS,
        help="torch intra-op threads (more rarely helps these small networks, and hurts on a busy machine)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--study", help=f"also record the run in this study (kind {ADHOC_KIND!r}) of --storage")
    add_storage_argument(parser)
    parser.set_defaults(run=run)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    from workers.workloads import check_trial

    allow_user_code()
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--option: expected KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    if args.tasks is not None:
        options["tasks"] = args.tasks
    initial_loss = args.initial_loss
    if initial_loss not in INITIAL_LOSS_MODES:
        try:
            initial_loss = _floats(initial_loss)
        except argparse.ArgumentTypeError:
            pass  # let the config name the bad mode
    try:
        config = TrialConfig(
            workload=args.workload,
            workload_options=options,
            method=args.method,
            alpha=args.alpha,
            weights=args.weights,
            task=args.task,
            balancer_lr=args.balancer_lr,
            weight_update=args.weight_update,
            stuck_window=args.stuck_window,
            initial_loss=initial_loss,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            log_every=args.log_every,
            select=args.select,
            patience=args.patience,
        )
        check_trial(config)
    except ValueError as error:
        raise BadInput(str(error)) from None
    return config


def run(args: argparse.Namespace) -> int:
    from study.provenance import code_fingerprint
    from workers.environment import runtime_environment
    from workers.training import train

    config = config_from_args(args)
    if args.study is not None:
        check_study_name(args.study, "--study")
    try:
        set_threads(args.threads)
    except ValueError as error:
        raise BadInput(f"--{error}") from None
    device = check_device(args.device)
    results = open_adhoc_study(args.storage, args.study) if args.study else None

    def progress(point: TracePoint) -> None:
        print(
            f"step {point.step:>6}  test loss {format_value(list(point.test_losses))}  w {format_value(list(point.weights))}"
            + ("" if point.validation_losses is None else f"  validation {format_value(list(point.validation_losses))}"),
            file=sys.stderr,
            flush=True,
        )

    try:
        result = train(config, on_log=None if args.json else progress, device=device)
        result = dataclasses.replace(result, environment=runtime_environment(device))
    except ValueError as error:  # raised before the first step: the config does not fit the workload
        if results is not None:
            results.close()
        raise BadInput(str(error)) from None
    if results is not None:
        with results:
            if results.find_study(args.study) is None:  # made only now that there is a run to record
                results.create_study(args.study, ADHOC_KIND, {"study": args.study, "kind": ADHOC_KIND})
            outcome = results.record(args.study, config.key(), config.to_dict(), result,
                                     provenance={"code": code_fingerprint(config.workload).to_dict()})
        note = "recorded" if outcome.created else "already recorded, kept the earlier run"
        print(f"{note}: study {args.study!r}, key {config.key()} in {results.display_url}", file=sys.stderr)
    if args.json:
        json.dump({"key": config.key(), "config": config.to_dict(), "result": result.to_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(summary(config, result))
    return 0 if result.ok else 1


def check_device(name: str) -> str:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput(f"--device: unknown device {name!r} (cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"--device: {name!r} asked for, but torch sees no CUDA GPU here")
    return name


def open_adhoc_study(url: str, name: str):
    """`gns train --study` is one of the documented writers: it records one run, no lease needed."""
    results = open_writer(url)
    study = results.find_study(name)
    if study is not None and study.kind != ADHOC_KIND:
        results.close()
        raise BadInput(f"--study: {name!r} is a {study.kind} study; gns train records only into {ADHOC_KIND!r} studies")
    return results


def summary(config: TrialConfig, result: TrialResult) -> str:
    lines = [f"{config.workload} {config.method} seed {config.seed}: {result.status} after {result.steps_completed} steps"]
    if result.steps_completed < config.steps and result.ok:
        lines[0] += f" (stopped early: {config.patience} log points without a better validation loss)"
    if result.selected_step is not None:
        lines.append(f"  read at step {result.selected_step}, its best validation step")
    if not result.ok:
        lines.append(f"  diverged at step {result.diverged_step}: {result.failure_reason}")
    header = f"  {'task':<10} {'L(0)':>12} {'test loss':>12} {'normalized':>11} {'final w':>9} {'mean w':>9}"
    lines.append(header)
    for i, name in enumerate(result.task_names):
        test = result.final_test_losses[i] if result.final_test_losses else float("nan")
        initial = result.initial_losses[i] if result.initial_losses else float("nan")
        lines.append(
            f"  {name:<10} {initial:>12.5g} {test:>12.5g} {test / initial:>11.4f}"
            f" {result.final_weights[i]:>9.4f} {result.time_averaged_weights[i]:>9.4f}"
        )
    for metric in result.test_metrics:
        if metric.metric != "mse":
            lines.append(f"  {metric.task} {metric.metric}: {metric.value:.4f}")
    lines.append(f"  task-normalized test loss: {result.primary_metric:.4f}")
    rate = result.steps_completed / result.wall_time_s if result.wall_time_s else float("nan")
    lines.append(f"  wall time {result.wall_time_s:.2f} s ({rate:.0f} steps/s)")
    return "\n".join(lines)
