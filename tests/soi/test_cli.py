"""The ``soi`` command, through typer's CliRunner and as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soi.cli import app
from soi.runtime import Runtime
from store import head_revision, utcnow
from tests.support.data import make_cr, write_dataset
from tests.support.net import free_port

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


class TestDatabaseAndPeers:
    def test_db_upgrade_then_peers_and_facilities(self, tmp_path: Path, database_url: str) -> None:
        common = ["--data-dir", str(tmp_path), "--database-url", database_url]
        code, out = _invoke("db", "upgrade", *common)
        assert code == 0, out
        assert f"revision {head_revision()}" in out

        code, out = _invoke("peers", "list", *common)
        assert code == 0
        assert "only the loopback address" in out

        code, out = _invoke(
            "peers", "add", "pacs", "--ae", "PACS1", "--host", "10.0.0.5", "--facility", "BV-X",
            *common,
        )  # fmt: skip
        assert code == 1
        assert "no facility with code 'BV-X'" in out
        assert "soi facilities add" in out

        code, out = _invoke("facilities", "add", "BV-X", "--name", "Bệnh viện X", *common)
        assert code == 0, out
        code, out = _invoke(
            "peers", "add", "pacs", "--ae", "PACS1", "--host", "10.0.0.5", "--facility", "BV-X",
            *common,
        )  # fmt: skip
        assert code == 0, out
        code, out = _invoke(
            "peers", "add", "pacs", "--ae", "PACS1", "--host", "10.0.0.5", "--facility", "BV-X",
            *common,
        )  # fmt: skip
        assert code == 1
        assert "already registered" in out

        code, out = _invoke("peers", "list", *common)
        assert code == 0
        assert "PACS1" in out
        assert "10.0.0.5" in out
        assert "BV-X" in out

        code, out = _invoke("peers", "remove", "pacs", *common)
        assert code == 0
        code, out = _invoke("peers", "remove", "pacs", *common)
        assert code == 1
        assert "no peer named 'pacs'" in out

    def test_invalid_ae_title_is_refused(self, tmp_path: Path) -> None:
        code, out = _invoke(
            "peers", "add", "x", "--ae", "A" * 17, "--host", "h", "--facility", "LOCAL",
            "--data-dir", str(tmp_path),
        )  # fmt: skip
        assert code == 1
        assert "1 to 16" in out


class TestFacilities:
    def test_report_language_per_facility(self, tmp_path: Path, database_url: str) -> None:
        common = ["--data-dir", str(tmp_path), "--database-url", database_url]

        code, out = _invoke(
            "facilities", "add", "BV-EN", "--name", "English Hospital", "--language", "en",
            *common,
        )  # fmt: skip
        assert code == 0, out
        assert "Facility added: BV-EN (English Hospital), reports in en" in out
        code, out = _invoke("facilities", "add", "BV-VI", "--name", "Bệnh viện Việt", *common)
        assert code == 0, out
        assert "reports in" not in out

        code, out = _invoke("facilities", "list", *common)
        assert code == 0, out
        rows = _table_rows(out)
        assert rows["BV-EN"][-1] == "en"
        assert rows["BV-VI"][-1] == "default (vi)"
        assert rows["LOCAL"][-1] == "default (vi)"

        # The default shown is the setting's.
        result = runner.invoke(
            app, ["facilities", "list", *common], env={"SOI_REPORT_LANGUAGE": "en"}
        )
        assert result.exit_code == 0, result.output
        assert _table_rows(result.output)["BV-VI"][-1] == "default (en)"

        # Adding an existing code changes nothing and says how to change the language.
        code, out = _invoke(
            "facilities", "add", "BV-VI", "--name", "Bệnh viện Việt", "--language", "en",
            *common,
        )  # fmt: skip
        assert code == 1
        assert "facility 'BV-VI' already exists" in out
        assert "`soi facilities set-language BV-VI en`" in out
        code, out = _invoke("facilities", "add", "BV-VI", "--name", "X", *common)
        assert code == 1
        assert "facility 'BV-VI' already exists" in out
        assert "set-language" not in out

        code, out = _invoke("facilities", "set-language", "BV-VI", "en", *common)
        assert code == 0, out
        assert "Facility BV-VI: reports in en" in out
        code, out = _invoke("facilities", "set-language", "BV-EN", "default", *common)
        assert code == 0, out
        assert "report_language setting" in out

        code, out = _invoke("facilities", "list", *common)
        assert code == 0, out
        rows = _table_rows(out)
        assert rows["BV-VI"][-1] == "en"
        assert rows["BV-EN"][-1] == "default (vi)"

        code, out = _invoke("facilities", "set-language", "BV-NONE", "en", *common)
        assert code == 1
        assert "no facility with code 'BV-NONE'" in out
        assert "soi facilities add BV-NONE" in out

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["add", "BV-X", "--name", "X", "--language", "fr"], "vi or en, 'fr' is given"),
            (
                ["add", "BV-X", "--name", "X", "--language", "default"],
                "vi or en, 'default' is given",
            ),
            (["set-language", "LOCAL", "EN"], "vi, en or default, 'EN' is given"),
        ],
    )
    def test_invalid_language_is_refused(
        self, tmp_path: Path, args: list[str], expected: str
    ) -> None:
        common = ["--data-dir", str(tmp_path)]
        code, out = _invoke("facilities", *args, *common)
        assert code == 1
        assert f"the report language must be {expected}" in out
        code, out = _invoke("facilities", "list", *common)
        assert code == 0, out
        rows = _table_rows(out)
        assert set(rows) == {"LOCAL"}
        assert rows["LOCAL"][-1] == "default (vi)"


def _table_rows(output: str) -> dict[str, list[str]]:
    """The rows of a rich table printed by ``soi ... list``, by their first cell."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if len(cells) > 1 and cells[0]:
            rows[cells[0]] = cells
    return rows


