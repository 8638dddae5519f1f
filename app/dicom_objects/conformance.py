"""The DICOM Conformance Statement, generated from the code so it cannot drift.

Every object RadStation writes is built here by the same functions the workstation uses (on a bundled demo
image and a sample unsigned report), and the statement lists the SOP Class, transfer syntax, modality and
series number each one really has; the networking facts come from the PACS modules' own defaults.
`python -m app.dicom_objects.conformance --write docs/conformance_statement.md` regenerates the file;
tests/app/dicom_objects/test_conformance.py fails when the file and the code disagree.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import UID

from app.dicom_objects.common import software_version


def _demo_image(modality: str) -> pydicom.Dataset:
    from viewer.demo import demo_studies

    for study in demo_studies():
        for series in study.series:
            if series.modality == modality:
                return pydicom.dcmread(series.paths[0])
    raise RuntimeError(f"the bundled demo has no {modality} image")


def _sample_document():
    """An unsigned sample report version over the demo radiograph (no database needed)."""
    from app.reports.content import ReportContent
    from app.reports.document import EvidenceRef, ReportDocument
    from app.reports.views import StudyIdentity, VersionView

    ds = _demo_image("DX")
    ident = StudyIdentity(str(ds.StudyInstanceUID), str(ds.get("AccessionNumber", "")), str(ds.PatientID), "",
                          str(ds.PatientName), str(ds.get("PatientBirthDate", "")), str(ds.get("PatientSex", "")),
                          str(ds.get("StudyDate", "")), str(ds.get("StudyTime", "")),
                          str(ds.get("StudyDescription", "")), "", "DX")
    version = VersionView(1, 1, ident.study_uid, "chest_xray", 1, "original", "final",
                          ReportContent({"findings": "Sample.", "impression": "Sample."}),
                          {"engine": "medim-small", "weights_hash": "0" * 64, "findings": "Heart enlarged.",
                           "impression": "Cardiomegaly."}, True, True, False, 1, "sample", "Reader^Sample", "", None)
    ref = EvidenceRef(ident.study_uid, str(ds.SeriesInstanceUID), str(ds.SOPClassUID), str(ds.SOPInstanceUID))
    return ReportDocument(version, ident, (ref,), (ref,), "Chest X-ray", {"value": "36643-5", "scheme": "LN",
                                                                          "meaning": "XR Chest 2 Views"}), ds


def written_objects() -> list[tuple[str, str, pydicom.Dataset]]:
    """(object, when RadStation writes it, the dataset as built) for every object type it sends or exports."""
    from app.counterfactual.secondary_capture import CounterfactualInfo, build_secondary_capture
    from app.dicom_objects.ai_results import AiFinding, AiProvenance, build_ai_results_sr
    from app.dicom_objects.annotations import AnnotatedImage
    from app.dicom_objects.common import ImageRef, header_of
    from app.dicom_objects.key_objects import build_kos
    from app.dicom_objects.measurement_report import build_measurement_report
    from app.dicom_objects.presentation_state import build_gsps
    from app.reports.export_encapsulated import build_encapsulated_pdf
    from app.reports.export_sr import build_sr
    from explain.dicom_maps import MapSource, build_parametric_map, build_segmentation
    from explain.export import export_map
    from viewer.measure.shapes import Distance

    doc, dx = _sample_document()
    ct = _demo_image("CT")
    item = AnnotatedImage(dx, [Distance(p0=(10, 10), p1=(50, 50))])
    uid = hd.UID
    values = np.zeros((int(ct.Rows), int(ct.Columns)), np.float32)
    values[10:20, 10:20] = 0.8
    dx_values = np.zeros((int(dx.Rows), int(dx.Columns)), np.float32)
    return [
        ("Report (TID 2000)", "signed report, sent/exported", build_sr(doc, require_signed=False)),
        ("Report PDF", "signed report, sent/exported", build_encapsulated_pdf(doc, b"%PDF-1.4\n%%EOF\n")),
        ("Key images (KOS)", "signed report with key images, sent", build_kos(
            header_of(dx), [ImageRef.of(dx)], series_uid=uid(), sop_uid=uid(), observer="Reader^Sample")),
        ("Images of interest (KOS)", "images flagged Of Interest (K) while reading, sent with the signed report",
         build_kos(header_of(dx), [ImageRef.of(dx)], series_uid=uid(), sop_uid=uid(), observer="Reader^Sample",
                   purpose="interest")),
        ("AI results (TID 1500, IHE AIR)", "report drafted by the AI, sent", build_ai_results_sr(
            header_of(dx), [AiFinding("Cardiomegaly", "present", 0.8)], AiProvenance("medim-small"),
            [header_of(dx)], series_uid=uid(), sop_uid=uid())),
        ("Measurements (TID 1500)", "study with measurements, sent", build_measurement_report(
            [item], series_uid=uid(), sop_uid=uid(), observer="Reader^Sample")),
        ("Measurements and display (GSPS)", "study with measurements, arrows or text notes, sent", build_gsps(
            [item], series_uid=uid(), sop_uid=uid())),
        ("Explanation map (SEG)", "Explain panel export", build_segmentation(
            ct, values, MapSource("sample"))),
        ("Explanation map (Parametric Map)", "Explain panel export (radiographs: own Frame of Reference, "
         "pixel-aligned)", build_parametric_map(dx, dx_values, MapSource("sample"))),
        ("Explanation map (derived SC)", "Explain panel export, radiographs", export_map(
            dx, dx_values, kind="secondary-capture")),
        ("What-if image (SYNTHETIC SC)", "What-if view, saved", build_secondary_capture(
            dx, np.zeros((int(dx.Rows), int(dx.Columns)), np.uint8), CounterfactualInfo("sample", "", 0, "model"),
            series_uid=uid())),
    ]


def _syntax(ds: pydicom.Dataset) -> str:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) or "1.2.840.10008.1.2.1"
    return f"{UID(ts).name} ({ts})"


def render() -> str:
    from pynetdicom import AllStoragePresentationContexts

    import app.pacs.scp as scp
    from app.pacs.nodes import PacsNode, StorageScpConfig
    from app.reports.outbox import DOCUMENTS
    from app.reports.send import STORED_STATUSES

    scp_cfg = StorageScpConfig()
    tls_fields = sorted(f.name for f in fields(PacsNode) if "tls" in f.name.lower())
    tls_line = (f"- DICOM TLS: configured per node ({', '.join(tls_fields)})." if tls_fields else
                "- DICOM TLS: not in this version; run DIMSE over a trusted network, a VPN or a TLS tunnel.")
    node = PacsNode(name="example")
    rows = written_objects()
    lines = [
        "# DICOM Conformance Statement - RadStation",
        "",
        f"RadStation {software_version()}. Generated by `python -m app.dicom_objects.conformance --write "
        "docs/conformance_statement.md` from the code that builds and sends each object; "
        "`tests/app/dicom_objects/test_conformance.py` fails when this file and the code disagree.",
        "",
        "## 1. Objects RadStation creates (Storage SCU, STOW-RS client, export to files)",
        "",
        "| object | when | SOP Class | Modality | Series Number | Transfer Syntax |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, when, ds in rows:
        sop = UID(str(ds.SOPClassUID))
        lines.append(f"| {name} | {when} | {sop.name} ({sop}) | {ds.get('Modality', '')} | "
                     f"{ds.get('SeriesNumber', '')} | {_syntax(ds)} |")
    lines += [
        "",
        "All objects carry the study's patient and study attributes unchanged and reference their source images.",
        "Derived and synthetic objects say so in Image Type / Series Description (SYNTHETIC, AI EXPLANATION, "
        "AI RESULTS); the AI results SR names the algorithm (TID 4019: name, version, weights SHA-256, seed) and "
        "is never VERIFIED.",
        "",
        "## 2. Sending (outbox)",
        "",
        f"- Documents queued per signed report version: {', '.join(DOCUMENTS)}.",
        "- DIMSE: C-STORE SCU, one association per object, proposing the object's SOP Class with the "
        "transfer syntax it was written in; an item is marked sent only on a C-STORE response with status "
        f"{', '.join(f'0x{s:04X}' for s in sorted(STORED_STATUSES))}.",
        "- DICOMweb: STOW-RS (application/dicom); sent only when the response's Referenced SOP Sequence "
        "lists the instance and no Failed SOP Sequence item is present.",
        "- Failures are retried with exponential back-off (5 s doubling, at most 10 min) up to the item's "
        "attempt limit (default 5), then marked failed; `radstation outbox retry` re-queues.",
        f"- Calling AE title: per PACS node (default {node.calling_ae!r}); called AE title, host and port per node.",
        "",
        "## 3. Receiving",
        "",
        f"- Storage SCP (off by default; AE title {scp_cfg.ae_title!r}, port {scp_cfg.port}): accepts "
        f"{len(AllStoragePresentationContexts) if hasattr(scp, 'AllStoragePresentationContexts') else 'the'} "
        "storage SOP classes of pynetdicom's list with every transfer syntax each offers, plus Verification.",
        "- Query/Retrieve SCU: Study Root C-FIND, C-GET (the storage sub-operations on the same association) "
        "or C-MOVE to RadStation's Storage SCP; DICOMweb QIDO-RS and WADO-RS.",
        "- Read back: SR documents of any template are shown read-only as prior reports (text of the content "
        "tree); encapsulated PDFs are shown as pages; a VERIFIED, COMPLETE report SR or PDF sets the study's "
        "report status to final when the workstation has no report of its own. Key Object Selection "
        "documents mark their key images in the viewer (on the image and as a count on the series icon). "
        "Grayscale Softcopy Presentation States are applied to the images they reference (window, Presentation "
        "LUT Shape, rotation/flip, displayed area, graphic and text objects in their layer colours; the viewer's "
        "GSPS switch / Shift+P turns them off); VOI LUT tables, compound graphics, shutters and overlays are "
        "named as not shown. SEG, Parametric Map, derived/synthetic Secondary "
        "Captures, presentation states, KOS and SRs are never taken as acquired evidence or default key images.",
        "",
        "## 4. Security",
        "",
        "- The report SR, the encapsulated PDF and the KOS of a signed report carry a DICOM Digital Signature "
        "(PS3.15 Base RSA profile, MAC SHA256, RFC 3161 Certified Timestamp when a TSA is configured) over every "
        "signable element; the SR also carries the radiologist's signed report payload (RadStation private "
        "block) and the PDF is PAdES-signed. `radstation verify FILE` checks them, DCMTK's `dcmsign --verify` "
        "the DICOM signatures.",
        tls_line,
        "- DICOMweb: HTTPS when the node's URL is https://, with basic or bearer authentication when configured.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="write the statement to this file (default: print it)")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["main", "render", "written_objects"]
