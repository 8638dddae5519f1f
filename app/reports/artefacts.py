"""The signed documents made at sign time, while the signer's key is unlocked.

Three artefacts per signed version, and a fourth when it has key images, all stored in the same transaction
as the signature itself:
- `signed_pdf`: the rendered report, PAdES-signed (pyHanko);
- `sr`: the TID 2000 Comprehensive SR with a DICOM Digital Signature (purpose: verification) over the
  whole finished dataset;
- `pdf_dicom`: the signed PDF as DICOM Encapsulated PDF, DICOM-signed too (purpose: author), so its
  header (patient, study, document title) cannot be moved to another patient;
- `kos`: the Key Object Selection of the report's key images (and the SR), DICOM-signed (purpose: author),
  so nobody can point a PACS at other images as the radiologist's key images.

Exports and the outbox send these stored bytes; nobody needs the signer's key after signing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.reports.dicom_signature import sign_dataset
from app.reports.document import ReportDocument
from app.reports.keys import SigningIdentity

KIND_SIGNED_PDF = "signed_pdf"
KIND_SR = "sr"
KIND_PDF_DICOM = "pdf_dicom"
KIND_KOS = "kos"
KINDS = (KIND_SIGNED_PDF, KIND_SR, KIND_PDF_DICOM)  # always made; KIND_KOS when there are key images


@dataclass(frozen=True)
class SignedArtefacts:
    signed_pdf: bytes
    sr: bytes
    pdf_dicom: bytes
    kos: bytes | None = None

    def items(self) -> list[tuple[str, bytes]]:
        out = [(KIND_SIGNED_PDF, self.signed_pdf), (KIND_SR, self.sr), (KIND_PDF_DICOM, self.pdf_dicom)]
        return out + ([(KIND_KOS, self.kos)] if self.kos is not None else [])


def make_artefacts(doc: ReportDocument, identity: SigningIdentity, signer_name: str,
                   key_images: list[tuple[str, bytes]] | None = None, letterhead: Path | None = None,
                   stamper=None) -> SignedArtefacts:
    """Render and sign every document of a signed version (pure: writes nothing). `stamper`: a pyHanko
    TimeStamper for the site's RFC 3161 TSA (app.reports.timestamps), or None."""
    from app.dicom_objects.report_objects import report_kos
    from app.dicom_objects.report_objects import signer_name as kos_observer
    from app.reports.export_encapsulated import build_encapsulated_pdf
    from app.reports.export_pdf import Letterhead, render_pdf, sign_pdf
    from app.reports.export_sr import build_sr
    from app.reports.timestamps import dicom_timestamper

    timestamper = dicom_timestamper(stamper) if stamper is not None else None
    pdf = render_pdf(doc, Letterhead.load(letterhead), key_images)
    signed_pdf = sign_pdf(pdf, identity, signer_name, timestamper=stamper)
    sr = sign_dataset(build_sr(doc), identity, purpose="5", timestamper=timestamper)
    pdf_dicom = sign_dataset(build_encapsulated_pdf(doc, signed_pdf), identity, purpose="1",
                             timestamper=timestamper)
    kos_ds = report_kos(doc, kos_observer(doc))
    kos = None if kos_ds is None else sign_dataset(kos_ds, identity, purpose="1", timestamper=timestamper)
    return SignedArtefacts(signed_pdf, sr, pdf_dicom, kos)
