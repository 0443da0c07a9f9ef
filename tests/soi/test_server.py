"""``soi serve`` serving the HTTP API over TLS: HTTPS, and Secure session cookies."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from soi.cli import app
from tests.support.auth import PASSWORD
from tests.support.net import LOOPBACK, free_port
from tests.support.soi_process import die_with_parent
from tests.support.tools import require_binary


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            str(require_binary("openssl")), "req", "-x509",
            "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class TestTls:
    def test_https_with_secure_cookies(self, tmp_path: Path) -> None:
        cert, key = _self_signed(tmp_path)
        data = tmp_path / "data"
        add = ["users", "add", "root", "--role", "admin", "--password-stdin"]
        added = CliRunner().invoke(app, [*add, "--data-dir", str(data)], input=f"{PASSWORD}\n")
        assert added.exit_code == 0, added.output
        dicom_port, http_port = free_port(), free_port()
        while http_port == dicom_port:
            http_port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SOI_")},
            "SOI_MIN_FREE_MB": "0",
            "SOI_WORKERS": "0",
            "SOI_DICOM_HOST": LOOPBACK,
            "SOI_HTTP_TLS_CERTFILE": str(cert),
            "SOI_HTTP_TLS_KEYFILE": str(key),
        }
        process = subprocess.Popen(
            [
                sys.executable, "-m", "soi.cli.main", "serve", "--data-dir", str(data),
                "--dicom-port", str(dicom_port), "--http-port", str(http_port),
            ],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            preexec_fn=die_with_parent,
        )  # fmt: skip
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith("Ready."):
                    break
            assert f"https://{LOOPBACK}:{http_port}" in "".join(lines), "".join(lines)

            trusted = ssl.create_default_context(cafile=str(cert))
            base = f"https://{LOOPBACK}:{http_port}"
            with httpx.Client(base_url=base, verify=trusted, trust_env=False) as client:
                assert client.get("/health").status_code == 200
                login = client.post("/auth/login", json={"username": "root", "password": PASSWORD})
                assert login.status_code == 200, login.text
                cookies = login.headers.get_list("set-cookie")
                assert len(cookies) == 2
                assert all("; secure" in cookie.lower() for cookie in cookies)
                assert client.get("/auth/me").json()["username"] == "root"
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{LOOPBACK}:{http_port}/health", timeout=5, trust_env=False)
            process.send_signal(signal.SIGTERM)
            rest, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, rest
