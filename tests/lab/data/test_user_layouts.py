"""Readers for the layouts users bring, on small fixtures built from slices of the real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from lab.data import EmptyDatasetError, load_cxr
from lab.data.__main__ import main as inspect_main
from lab.data.dicom_folder import load_dicom_folder
from lab.data.layouts import detect_layout, load_dataset
from lab.data.mimic import load_mimic
from lab.data.openi import load_openi, parse_openi_xml
from lab.data.report_text import parse_report_sections
from lab.data.splits import patient_split


def _real_pngs(cxr_root: Path, n: int) -> list[Path]:
    ds = load_cxr(cxr_root, splits=("val",), sources=("nih_talo",), limit=n)
    return [s.image_path for s in ds]


def _write_dicom(path: Path, pixels: np.ndarray, patient: str, study_uid: str, view: str,
                 monochrome1: bool = False) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study_uid, generate_uid()
    ds.Modality, ds.ViewPosition = "DX", view
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    stored = (4095 - pixels) if monochrome1 else pixels
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_dicom_folder(cxr_root: Path, tmp_path: Path) -> None:
    pngs = _real_pngs(cxr_root, 2)
    px = [np.asarray(Image.open(p), dtype=np.uint16) * 16 for p in pngs]
    root = tmp_path / "studies"
    _write_dicom(root / "s1" / "series1" / "img1.dcm", px[0], "P1", "1.2.3.1", "PA")
    _write_dicom(root / "s1" / "series2" / "img2", px[0], "P1", "1.2.3.1", "LL", monochrome1=True)
    (root / "s1" / "report.txt").write_text("FINDINGS: Mild cardiomegaly. No effusion.\nIMPRESSION: Cardiomegaly.")
    _write_dicom(root / "s2" / "a.dcm", px[1], "P2", "1.2.3.2", "AP")
    (root / "s2" / "notes.txt").write_text("Lungs are clear. No pneumothorax.")
    (root / "s2" / "broken.dcm").write_bytes(b"not dicom at all")
    _write_dicom(root / "s3" / "x.dcm", px[1], "P3", "1.2.3.3", "PA")  # no report
    with open(root / "splits.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["patient_id", "split"], ["P1", "train"], ["P2", "validate"]])
    ds = load_dicom_folder(root)
    assert len(ds) == 3
    assert detect_layout(root) == "dicom" and len(load_dataset(root)) == 3
    by_view = {s.view: s for s in ds}
    assert set(by_view) == {"frontal", "lateral"}
    s1 = next(s for s in ds if s.patient_id == "P1" and s.view == "frontal")
    assert s1.split == "train" and s1.findings["Cardiomegaly"] == 1 and s1.report_is_real
    assert s1.report_text == "FINDINGS: Mild cardiomegaly. No effusion. IMPRESSION: Cardiomegaly."
    s2 = next(s for s in ds if s.patient_id == "P2")
    assert s2.split == "val" and s2.report_impression == "" and s2.findings.get("No Finding") == 1
    reasons = {Path(p).name: r for p, r in ds.problems}
    assert "broken.dcm" in reasons and "s3" in reasons and len(ds.problems) == 2
    # Decoded through the viewer: the MONOCHROME1 copy reads the same as the MONOCHROME2 one.
    a = s1.load_image()
    b = next(s for s in ds if s.view == "lateral").load_image()
    assert a.shape == (256, 256) and a.dtype == np.float32
    assert np.abs(a - b).mean() < 0.01
    assert np.corrcoef(a.ravel(), np.asarray(Image.open(pngs[0]), dtype=np.float32).ravel())[0, 1] > 0.99


def _openi_xml(uid: str, findings: str, impression: str, mesh: list[str], images: list[str]) -> str:
    parts = "".join(f'<parentImage id="{i}"><caption>Xray Chest PA and Lateral</caption></parentImage>' for i in images)
    meshes = "".join(f"<major>{escape(m)}</major>" for m in mesh)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="{uid}"/><MedlineCitation><Article><Abstract>'
        f'<AbstractText Label="COMPARISON">None.</AbstractText>'
        f'<AbstractText Label="FINDINGS">{escape(findings)}</AbstractText>'
        f'<AbstractText Label="IMPRESSION">{escape(impression)}</AbstractText>'
        f"</Abstract></Article></MedlineCitation><MeSH>{meshes}</MeSH>{parts}</eCitation>"
    )


def test_openi_layout_from_real_iu_reports(cxr_root: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in open(cxr_root / "text_only" / "iu_xray_reports.jsonl")][:6]
    pngs = _real_pngs(cxr_root, 1)
    xml_dir = tmp_path / "ecgen-radiology"
    xml_dir.mkdir()
    img_dir = tmp_path / "NLMCXR_png"
    img_dir.mkdir()
    for n, r in enumerate(rows):
        (xml_dir / f"{n + 1}.xml").write_text(_openi_xml(r["uid"], r["findings"], r["impression"], r["mesh_major"], r["image_ids"]))
        for k, image_id in enumerate(r["image_ids"]):
            if not (n == 0 and k == 1):  # one image left out on purpose
                (img_dir / f"{image_id}.png").write_bytes(pngs[0].read_bytes())
    (xml_dir / "bad.xml").write_text("<eCitation><unclosed>")
    ds = load_openi(tmp_path)
    assert detect_layout(tmp_path) == "openi"
    expected = sum(len(r["image_ids"]) for r in rows if r["findings"] or r["impression"]) - 1
    assert len(ds) == expected
    assert {Path(p).name for p, _ in ds.problems} >= {"bad.xml", f"{rows[0]['image_ids'][1]}.png"}
    first = ds.get(rows[0]["image_ids"][0])
    assert first is not None and first.report_findings == rows[0]["findings"] and first.report_is_real
    assert first.findings.get("No Finding") == 1  # CXR1 is the normal study
    assert first.split == patient_split(f"iu:{rows[0]['uid']}")
    assert first.load_image().shape == (256, 256)
    rep = parse_openi_xml(xml_dir / "2.xml")
    assert rep.uid == rows[1]["uid"] and rep.mesh_major == rows[1]["mesh_major"]
    for uid in {s.patient_id for s in ds}:  # a report's images share one split
        assert len({s.split for s in ds if s.patient_id == uid}) == 1


def _mimic_fixture(cxr_root: Path, root: Path) -> None:
    pngs = _real_pngs(cxr_root, 3)
    entries = [("d1", "50000001", "10000001", "train"), ("d2", "50000001", "10000001", "train"),
               ("d3", "50000002", "10000002", "validate"), ("d4", "50000003", "10000003", "test"),
               ("d5", "50000004", "10000004", "train")]
    for k, (dicom_id, study, subject, _) in enumerate(entries[:4]):
        d = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        d.mkdir(parents=True, exist_ok=True)
        Image.open(pngs[k % 3]).convert("L").save(d / f"{dicom_id}.jpg", quality=95)
        (d.parent / f"s{study}.txt").write_text(
            "                FINAL REPORT\n EXAMINATION: CHEST (PA AND LAT)\n INDICATION: cough\n\n"
            " FINDINGS:\n There is a small left pleural effusion. No pneumothorax.\n\n IMPRESSION:\n Small left effusion.\n"
        )
    with open(root / "mimic-cxr-2.0.0-split.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dicom_id", "study_id", "subject_id", "split"])
        w.writerows(entries)
    with open(root / "mimic-cxr-2.0.0-metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dicom_id", "subject_id", "study_id", "ViewPosition"])
        w.writerows([["d1", "10000001", "50000001", "PA"], ["d2", "10000001", "50000001", "LATERAL"]])
    with open(root / "mimic-cxr-2.0.0-chexpert.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject_id", "study_id", "Pleural Effusion", "Pneumothorax"])
        w.writerow(["10000002", "50000002", "-1.0", ""])


def test_mimic_layout(cxr_root: Path, tmp_path: Path) -> None:
    _mimic_fixture(cxr_root, tmp_path)
    ds = load_mimic(tmp_path, splits=("train", "val"))
    assert [s.image_id for s in ds] == ["d1", "d2", "d3"]
    assert detect_layout(tmp_path) == "mimic"
    d1, d2, d3 = ds
    assert (d1.view, d2.view, d3.view) == ("frontal", "lateral", "unknown")
    assert d3.split == "val"
    assert d1.findings["Pleural Effusion"] == 1 and d1.findings["Pneumothorax"] == 0  # from our labeler
    assert d3.findings == {"Pleural Effusion": -1}  # from the CheXpert table
    assert d1.report_findings == "There is a small left pleural effusion. No pneumothorax."
    assert d1.report_impression == "Small left effusion."
    assert [Path(p).name for p, _ in ds.problems] == ["d5.jpg"]
    assert d1.load_image().shape == (256, 256)


def test_mimic_split_leak_and_missing_table(cxr_root: Path, tmp_path: Path) -> None:
    from lab.data import SplitLeakError

    _mimic_fixture(cxr_root, tmp_path)
    text = (tmp_path / "mimic-cxr-2.0.0-split.csv").read_text().replace("d2,50000001,10000001,train", "d2,50000001,10000001,validate")
    (tmp_path / "mimic-cxr-2.0.0-split.csv").write_text(text)
    with pytest.raises(SplitLeakError):
        load_mimic(tmp_path)
    with pytest.raises(EmptyDatasetError):
        load_mimic(tmp_path / "nothing")


def test_report_sections() -> None:
    assert parse_report_sections("FINDINGS: a.\nIMPRESSION: b.") == ("a.", "b.")
    assert parse_report_sections("Plain note.") == ("Plain note.", "")
    assert parse_report_sections("INDICATION: x\nCONCLUSION: fine.") == ("", "fine.")


def test_inspect_command_lists_problems_and_counts(cxr_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _mimic_fixture(cxr_root, tmp_path)
    assert inspect_main([str(tmp_path), "--splits", "train", "val", "test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("skipped: ") and "d5.jpg: image file missing" in out[0]
    assert "4 items" in out[-1] and "1 skipped" in out[-1] and "4 with a real report" in out[-1]
    assert detect_layout(cxr_root) == "cxr"
    assert inspect_main([str(tmp_path / "nothing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptyDatasetError, match="unknown layout"):
        detect_layout(empty)
