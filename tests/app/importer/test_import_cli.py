"""`radstation import` prints the report and exits non-zero when files failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from tests.support.synthetic_dicom import SyntheticStudy, write_series


def test_cli_import_prints_report(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_series(tmp_path / "in", SyntheticStudy(), 2)
    (tmp_path / "in" / "junk.txt").write_text("not dicom")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["import", str(tmp_path / "in"), "--db-url", url]) == 1
    out = capsys.readouterr().out
    assert "2 imported, 0 already present, 1 failed" in out
    assert "junk.txt" in out and "not a DICOM file" in out
    assert main(["import", str(tmp_path / "in" / "s001_00001.dcm"), "--db-url", url]) == 0
    assert "0 imported, 1 already present" in capsys.readouterr().out
