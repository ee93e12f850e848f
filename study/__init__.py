"""What the user drives: study specs, planning, the Ray Tune driver, reports and the `gns` CLI."""

__version__ = "0.1.0"
