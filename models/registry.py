"""The versioned model registry: ``root/<name>/<version>/`` with manifest, artifacts, card.

Layout::

    root/
      cxr/
        ACTIVE                  # optional: the version `get("cxr")` returns
        1.9.0/
          manifest.json
          model.onnx
          MODEL_CARD.md
        1.10.0/
          ...

Without ``ACTIVE`` the newest version by semantic-version precedence is served
(``1.10.0`` is newer than ``1.9.0``). Registered versions are never overwritten.
"""

from __future__ import annotations

import builtins
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from models.errors import (
    ManifestError,
    UnknownModelError,
    UnknownVersionError,
    VersionExistsError,
)
from models.manifest import (
    FILE_NAME_PATTERN,
    MANIFEST_FILE,
    MODEL_CARD_FILE,
    NAME_PATTERN,
    Artifact,
    ModelManifest,
    parse_semver,
    sha256_file,
)

__all__ = ["ACTIVE_FILE", "ModelRegistry", "RegisteredModel"]

ACTIVE_FILE = "ACTIVE"
_STAGING_PREFIX = ".staging-"


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A model version found in the registry: its validated manifest and its directory."""

    manifest: ModelManifest
    directory: Path

    def artifact_path(self, file_name: str) -> Path:
        """Path of one listed artifact.

        Raises
        ------
        KeyError
            If ``file_name`` is not listed in the manifest's artifacts.
        """
        if file_name not in self.manifest.artifacts:
            raise KeyError(
                f"`file_name` {file_name!r} is not an artifact of {self.manifest.name} "
                f"{self.manifest.version} (artifacts: {sorted(self.manifest.artifacts)})"
            )
        return self.directory / file_name

    def runtime_path(self, runtime: str) -> Path:
        """Path of the artifact the given runtime (``onnx`` or ``torchscript``) loads.

        Raises
        ------
        KeyError
            If the manifest has no entry for ``runtime``.
        """
        for kind, entry in self.manifest.runtime.items():
            if kind == runtime:
                return self.artifact_path(entry.artifact)
        raise KeyError(
            f"`runtime` {runtime!r} is not offered by {self.manifest.name} "
            f"{self.manifest.version} (runtimes: {sorted(self.manifest.runtime)})"
        )

    @property
    def card_path(self) -> Path:
        """Path of the model card (``MODEL_CARD.md``)."""
        return self.directory / MODEL_CARD_FILE


class ModelRegistry:
    """Model versions kept on disk under ``root``.

    Parameters
    ----------
    root:
        The registry directory; created on the first :meth:`register`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def list(self) -> list[str]:
        """Names of the registered models, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and NAME_PATTERN.match(entry.name)
        )

    def versions(self, name: str) -> builtins.list[str]:
        """Registered versions of model ``name``, oldest first by semantic version.

        Raises
        ------
        UnknownModelError
            If no model ``name`` is registered.
        """
        model_dir = self._model_dir(name)
        found: builtins.list[str] = []
        for entry in model_dir.iterdir():
            if not entry.is_dir() or not (entry / MANIFEST_FILE).is_file():
                continue
            try:
                parse_semver(entry.name)
            except ValueError:
                continue
            found.append(entry.name)
        return sorted(found, key=lambda version: parse_semver(version).key())

    def active(self, name: str) -> str | None:
        """The version named by ``root/<name>/ACTIVE``, or ``None`` when there is none."""
        pointer = self._model_dir(name) / ACTIVE_FILE
        if not pointer.is_file():
            return None
        return pointer.read_text(encoding="utf-8").strip()

    def get(self, name: str, version: str | None = None, *, verify: bool = True) -> RegisteredModel:
        """Load one model version; by default the active one, else the newest.

        Parameters
        ----------
        name:
            Model name, e.g. ``cxr``.
        version:
            Exact version; ``None`` for the ``ACTIVE`` version, or the newest without one.
        verify:
            Check each artifact's SHA-256 against the manifest.

        Raises
        ------
        UnknownModelError
            If no model ``name`` is registered.
        UnknownVersionError
            If the version (asked for, or named by ``ACTIVE``) is not registered.
        ManifestError
            If the manifest is invalid or does not describe this name and version.
        ArtifactChecksumError
            If ``verify`` and an artifact was changed after registration.
        """
        known = self.versions(name)
        if version is None:
            version = self.active(name)
            if version is None:
                if not known:
                    raise UnknownVersionError(name, "<newest>", known=known)
                version = known[-1]
        if version not in known:
            raise UnknownVersionError(name, version, known=known)
        directory = self.root / name / version
        manifest = ModelManifest.load(directory / MANIFEST_FILE, verify=verify)
        for field, found, expected in (
            ("name", manifest.name, name),
            ("version", manifest.version, version),
        ):
            if found != expected:
                raise ManifestError(
                    path=directory / MANIFEST_FILE,
                    field=field,
                    value=found,
                    reason=f"does not match the registry directory {expected!r}",
                )
        return RegisteredModel(manifest=manifest, directory=directory)

    def register(
        self, manifest: ModelManifest, files: Mapping[str, Path], card_markdown: str
    ) -> Path:
        """Add a new model version: copy its files, record their checksums, write the card.

        The version is assembled in a staging directory and renamed into place, so a
        reader never sees a half-written version.

        Parameters
        ----------
        manifest:
            The version's manifest; its ``artifacts`` are replaced by the copied files'.
        files:
            Artifact file name in the registry → source path.
        card_markdown:
            The model card text (``MODEL_CARD.md``).

        Returns
        -------
        Path
            The new version directory.

        Raises
        ------
        VersionExistsError
            If this name and version is already registered.
        ManifestError
            If a file name is not allowed, or the manifest refers to an artifact not given.
        FileNotFoundError
            If a source file does not exist.
        """
        if not files:
            raise ManifestError(
                path=None, field="artifacts", value={}, reason="`files` must name at least one"
            )
        for file_name, source in files.items():
            if not FILE_NAME_PATTERN.match(file_name) or file_name in (
                MANIFEST_FILE,
                MODEL_CARD_FILE,
            ):
                raise ManifestError(
                    path=None,
                    field=f"artifacts.{file_name}",
                    value=str(source),
                    reason="artifact names must be plain file names other than "
                    f"{MANIFEST_FILE} and {MODEL_CARD_FILE}",
                )
            if not Path(source).is_file():
                raise FileNotFoundError(f"artifact source {source} for {file_name!r} not found")
        model_dir = self.root / manifest.name
        final = model_dir / manifest.version
        if final.exists():
            raise VersionExistsError(manifest.name, manifest.version, path=final)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = model_dir / f"{_STAGING_PREFIX}{manifest.version}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            artifacts: dict[str, Artifact] = {}
            for file_name, source in files.items():
                target = staging / file_name
                shutil.copyfile(source, target)
                _fsync(target)
                artifacts[file_name] = Artifact(
                    sha256=sha256_file(target), size=target.stat().st_size
                )
            data = manifest.model_dump()
            data["artifacts"] = artifacts
            complete = ModelManifest.from_dict(data)
            (staging / MANIFEST_FILE).write_text(complete.to_json(), encoding="utf-8")
            _fsync(staging / MANIFEST_FILE)
            (staging / MODEL_CARD_FILE).write_text(card_markdown, encoding="utf-8")
            _fsync(staging / MODEL_CARD_FILE)
            if final.exists():
                raise VersionExistsError(manifest.name, manifest.version, path=final)
            try:
                staging.rename(final)
            except OSError:
                raise VersionExistsError(manifest.name, manifest.version, path=final) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging)
            if not any(model_dir.iterdir()):
                model_dir.rmdir()
        _fsync_dir(model_dir)
        return final

    def activate(self, name: str, version: str) -> None:
        """Make ``version`` the one :meth:`get` returns for ``name`` without a version.

        Raises
        ------
        UnknownModelError, UnknownVersionError
            If the model or version is not registered.
        """
        known = self.versions(name)
        if version not in known:
            raise UnknownVersionError(name, version, known=known)
        model_dir = self.root / name
        temporary = model_dir / f".{ACTIVE_FILE}.{uuid.uuid4().hex}"
        temporary.write_text(version + "\n", encoding="utf-8")
        _fsync(temporary)
        os.replace(temporary, model_dir / ACTIVE_FILE)
        _fsync_dir(model_dir)

    def _model_dir(self, name: str) -> Path:
        model_dir = self.root / name
        if not NAME_PATTERN.match(name) or not model_dir.is_dir():
            raise UnknownModelError(name, root=self.root, known=self.list())
        return model_dir


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