class TestDicomCommands:
    def test_echo_send_and_studies(self, runtime: Runtime, tmp_path: Path) -> None:
        assert runtime.listener is not None
        target = f"SOI@127.0.0.1:{runtime.listener.port}"
        code, out = _invoke("echo", target)
        assert code == 0, out
        assert "success" in out

        folder = tmp_path / "study"
        for index in range(3):
            write_dataset(
                make_cr(study_instance_uid="1.2.3.4.5", seed=index), folder / f"{index}.dcm"
            )
        (folder / "notes.txt").write_text("not DICOM")
        code, out = _invoke("send", str(folder), "--to", target)
        assert code == 0, out
        assert "Sent 3 of 3 DICOM file(s)" in out
        assert "1 skipped (not DICOM)" in out

        settings = runtime.settings
        code, out = _invoke(
            "studies", "--data-dir", str(settings.data_dir),
            "--database-url", settings.resolved_database_url,
        )  # fmt: skip
        assert code == 0, out
        assert "1.2.3.4.5" in out
        assert "receiving" in out

        # One study, once its worker has run: the AI result, marked preliminary.
        runtime.assembler.run_once(now=utcnow() + timedelta(seconds=60))
        worker = Runtime.build(settings, with_listener=False, with_workers=True)
        try:
            assert worker.workers[0].run_once() is not None
        finally:
            worker.close()
        common = ["--data-dir", str(settings.data_dir), "--database-url",
                  settings.resolved_database_url]  # fmt: skip
        code, out = _invoke("studies", "1.2.3.4.5", *common)
        assert code == 0, out
        assert "Job cxr:" in out
        assert "AI result (PRELIMINARY, not a diagnosis until a clinician signs)" in out
        code, out = _invoke("studies", "1.2.3.4.5", "--json", *common)
        assert code == 0, out
        assert json.loads(out)["results"][0]["status"] == "preliminary"
        code, out = _invoke("studies", "9.9.9", *common)
        assert code == 1
        assert "no study '9.9.9' has been received" in out

    def test_echo_to_nobody_fails_clearly(self) -> None:
        code, out = _invoke("echo", f"SOI@127.0.0.1:{free_port()}")
        assert code == 1
        assert "cannot reach" in out

    @pytest.mark.parametrize("target", ["SOI", "SOI@host", "@host:1", "SOI@host:99999"])
    def test_malformed_target(self, target: str) -> None:
        code, out = _invoke("echo", target)
        assert code == 2
        assert "AE@host:port" in out or "port must be" in out


@pytest.mark.slow
class TestWorkerCommand:
    def test_refuses_to_start_with_nothing_to_do(self, tmp_path: Path) -> None:
        code, out = _invoke("worker", "--data-dir", str(tmp_path), "--workers", "0")
        assert code == 1
        assert "SOI_WORKERS is 0" in out
        empty = tmp_path / "no-models"
        empty.mkdir()
        result = runner.invoke(
            app, ["worker", "--data-dir", str(tmp_path)], env={"SOI_MODELS_DIR": str(empty)}
        )
        assert result.exit_code == 1
        assert "no model is registered" in result.output


class TestServe:
    def test_serve_prints_where_it_listens_and_stops_on_sigterm(self, tmp_path: Path) -> None:
        dicom_port, http_port = free_port(), free_port()
        env = {**os.environ, "SOI_MIN_FREE_MB": "0"}
        process = subprocess.Popen(
            [
                sys.executable, "-m", "soi.cli.main", "serve", "--data-dir", str(tmp_path / "d"),
                "--dicom-port", str(dicom_port), "--http-port", str(http_port),
                "--ae-title", "SOI_TEST",
            ],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith("Ready."):
                    break
            out = "".join(lines)
            assert f"AE SOI_TEST listening on 0.0.0.0:{dicom_port}" in out
            assert f"http://127.0.0.1:{http_port}" in out
            assert "soi users add NAME --role admin" in out  # nobody can sign in yet
            code, echo_out = _invoke("echo", f"SOI_TEST@127.0.0.1:{dicom_port}")
            assert code == 0, echo_out
            process.send_signal(signal.SIGTERM)
            rest, _ = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, rest
        assert "Stopped." in rest
        assert (tmp_path / "d" / "soi.db").exists()
