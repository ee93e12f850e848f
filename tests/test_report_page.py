"""`gns report`: the offline page renders in headless Chromium, PNG and CSV files, the CLI."""

import html
import json
import re
import struct
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import plotly.offline
import pytest
import yaml

from db import ResultsDB
from study.cli import main
from study.report.figure4_stats import Figure4Stats
from study.report.page import find_chromium
from study.report.stats import wilson_interval
from study.report.tables import MethodTableStats
from study.report.sweep import SweepStats
from tests.fake_results import fake_result
from tests.test_report_data import add, static
from workers.config import TrialConfig

pytestmark = pytest.mark.browser


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    browser = find_chromium()
    assert browser, "Chromium is required (scripts/ensure-chromium.sh installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tempfile.mkdtemp()}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=timeout)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def study_url(sqlite_url):
    with ResultsDB(sqlite_url) as results:
        results.create_study("f4", "random-static", {"study": "f4", "kind": "random-static", "workload": "toy"})
        reference = fake_result(final_test_losses=(1.0, 100.0), time_averaged_weights=(1.2, 0.8), moving_weights=True)
        add(results, "f4", TrialConfig(method="gradnorm"), reference)
        for i, (weights, losses) in enumerate([((1.5, 0.5), (1.2, 100.0)), ((0.2, 1.8), (2.0, 50.0)), ((1.0, 1.0), (0.8, 95.0)), ((0.6, 1.4), (1.5, 90.0))]):
            add(results, "f4", static(weights), fake_result(final_test_losses=losses, time_averaged_weights=weights))
    return sqlite_url


