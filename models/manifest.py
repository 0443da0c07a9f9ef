"""Model manifests: what a registered model version is, shaped after MONAI Bundle metadata.

A manifest is the JSON file ``manifest.json`` kept next to a model version's artifacts.
It names the model's outputs (a ``targets`` list in output order, with an operating-point
threshold per target), describes its tensors (``network_data_format``), records the
SHA-256 and size of every artifact, and carries the facts a model card needs: training
data, evaluation metrics, intended use, seed and changelog.

References
----------
MONAI Bundle specification, ``metadata.json``
(``docs/source/mb_specification.rst``).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.errors import ArtifactChecksumError, ManifestError

__all__ = [
    "FILE_NAME_PATTERN",
    "MANIFEST_FILE",
    "MODEL_CARD_FILE",
    "NAME_PATTERN",
    "Artifact",
    "ModelManifest",
    "NetworkDataFormat",
    "RuntimeEntry",
    "SemVer",
    "Target",
    "TensorSpec",
    "TrainingData",
    "parse_semver",
    "sha256_file",
]

MANIFEST_FILE = "manifest.json"
MODEL_CARD_FILE = "MODEL_CARD.md"

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FILE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RESERVED_FILES = frozenset({MANIFEST_FILE, MODEL_CARD_FILE})

DType = Literal["float32", "float16", "float64", "int64", "int32", "uint8", "bool"]


class SemVer(NamedTuple):
    """A parsed semantic version; tuples order by SemVer 2.0.0 precedence via :meth:`key`."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...]

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """Sort key: a release sorts after its pre-releases; numeric identifiers numerically."""
        pre = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)


def parse_semver(text: str) -> SemVer:
    """Parse a semantic version string such as ``1.10.0`` or ``2.0.0-rc.1``.

    Raises
    ------
    ValueError
        If ``text`` is not a semantic version.
    """
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError(f"`version` must be a semantic version like 1.2.3, {text!r} is given")
    major, minor, patch, pre, _build = match.groups()
    return SemVer(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Target(_Frozen):
    """One model output, in output order, with its code and operating point."""

    key: str = Field(pattern=_KEY.pattern)
    display_en: str = Field(min_length=1)
    display_vi: str = Field(min_length=1)
    code_scheme: str = Field(min_length=1)
    code_value: str = Field(min_length=1)
    code_meaning: str = Field(min_length=1)
    threshold: float = Field(ge=0.0, le=1.0)
    operating_point_note: str = ""


class TensorSpec(_Frozen):
    """A named tensor: dtype and shape (an axis is a size, or a name for a dynamic axis)."""

    name: str = Field(min_length=1)
    dtype: DType
    shape: list[int | str] = Field(min_length=1)
    description: str = ""

    @field_validator("shape")
    @classmethod
    def _axes(cls, shape: list[int | str]) -> list[int | str]:
        for axis in shape:
            if isinstance(axis, int) and axis < 1:
                raise ValueError(f"axis sizes must be positive, {axis} is given")
            if isinstance(axis, str) and not axis:
                raise ValueError("a dynamic axis needs a name, '' is given")
        return shape


class NetworkDataFormat(_Frozen):
    """Inputs and outputs of the network; which output holds the target scores.

    ``logits`` names the output whose last axis follows ``targets``; ``features`` the
    optional [N, C, h, w] feature map and ``class_weights`` the optional artifact (``.npy``,
    shape [targets, C]) that turns it into class activation maps.
    """

    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    logits: str = "logits"
    features: str | None = None
    class_weights: str | None = None

    @model_validator(mode="after")
    def _references(self) -> NetworkDataFormat:
        for kind, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [spec.name for spec in specs]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind} names must be unique, repeated: {duplicates}")
        outputs = {spec.name: spec for spec in self.outputs}
        if self.logits not in outputs:
            raise ValueError(
                f"`logits` names output {self.logits!r}, which is not among {sorted(outputs)}"
            )
        if self.features is not None:
            spec = outputs.get(self.features)
            if spec is None:
                raise ValueError(
                    f"`features` names output {self.features!r}, "
                    f"which is not among {sorted(outputs)}"
                )
            if len(spec.shape) != 4:
                raise ValueError(
                    f"`features` output {self.features!r} must be [N, C, h, w], "
                    f"shape {spec.shape} is given"
                )
        if self.class_weights is not None and self.features is None:
            raise ValueError("`class_weights` needs a `features` output to apply to")
        return self


class Artifact(_Frozen):
    """Checksum and size of one artifact file."""

    sha256: str = Field(pattern=_SHA256.pattern)
    size: int = Field(ge=0)


class RuntimeEntry(_Frozen):
    """How one runtime loads the model: which artifact, and backend options."""

    artifact: str
    opset: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)


class TrainingData(_Frozen):
    """Where the training data came from."""

    description: str = Field(min_length=1)
    synthetic: bool
    sources: list[str] = Field(default_factory=list)


