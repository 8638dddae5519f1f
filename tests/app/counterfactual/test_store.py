"""Counterfactual images are stored as SYNTHETIC secondary captures referencing their source."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from app.counterfactual import (
    WARNING,
    CounterfactualInfo,
    acquired_instance_uids,
    build_secondary_capture,
    burn_in_warning,
    is_synthetic,
    store_counterfactuals,
    synthetic_series_uids,
)
from app.db.database import Database
from app.db.models import Instance, Series
from app.importer import ImportService

DEMO_NODULE = Path(__file__).resolve().parents[3] / "resources/demo/PT000002/ST000000/SE000000/IM000000"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open()
    yield database
    database.dispose()


@pytest.fixture
def source() -> pydicom.Dataset:
    return pydicom.dcmread(DEMO_NODULE)


def _info() -> CounterfactualInfo:
    return CounterfactualInfo("remove Lung Lesion", "The lungs are clear. No pulmonary nodule.", seed=3, model="tiny")


def test_burn_in_changes_only_the_bands_and_is_readable_as_text() -> None:
    img = np.full((128, 128), 128, np.uint8)
    out = burn_in_warning(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    changed = np.nonzero((out != img).any(axis=1))[0]
    assert changed.min() == 0 and changed.max() == 127  # top and bottom bands
    assert (out[40:88] == 128).all()  # the middle is untouched
    assert (out[:12] > 150).any() and (out[-12:] > 150).any()  # white text on the black bands
    with pytest.raises(ValueError, match="2D uint8"):
        burn_in_warning(np.zeros((10, 10), np.float32))


def test_secondary_capture_header_says_synthetic_and_references_source(source: pydicom.Dataset) -> None:
    img = source.pixel_array.astype(np.float32)
    img8 = (255 * (img - img.min()) / (np.ptp(img) or 1)).astype(np.uint8)
    ds = build_secondary_capture(source, img8, _info(), series_uid=pydicom.uid.generate_uid())
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.BurnedInAnnotation == "YES"
    assert ds.SeriesDescription.startswith("SYNTHETIC") and "NOT FOR DIAGNOSIS" in ds.SeriesDescription
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientID == source.PatientID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert WARNING in ds.DerivationDescription and WARNING in ds.ImageComments
    assert "source pixels plus the model's change" in ds.DerivationDescription
    assert is_synthetic(ds) and not is_synthetic(source)
    assert (ds.pixel_array[:4] != img8[:4]).any()  # the warning is in the pixels
    assert "finding head" not in ds.DerivationDescription
    steered = build_secondary_capture(source, img8, replace(_info(), head_guidance=5.0),
                                      series_uid=pydicom.uid.generate_uid())
    assert "steered by the finding head (5)" in steered.DerivationDescription


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
def test_secondary_capture_passes_dciodvfy(source: pydicom.Dataset, tmp_path: Path) -> None:
    ds = build_secondary_capture(source, np.zeros((64, 64), np.uint8) + 90, _info(),
                                 series_uid=pydicom.uid.generate_uid())
    path = tmp_path / "sc.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, errors


def test_store_puts_variants_in_a_separate_synthetic_series(db: Database, source: pydicom.Dataset) -> None:
    assert ImportService(db).import_dataset(source).ok
    imgs = [np.full((64, 64), v, np.uint8) for v in (60, 120)]
    stored = store_counterfactuals(db, source, imgs, [_info(), _info()])
    again = store_counterfactuals(db, source, imgs[:1], [_info()])
    assert len(stored.sop_instance_uids) == 2 and again.series_number == stored.series_number + 1
    with db.session() as s:
        series = {r.series_uid: r for r in s.scalars(select(Series))}
        n_inst = {uid: len(series[uid].instances) for uid in series}
        path = s.scalar(select(Instance.file_path).where(Instance.sop_instance_uid == stored.sop_instance_uids[0]))
    assert n_inst[stored.series_uid] == 2 and n_inst[source.SeriesInstanceUID] == 1
    assert series[stored.series_uid].modality == "OT"
    assert synthetic_series_uids(db, source.StudyInstanceUID) == {stored.series_uid, again.series_uid}
    assert acquired_instance_uids(db, source.StudyInstanceUID) == [source.SOPInstanceUID]
    on_disk = pydicom.dcmread(db.store_path(path))
    assert is_synthetic(on_disk) and on_disk.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_store_rejects_mismatched_inputs(db: Database, source: pydicom.Dataset) -> None:
    with pytest.raises(ValueError, match="no images"):
        store_counterfactuals(db, source, [], [])
    with pytest.raises(ValueError, match="one CounterfactualInfo per image"):
        store_counterfactuals(db, source, [np.zeros((64, 64), np.uint8)], [])
    bad = pydicom.Dataset()
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        build_secondary_capture(bad, np.zeros((64, 64), np.uint8), _info(), series_uid="1.2.3")
