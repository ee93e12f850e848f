"""Writing a report: one self-contained HTML page, a PNG and a CSV per figure, summary.json.

The page inlines plotly.js once, so it opens offline. PNG export drives a
Chromium through kaleido; without one the PNGs are skipped with a note.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

PNG_SIZE = {"width": 1100, "height": 550}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


@dataclass
class Section:
    name: str  # file stem for its PNG and CSV
    title: str
    text: list[str] = field(default_factory=list)  # paragraphs (plain text)
    figure: go.Figure | None = None
    data: pd.DataFrame | None = None  # written as NAME.csv
    table_html: str | None = None


@dataclass
class WrittenReport:
    index: Path
    files: list[Path]
    notes: list[str]


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def write_report(
    out_dir: Path, title: str, summary: dict[str, Any], spec: dict[str, Any], sections: list[Section], png: bool = True,
    say: Callable[[str], None] | None = None,
) -> WrittenReport:
    """Write the report's files into `out_dir` (made if absent; a symbolic link is refused by the caller).

    Each file is written beside its target under a fresh name and renamed over it, so a
    symbolic link planted at a target's name is replaced, never followed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    notes: list[str] = []
    for section in sections:
        if section.data is not None:
            files.append(replace_file(out_dir / f"{section.name}.csv", lambda tmp, data=section.data: data.to_csv(tmp, index=False)))
    figures = [s for s in sections if s.figure is not None]
    if png and figures:
        if find_chromium() is None:
            notes.append("PNG export skipped: no Chromium found (install the chromium package)")
        else:
            if say is not None:  # a browser starts, then each figure renders: seconds, not instant
                say(f"exporting {len(figures)} PNGs through Chromium (a few seconds) ...")
            files += _write_pngs(out_dir, figures)
    summary_text = json.dumps(_jsonable(summary), indent=2) + "\n"
    summary_path = replace_file(out_dir / "summary.json", lambda tmp: tmp.write_text(summary_text))
    page = _page(title, summary, spec, sections)
    index = replace_file(out_dir / "index.html", lambda tmp: tmp.write_text(page))
    return WrittenReport(index, [index, summary_path, *files], notes)


def replace_file(target: Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` a file beside `target`, then rename it over `target` (whatever was there, a link too)."""
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(descriptor)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _write_pngs(out_dir: Path, sections: list[Section]) -> list[Path]:
    import kaleido

    written = []
    kaleido.start_sync_server()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "kopts ignored with a server": we pass none
            for section in sections:
                # A figure that sets its own height (a grid of panels) keeps it.
                size = {**PNG_SIZE, "height": section.figure.layout.height or PNG_SIZE["height"]}
                written.append(replace_file(out_dir / f"{section.name}.png",
                                            lambda tmp, figure=section.figure: figure.write_image(tmp, format="png", **size)))
    finally:
        kaleido.stop_sync_server()
    return written


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.92rem; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.problem { background: #fff4e5; border-left: 4px solid #f4a261; padding: 0.5rem 1rem; }
pre { background: #f6f8fa; padding: 1rem; overflow-x: auto; }
section { margin-bottom: 2.5rem; }
"""


def _page(title: str, summary: dict[str, Any], spec: dict[str, Any], sections: list[Section]) -> str:
    import yaml

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by gradnorm-study</p>',
    ]
    for problem in summary.get("problems", []):
        parts.append(f'<p class="problem">{html.escape(problem)}</p>')
    parts.append("<h2>Summary</h2>" + _summary_table(summary))
    for section in sections:
        parts.append(f'<section id="{section.name}"><h2>{html.escape(section.title)}</h2>')
        parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.text]
        if section.figure is not None:
            parts.append(section.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{section.name}"))
        if section.table_html:
            parts.append(section.table_html)
        parts.append("</section>")
    parts.append("<h2>Study spec</h2><details open><pre>")
    parts.append(html.escape(yaml.safe_dump(spec, sort_keys=False)))
    parts.append("</pre></details></body></html>")
    return "\n".join(parts)


def _summary_table(summary: dict[str, Any]) -> str:
    rows = []
    for key, value in summary.items():
        if key == "problems" or isinstance(value, (dict, list)):
            continue
        rows.append(f"<tr><th>{html.escape(key.replace('_', ' '))}</th><td>{html.escape(_format(value))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value