class ModelManifest(_Frozen):
    """The manifest of one model version (``manifest.json``).

    Build one with keyword arguments, :meth:`from_dict` or :meth:`load`; every
    constructor validates, and :meth:`load` reports the file, field and value at fault.
    """

    name: str = Field(pattern=NAME_PATTERN.pattern)
    version: str
    task: str = Field(min_length=1)
    changelog: dict[str, str]
    targets: list[Target] = Field(min_length=1)
    input: dict[str, Any]
    network_data_format: NetworkDataFormat
    artifacts: dict[str, Artifact] = Field(default_factory=dict)
    runtime: dict[Literal["onnx", "torchscript"], RuntimeEntry] = Field(min_length=1)
    training_data: TrainingData
    eval_metrics: dict[str, Any] = Field(default_factory=dict)
    intended_use: str = Field(min_length=1)
    seed: int
    created_at: datetime

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        parse_semver(version)
        return version

    @field_validator("changelog")
    @classmethod
    def _changelog(cls, changelog: dict[str, str]) -> dict[str, str]:
        for version in changelog:
            parse_semver(version)
        return changelog

    @field_validator("artifacts")
    @classmethod
    def _artifact_names(cls, artifacts: dict[str, Artifact]) -> dict[str, Artifact]:
        for file_name in artifacts:
            if not FILE_NAME_PATTERN.match(file_name) or file_name in _RESERVED_FILES:
                raise ValueError(
                    f"artifact names must be plain file names (letters, digits, '.', '_', '-') "
                    f"other than {sorted(_RESERVED_FILES)}, {file_name!r} is given"
                )
        return artifacts

    @field_validator("created_at")
    @classmethod
    def _aware(cls, created_at: datetime) -> datetime:
        if created_at.tzinfo is None:
            raise ValueError(f"`created_at` needs a time zone, {created_at.isoformat()} is given")
        return created_at

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        if self.version not in self.changelog:
            raise ValueError(f"`changelog` has no entry for version {self.version!r}")
        keys = [target.key for target in self.targets]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"target keys must be unique, repeated: {duplicates}")
        nd = self.network_data_format
        logits = next(spec for spec in nd.outputs if spec.name == nd.logits)
        last = logits.shape[-1]
        if isinstance(last, int) and last != len(self.targets):
            raise ValueError(
                f"output {logits.name!r} has {last} scores on its last axis "
                f"but {len(self.targets)} targets are listed"
            )
        if self.artifacts:
            wanted = [(f"runtime.{kind}.artifact", e.artifact) for kind, e in self.runtime.items()]
            if nd.class_weights is not None:
                wanted.append(("network_data_format.class_weights", nd.class_weights))
            for field, file_name in wanted:
                if file_name not in self.artifacts:
                    raise ValueError(
                        f"{field} names {file_name!r}, which is not among the artifacts "
                        f"{sorted(self.artifacts)}"
                    )
        return self

    @property
    def target_keys(self) -> list[str]:
        """Target keys in output order."""
        return [target.key for target in self.targets]

    @property
    def thresholds(self) -> dict[str, float]:
        """Operating-point threshold per target key."""
        return {target.key: target.threshold for target in self.targets}

    @classmethod
    def from_dict(cls, data: object, *, path: Path | None = None) -> ModelManifest:
        """Validate a decoded manifest document.

        Raises
        ------
        ManifestError
            Naming ``path``, the first invalid field, its value and what is wrong.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"])
            reason = first["msg"].removeprefix("Value error, ")
            raise ManifestError(
                path=path, field=field, value=first.get("input"), reason=reason
            ) from None

    @classmethod
    def load(cls, path: Path, *, verify: bool = True) -> ModelManifest:
        """Read ``manifest.json`` (or the directory holding it) and validate it.

        Parameters
        ----------
        path:
            The manifest file, or the model version directory that contains it.
        verify:
            Also check every listed artifact next to the manifest against its size and
            SHA-256.

        Raises
        ------
        ManifestError
            If the file is missing, is not JSON, is invalid or lists no artifacts.
        ArtifactChecksumError
            If ``verify`` and an artifact was changed.
        """
        path = path / MANIFEST_FILE if path.is_dir() else path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(path=path, field="", value=None, reason="file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(
                path=path, field="", value=None, reason=f"cannot be read: {exc}"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                path=path, field="", value=None, reason=f"not valid JSON: {exc}"
            ) from None
        manifest = cls.from_dict(data, path=path)
        if not manifest.artifacts:
            raise ManifestError(
                path=path,
                field="artifacts",
                value={},
                reason="a saved manifest lists its artifacts",
            )
        if verify:
            manifest.verify_artifacts(path.parent)
        return manifest

    def verify_artifacts(self, directory: Path) -> None:
        """Check every artifact in ``directory`` against its recorded size and SHA-256.

        Raises
        ------
        ManifestError
            If an artifact file is missing.
        ArtifactChecksumError
            If an artifact's content differs from what the manifest records.
        """
        for file_name, expected in self.artifacts.items():
            file_path = directory / file_name
            if not file_path.is_file():
                raise ManifestError(
                    path=directory / MANIFEST_FILE,
                    field=f"artifacts.{file_name}",
                    value=expected.sha256,
                    reason=f"artifact file {file_path} is missing",
                )
            actual = sha256_file(file_path)
            if actual != expected.sha256 or file_path.stat().st_size != expected.size:
                raise ArtifactChecksumError(path=file_path, expected=expected.sha256, actual=actual)

    def to_json(self) -> str:
        """The manifest as indented JSON text (UTF-8 friendly, Vietnamese kept as is)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path`` (a file, or a directory to hold ``manifest.json``)."""
        path = path / MANIFEST_FILE if path.is_dir() else path
        path.write_text(self.to_json(), encoding="utf-8")
