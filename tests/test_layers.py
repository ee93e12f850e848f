"""The import graph: study/ -> {workers/, db/, records/}; workers/ and db/ import neither each
other nor study/; records/ imports none of them. Read from the source, every import statement."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LAYERS = ("study", "workers", "db", "records")
ALLOWED = {
    "study": {"study", "workers", "db", "records"},
    "workers": {"workers", "records"},
    "db": {"db", "records"},
    "records": {"records"},
}


def imported_layers(path: Path) -> set[str]:
    """The top-level project packages a module imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(LAYERS)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_what_it_may(layer):
    modules = sorted((ROOT / layer).rglob("*.py"))
    assert modules
    wrong = {str(m.relative_to(ROOT)): sorted(imported_layers(m) - ALLOWED[layer]) for m in modules}
    assert {module: layers for module, layers in wrong.items() if layers} == {}


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from study.plan import plan_study\n    import db.store\n")
    assert imported_layers(module) == {"study", "db"}


def test_records_and_db_never_import_torch():
    import subprocess
    import sys

    code = "import sys, records, db, db.store, db.queries; print(sorted({'torch', 'workers', 'study'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


READ_COMMANDS = [["--version"], ["studies"], ["query", "s"], ["query", "s", "--traces"], ["status", "s"],
                 ["delete", "nosuch", "--yes"], ["--help"], ["launch", "--help"]]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_read_commands_load_neither_torch_nor_ray(tmp_path, argv):
    """What only reads the database answers without torch (3 s to import here) or Ray."""
    from db import ResultsDB
    from tests.fake_results import fake_result
    from workers.config import TrialConfig

    url = f"sqlite:///{tmp_path / 'r.db'}"
    with ResultsDB(url) as results:
        results.create_study("s", "methods", {"study": "s"})
        config = TrialConfig(method="equal")
        results.record("s", config.key(), config.to_dict(), fake_result())
    storage = [] if argv[-1] == "--help" or argv == ["--version"] else ["--storage", url]
    exit_code, loaded = gns_in_a_fresh_process(argv + storage, {"torch", "ray", "plotly", "scipy"})
    assert exit_code == (2 if argv[0] == "delete" else 0)
    assert loaded == []


def gns_in_a_fresh_process(argv: list[str], watched: set[str]) -> tuple[int, list[str]]:
    """`gns ARGV`'s exit code in a new Python process, and which of the `watched` modules it loaded."""
    import json
    import subprocess
    import sys

    code = ("import contextlib, io, json, sys\nfrom study.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    code = main({json.dumps(argv)})\n"
            f"print(json.dumps([code, sorted(set({sorted(watched)!r}) & set(sys.modules))]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    exit_code, loaded = json.loads(done.stdout.splitlines()[-1])
    return exit_code, loaded


def test_specs_kinds_and_choices_load_no_torch_ray_or_plotting():
    """Loading a spec of any kind (study.kinds) and the alpha a sweep chose need no plotting, torch or Ray."""
    import subprocess
    import sys

    code = ("import sys, study.spec, study.kinds, study.choices, study.report.sweep\n"
            "from study.spec import parse_spec\n"
            "[parse_spec({'study': 's', 'kind': kind}) for kind in study.kinds.KINDS]\n"
            "print(sorted({'torch', 'ray', 'plotly'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("spec", ["examples/quickstart.yaml", "examples/multimnist-fig4.yaml", "examples/toy-fig4.yaml"])
def test_planning_a_builtin_workload_loads_neither_torch_nor_ray(spec):
    """gns plan reads a built-in workload's facts from its options (workers.workload_options)."""
    assert gns_in_a_fresh_process(["plan", spec], {"torch", "ray", "plotly"}) == (0, [])  # exit 0, none loaded
