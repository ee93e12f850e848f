"""Reports: from the database to DataFrames and statistics, then figures, then a page.

`build_report` (study/report/build.py) draws the sections the study's kind names
(study.kinds); each figure's data is computed in its own module, tested on numbers,
then drawn. Imported on first use, so that reading one module's statistics (as
study.choices reads the alpha sweep's) does not load the plotting.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Report", "build_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from study.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'study.report' has no attribute {name!r}")
