"""``soi demo``: Soi end to end on the embedded default, with real receiving systems."""

from soi.demo.destinations import COMMUNE_STATION, DemoDestination, PacsChoice
from soi.demo.errors import DemoError
from soi.demo.run import DemoOptions, DemoProgress, DemoReport, StudyOutcome, run_demo

__all__ = [
    "COMMUNE_STATION",
    "DemoDestination",
    "DemoError",
    "DemoOptions",
    "DemoProgress",
    "DemoReport",
    "PacsChoice",
    "StudyOutcome",
    "run_demo",
]
