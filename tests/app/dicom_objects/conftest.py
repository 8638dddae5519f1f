"""Demo images (a DX radiograph and a CT slice from the bundled demo) as sources for derived objects."""

from __future__ import annotations

import pydicom
import pytest

from viewer.demo import demo_studies


def _first(modality: str):
    for study in demo_studies():
        for series in study.series:
            if series.modality == modality and series.paths:
                return series.paths[len(series.paths) // 2]
    pytest.skip(f"no {modality} image in the demo")


@pytest.fixture
def dx_path():
    return _first("DX")


@pytest.fixture
def ct_path():
    return _first("CT")


@pytest.fixture
def dx(dx_path):
    return pydicom.dcmread(dx_path)


@pytest.fixture
def ct(ct_path):
    return pydicom.dcmread(ct_path)
