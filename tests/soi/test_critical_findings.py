"""The ``critical_findings`` setting reaches the job workers that store results."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from soi.runtime import Runtime
from soi.settings import load_settings
from store import DEFAULT_CRITICAL_LABELS, sqlite_url


class TestCriticalFindings:
    def test_the_default_is_the_stores(self, tmp_path: Path) -> None:
        assert load_settings(data_dir=tmp_path).critical_findings == list(DEFAULT_CRITICAL_LABELS)

    @pytest.mark.parametrize("label", ["", "x" * 65])
    def test_a_bad_label_is_refused(self, tmp_path: Path, label: str) -> None:
        with pytest.raises(ValidationError, match="critical_findings"):
            load_settings(data_dir=tmp_path, critical_findings=["pneumothorax", label])

    def test_the_workers_get_the_configured_labels(self, tmp_path: Path) -> None:
        settings = load_settings(
            data_dir=tmp_path / "data",
            database_url=sqlite_url(tmp_path / "db" / "soi.db"),
            critical_findings=["pneumothorax", "effusion"],
            workers=1,
        )
        runtime = Runtime.build(settings, with_listener=False, with_workers=True)
        try:
            assert runtime.workers
            assert {w.critical_labels for w in runtime.workers} == {
                frozenset({"pneumothorax", "effusion"})
            }
        finally:
            runtime.close()
