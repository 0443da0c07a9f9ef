"""Locating the external programs the protocol-level tests drive.

The virtual environment ships Python scripts named ``storescu``, ``echoscu``
and ``storescp`` (installed by pynetdicom) which shadow the DCMTK programs of
the same names on ``PATH``.  :func:`find_binary` therefore skips the
interpreter's own ``bin`` folders and also looks in the system folders where
Debian installs DCMTK, dicom3tools and Orthanc (``/usr/sbin`` is often missing
from an unprivileged user's ``PATH``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

__all__ = [
    "SYSTEM_BIN_DIRS",
    "MissingBinaryError",
    "find_binary",
    "on_ci",
    "peak_rss_bytes",
    "require_binary",
    "require_path",
]

#: Folders searched after ``PATH`` (in this order).
SYSTEM_BIN_DIRS: tuple[Path, ...] = (
    Path("/usr/local/bin"),
    Path("/usr/local/sbin"),
    Path("/usr/bin"),
    Path("/usr/sbin"),
    Path("/bin"),
    Path("/sbin"),
)


class MissingBinaryError(FileNotFoundError):
    """Raised by :func:`require_binary` outside pytest when a program is absent."""


def on_ci() -> bool:
    """Tell whether the process runs on a continuous-integration runner.

    Returns
    -------
    bool
        True when the ``CI`` environment variable is ``true``, ``1`` or ``yes``
        (case-insensitive), as set by GitHub Actions, GitLab CI and others.
    """
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _virtualenv_bin_dirs() -> set[Path]:
    """Return the ``bin`` folders of the running interpreter's environment."""
    dirs = {Path(sys.prefix) / "bin", Path(sys.executable).parent}
    return {d.resolve() for d in dirs if d.exists()}


def find_binary(name: str) -> Path | None:
    """Find an external program, ignoring the virtual environment's scripts.

    Parameters
    ----------
    name : str
        Program name (``"storescu"``) or an absolute path.

    Returns
    -------
    pathlib.Path or None
        The executable, or None when it cannot be found.
    """
    if os.sep in name:
        candidate = Path(name)
        return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None
    skipped = _virtualenv_bin_dirs()
    search: list[Path] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            search.append(Path(entry))
    search.extend(SYSTEM_BIN_DIRS)
    seen: set[Path] = set()
    for folder in search:
        try:
            resolved = folder.resolve()
        except OSError:
            continue
        if resolved in seen or resolved in skipped:
            continue
        seen.add(resolved)
        found = shutil.which(name, path=str(folder))
        if found is not None:
            return Path(found)
    return None


def _missing(message: str) -> NoReturn:
    """Skip (or fail on CI) the current test; raise outside pytest."""
    if "pytest" not in sys.modules:
        raise MissingBinaryError(message)
    import pytest

    if on_ci():
        pytest.fail(f"{message} (CI=true: missing tools are an error on CI)", pytrace=False)
    pytest.skip(message)


def require_binary(name: str) -> Path:
    """Return the path of a required external program.

    When the program is absent, the current test is skipped, except on CI
    (``CI=true``) where it fails, so that a broken runner image cannot turn
    the protocol tests into silent skips.  Outside pytest (benchmarks,
    scripts) :class:`MissingBinaryError` is raised instead.

    Parameters
    ----------
    name : str
        Program name or absolute path, e.g. ``"storescu"`` or
        ``"/usr/sbin/Orthanc"``.

    Returns
    -------
    pathlib.Path
        Path of the executable.

    Raises
    ------
    MissingBinaryError
        Outside pytest, when the program cannot be found.
    """
    found = find_binary(name)
    if found is None:
        searched = ", ".join(str(d) for d in SYSTEM_BIN_DIRS)
        _missing(f"required program {name!r} not found (searched PATH and {searched})")
    return found


def require_path(path: Path | str, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip the test (fail on CI).

    For required files that are not programs, such as Orthanc plugins.

    Parameters
    ----------
    path : pathlib.Path or str
        File or folder that must exist.
    what : str
        Description for the skip/failure message (e.g. ``"Orthanc DICOMweb plugin"``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    MissingBinaryError
        Outside pytest, when ``path`` does not exist.
    """
    candidate = Path(path)
    if not candidate.exists():
        _missing(f"{what} not found at {candidate}")
    return candidate


def peak_rss_bytes(pid: int) -> int | None:
    """Read a live process's peak resident set size (``VmHWM``).

    Parameters
    ----------
    pid : int
        Process id; the process must still be running (or be an unreaped
        zombie, in which case the value is gone and None is returned).

    Returns
    -------
    int or None
        Peak resident memory in bytes, or None when unavailable.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None
