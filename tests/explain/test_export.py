"""Exported maps parse back, keep the link to their source, and pass dciodvfy without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from explain.export import export_map

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def _source(modality: str):
    files = sorted(p for p in DEMO.glob("PT*/ST*/SE*/IM*"))
    for f in files:
        ds = pydicom.dcmread(f)
        if ds.Modality == modality:
            return ds
    pytest.skip(f"no {modality} image in resources/demo")


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("Error")]


def _blob(shape) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-(((y - shape[0] * 0.3) ** 2 + (x - shape[1] * 0.7) ** 2) / (2 * (shape[0] / 8) ** 2))).astype(
        np.float32)


def test_radiograph_becomes_a_derived_secondary_capture(tmp_path):
    src = _source("DX")
    m = _blob((src.Rows, src.Columns))
    out = tmp_path / "sc.dcm"
    export_map(src, m, out, label="Small left pleural effusion", threshold=0.2)
    back = pydicom.dcmread(out)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert back.ImageType[0] == "DERIVED" and back.BurnedInAnnotation == "YES"
    assert "AI explanation" in back.SeriesDescription
    assert back.StudyInstanceUID == src.StudyInstanceUID and back.PatientID == src.PatientID
    assert back.SeriesInstanceUID != src.SeriesInstanceUID
    assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    px = back.pixel_array
    assert px.shape == (src.Rows, src.Columns, 3)
    hot = px[int(src.Rows * 0.3), int(src.Columns * 0.7)].astype(int)
    assert hot[0] - hot[2] > 40  # the map's peak is painted red (jet) where the map peaks
    assert _dciodvfy_errors(out) == []


def test_ct_slice_becomes_a_parametric_map_in_its_frame_of_reference(tmp_path):
    src = _source("CT")
    m = _blob((src.Rows, src.Columns))
    out = tmp_path / "pm.dcm"
    export_map(src, m, out, label="attention")
    back = pydicom.dcmread(out)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"
    assert back.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert back.StudyInstanceUID == src.StudyInstanceUID
    np.testing.assert_allclose(back.pixel_array.astype(np.float32), m, atol=1e-6)
    pos = back.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    assert [float(v) for v in pos] == [float(v) for v in src.ImagePositionPatient]
    assert _dciodvfy_errors(out) == []


def test_bad_maps_are_refused():
    src = _source("DX")
    with pytest.raises(ValueError, match="does not match"):
        export_map(src, np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        export_map(src, np.full((src.Rows, src.Columns), 2.0, np.float32))
    with pytest.raises(ValueError, match="Parametric Map needs"):
        export_map(src, np.zeros((src.Rows, src.Columns), np.float32), kind="parametric-map")
    with pytest.raises(ValueError, match="unknown export kind"):
        export_map(src, np.zeros((src.Rows, src.Columns), np.float32), kind="png")
