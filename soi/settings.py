"""Settings: ``SOI_…`` environment variables, an optional TOML file, command-line options."""

from __future__ import annotations

import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from store import DEFAULT_CRITICAL_LABELS

__all__ = [
    "SHIPPED_MODELS_DIR",
    "SHIPPED_SAMPLES_DIR",
    "DestinationSettings",
    "Settings",
    "load_settings",
]

#: The model registry shipped inside the ``models`` package.
SHIPPED_MODELS_DIR = Path(str(resources.files("models") / "registry"))
#: Synthetic sample studies shipped inside the ``soi`` package.
SHIPPED_SAMPLES_DIR = Path(str(resources.files("soi") / "samples"))

_MIB = 1024 * 1024

NationalKind = Literal["national_id", "health_insurance", "health_record"]
DicomDocument = Literal["sr", "heatmap", "pdf"]
_DICOM_DOCUMENTS: tuple[DicomDocument, ...] = ("sr", "heatmap", "pdf")


def _default_issuer_kinds() -> dict[str, NationalKind]:
    return {
        "CCCD": "national_id",
        "VN-CCCD": "national_id",
        "BHYT": "health_insurance",
        "VN-BHYT": "health_insurance",
        "HSSK": "health_record",
        "VN-HSSK": "health_record",
    }