def test_report_writes_page_pngs_csvs_and_summary(capsys, tmp_path, study_url):
    out = tmp_path / "report"
    assert main(["report", "f4", "--storage", study_url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip().endswith(f"report: {(out / 'index.html').resolve().as_uri()}")
    names = {p.name for p in out.iterdir()}
    figures = ["figure4", "weights-parallel", "weights", "losses"]
    assert names == {"index.html", "summary.json"} | {f"{f}.{ext}" for f in figures for ext in ("png", "csv")}
    for figure in figures:
        assert png_size(out / f"{figure}.png") == (1100, 550)
    points = pd.read_csv(out / "figure4.csv")
    # 100 * mean_i (L_GN - L) / L_GN: (-0.2, 0), (-1, 0.5), (0.2, 0.05), (-0.5, 0.1)
    assert sorted(points["change_pct"].round(6)) == [-25.0, -20.0, -10.0, 12.5]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["figure4"]["beat_gradnorm"] == 1 and summary["figure4"]["static_runs"] == 4
    assert (summary["figure4"]["share_ci_low"], summary["figure4"]["share_ci_high"]) == pytest.approx(wilson_interval(1, 4))
    assert summary["problems"] == []
    # the terminal prints the page's findings, read back from summary.json: slope, confound, share
    findings = Figure4Stats.from_dict(summary["figure4"]).findings()
    page = html.unescape((out / "index.html").read_text())
    assert len(findings) == 3 and all(f"Figure 4: {line}" in printed and line in page for line in findings)


def test_page_is_self_contained_and_renders_every_figure_in_chromium(tmp_path, study_url, capsys):
    out = tmp_path / "report"
    assert main(["report", "f4", "--storage", study_url, "--out", str(out), "--no-png"]) == 0
    page = (out / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is inlined: opens offline
    assert plotly.offline.get_plotlyjs()[:2000] in page
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", (out / "index.html").as_uri()).stdout
    figure_ids = re.findall(r'id="figure-([a-z0-9-]+)"', page)
    assert figure_ids == ["figure4", "weights-parallel", "weights", "losses"]
    # plotly draws an SVG into each div; a script error leaves them empty
    for figure_id in figure_ids:
        start = dom.index(f'id="figure-{figure_id}"')
        assert "main-svg" in dom[start : start + 20000], figure_id
    assert dom.count('class="plot-container plotly"') == len(figure_ids)

    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    shots = {}
    for name, url in (("page", (out / "index.html").as_uri()), ("blank", blank.as_uri())):
        shots[name] = tmp_path / f"{name}.png"
        chromium("--window-size=1200,1600", "--virtual-time-budget=10000", f"--screenshot={shots[name]}", url)
    assert png_size(shots["page"]) == (1200, 1600)
    assert shots["page"].stat().st_size > 10 * shots["blank"].stat().st_size  # plots, not a blank page


def test_a_study_with_too_few_runs_still_gets_a_page_that_says_so(capsys, tmp_path, sqlite_url):
    with ResultsDB(sqlite_url) as results:
        results.create_study("thin", "random-static", {"study": "thin"})
        add(results, "thin", static((1.0, 1.0)), fake_result())
    out = tmp_path / "thin"
    assert main(["report", "thin", "--storage", sqlite_url, "--out", str(out), "--no-png"]) == 0
    printed = capsys.readouterr().out
    assert "note: Figure 4 needs a finished GradNorm run; none has finished yet." in printed
    page = (out / "index.html").read_text()
    assert "Figure 4 needs a finished GradNorm run" in page
    assert (out / "summary.json").exists()


def test_report_of_a_missing_study_exits_2(capsys, tmp_path, study_url):
    assert main(["report", "nope", "--storage", study_url, "--out", str(tmp_path / "x")]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.ray
def test_methods_study_launched_and_reported_end_to_end(capsys, tmp_path, sqlite_url):
    spec_path = tmp_path / "methods.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "study": "digits-tiny",
                "kind": "methods",
                "workload": "digits",
                "seeds": [0, 1],
                "training": {"steps": 60, "log_every": 30},
                "gradnorm": {"alpha": 1.5},
                "methods": {"methods": ["single-task", "equal", "gradnorm", "gradnorm-static"], "inverse_initial_loss": False},
            }
        )
    )
    assert main(["launch", str(spec_path), "--storage", sqlite_url]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", "digits-tiny", "--storage", sqlite_url, "--out", str(out), "--no-png"]) == 0
    printed = capsys.readouterr().out
    stats = MethodTableStats.from_dict(json.loads((out / "summary.json").read_text())["methods_table"])
    assert set(stats.delta_m_pct) == {"equal", "gradnorm α=1.5", "gradnorm-static", "single-task"}
    assert stats.delta_m_pct["single-task"] == 0 and stats.best_by_mean in stats.delta_m_pct
    page = html.unescape((out / "index.html").read_text())
    assert len(stats.headline()) == 2 and all(line in printed for line in stats.headline())  # Δm % and the best row
    assert all(sentence in page for sentence in stats.sentences())
    table = pd.read_csv(out / "methods.csv")
    assert set(table["method"]) == {"equal", "gradnorm α=1.5", "gradnorm-static", "single-task"}
    assert set(table["column"]) == {
        "accuracy.digit", "cross_entropy.digit", "accuracy.parity", "cross_entropy.parity", "mse.ink", "mse.denoise"
    }
    assert (table["seeds"] == 2).all() and table["best"].sum() == 6
    page = (out / "index.html").read_text()
    assert "Δm %" in page and "<b>" in page


def test_alpha_sweep_page_has_figure7_and_the_per_alpha_table(capsys, tmp_path, sqlite_url):
    with ResultsDB(sqlite_url) as results:
        results.create_study("sweep", "alpha-sweep", {"study": "sweep", "kind": "alpha-sweep"})
        add(results, "sweep", TrialConfig(method="equal"), fake_result(final_test_losses=(2.0, 10.0)))
        for alpha, losses in ((0.5, (1.0, 10.0)), (3.0, (3.0, 5.0))):
            run = fake_result(final_test_losses=losses, moving_weights=True)
            add(results, "sweep", TrialConfig(method="gradnorm", alpha=alpha), run)
    out = tmp_path / "sweep"
    assert main(["report", "sweep", "--storage", sqlite_url, "--out", str(out), "--no-png"]) == 0
    printed = capsys.readouterr().out
    stats = json.loads((out / "summary.json").read_text())["figure7"]
    # no validation losses, so no choice: the best test gain, at alpha 0.5: mean((2 - 1) / 2, 0) = 25 %
    assert stats["best_alpha"] == 0.5 and stats["best_mean_gain_pct"] == pytest.approx(25.0)
    assert "alpha_chosen_on_validation" not in stats
    page = (out / "index.html").read_text()
    # the terminal prints the page's own sentence of it
    sentence = SweepStats.from_dict(stats).choice_sentence()
    assert f"Figure 7: {sentence}" in printed and sentence in html.unescape(page)
    assert re.findall(r'id="figure-([a-z0-9-]+)"', page) == ["figure7", "weights", "losses"]
    assert "mean_gain_pct" in page  # the per-alpha table
    gains = pd.read_csv(out / "figure7.csv").set_index("alpha")["gain_pct"]
    assert gains[0.5] == pytest.approx(25.0) and gains[3.0] == pytest.approx(0.0)


def test_a_report_never_writes_through_a_symbolic_link(capsys, tmp_path, study_url):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    assert main(["report", "f4", "--storage", study_url, "--out", str(tmp_path / "linked"), "--no-png"]) == 2
    err = capsys.readouterr().err
    assert "is a symbolic link; name the folder itself" in err and err.count("\n") == 1
    assert list(elsewhere.iterdir()) == []

    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("keep me")
    (out / "summary.json").symlink_to(victim)  # planted inside the output folder
    (out / "figure4.csv").symlink_to(tmp_path / "absent.csv")
    assert main(["report", "f4", "--storage", study_url, "--out", str(out), "--no-png"]) == 0
    assert victim.read_text() == "keep me" and not (tmp_path / "absent.csv").exists()
    assert not (out / "summary.json").is_symlink() and json.loads((out / "summary.json").read_text())["study"] == "f4"
    assert not (out / "figure4.csv").is_symlink()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


@pytest.mark.parametrize("argv, message", [
    (["x" * 10_000], "is not a study name"),
    (["f4", "--out", "/proc/self"], "is a symbolic link"),
    (["f4", "--out", "/proc/1/gns-report"], "--out: cannot write the report to '/proc/1/gns-report'"),
    (["f4", "--out", "/tmp/" + "y" * 300], "cannot be used: File name too long"),
])
def test_report_names_and_folders_it_cannot_use_are_refused_in_one_line(capsys, study_url, argv, message):
    assert main(["report", *argv, "--storage", study_url, "--no-png"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err and len(err) < 400
