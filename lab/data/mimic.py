"""Reader for the MIMIC-CXR-JPG layout: JPGs, report texts and the official CSV tables.

Layout (as PhysioNet ships it; the reports come from MIMIC-CXR and may sit beside the JPG tree)::

    root/mimic-cxr-2.0.0-split.csv[.gz]      dicom_id,study_id,subject_id,split (train/validate/test)
    root/mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id,...,ViewPosition,...           (optional)
    root/mimic-cxr-2.0.0-chexpert.csv[.gz]   subject_id,study_id,<14 findings>       (optional)
    root/files/p10/p10000032/s50414267/<dicom_id>.jpg
    root/files/p10/p10000032/s50414267.txt    (or under root/reports/files/... / mimic-cxr-reports/files/...)

The official split is patient-level; the Dataset check refuses a table that breaks that. Findings come
from the CheXpert table when present, else from the report through our labeler.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from engines.data.sample import Sample, view_group
from engines.labeler.findings import FINDINGS
from engines.labeler.label import label_report
from lab.data.dataset import Dataset, EmptyDatasetError, Problem
from lab.data.report_text import parse_report_sections
from lab.data.splits import normalise_split

MIMIC_LICENSE = "PhysioNet Credentialed Health Data License 1.5.0"
REPORT_ROOTS = ("files", "reports/files", "mimic-cxr-reports/files")


def _open_table(root: Path, stem: str) -> io.TextIOBase | None:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        p = root / name
        if p.is_file():
            if name.endswith(".gz"):
                return io.TextIOWrapper(gzip.open(p), encoding="utf-8", newline="")
            return open(p, encoding="utf-8", newline="")
    return None


def _chexpert_value(raw: str) -> int | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    v = int(float(raw))
    return v if v in (1, 0, -1) else None


def _find_report(root: Path, subject: str, study: str) -> Path | None:
    for base in REPORT_ROOTS:
        p = root / base / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        if p.is_file():
            return p
    return None


def load_mimic(root: Path | str, splits: tuple[str, ...] = ("train", "val")) -> Dataset:
    """One Sample per JPG listed in the split table whose image and report are present."""
    root = Path(root)
    split_fh = _open_table(root, "mimic-cxr-2.0.0-split")
    if split_fh is None:
        raise EmptyDatasetError(f"{root}: mimic-cxr-2.0.0-split.csv(.gz) not found")
    problems: list[Problem] = []
    views: dict[str, str] = {}
    meta_fh = _open_table(root, "mimic-cxr-2.0.0-metadata")
    if meta_fh is not None:
        with meta_fh:
            for row in csv.DictReader(meta_fh):
                views[row.get("dicom_id", "")] = row.get("ViewPosition", "") or ""
    chexpert: dict[str, dict[str, int]] = {}
    chex_fh = _open_table(root, "mimic-cxr-2.0.0-chexpert")
    if chex_fh is not None:
        with chex_fh:
            for i, row in enumerate(csv.DictReader(chex_fh), 2):
                try:
                    vals = {f: _chexpert_value(row.get(f, "")) for f in FINDINGS}
                except ValueError as exc:
                    problems.append(Problem(root / f"mimic-cxr-2.0.0-chexpert.csv:{i}", f"bad value ({exc})"))
                    continue
                chexpert[str(row.get("study_id", ""))] = {k: v for k, v in vals.items() if v is not None}
    samples: list[Sample] = []
    reports: dict[tuple[str, str], tuple[str, str] | None] = {}
    with split_fh:
        for i, row in enumerate(csv.DictReader(split_fh), 2):
            where = Path(f"{root / 'mimic-cxr-2.0.0-split.csv'}:{i}")
            try:
                dicom_id, study, subject = row["dicom_id"], str(row["study_id"]), str(row["subject_id"])
                split = normalise_split(row["split"])
            except (KeyError, ValueError) as exc:
                problems.append(Problem(where, f"malformed row ({exc})"))
                continue
            if split not in splits:
                continue
            image = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg"
            if not image.is_file():
                problems.append(Problem(image, "image file missing"))
                continue
            key = (subject, study)
            if key not in reports:
                rp = _find_report(root, subject, study)
                if rp is None:
                    problems.append(Problem(image.parent.with_suffix(".txt"), "report missing"))
                    reports[key] = None
                else:
                    reports[key] = parse_report_sections(rp.read_text(encoding="utf-8", errors="replace"))
            rep = reports[key]
            if rep is None:
                continue
            findings_text, impression_text = rep
            findings = chexpert.get(study)
            if findings is None:
                findings = label_report(f"{findings_text} {impression_text}").findings
            samples.append(
                Sample(
                    image_id=dicom_id,
                    patient_id=subject,
                    study_id=study,
                    split=split,
                    source="mimic_cxr_jpg",
                    view=view_group(views.get(dicom_id, "")),
                    labels=[],
                    findings=dict(findings),
                    report_findings=findings_text,
                    report_impression=impression_text,
                    report_is_real=True,
                    image_path=image,
                    license=MIMIC_LICENSE,
                    extra={"label_source": "chexpert.csv" if study in chexpert else "radstation labeler"},
                )
            )
    return Dataset(samples, problems, name=f"mimic_cxr_jpg[{root.name}]")
