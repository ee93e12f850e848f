"""Study specs: validation (exit 2, field named, nothing written) and planning."""

import json
from collections import Counter

import pytest
import yaml

from db import ResultsDB
from study.cli import main
from study.kinds.random_static import random_static_weights
from study.plan import plan_study
from study.spec import load_spec, parse_spec
from tests.fake_results import fake_result
from tests.helpers import file_digest
from workers.config import TrialConfig

GOOD = {
    "study": "good",
    "kind": "random-static",
    "workload": "toy",
    "workload_options": {"tasks": 2, "train_size": 400, "test_size": 100},
    "training": {"steps": 40, "log_every": 20},
    "random_static": {"runs": 3},
}


def changed(**fields):
    spec = json.loads(json.dumps(GOOD))
    for path, value in fields.items():
        *parents, last = path.split("__")
        node = spec
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return spec


DELETE = object()

BAD_SPECS = [
    (changed(trainning={"steps": 10}), "trainning: unknown field (did you mean 'training'?)"),
    (changed(training__step=10), "training.step: unknown field (did you mean 'steps'?)"),
    (changed(training__steps="many"), "training.steps: expected an integer, got str 'many'"),
    (changed(training__steps=0), "training.steps: must be an integer >= 1"),
    (changed(training__lr=-0.1), "training.lr: must be a number > 0"),
    (changed(gradnorm={"alpha": -0.5}), "gradnorm.alpha: must be a number >= 0"),
    (changed(kind="alpha-sweep", random_static=DELETE, alpha_sweep={"alphas": [0.5, -1]}), "alpha_sweep.alphas[1]: must be a number >= 0"),
    (
        changed(kind="methods", random_static=DELETE, methods={"methods": ["static"], "weights": [1, 2, 3]}),
        "methods.weights: expected 2 values",
    ),
    (changed(kind="methods", random_static=DELETE, methods={"methods": ["equal", "sgd"]}), "methods.methods[1]: unknown method 'sgd'"),
    (
        changed(kind="methods", random_static=DELETE, methods={"methods": ["gradnorm-static"]}),
        "methods.methods: gradnorm-static retrains with a GradNorm run's weights",
    ),
    (changed(kind="random"), "kind: unknown study kind 'random' (did you mean 'random-static'?)"),
    # ceilings, checked before anything is expanded or planned; a long bad value is not echoed whole
    (changed(training__steps=10**12), "training.steps: must be at most 10,000,000, got 1,000,000,000,000"),
    (changed(random_static={"runs": 10**9}), "random_static.runs: must be at most 10,000, got 1,000,000,000"),
    (changed(random_static={"runs": 10_000}, seeds=list(range(11))),
     "random_static.runs: 10,000 runs at each of 11 seeds are more than 100,000 trials for one study"),
    (changed(seeds=list(range(1001))), "seeds: lists 1,001 values; at most 1000"),
    (changed(description="x" * 10_001), "description: at most 10,000 characters, got 10,001"),
    (changed(workload_options__train_size=10**9), "train_size: must be an integer from 1 to 1,000,000, got 1000000000"),
    (changed(gradnorm={"initial_loss": [1.0] * 1001}), "gradnorm.initial_loss: at most 1000 values (one per task), got 1,001"),
    (changed(training__steps="y" * 10_000), "training.steps: expected an integer, got str 'yyyyyyyyy"),
    (changed(kind="search", random_static=DELETE, search={"eta": 10**9, "rungs": 10**9}), "search.eta: must be at most 100"),
    (changed(workload="cifar"), "workload: unknown workload 'cifar'"),
    (changed(workload_options__tasks=0), "workload_options.tasks: must be an integer from 1 to 1000, got 0"),
    (changed(workload_options__colour="red"), "workload_options.colour: unknown option for workload 'toy'"),
    (changed(study=DELETE), "study: missing"),
    (changed(seeds=[]), "seeds: must list at least one seed"),
    (changed(seeds=[0, 0]), "seeds: lists a seed twice"),
    (changed(alpha_sweep={"alphas": [1.0]}), "alpha_sweep: does not apply to a random-static study"),
    (changed(random_static__runs=0), "random_static.runs: must be >= 1"),
    (changed(random_static__gradnorm_static="yes"), "random_static.gradnorm_static: expected true or false"),
    (changed(gradnorm={"initial_loss": "last"}), "gradnorm.initial_loss: unknown mode 'last'"),
    (changed(resources={"cpu": 0}), "resources.cpu: must be > 0"),
    (changed(resources={"gpu": 2.5}), "resources.gpu: a fraction must be <= 1"),
    (changed(training__batch_size=5000), "training.batch_size: 5000 exceeds the 400 training samples"),
    (changed(max_concurrent=0), "max_concurrent: must be >= 1"),
    ([1, 2, 3], "spec: expected a mapping of fields"),
    (changed(training__log_every=50), "training.log_every: 50 is more than the 40 steps"),
    (changed(study="a" * 129), "study: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not a study name"),
    (changed(study="../escape"), "study: '../escape' is not a study name"),
    (changed(seeds=[-1]), "seeds[0]: must be an integer >= 0"),
    (changed(workload="os:getcwd"), "workload: factory 'os:getcwd' failed: TypeError"),
    (changed(workload="tests.user_workload:not_a_workload"), "returned dict, not a workers.workloads.base.Workload"),
    (changed(workload="no_such_module_here:f"), "workload: cannot import 'no_such_module_here'"),
    (changed(gradnorm={"shared_params": []}), "gradnorm.shared_params: must name at least one shared parameter"),
    (changed(random_static__sampler="normal"), "random_static.sampler: unknown sampler 'normal'"),
    (changed(random_static__concentration=0.5), "random_static.concentration: only applies to sampler dirichlet"),
    (changed(random_static__sampler="dirichlet", random_static__concentration=0), "random_static.concentration: must be > 0"),
    (changed(random_static__sampler="log-uniform", random_static__smallest=1.5), "random_static.smallest: must be between 0 and 1"),
    (changed(random_static__budgets=[30]), "random_static.budgets[0]: 30 is not a logged step of the runs"),
    (changed(random_static__budgets=[60]), "random_static.budgets[0]: 60 is not a logged step"),
    (changed(gradnorm={"weight_update": "exp"}), "gradnorm.weight_update: unknown update 'exp'"),
    (changed(gradnorm={"stuck_window": 0}), "gradnorm.stuck_window: must be an integer >= 1"),
    (changed(gradnorm={"alpha_from": "no-such-sweep"}), "gradnorm.alpha_from: no study 'no-such-sweep'"),
    (changed(gradnorm={"alpha_from": "../x"}), "gradnorm.alpha_from: '../x' is not a study name"),
    (
        changed(kind="methods", random_static=DELETE, methods={"methods": ["equal"], "uncertainty_lrs": [0.01]}),
        "methods.uncertainty_lrs: only applies when 'uncertainty' is among the methods",
    ),
    (
        changed(kind="methods", random_static=DELETE, methods={"methods": ["uncertainty"], "uncertainty_lrs": [0.01, -1]}),
        "methods.uncertainty_lrs[1]: must be a number > 0",
    ),
    (changed(kind="search", random_static=DELETE, search={"searchers": ["random", "bayes"]}),
     "search.searchers[1]: unknown searcher 'bayes' (choose from random, tpe, halving)"),
    (changed(kind="search", random_static=DELETE, search={"budget_steps": 39}),
     "search.budget_steps: 39 buys less than one run of training.steps 40"),
    # rungs (13, 40) round to (20, 40) at log_every 20; continued: 3 runs of 20 steps, then 1 of 40 - 20 more
    (changed(kind="search", random_static=DELETE, search={"budget_steps": 60, "rungs": 2}),
     "search.budget_steps: 60 does not pay for halving's 2 rungs (at least 80 steps at eta 3)"),
    (changed(kind="search", random_static=DELETE, search={"rungs": 5}),
     "search.rungs: 5 rungs at eta 3 leave the shortest rung under one step of training.steps 40"),
    (changed(kind="search", random_static=DELETE, search={"eta": 1}), "search.eta: must be >= 2"),
    (changed(kind="search", random_static=DELETE, search={"budget_steps": 40 * 1001}),
     "search.budget_steps: 40040 is more than 1000 runs of training.steps 40"),
    (changed(kind="search", random_static=DELETE, training={"steps": 6561}, search={"budget_steps": 6561 * 900, "rungs": 9}),
     "search: its searchers would train"),
    (changed(kind="search", random_static=DELETE, search={"batch": 0}), "search.batch: must be >= 1"),
    (changed(kind="search", random_static=DELETE, search={"smallest": 0}), "search.smallest: must be between 0 and 1"),
    (changed(kind="search", search={"batch": 2}), "random_static: does not apply to a search study"),
    (changed(kind="search", random_static=DELETE, workload="tests.user_workload:build", workload_options={},
             training={"steps": 40, "batch_size": 16}),
     "kind: a search study chooses among its runs on a validation split, and workload tests.user_workload:build has none"),
    (changed(training__select="best"), "training.select: unknown mode 'best' (choose from last, best_validation)"),
    (changed(training__patience=3), "training.patience: early stopping needs select: best_validation"),
    (changed(training__select="best_validation", training__patience=0), "training.patience: must be an integer >= 1"),
    (changed(workload="tests.user_workload:build", workload_options={}, training={"steps": 40, "batch_size": 16,
                                                                                  "select": "best_validation"}),
     "training.select: best_validation reads each run at its best validation step, and workload "
     "tests.user_workload:build has no validation split"),
]


