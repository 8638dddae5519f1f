"""The input gate's header rules on real DICOM files (the demo radiographs, pydicom's CT/MR/US/colour test
files, RadStation's own synthetic secondary capture) and on headers an attacker or a PACS might send."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from engines.scope.header import check_header, header_of

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"


def _header(path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return header_of(pydicom.dcmread(str(path), stop_before_pixels=True))


@pytest.mark.parametrize("patient", ["PT000000", "PT000001", "PT000002"])
def test_demo_chest_radiographs_pass(patient) -> None:
    h = _header(next((DEMO / patient).rglob("IM*")))
    check = check_header(h)
    assert check.in_scope and not check.reasons
    assert h["Modality"] == "DX" and h["ViewPosition"] == "PA" and h["BodyPartExamined"] == "CHEST"


@pytest.mark.parametrize(("name", "words"), [
    ("CT_small.dcm", "Modality CT"), ("MR_small.dcm", "Modality MR"),
    ("examples_rgb_color.dcm", "Modality US"), ("JPGExtended.dcm", "nuclear medicine"),
    ("SC_rgb_jpeg.dcm", "colour image"), ("examples_overlay.dcm", "Body Part Examined ABDOMEN"),
])
def test_other_modalities_body_parts_and_colour_are_ruled_out(name, words) -> None:
    check = check_header(_header(get_testdata_file(name)))
    assert not check.in_scope and any(words in r for r in check.reasons), check.reasons


def test_demo_ct_phantom_is_ruled_out() -> None:
    ct = next(p for p in sorted(DEMO.rglob("IM*")) if _header(p).get("Modality") == "CT")
    assert "Modality CT (CT)" in check_header(_header(ct)).reasons[0]


@pytest.mark.parametrize(("changes", "words"), [
    ({"ViewPosition": "LL"}, "lateral view"), ({"ViewPosition": "RAO"}, "oblique view"),
    ({"BodyPartExamined": "KNEE"}, "KNEE"), ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "LOCALIZER"),
    ({"NumberOfFrames": 30}, "30 frames"), ({"Modality": "MG"}, "mammography"),
    ({"ImageType": ["DERIVED", "SECONDARY"], "BurnedInAnnotation": "YES",
      "SeriesDescription": "SYNTHETIC what-if (remove effusion) - NOT FOR DIAGNOSIS"}, "synthetic"),
    ({"ImageType": ["DERIVED", "SECONDARY", "AI_EXPLANATION"]}, "synthetic"),
    ({"PhotometricInterpretation": "PALETTE COLOR"}, "colour image"),
])
def test_each_rule_names_its_reason(changes, words) -> None:
    h = {"Modality": "DX", "BodyPartExamined": "CHEST", "ViewPosition": "PA", "ImageType": ["ORIGINAL", "PRIMARY"],
         "PhotometricInterpretation": "MONOCHROME2", **changes}
    check = check_header(h)
    assert not check.in_scope and any(words in r for r in check.reasons), check.reasons


def test_missing_or_undecided_attributes_are_noted_not_ruled_out() -> None:
    assert check_header(None).in_scope and "no DICOM header" in check_header(None).notes[0]
    check = check_header({"Modality": "OT", "PhotometricInterpretation": "MONOCHROME1"})
    assert check.in_scope and any("OT" in n for n in check.notes) and any("View Position" in n for n in check.notes)
    assert check_header({"Modality": "CR", "BodyPartExamined": "PORT CHEST", "ViewPosition": "AP"}).in_scope


def test_synthetic_secondary_capture_written_by_radstation_is_ruled_out() -> None:
    import numpy as np

    from app.counterfactual.secondary_capture import CounterfactualInfo, build_secondary_capture

    source = pydicom.dcmread(str(next((DEMO / "PT000000").rglob("IM*"))))
    info = CounterfactualInfo(edit="remove Pleural Effusion", edited_report="No effusion.", seed=1)
    sc = build_secondary_capture(source, np.zeros((256, 256), np.uint8), info, series_uid=pydicom.uid.generate_uid())
    check = check_header(header_of(sc))
    assert not check.in_scope and any("synthetic" in r for r in check.reasons), check.reasons
