"""Routing rules: which pipeline reads which instance, from a readable TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dicom_gateway.errors import RoutingConfigError
from dicom_gateway.sop_classes import resolve_sop_class

__all__ = ["DEFAULT_RULES_PATH", "InstanceAttributes", "Router", "RoutingRule", "load_rules"]

#: The rules shipped with Soi; a site copies and edits them (``SOI_ROUTING_RULES``).
DEFAULT_RULES_PATH = Path(str(resources.files("dicom_gateway") / "routing.toml"))

_TEXT_CONDITIONS = ("modality", "body_part", "view_position", "laterality")
_KNOWN_KEYS = {
    "name",
    "pipeline",
    "sop_class",
    "image_type",
    "exclude_image_type",
    *_TEXT_CONDITIONS,
}


@dataclass(frozen=True, slots=True)
class InstanceAttributes:
    """The attributes routing looks at, read from an instance's header."""

    sop_class_uid: str
    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    laterality: str = ""
    image_type: tuple[str, ...] = ()


def _norm(value: str) -> str:
    return value.strip().upper()


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """One rule: a pipeline and the conditions an instance must meet (all of them)."""

    name: str
    pipeline: str
    sop_classes: frozenset[str] = frozenset()
    text: Mapping[str, frozenset[str]] = field(default_factory=dict)
    image_type: frozenset[str] = frozenset()
    exclude_image_type: frozenset[str] = frozenset()

    def matches(self, attributes: InstanceAttributes) -> bool:
        """Return whether the instance meets every condition of this rule."""
        if self.sop_classes and attributes.sop_class_uid not in self.sop_classes:
            return False
        for key, accepted in self.text.items():
            if _norm(getattr(attributes, key)) not in accepted:
                return False
        image_type = {_norm(value) for value in attributes.image_type}
        if self.image_type and not (image_type & self.image_type):
            return False
        return not (self.exclude_image_type and image_type & self.exclude_image_type)


class Router:
    """Applies routing rules to instances."""

    def __init__(self, rules: Sequence[RoutingRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_file(cls, path: Path | None = None) -> Router:
        """Load the rules of ``path`` (the shipped defaults when ``None``)."""
        return cls(load_rules(path or DEFAULT_RULES_PATH))

    @property
    def pipelines(self) -> frozenset[str]:
        """Every pipeline some rule names."""
        return frozenset(rule.pipeline for rule in self.rules)

    def pipelines_for(self, attributes: InstanceAttributes) -> tuple[str, ...]:
        """Return the pipelines that apply to an instance, in rule order, without repeats."""
        found: list[str] = []
        for rule in self.rules:
            if rule.pipeline not in found and rule.matches(attributes):
                found.append(rule.pipeline)
        return tuple(found)


def load_rules(path: Path) -> list[RoutingRule]:
    """Read and check a routing rules file.

    Raises
    ------
    RoutingConfigError
        The file is missing, not TOML, or a rule is not valid; the message names
        the rule and the key.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoutingConfigError(f"cannot read routing rules {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RoutingConfigError(f"routing rules {path} are not valid TOML: {exc}") from exc
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RoutingConfigError(f"{path}: `rules` must be an array of tables ([[rules]])")
    return [_parse_rule(raw, index, path) for index, raw in enumerate(raw_rules, start=1)]


def _parse_rule(raw: Any, index: int, path: Path) -> RoutingRule:
    where = f"{path}: rule {index}"
    if not isinstance(raw, dict):
        raise RoutingConfigError(f"{where} must be a table")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise RoutingConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    pipeline = raw.get("pipeline")
    if not isinstance(pipeline, str) or not pipeline:
        raise RoutingConfigError(f"{where}: `pipeline` must be a non-empty string")
    name = str(raw.get("name", f"rule {index}"))

    def values(key: str) -> frozenset[str]:
        value = raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RoutingConfigError(f"{where} ({name}): `{key}` must be a list of strings")
        return frozenset(_norm(v) for v in value)

    try:
        sop_classes = frozenset(str(resolve_sop_class(v)) for v in raw.get("sop_class", []))
    except ValueError as exc:
        raise RoutingConfigError(f"{where} ({name}): {exc}") from exc
    text = {key: values(key) for key in _TEXT_CONDITIONS if key in raw}
    return RoutingRule(
        name=name,
        pipeline=pipeline,
        sop_classes=sop_classes,
        text=text,
        image_type=values("image_type"),
        exclude_image_type=values("exclude_image_type"),
    )
