"""Reports: from the database to DataFrames and statistics, then figures, then a page.

`build_report` (study/report/build.py) picks what fits the study's kind; each
figure's data is computed in its own module, tested on numbers, then drawn.
"""

from study.report.build import Report, build_report

__all__ = ["Report", "build_report"]
