"""Gate outcomes, the gate protocol and the report of a run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from pydicom import Dataset

from inference.gates.config import CxrGateConfig
from inference.pixels import DisplayImage

__all__ = ["Gate", "GateOutcome", "GateReport", "Measurements"]

Measurements = Mapping[str, float | str]


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What one gate decided and what it measured.

    Attributes
    ----------
    passed:
        Whether the study may go on.
    gate:
        The gate's stable code (``modality``, ``body_part``, ``size``, ``color``,
        ``exposure``, ``view``, ``inverted``).
    reason_en, reason_vi:
        Why the study was refused, in English and Vietnamese; empty when it passed.
    measurements:
        The values the decision was made on (header values, image measures).
    """

    passed: bool
    gate: str
    reason_en: str = ""
    reason_vi: str = ""
    measurements: Measurements = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.passed and not (self.reason_en and self.reason_vi):
            raise ValueError(
                f"a failed `{self.gate}` outcome must carry `reason_en` and `reason_vi`"
            )
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))

    @classmethod
    def ok(cls, gate: str, **measurements: float | str) -> GateOutcome:
        """A passing outcome of ``gate`` with its measurements."""
        return cls(True, gate, measurements=measurements)

    @classmethod
    def refused(
        cls, gate: str, reasons: tuple[str, str], **measurements: float | str
    ) -> GateOutcome:
        """A failing outcome of ``gate`` with its (English, Vietnamese) reasons."""
        return cls(False, gate, reasons[0], reasons[1], measurements)


@runtime_checkable
class Gate(Protocol):
    """One check a study must pass before any finding is produced."""

    @property
    def code(self) -> str:
        """The stable code of the gate, as in :attr:`GateOutcome.gate`."""
        ...

    def check(self, dataset: Dataset, display: DisplayImage, config: CxrGateConfig) -> GateOutcome:
        """Decide on one instance and its display image."""
        ...


@dataclass(frozen=True, slots=True)
class GateReport:
    """The outcomes of the gates that ran, in order.

    Attributes
    ----------
    outcomes:
        One outcome per gate run; running stops at the first failure, so only the
        last one can have failed.
    skipped:
        Codes of the gates not run because an earlier one failed.
    """

    outcomes: tuple[GateOutcome, ...]
    skipped: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every gate ran and passed."""
        return not self.skipped and all(outcome.passed for outcome in self.outcomes)

    @property
    def failures(self) -> tuple[GateOutcome, ...]:
        """The failed outcomes (at most one)."""
        return tuple(outcome for outcome in self.outcomes if not outcome.passed)
