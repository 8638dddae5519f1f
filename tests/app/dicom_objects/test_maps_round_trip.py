"""Every derived image object RadStation writes goes through a real Orthanc unchanged and is still classified
as derived/synthetic when it comes back: SEG, Parametric Map (radiograph and CT), the explanation map's
derived Secondary Capture and the what-if image's SYNTHETIC Secondary Capture."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest

from app.counterfactual.secondary_capture import CounterfactualInfo, build_secondary_capture
from app.dicom_objects.classify import DERIVED, SYNTHETIC, kind_of
from explain.dicom_maps import MapSource, build_parametric_map, build_segmentation
from explain.export import export_map
from tests.support.dicom_tools import dciodvfy_errors

MADE_BY = MapSource("attention: The heart is enlarged.", "RadStation explain", "5e" * 8)


def _blob(ds) -> np.ndarray:
    yy, xx = np.mgrid[: ds.Rows, : ds.Columns]
    return np.exp(-((yy - ds.Rows / 2) ** 2 + (xx - ds.Columns / 3) ** 2) / (2 * (ds.Rows / 8) ** 2)).astype(np.float32)


@pytest.mark.orthanc
def test_derived_and_synthetic_objects_round_trip_through_orthanc(dx, ct, orthanc, tmp_path):
    objects = {
        "seg": (build_segmentation(dx, _blob(dx), MADE_BY), DERIVED),
        "pmap-dx": (build_parametric_map(dx, _blob(dx), MADE_BY), DERIVED),
        "pmap-ct": (build_parametric_map(ct, _blob(ct), MADE_BY), DERIVED),
        "map-sc": (export_map(dx, _blob(dx), kind="secondary-capture"), DERIVED),
        "what-if": (build_secondary_capture(dx, np.full((int(dx.Rows), int(dx.Columns)), 90, np.uint8),
                                            CounterfactualInfo("remove Cardiomegaly", "", 3, "medim-small"),
                                            series_uid=hd.UID()), SYNTHETIC),
    }
    orthanc.clear()
    try:
        for name, (ds, kind) in objects.items():
            path = tmp_path / f"{name}.dcm"
            ds.save_as(path, enforce_file_format=True)
            assert not dciodvfy_errors(path), name
            orthanc.upload(path)
            hits = orthanc.rest("POST", "/tools/lookup", str(ds.SOPInstanceUID))
            assert hits, f"{name} not stored"
            back = pydicom.dcmread(io.BytesIO(orthanc.rest("GET", f"/instances/{hits[0]['ID']}/file")))
            sent = pydicom.dcmread(path)
            assert back.SOPClassUID == sent.SOPClassUID, name
            assert np.array_equal(back.pixel_array, sent.pixel_array), name
            assert kind_of(back.SOPClassUID, back.Modality, back.get("SeriesDescription", ""), back) == kind, name
    finally:
        orthanc.clear()
