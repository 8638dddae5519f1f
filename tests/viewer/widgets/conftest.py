"""Fixtures for the widget tests: tiny synthetic series and a study made of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.widget_samples import STUDY_UID, write_ct_series, write_us_multiframe
from viewer.io.refs import SeriesRef, StudyRef


@pytest.fixture
def ct_series(tmp_path: Path) -> SeriesRef:
    return write_ct_series(tmp_path / "ct")


@pytest.fixture
def us_series(tmp_path: Path) -> SeriesRef:
    return write_us_multiframe(tmp_path / "us")


@pytest.fixture
def study(tmp_path: Path) -> StudyRef:
    s1 = write_ct_series(tmp_path / "s1", n=4, number=1, desc="Scout-like")
    s2 = write_ct_series(tmp_path / "s2", n=6, number=2, desc="Axial 2mm")
    s3 = write_us_multiframe(tmp_path / "s3")
    return StudyRef(STUDY_UID, "Doe^Jane", "PID-4711", "20250102", "ACC99", "CT CHEST", (s1, s2, s3))
