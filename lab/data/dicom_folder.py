"""Reader for a folder of DICOM studies, one sub-folder per study with one report text file.

Layout::

    root/
      <study-a>/            any depth of series folders below
        *.dcm (or DICOM files without suffix)
        report.txt          one .txt per study ("FINDINGS: ... IMPRESSION: ..." or plain text)
      <study-b>/...
      splits.csv            optional: patient_id,split (else a patient-level hash split)

Patient, study and view come from the DICOM headers (PatientID, StudyInstanceUID, ViewPosition);
findings come from the report through the labeler; pixels are decoded by the viewer on demand.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from engines.data.images import is_dicom
from engines.data.sample import Sample, view_group
from engines.labeler.label import label_report
from lab.data.dataset import Dataset, EmptyDatasetError, Problem
from lab.data.report_text import parse_report_sections
from lab.data.splits import normalise_split, patient_split

REPORT_NAMES = ("report.txt", "REPORT.txt", "report.TXT")


def _read_split_table(root: Path, problems: list[Problem]) -> dict[str, str]:
    table: dict[str, str] = {}
    path = root / "splits.csv"
    if not path.is_file():
        return table
    with open(path, newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), 2):
            try:
                table[str(row["patient_id"]).strip()] = normalise_split(row["split"])
            except (KeyError, ValueError, AttributeError) as exc:
                problems.append(Problem(Path(f"{path}:{i}"), f"bad split row ({exc})"))
    return table


def _study_report(study: Path, problems: list[Problem]) -> tuple[str, str] | None:
    txts = [study / n for n in REPORT_NAMES if (study / n).is_file()] or sorted(study.glob("*.txt"))
    if not txts:
        problems.append(Problem(study, "no report .txt in the study folder"))
        return None
    if len(txts) > 1 and txts[0].name not in REPORT_NAMES:
        problems.append(Problem(study, f"{len(txts)} .txt files, expected one report; study skipped"))
        return None
    try:
        text = txts[0].read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        problems.append(Problem(txts[0], f"unreadable report ({exc})"))
        return None
    findings, impression = parse_report_sections(text)
    if not (findings or impression):
        problems.append(Problem(txts[0], "empty report"))
        return None
    return findings, impression


def load_dicom_folder(root: Path | str, splits: tuple[str, ...] = ("train", "val", "test")) -> Dataset:
    """One Sample per DICOM image of each study folder under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise EmptyDatasetError(f"{root}: not a folder")
    problems: list[Problem] = []
    split_table = _read_split_table(root, problems)
    samples: list[Sample] = []
    for study in sorted(p for p in root.iterdir() if p.is_dir()):
        report = _study_report(study, problems)
        if report is None:
            continue
        findings_text, impression_text = report
        labels = label_report(f"{findings_text} {impression_text}").findings
        for f in sorted(p for p in study.rglob("*") if p.is_file() and p.suffix.lower() != ".txt"):
            if not (f.suffix.lower() in (".dcm", ".dicom") or is_dicom(f)):
                continue
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
                problems.append(Problem(f, f"unreadable DICOM ({type(exc).__name__}: {exc})"))
                continue
            if "PixelData" not in ds and not ds.get("Rows"):
                problems.append(Problem(f, "no image (not a pixel-data object)"))
                continue
            patient = str(ds.get("PatientID", "") or study.name)
            split = split_table.get(patient) or patient_split(f"dicom:{patient}")
            if split not in splits:
                continue
            samples.append(
                Sample(
                    image_id=str(ds.get("SOPInstanceUID", "") or f.stem),
                    patient_id=patient,
                    study_id=str(ds.get("StudyInstanceUID", "") or study.name),
                    split=split,
                    source="dicom_folder",
                    view=view_group(str(ds.get("ViewPosition", "") or "")),
                    labels=[],
                    findings=dict(labels),
                    report_findings=findings_text,
                    report_impression=impression_text,
                    report_is_real=True,
                    image_path=f,
                    license="",
                    extra={"study_folder": study.name},
                )
            )
    return Dataset(samples, problems, name=f"dicom_folder[{root.name}]")
