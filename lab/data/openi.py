"""Reader for the IU X-ray / Open-i layout: report XMLs (ecgen-radiology/*.xml) and PNG images.

The images may sit anywhere under ``root`` (NLMCXR_png/ in the original download) and are found by the
``parentImage`` id of each report. Each report is one patient (IU ids are de-identified per report), so
the patient-level hash split never puts one report's images in two splits.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from engines.data.sample import Sample, view_group
from engines.labeler.label import label_report
from lab.data.dataset import Dataset, EmptyDatasetError, Problem
from lab.data.iu import IUReport
from lab.data.splits import patient_split

IU_LICENSE = "CC BY-NC-ND 4.0"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


def parse_openi_xml(path: Path) -> IUReport:
    """One Open-i report XML; ValueError when it is not one."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"broken XML ({exc})") from exc
    sections = {
        (el.get("Label") or "").upper(): (el.text or "").strip() for el in root.iter("AbstractText")
    }
    uid_el = root.find("uId")
    uid = uid_el.get("id") if uid_el is not None and uid_el.get("id") else path.stem
    if not sections and root.find("parentImage") is None:
        raise ValueError("no AbstractText sections and no parentImage: not an Open-i report")
    mesh = root.find("MeSH")
    major = [(m.text or "").strip() for m in mesh.findall("major")] if mesh is not None else []
    auto = [(m.text or "").strip() for m in mesh.findall("automatic")] if mesh is not None else []
    images = [el.get("id", "") for el in root.findall("parentImage") if el.get("id")]
    return IUReport(
        uid=str(uid),
        findings=sections.get("FINDINGS", ""),
        impression=sections.get("IMPRESSION", ""),
        mesh_major=major,
        mesh_automatic=auto,
        image_ids=images,
        indication=sections.get("INDICATION", ""),
        comparison=sections.get("COMPARISON", ""),
    )


def load_openi(root: Path | str, splits: tuple[str, ...] = ("train", "val", "test")) -> Dataset:
    """One Sample per (report, image) pair whose image file exists; others are reported and skipped."""
    root = Path(root)
    xml_dir = root / "ecgen-radiology" if (root / "ecgen-radiology").is_dir() else root
    xmls = sorted(xml_dir.rglob("*.xml"))
    if not xmls:
        raise EmptyDatasetError(f"{root}: no report XML files (expected ecgen-radiology/*.xml)")
    images = {p.stem: p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    problems: list[Problem] = []
    samples: list[Sample] = []
    for x in xmls:
        try:
            rep = parse_openi_xml(x)
        except (ValueError, OSError) as exc:
            problems.append(Problem(x, str(exc)))
            continue
        if not rep.text:
            problems.append(Problem(x, "report has neither FINDINGS nor IMPRESSION"))
            continue
        if not rep.image_ids:
            problems.append(Problem(x, "report lists no images"))
            continue
        split = patient_split(f"iu:{rep.uid}")
        if split not in splits:
            continue
        findings = label_report(rep.text).findings
        for image_id in rep.image_ids:
            path = images.get(image_id)
            if path is None:
                problems.append(Problem(root / f"{image_id}.png", f"image of {rep.uid} missing"))
                continue
            samples.append(
                Sample(
                    image_id=image_id,
                    patient_id=rep.uid,
                    study_id=rep.uid,
                    split=split,
                    source="iu_openi",
                    view=view_group(rep.image_views.get(image_id, "")),
                    labels=list(rep.mesh_major),
                    findings=dict(findings),
                    report_findings=rep.findings,
                    report_impression=rep.impression,
                    report_is_real=True,
                    image_path=path,
                    license=IU_LICENSE,
                    extra={"mesh_automatic": rep.mesh_automatic, "indication": rep.indication},
                )
            )
    return Dataset(samples, problems, name=f"iu_openi[{root.name}]")
