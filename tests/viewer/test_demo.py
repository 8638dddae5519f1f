"""The bundled demo: valid DICOM (dciodvfy), readable by the viewer, and reproducible from its source."""

from __future__ import annotations

import filecmp
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from viewer.demo import build_demo, demo_dir, demo_studies, demo_study_paths
from viewer.imaging.render import render_frame
from viewer.io.image import load_image
from viewer.volume import load_volume


def test_demo_is_small_and_complete() -> None:
    root = demo_dir()
    assert (root / "DICOMDIR").exists() and (root / "README.md").exists()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 8e6
    studies = demo_studies()
    modalities = [s.series[0].modality for s in studies]
    assert modalities.count("DX") >= 2 and "CT" in modalities
    assert len(demo_study_paths()) == sum(len(se.paths) for s in studies for se in s.series)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_dciodvfy_reports_no_errors() -> None:
    files = [demo_dir() / "DICOMDIR", *demo_study_paths()]
    errors = []
    for path in files:
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        errors += [f"{path.relative_to(demo_dir())}: {line}" for line in text.splitlines() if line.startswith("Error")]
    assert errors == []


def test_radiographs_are_dx_for_presentation_with_provenance() -> None:
    dx = [s for s in demo_studies() if s.series[0].modality == "DX"]
    for study in dx:
        ds = pydicom.dcmread(study.series[0].paths[0])
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert str(ds.PatientName).startswith("DEMO^")
        assert ds.ViewPosition and ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"
        assert "NIH ChestX-ray14" in ds.DerivationDescription and "nihcc.app.box.com" in ds.ImageComments
        image = load_image(study.series[0].paths[0])
        assert image.spacing_source == "ImagerPixelSpacing"
        out = render_frame(image, 0, None)
        assert out.dtype == np.uint8 and out.std() > 20  # a real radiograph, not a flat image
    assert {pydicom.dcmread(s.series[0].paths[0]).BitsStored for s in dx} >= {8, 12}


def test_ct_phantom_loads_as_clean_volume() -> None:
    ct = next(s for s in demo_studies() if s.series[0].modality == "CT")
    vol = load_volume(ct.series[0].paths)
    assert vol.warnings == [] and vol.shape == (48, 128, 128)
    assert vol.spacing_zyx == (5.0, 2.5, 2.5)
    lung = vol.array[24, 62, 40]  # inside the right lung at mid-chest
    assert -1000 < lung < -700
    assert vol.array.max() > 500  # bone


def test_rebuild_is_byte_identical(tmp_path, cxr_root) -> None:
    build_demo(tmp_path, cxr_root)
    committed = demo_dir()
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert rebuilt == sorted(
        p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and p.name != "README.md"
    )
    for rel in rebuilt:
        assert filecmp.cmp(tmp_path / rel, committed / rel, shallow=False), rel


def test_build_without_source_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.jsonl"):
        build_demo(tmp_path / "out", tmp_path / "nowhere")
