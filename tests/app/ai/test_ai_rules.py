"""Qt-free parts of app.ai: question scope, image order and the note on images used, status text, settings."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.ai.engine_settings import engine_from_settings
from app.ai.question_scope import question_scope
from app.ai.status_text import format_status
from app.ai.study_images import StudyImage, describe_used, load_study_images, order_for_engine
from app.settings import Settings


@pytest.mark.parametrize("question", ["Is there a pleural effusion?", "Is the heart enlarged?",
                                      "Where is the opacity?", "Is the image normal?", "Is there a tube in place?"])
def test_questions_about_the_image_are_in_scope(question: str) -> None:
    assert question_scope(question).in_scope


@pytest.mark.parametrize("question", ["What is the patient's name?", "How old is the patient?",
                                      "What will the weather be tomorrow?", "What is 2+2?", "   ",
                                      "Should we treat the pneumonia with antibiotics?"])
def test_questions_an_image_cannot_answer_are_out_of_scope(question: str) -> None:
    scope = question_scope(question)
    assert not scope.in_scope and scope.reason


def _im(view: str, modality: str = "DX", uid: str = "") -> StudyImage:
    return StudyImage(np.zeros((8, 8)), uid or view, modality, view, view)


def test_frontal_view_goes_first_and_non_projection_images_are_dropped() -> None:
    ordered = order_for_engine([_im("LL"), _im("AP"), _im("PA"), _im("", "CT", "ct")])
    assert [im.view_position for im in ordered] == ["PA", "AP", "LL"]
    assert order_for_engine([_im("", "CT", "ct")])[0].sop_instance_uid == "ct"  # nothing else to read


def test_note_on_images_used() -> None:
    images = order_for_engine([_im("LL"), _im("PA")])
    assert describe_used(images, [0, 1]) == "Used all 2 images: PA, LL"
    assert describe_used(images, [0]) == "Used the frontal view (PA); this engine reads one image"
    assert describe_used(images[:1], [0]) == "Used the only image: PA"
    assert describe_used(images, []) == "No image was used."


def _write_dicom(path, view: str, photometric: str = "MONOCHROME2") -> str:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality, ds.ViewPosition = meta.MediaStorageSOPClassUID, uid, "DX", view
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 4, 5, 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(20, dtype=np.uint16).reshape(4, 5).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return uid


def test_load_study_images_reads_dicom_and_skips_other_files(tmp_path) -> None:
    pa = _write_dicom(tmp_path / "pa.dcm", "PA")
    _write_dicom(tmp_path / "ll.dcm", "LL", "MONOCHROME1")
    (tmp_path / "notes.txt").write_text("not dicom")
    images = load_study_images(sorted(tmp_path.iterdir()))
    assert [im.view_position for im in images] == ["LL", "PA"]
    assert images[1].sop_instance_uid == pa and images[1].pixels[0, 0] == 0
    assert images[0].pixels[0, 0] == 19  # MONOCHROME1 inverted so bright means dense, as the engine saw in training
    assert pydicom.dcmread(tmp_path / "pa.dcm").Modality == "DX"


def test_status_line() -> None:
    assert "idle" in format_status({"state": "stopped", "name": "hf-vlm"})
    assert "stopped - boom" in format_status({"state": "stopped", "name": "x", "error": "boom"})
    assert format_status({"state": "error", "name": "x", "error": "no dir"}) == "AI engine 'x': no dir"
    line = format_status({"state": "ready", "name": "diffusion", "device": "cuda", "model": "/w/medim-small",
                          "memory": {"rss_mb": 2048, "device_allocated_mb": 300, "device_total_mb": 80000}})
    assert line == "AI engine 'diffusion' | cuda | medim-small | RAM 2.0 GiB | GPU 300/80000 MiB | ready"


def test_engine_choice_comes_from_settings(tmp_path) -> None:
    s = Settings(tmp_path / "settings.json")
    s.set("similar_cases_dir", str(tmp_path / "cases"))
    assert engine_from_settings(s) == ("diffusion", {"device": "auto", "cases_dir": str(tmp_path / "cases"),
                                                     "backend": "onnx-int8"})
    s.set("engine_backend", "torch")
    assert engine_from_settings(s)[1]["backend"] == "torch"
    s.set("engine", "hf-vlm")
    s.set("engine_model_path", "/models/vlm")
    s.set("engine_options", {"max_new_tokens": 64})
    s.set("engine_threads", 2)
    assert engine_from_settings(s) == ("hf-vlm", {"device": "auto", "path": "/models/vlm", "threads": 2,
                                                  "max_new_tokens": 64})
    s.set("engine_options", "bad")
    with pytest.raises(ValueError, match="JSON object"):
        engine_from_settings(s)