class DestinationSettings(BaseModel):
    """One system results are delivered to: a PACS (DICOM), an EMR, PHR or commune
    station system (FHIR), or a legacy HIS (HL7 v2 over MLLP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Shown in `soi deliveries`.")
    kind: Literal["dicom", "fhir", "mllp"]
    facilities: list[str] = Field(
        default_factory=list, description="Facility codes whose results go here; empty: all."
    )
    documents: list[DicomDocument] = Field(
        default_factory=lambda: list(_DICOM_DOCUMENTS),
        description="DICOM documents sent (dicom destinations).",
    )
    ae_title: str | None = Field(None, description="The PACS's AE title (dicom).")
    host: str | None = Field(None, description="Host name or address (dicom, mllp).")
    port: int | None = Field(None, ge=1, le=65535)
    url: str | None = Field(None, description="FHIR base URL (fhir).")
    token: str | None = Field(None, description="Bearer token (fhir).")
    token_file: Path | None = Field(None, description="File holding the bearer token (fhir).")
    ca_file: Path | None = Field(None, description="CA bundle to verify the server (fhir, mllp).")
    client_cert: Path | None = Field(None, description="Client certificate for mTLS (fhir).")
    client_key: Path | None = Field(None, description="Client key for mTLS (fhir).")
    tls: bool = Field(False, description="MLLP over TLS (mllp).")
    receiving_application: str = Field("HIS", description="MSH-5 (mllp).")
    role: Literal["emr", "phr", "commune-station"] = Field(
        "emr",
        description="What a fhir destination is: the hospital's EMR or the personal health "
        "record (every result), or a commune health station's system (only results with "
        "a positive finding, the follow-up it is asked to make).",
    )
    commune_station: str | None = Field(
        None,
        description="Organization identifier `system|value` of the commune health station "
        "told of positive results (fhir).",
    )
    timeout_seconds: float = Field(30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _needs(self) -> DestinationSettings:
        needed = {"dicom": ("ae_title", "host", "port"), "fhir": ("url",), "mllp": ("host", "port")}
        missing = [key for key in needed[self.kind] if getattr(self, key) in (None, "")]
        if missing:
            raise ValueError(f"destination {self.name!r} ({self.kind}) needs {missing}")
        if self.role != "emr" and self.kind != "fhir":
            raise ValueError(f"destination {self.name!r}: role {self.role!r} is for fhir only")
        if self.role == "commune-station" and not self.commune_station:
            raise ValueError(
                f"destination {self.name!r} (commune-station) needs commune_station, the "
                "station's Organization identifier `system|value`"
            )
        return self


class Settings(BaseSettings):
    """Everything that differs between deployments, read once by the composition root.

    Precedence: command-line options, then ``SOI_…`` environment variables, then the
    TOML file named by ``SOI_CONFIG`` (or ``--config``), then the defaults below,
    which are those of the embedded default: one box, SQLite and files in ``data_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="SOI_", extra="forbid", validate_default=True)

    data_dir: Path = Field(Path("./soi-data"), description="Folder for the database and files.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default: SQLite (WAL) in data_dir. "
        "National mode: postgresql+psycopg://user@host/db",
    )
    ae_title: str = Field("SOI", description="Soi's own DICOM AE title.")
    dicom_host: str = Field("0.0.0.0", description="Address the DIMSE listener binds.")  # noqa: S104
    dicom_port: int = Field(11112, ge=0, le=65535)
    http_host: str = Field("127.0.0.1", description="Address the HTTP API binds.")
    http_port: int = Field(8000, ge=0, le=65535)
    http_allow_remote: bool = Field(
        False,
        description="Allow a non-loopback http_host without http_tls_certfile: a reverse "
        "proxy in front of Soi terminates TLS, so passwords, tokens and cookies never cross "
        "the network in plain text.",
    )
    http_tls_certfile: Path | None = Field(
        None, description="PEM certificate (chain) the HTTP API serves HTTPS with."
    )
    http_tls_keyfile: Path | None = Field(None, description="PEM private key of that certificate.")
    cookie_secure: bool | None = Field(
        None,
        description="Mark the session cookies Secure (sent over HTTPS only). Default: Secure "
        "unless the API is served over plain HTTP on a loopback address.",
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="A browser session ends this long after sign-in."
    )
    session_idle_minutes: float = Field(
        30.0, ge=1, le=24 * 60, description="A browser session unused this long ends."
    )
    login_max_failures: int = Field(
        5, ge=1, le=1000, description="Failed sign-ins of one username within the window."
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, le=100_000, description="Failed sign-ins from one address within the window."
    )
    login_window_seconds: float = Field(
        300.0, gt=0, le=86_400, description="How long a failed sign-in counts."
    )
    min_free_mb: int = Field(1024, ge=0, description="Refuse instances below this free space.")
    direct_io: bool = Field(
        True,
        description="Write instance files of 1 MiB or more around the page cache (O_DIRECT), "
        "where the file system takes it.",
    )
    quiet_period_seconds: float = Field(
        30.0, ge=0, description="A study is stable after this long without a new instance."
    )
    assembly_interval_seconds: float = Field(
        0.25, gt=0, description="How often studies that became stable are looked for."
    )
    routing_rules: Path | None = Field(None, description="Routing rules TOML (default: shipped).")
    accepted_sop_classes: list[str] | None = Field(
        None, description="Storage SOP classes accepted (UIDs or keywords); default: all."
    )
    max_pdu_kb: int = Field(4096, ge=16, le=65536, description="Maximum PDU size received.")
    max_associations: int = Field(
        16, ge=1, le=256, description="Associations at once, per receiving process."
    )
    receiving_processes: int = Field(
        0,
        ge=0,
        le=32,
        description="Processes of `soi serve` that receive DICOM and HTTP on the same ports "
        "(0: one per CPU core, at most 4).",
    )
    dicomweb_max_request_mb: int = Field(
        512,
        ge=1,
        le=65536,
        description="Largest DICOMweb STOW-RS request body accepted (413 above it).",
    )
    dicomweb_max_results: int = Field(
        1000, ge=1, le=100_000, description="Most results of one QIDO-RS response."
    )
    upload_max_mb: int = Field(
        2048,
        ge=1,
        le=1_048_576,
        description="Largest file or ZIP accepted by the resumable upload (/uploads, the "
        "upload page); 413 above it.",
    )
    upload_expire_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 90,
        description="An upload left unfinished this long is removed; a finished upload's "
        "receipt is kept this long.",
    )
    upload_zip_max_entries: int = Field(
        10_000, ge=1, le=1_000_000, description="Most entries of an uploaded ZIP."
    )
    upload_zip_max_unpacked_mb: int = Field(
        8192, ge=1, le=1_048_576, description="Most unpacked bytes of an uploaded ZIP."
    )
    upload_zip_max_ratio: float = Field(
        100.0,
        gt=1,
        le=100_000,
        description="Highest compression ratio of a ZIP entry (a ZIP bomb above it).",
    )
    issuer_kinds: dict[str, NationalKind] = Field(
        default_factory=_default_issuer_kinds,
        description="Issuer of Patient ID values that name national identifier systems.",
    )
    models_dir: Path = Field(
        SHIPPED_MODELS_DIR, description="Model registry folder (default: the shipped models)."
    )
    inference_backend: Literal["onnx", "torch"] = Field(
        "onnx",
        description="onnx: ONNX Runtime on the CPU (no PyTorch needed). torch: PyTorch "
        "(TorchScript, CUDA when present; needs the train extra), Grad-CAM heatmaps.",
    )
    inference_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Device of the torch backend."
    )
    inference_threads: int = Field(2, ge=1, le=256, description="Threads per model run.")
    inference_max_batch: int = Field(8, ge=1, le=256, description="Images per model run.")
    inference_batch_wait_ms: float = Field(
        5.0,
        ge=0,
        le=10_000,
        description="With several workers: how long an image waits for others to share "
        "a model run with.",
    )
    workers: int = Field(
        1, ge=0, le=64, description="Job worker threads in `soi serve` (0: none here)."
    )
    job_lease_seconds: float = Field(
        300.0, gt=0, description="A job held longer by a worker is taken back (worker died)."
    )
    job_max_attempts: int = Field(3, ge=1, le=100, description="Claims of a job before it fails.")
    worker_interval_seconds: float = Field(0.25, gt=0, description="Idle worker poll interval.")
    destinations: list[DestinationSettings] = Field(
        default_factory=list, description="Where results are delivered (see configuration)."
    )
    report_language: Literal["vi", "en"] = Field(
        "vi", description="Language of the reports of facilities that have chosen none."
    )
    critical_findings: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CRITICAL_LABELS),
        description="Finding labels whose positive finding puts a study first on the "
        "worklist (urgency critical).",
    )
    fhir_identifier_systems: dict[NationalKind, str] = Field(
        default_factory=dict,
        description="FHIR identifier systems replacing VN Core's defaults, by kind.",
    )
    delivery_workers: int = Field(
        1, ge=0, le=32, description="Outbox senders per destination in `soi serve`."
    )
    delivery_lease_seconds: float = Field(120.0, gt=0)
    delivery_retry_base_seconds: float = Field(5.0, gt=0)
    delivery_retry_cap_seconds: float = Field(1800.0, gt=0)
    delivery_max_attempts: int = Field(200, ge=1)
    delivery_interval_seconds: float = Field(
        0.25, gt=0, description="How often an idle sender looks for a due document."
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("critical_findings")
    @classmethod
    def _check_critical_findings(cls, value: list[str]) -> list[str]:
        for label in value:
            if not label or len(label) > 64:
                raise ValueError(
                    f"`critical_findings` labels must be 1 to 64 characters, {label!r} is given"
                )
        return value

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        text = value.strip()
        if not text or len(text) > 16 or "\\" in text or not text.isprintable():
            raise ValueError(f"an AE title has 1 to 16 printable characters, {value!r} is given")
        return text

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if (self.http_tls_certfile is None) != (self.http_tls_keyfile is None):
            raise ValueError("http_tls_certfile and http_tls_keyfile go together: give both")
        if not _is_loopback(self.http_host):
            if not self.http_tls and not self.http_allow_remote:
                raise ValueError(
                    f"http_host {self.http_host!r} is not a loopback address and the HTTP API "
                    "is not served over TLS: passwords, tokens and session cookies would cross "
                    "the network in plain text; set http_tls_certfile and http_tls_keyfile, or "
                    "put a TLS-terminating reverse proxy in front and set "
                    "SOI_HTTP_ALLOW_REMOTE=true, or keep http_host on 127.0.0.1"
                )
            if self.cookie_secure is False:
                raise ValueError(
                    f"http_host {self.http_host!r} is not a loopback address: session "
                    "cookies must be Secure there; remove cookie_secure = false"
                )
        return self

    @property
    def http_tls(self) -> bool:
        """Whether the HTTP API serves HTTPS itself."""
        return self.http_tls_certfile is not None and self.http_tls_keyfile is not None

    @property
    def secure_cookies(self) -> bool:
        """Whether the session cookies are marked Secure (see ``cookie_secure``)."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.http_tls or self.http_allow_remote or not _is_loopback(self.http_host)

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+pysqlite:///{(self.data_dir / 'soi.db').resolve()}"

    @property
    def instances_dir(self) -> Path:
        """Folder of instance files."""
        return self.data_dir / "instances"

    @property
    def uploads_dir(self) -> Path:
        """Folder of resumable uploads in progress and their receipts."""
        return self.data_dir / "uploads"

    @property
    def results_dir(self) -> Path:
        """Folder of result files (heatmap arrays and overlays)."""
        return self.data_dir / "results"

    @property
    def receiving_process_count(self) -> int:
        """How many processes receive: ``receiving_processes``, or one per CPU core (1 to 4)."""
        if self.receiving_processes:
            return self.receiving_processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, min(cores or 1, 4))

    @property
    def min_free_bytes(self) -> int:
        """Free-space floor in bytes."""
        return self.min_free_mb * _MIB

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings, with ``overrides`` (given options) above everything else.

    Parameters
    ----------
    config_file:
        A TOML file whose keys are the setting names without the ``SOI_`` prefix.
    overrides:
        Values given on the command line; ``None`` means not given.

    Raises
    ------
    FileNotFoundError
        ``config_file`` does not exist.
    pydantic.ValidationError
        A value is not valid; the message names the setting.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    if config_file is None:
        return Settings(**given)
    if not config_file.is_file():
        raise FileNotFoundError(f"configuration file {config_file} does not exist")

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    return _FileSettings(**given)
