"""``soi serve`` as a child process of the demo: a config file, a log, a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from soi.demo.errors import DemoError

__all__ = ["READY_LINE", "ServeProcess", "write_toml"]

#: What ``soi serve`` prints once its DIMSE listener and HTTP API accept connections.
READY_LINE = "Ready."

TomlValue = str | int | float | bool | list[str]


def _toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_toml(
    path: Path, settings: dict[str, TomlValue], tables: dict[str, list[dict[str, TomlValue]]]
) -> None:
    """Write a settings file: top-level keys, then arrays of tables (``[[destinations]]``)."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in settings.items()]
    for name, rows in tables.items():
        for row in rows:
            lines += ["", f"[[{name}]]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in row.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class ServeProcess:
    """``python -m soi serve --config CONFIG``, its output in ``log_path``.

    Parameters
    ----------
    config:
        The settings file.
    log_path:
        Where the process's output goes.
    startup_timeout:
        Seconds to wait for :data:`READY_LINE`.
    """

    def __init__(self, config: Path, log_path: Path, *, startup_timeout: float = 120.0) -> None:
        self.config = config
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start and wait until ready.

        Raises
        ------
        DemoError
            The process exited or did not get ready in time (with the end of its log).
        """
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "soi", "serve", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while READY_LINE not in self.log_text():
            code = self._process.poll()
            if code is not None:
                raise DemoError(f"soi serve exited with status {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise DemoError(
                    f"soi serve was not ready after {self.startup_timeout:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)
        return self

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status (``None`` if never run)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_text(self) -> str:
        """Everything the process printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])
