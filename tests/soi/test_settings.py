"""Settings: defaults, environment, TOML file, command-line precedence, unsafe values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from soi.settings import Settings, load_settings


class TestSettings:
    def test_embedded_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("SOI_DATA_DIR", "SOI_DATABASE_URL", "SOI_DICOM_PORT"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings()
        assert settings.data_dir == Path("soi-data")
        assert settings.dicom_port == 11112
        assert settings.http_port == 8000
        assert settings.ae_title == "SOI"
        assert settings.resolved_database_url.startswith("sqlite+pysqlite:///")
        assert settings.resolved_database_url.endswith("soi-data/soi.db")

    def test_precedence_cli_over_env_over_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = tmp_path / "soi.toml"
        config.write_text('ae_title = "FROM_FILE"\ndicom_port = 104\nhttp_port = 8080\n')
        monkeypatch.setenv("SOI_DICOM_PORT", "4242")
        settings = load_settings(config, http_port=9090)
        assert (settings.ae_title, settings.dicom_port, settings.http_port) == (
            "FROM_FILE",
            4242,
            9090,
        )

    def test_missing_config_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_settings(tmp_path / "absent.toml")

    def test_remote_http_without_tls_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="not served over TLS"):
            load_settings(http_host="0.0.0.0")
        behind_proxy = load_settings(http_host="0.0.0.0", http_allow_remote=True)
        assert behind_proxy.secure_cookies

    def test_remote_http_with_tls_is_allowed(self, tmp_path: Path) -> None:
        settings = load_settings(
            http_host="0.0.0.0",
            http_tls_certfile=tmp_path / "cert.pem",
            http_tls_keyfile=tmp_path / "key.pem",
        )
        assert settings.http_tls
        assert settings.secure_cookies

    def test_tls_needs_both_files(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="give both"):
            load_settings(http_tls_certfile=tmp_path / "cert.pem")

    def test_remote_http_refuses_cookies_that_are_not_secure(self) -> None:
        with pytest.raises(ValidationError, match="must be Secure"):
            load_settings(http_host="0.0.0.0", http_allow_remote=True, cookie_secure=False)

    @pytest.mark.parametrize(
        ("overrides", "secure"),
        [
            ({}, False),
            ({"cookie_secure": True}, True),
            ({"http_allow_remote": True}, True),
            ({"http_host": "10.0.0.2", "http_allow_remote": True}, True),
        ],
    )
    def test_cookies_are_secure_unless_plain_http_on_loopback(
        self, overrides: dict[str, object], secure: bool
    ) -> None:
        assert load_settings(**overrides).secure_cookies is secure

    @pytest.mark.parametrize("title", ["", "THIS_AE_TITLE_IS_TOO_LONG", "BACK\\SLASH"])
    def test_invalid_ae_title(self, title: str) -> None:
        with pytest.raises(ValidationError, match="AE title"):
            load_settings(ae_title=title)

    def test_unknown_setting_is_refused(self, tmp_path: Path) -> None:
        config = tmp_path / "soi.toml"
        config.write_text("dicom_prot = 104\n")
        with pytest.raises(ValidationError, match="dicom_prot"):
            load_settings(config)
