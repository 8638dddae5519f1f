"""KOS and the AI results SR: dciodvfy clean, read back by dsrdump and highdicom."""

from __future__ import annotations

import highdicom as hd
import pydicom
import pytest

from app.dicom_objects.ai_results import AiFinding, AiProvenance, build_ai_results_sr, read_ai_results
from app.dicom_objects.common import ImageRef, header_of
from app.dicom_objects.key_objects import KeyObjectError, build_kos, key_image_uids
from tests.support.dicom_tools import dciodvfy_errors, dsrdump, save

WEIGHTS = "0123456789abcdef" * 4


def test_kos_for_report_lists_the_key_images(dx, ct, tmp_path):
    kos = build_kos(header_of(dx), [ImageRef.of(dx)], series_uid=hd.UID(), sop_uid=hd.UID(), observer="Dr Jane Doe")
    path = save(kos, tmp_path / "kos.dcm")
    assert not dciodvfy_errors(path)
    assert "For Report Attachment" in dsrdump(path)
    title, uids = key_image_uids(pydicom.dcmread(path))
    assert (title, uids) == ("For Report Attachment", [dx.SOPInstanceUID])
    with pytest.raises(KeyObjectError, match="another study"):
        build_kos(header_of(dx), [ImageRef.of(ct)], series_uid=hd.UID(), sop_uid=hd.UID(), observer="x")
    with pytest.raises(KeyObjectError, match="no key image"):
        build_kos(header_of(dx), [], series_uid=hd.UID(), sop_uid=hd.UID(), observer="x")


def test_images_are_image_items_and_documents_composite_whatever_the_identity(dx, tmp_path):
    """Viewers mark key images from IMAGE items: an image referenced through a bare study identity (no Rows) is one
    all the same, and a report SR referenced through an image's header (with Rows) stays COMPOSITE."""
    from app.dicom_objects.common import PATIENT_STUDY_KEYWORDS
    from viewer.presentation.key_images import KeySelection

    bare = pydicom.Dataset()
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in dx:
            setattr(bare, keyword, dx.get(keyword))
    sr = ImageRef(str(dx.StudyInstanceUID), hd.UID(), "1.2.840.10008.5.1.4.1.1.88.33", hd.UID())
    for identity in (bare, header_of(dx)):
        kos = build_kos(identity, [ImageRef.of(dx), sr], series_uid=hd.UID(), sop_uid=hd.UID(), observer="Dr Rad",
                        purpose="interest")
        path = save(kos, tmp_path / "kos.dcm")
        assert not dciodvfy_errors(path)
        ds = pydicom.dcmread(path)
        kinds = {str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID): item.ValueType
                 for item in ds.ContentSequence if "ReferencedSOPSequence" in item}
        assert kinds == {str(dx.SOPInstanceUID): "IMAGE", sr.sop_instance_uid: "COMPOSITE"}
        assert KeySelection.from_dataset(ds).images == {str(dx.SOPInstanceUID): str(dx.SeriesInstanceUID)}
        assert "Rows" not in ds and ds.ConceptNameCodeSequence[0].CodeValue == "113000"


def test_ai_results_sr_identifies_the_algorithm_and_each_finding(dx, tmp_path):
    findings = [AiFinding("Cardiomegaly", "present", 0.81), AiFinding("Edema", "absent", 0.07),
                AiFinding("Lung Lesion", "uncertain")]
    prov = AiProvenance("medim-small", "step2807", WEIGHTS, "7")
    sr = build_ai_results_sr(header_of(dx), findings, prov, [header_of(dx)], series_uid=hd.UID(), sop_uid=hd.UID())
    path = save(sr, tmp_path / "ai.dcm")
    assert not dciodvfy_errors(path)
    dump = dsrdump(path)
    assert 'Algorithm Name")="medim-small"' in dump and "weights_sha256=0123456789ab" in dump
    assert '(287272002,SCT,"Cardiomegaly")' in dump and '(52101004,SCT,"Present")' in dump
    assert "Person" not in dump  # the observer is the device, not a radiologist
    ds = pydicom.dcmread(path)
    assert ds.VerificationFlag == "UNVERIFIED" and ds.SeriesDescription.startswith("AI RESULTS")
    back, algorithm = read_ai_results(ds)
    assert back == findings
    assert algorithm == {"Algorithm Name": "medim-small", "Algorithm Version": "step2807",
                         "weights_sha256": WEIGHTS, "seed": "7"}


def test_ai_results_refuse_impossible_values(dx):
    prov = AiProvenance("medim-small", weights_sha256=WEIGHTS)
    with pytest.raises(ValueError, match="outside"):
        build_ai_results_sr(header_of(dx), [AiFinding("Edema", "present", 1.5)], prov, [header_of(dx)],
                            series_uid=hd.UID(), sop_uid=hd.UID())
    with pytest.raises(ValueError, match="state"):
        build_ai_results_sr(header_of(dx), [AiFinding("Edema", "likely")], prov, [header_of(dx)],
                            series_uid=hd.UID(), sop_uid=hd.UID())