@pytest.fixture
def existing_db(tmp_path):
    """A results database that already holds a study, to show a bad launch leaves it alone."""
    path = tmp_path / "results.db"
    with ResultsDB(f"sqlite:///{path}") as results:
        results.create_study("good", "random-static", {"study": "good"})
        config = TrialConfig(method="equal")
        results.record("good", config.key(), config.to_dict(), fake_result())
    return path


@pytest.mark.parametrize("spec, message", BAD_SPECS, ids=[m.split(":")[0] for _, m in BAD_SPECS])
def test_bad_spec_exits_2_naming_the_field_and_writes_nothing(capsys, tmp_path, existing_db, spec, message):
    spec_path = tmp_path / "bad.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    before = file_digest(existing_db)
    fresh = tmp_path / "fresh.db"
    for url in (f"sqlite:///{existing_db}", f"sqlite:///{fresh}"):
        code = main(["launch", str(spec_path), "--storage", url])
        err = capsys.readouterr().err
        assert code == 2
        assert message in err, err
        assert err.count("\n") == 1 and "Traceback" not in err and len(err) < 400
    assert file_digest(existing_db) == before
    assert not fresh.exists()
    # gns plan checks everything gns launch checks (before Ray or a database)
    assert main(["plan", str(spec_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.parametrize(
    "resources, message",
    [({"cpu": 100000}, "resources.cpu: each trial asks for 100000 CPUs, the Ray cluster has "), ({"gpu": 1}, "the Ray cluster has no GPU")],
)
def test_resources_the_cluster_cannot_meet_exit_2_and_write_nothing(capsys, tmp_path, resources, message):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(changed(resources=resources)))
    fresh = tmp_path / "fresh.db"
    code = main(["launch", str(spec_path), "--storage", f"sqlite:///{fresh}"])
    progress, error = capsys.readouterr().err.splitlines()
    assert progress == "study 'good': starting a local Ray (usually 5-30 s) ..."  # the check needs Ray's count
    assert code == 2 and error.startswith("gns launch: error: ") and message in error
    assert not fresh.exists()


ALIAS_BOMB = """study: bomb
kind: methods
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
description: [*d,*d,*d,*d,*d,*d,*d,*d,*d]
"""


@pytest.mark.parametrize(
    "text, message",
    [("study: good\nkind: x: y\n", "spec: bad.yaml is not valid YAML at line 2"), (None, "spec: no such file"),
     (ALIAS_BOMB, "spec: bad.yaml is not valid YAML at line 4 (YAML aliases (*name) are not accepted in a spec"),
     ("study: good\nkind: methods\n" + "#" * (256 * 1024), "spec: bad.yaml is larger than 256 KiB"),
     ("study: good\nkind: methods\nseeds: [" + "9" * 5000 + "]\n", "spec: bad.yaml holds a value that cannot be read"),
     (b"study: \xff\n", "spec: bad.yaml is not UTF-8 text")],
    ids=["yaml", "missing", "alias-bomb", "too-large", "huge-integer", "not-utf8"],
)
def test_unreadable_spec_files(capsys, tmp_path, text, message):
    spec_path = tmp_path / "bad.yaml"
    if text is not None:
        spec_path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["plan", str(spec_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and len(err) < 400


def test_bad_storage_url_exits_2_before_anything_runs(capsys, tmp_path):
    spec_path = tmp_path / "good.yaml"
    spec_path.write_text(yaml.safe_dump(GOOD))
    assert main(["launch", str(spec_path), "--storage", "mysql://root@localhost/x"]) == 2
    assert "storage: unsupported database 'mysql'" in capsys.readouterr().err


def test_random_static_plan():
    spec = parse_spec(GOOD)
    planned = plan_study(spec)
    methods = [p.config.method for p in planned]
    # the reference first, the trivial baseline w ∝ 1/L_i(0) after the draws, GradNorm-Static last
    assert methods == ["gradnorm"] + ["static"] * 3 + ["inverse-initial-loss", "gradnorm-static"]
    reference, retrained = planned[0], planned[5]
    assert retrained.depends_on == reference.key and retrained.config.weights_from == reference.key
    assert reference.config.alpha == 0.12
    for p in planned[1:4]:
        assert sum(p.config.weights) == pytest.approx(2.0)
        assert p.config.seed == 0 and p.config.steps == 40
    assert [p.key for p in plan_study(parse_spec(GOOD))] == [p.key for p in planned]  # stable


def test_random_static_weights_are_uniform_draws_scaled_to_sum_to_t():
    weights = random_static_weights(runs=4000, tasks=3, weight_seed=1)
    assert weights.shape == (4000, 3)
    assert weights.sum(axis=1) == pytest.approx(3.0)
    assert (weights > 0).all()
    # w_i = 3 u_i / (u_1 + u_2 + u_3) with u ~ U(0, 1): by symmetry every task averages 1
    assert weights.mean(axis=0) == pytest.approx([1.0, 1.0, 1.0], abs=0.03)
    assert (random_static_weights(5, 3, 1) == weights[:5]).all()


@pytest.mark.parametrize("sampler", ["uniform", "log-uniform", "dirichlet"])
def test_every_sampler_draws_positive_weights_summing_to_t_and_is_reproducible(sampler):
    weights = random_static_weights(runs=2000, tasks=3, weight_seed=2, sampler=sampler)
    assert weights.sum(axis=1) == pytest.approx(3.0)
    assert (weights > 0).all()
    assert weights.mean(axis=0) == pytest.approx([1.0, 1.0, 1.0], abs=0.06)  # every sampler is symmetric in the tasks
    assert (random_static_weights(5, 3, 2, sampler=sampler) == weights[:5]).all()


def test_log_uniform_and_dirichlet_reach_the_small_weights_uniform_almost_never_draws():
    # T = 2, uniform: w_0 = 2 u_0 / (u_0 + u_1) < 0.02 needs u_0 < u_1 / 99: P = 1/198 (about 0.5 %)
    share = {s: float((random_static_weights(40000, 2, 0, sampler=s)[:, 0] < 0.02).mean()) for s in ("uniform", "log-uniform")}
    assert share["uniform"] == pytest.approx(1 / 198, abs=0.0015)
    # log-uniform on [1e-3, 1]: w_0 < 0.02 needs log(u_0/u_1) < log(1/99); the difference of two
    # U(0, ln 1000) variables has a triangular density: P = (ln 1000 - ln 99)^2 / (2 ln^2 1000) = 0.0561
    assert share["log-uniform"] == pytest.approx(0.0561, abs=0.005)
    # Dirichlet(0.2) puts most of its mass near the simplex's corners
    corners = random_static_weights(40000, 2, 0, sampler="dirichlet", concentration=0.2)
    assert float((corners.min(axis=1) < 0.02).mean()) > 0.3


def test_a_samplers_parameter_is_filled_in_and_recorded_with_the_study():
    spec = parse_spec(changed(random_static__sampler="log-uniform"))
    recorded = spec.to_dict()["random_static"]
    assert (recorded["sampler"], recorded["smallest"], recorded["concentration"]) == ("log-uniform", 0.001, None)
    assert spec.identity() != parse_spec(GOOD).identity()  # another sampler, another plan
    draws = [p.config.weights for p in plan_study(spec) if p.config.method == "static"]
    assert draws == [tuple(w) for w in random_static_weights(3, 2, 0, sampler="log-uniform").tolist()]


def test_methods_plan_trains_uncertainty_at_each_listed_lr():
    spec = parse_spec(changed(kind="methods", random_static=DELETE, seeds=[0, 1],
                              methods={"methods": ["equal", "uncertainty"], "uncertainty_lrs": [0.001, 0.1]}))
    assert Counter((p.config.method, p.config.balancer_lr, p.config.seed) for p in plan_study(spec)) == {
        ("equal", None, 0): 1, ("uncertainty", 0.001, 0): 1, ("uncertainty", 0.1, 0): 1,
        ("equal", None, 1): 1, ("uncertainty", 0.001, 1): 1, ("uncertainty", 0.1, 1): 1,
        ("inverse-initial-loss", None, 0): 1, ("inverse-initial-loss", None, 1): 1,  # trained unless turned off
    }


def test_the_log_space_update_reaches_every_gradnorm_run_of_the_plan():
    planned = plan_study(parse_spec(changed(gradnorm={"weight_update": "log"})))
    assert [p.config.weight_update for p in planned if p.config.method == "gradnorm"] == ["log"]


def test_alpha_sweep_plan_has_equal_weights_and_each_alpha_per_seed():
    spec = parse_spec(changed(kind="alpha-sweep", random_static=DELETE, seeds=[0, 1], alpha_sweep={"alphas": [0, 1.5]}))
    planned = plan_study(spec)
    assert Counter((p.config.method, p.config.alpha, p.config.seed) for p in planned) == {
        ("equal", None, 0): 1,
        ("gradnorm", 0.0, 0): 1,
        ("gradnorm", 1.5, 0): 1,
        ("equal", None, 1): 1,
        ("gradnorm", 0.0, 1): 1,
        ("gradnorm", 1.5, 1): 1,
    }


def test_methods_plan_runs_single_task_per_task_and_gradnorm_static_after_gradnorm():
    spec = parse_spec(
        changed(
            kind="methods",
            random_static=DELETE,
            workload="digits",
            workload_options={},
            seeds=[3],
            methods={"methods": ["gradnorm-static", "single-task", "equal", "uncertainty", "gradnorm"]},
        )
    )
    planned = plan_study(spec)
    assert [(p.config.method, p.config.task) for p in planned] == [
        ("gradnorm", None),
        ("single-task", 0),
        ("single-task", 1),
        ("single-task", 2),
        ("single-task", 3),
        ("equal", None),
        ("uncertainty", None),
        ("inverse-initial-loss", None),
        ("gradnorm-static", None),
    ]
    assert planned[-1].depends_on == planned[0].key


def test_defaults_are_filled_in_and_execution_settings_stay_out_of_the_identity():
    spec = parse_spec(GOOD)
    data = spec.to_dict()
    assert data["training"]["batch_size"] == 100 and data["retries"] == 2 and data["resources"]["cpu"] == 1.0
    other = parse_spec(changed(resources={"cpu": 2}, max_concurrent=4, retries=0))
    assert other.identity() == spec.identity()
    assert parse_spec(changed(training__steps=41)).identity() != spec.identity()


def test_gns_plan_prints_a_table_and_json(capsys, tmp_path):
    spec_path = tmp_path / "good.yaml"
    spec_path.write_text(yaml.safe_dump(GOOD))
    assert main(["plan", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert "study 'good': random-static on toy, 6 trials of 40 steps" in out
    rows = out.splitlines()[3:]  # title, header, rule
    assert [row.split()[1] for row in rows] == ["gradnorm"] + ["static"] * 3 + ["inverse-initial-loss", "gradnorm-static"]
    assert main(["plan", str(spec_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in rows] == [p.key for p in plan_study(load_spec(spec_path))]
    assert rows[5]["after"] == rows[0]["key"]
    assert TrialConfig.from_dict(rows[0]["config"]).key() == rows[0]["key"]


def test_example_specs_are_valid():
    from pathlib import Path

    from study.plan import planned_count

    examples = sorted(Path(__file__).parents[1].joinpath("examples").glob("*.yaml"))
    assert examples
    for path in examples:
        spec = load_spec(path)
        planned = plan_study(spec)
        keys = [p.key for p in planned]
        assert planned and len(set(keys)) == len(keys), path  # one key per distinct trial
        assert planned_count(spec, planned) >= len(planned), path  # a search plans its first round of the total
        assert {p.config.workload for p in planned} == {spec.workload}, path
        assert {p.config.seed for p in planned} == set(spec.seeds), path
        assert all(p.depends_on in keys for p in planned if p.depends_on is not None), path


def test_the_specs_behind_docs_results_load():
    """Their plans need the database (alpha_from); loading checks every field."""
    from pathlib import Path

    specs = sorted(Path(__file__).parents[1].joinpath("docs", "results", "specs").glob("*.yaml"))
    assert len(specs) >= 10
    for path in specs:
        assert load_spec(path).study == path.stem, path


@pytest.mark.parametrize("flags", [{"cpu": 2.0}, {"gpu": 0.5}, {"cpu": 1.0, "gpu": 1.0}])
def test_command_line_resources_override_only_what_they_name(flags):
    from study.cli.launch import with_resources

    spec = parse_spec({"study": "s", "kind": "methods", "methods": {"methods": ["equal"]},
                       "resources": {"cpu": 1, "gpu": 0.25, "pack": 1}})
    resources = with_resources(spec, flags.get("cpu"), flags.get("gpu")).resources
    assert resources.pack == 1  # a spec's pack: 1 survives --cpu / --gpu
    assert (resources.cpu, resources.gpu) == (flags.get("cpu", 1.0), flags.get("gpu", 0.25))


@pytest.mark.parametrize("kind, section", [("random-static", {"runs": 2}), ("search", {"searchers": ["random"]}),
                                           ("methods", {"methods": ["equal"]})])
def test_the_trivial_baseline_is_planned_once_per_seed_unless_turned_off(kind, section):
    fields = {"kind": kind, "random_static": DELETE, kind.replace("-", "_"): section, "seeds": [0, 1]}
    if kind == "search":
        fields["workload_options"] = {"tasks": 2, "train_size": 400, "test_size": 100, "validation_size": 100}
    on = plan_study(parse_spec(changed(**fields)))
    assert Counter(p.config.seed for p in on if p.config.method == "inverse-initial-loss") == {0: 1, 1: 1}
    fields[kind.replace("-", "_")] = {**section, "inverse_initial_loss": False}
    off = plan_study(parse_spec(changed(**fields)))
    assert "inverse-initial-loss" not in {p.config.method for p in off}
    assert {p.key for p in off} == {p.key for p in on if p.config.method != "inverse-initial-loss"}
