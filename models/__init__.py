"""Soi's models: architectures, the versioned registry and shipped artifacts.

Depends on nothing else of Soi.
"""

from models.errors import (
    ArtifactChecksumError,
    ManifestError,
    ModelError,
    UnknownModelError,
    UnknownVersionError,
    VersionExistsError,
)
from models.manifest import (
    MANIFEST_FILE,
    MODEL_CARD_FILE,
    Artifact,
    ModelManifest,
    NetworkDataFormat,
    RuntimeEntry,
    SemVer,
    Target,
    TensorSpec,
    TrainingData,
    parse_semver,
    sha256_file,
)
from models.registry import ACTIVE_FILE, ModelRegistry, RegisteredModel

__all__ = [
    "ACTIVE_FILE",
    "MANIFEST_FILE",
    "MODEL_CARD_FILE",
    "Artifact",
    "ArtifactChecksumError",
    "ManifestError",
    "ModelError",
    "ModelManifest",
    "ModelRegistry",
    "NetworkDataFormat",
    "RegisteredModel",
    "RuntimeEntry",
    "SemVer",
    "Target",
    "TensorSpec",
    "TrainingData",
    "UnknownModelError",
    "UnknownVersionError",
    "VersionExistsError",
    "parse_semver",
    "sha256_file",
]
