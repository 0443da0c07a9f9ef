"""Helpers that run real DICOM peers (Orthanc, DCMTK, dicom3tools) in tests."""

from .dcmtk import (
    STORESCU_LOG_CONFIG,
    DciodvfyResult,
    EchoRun,
    FileStatus,
    StoreRun,
    StorescuTimeoutError,
    dciodvfy,
    echoscu,
    parse_storescu_log,
    start_storescu,
    store_run_from_log,
    storescu,
    storescu_command,
)
from .net import LOOPBACK, free_port, wait_for_port
from .orthanc import DICOMWEB_PLUGIN, ORTHANC_BINARY, OrthancError, OrthancServer
from .tools import (
    MissingBinaryError,
    find_binary,
    on_ci,
    peak_rss_bytes,
    require_binary,
    require_path,
)

__all__ = [
    "DICOMWEB_PLUGIN",
    "LOOPBACK",
    "ORTHANC_BINARY",
    "STORESCU_LOG_CONFIG",
    "DciodvfyResult",
    "EchoRun",
    "FileStatus",
    "MissingBinaryError",
    "OrthancError",
    "OrthancServer",
    "StoreRun",
    "StorescuTimeoutError",
    "dciodvfy",
    "echoscu",
    "find_binary",
    "free_port",
    "on_ci",
    "parse_storescu_log",
    "peak_rss_bytes",
    "require_binary",
    "require_path",
    "start_storescu",
    "store_run_from_log",
    "storescu",
    "storescu_command",
    "wait_for_port",
]
