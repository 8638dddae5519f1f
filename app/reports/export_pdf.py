"""PDF report: letterhead from a template, patient block, sections, optional key images, signature block;
signed with pyHanko (PAdES baseline) using the signer's own key. Also wrapped as DICOM Encapsulated PDF.

The PDF is made and signed at sign time (when the key is unlocked) and stored; exporting later just writes
the stored bytes, so any user can export a report without the signer's password.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpdf import FPDF

from app.reports.content import SECTION_TITLES
from app.reports.document import ReportDocument
from app.reports.keys import SigningIdentity, certificate_fingerprint

LETTERHEAD_DIR = Path(__file__).resolve().parents[2] / "resources" / "letterhead"
FONT_DIR = LETTERHEAD_DIR / "fonts"
SIGNATURE_FIELD = "RadStationSignature"


class PdfExportError(ValueError):
    """The letterhead file is unusable or the PDF could not be made."""


@dataclass(frozen=True)
class Letterhead:
    institution: str = "RadStation"
    department: str = ""
    address: str = ""
    contact: str = ""
    accent_rgb: tuple[int, int, int] = (20, 70, 130)
    logo: Path | None = None
    footer: str = ""

    @classmethod
    def load(cls, path: Path | None = None) -> Letterhead:
        path = path or (LETTERHEAD_DIR / "letterhead.json")
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PdfExportError(f"cannot read letterhead {path}: {exc}") from exc
        logo = data.get("logo") or None
        rgb = data.get("accent_rgb", [20, 70, 130])
        if not (isinstance(rgb, list) and len(rgb) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in rgb)):
            raise PdfExportError(f"{path}: accent_rgb must be three integers 0-255")
        return cls(institution=str(data.get("institution", "RadStation")), department=str(data.get("department", "")),
                   address=str(data.get("address", "")), contact=str(data.get("contact", "")),
                   accent_rgb=(rgb[0], rgb[1], rgb[2]), logo=(path.parent / logo) if logo else None,
                   footer=str(data.get("footer", "")))


def _fmt_date(yyyymmdd: str) -> str:
    try:
        return dt.datetime.strptime(yyyymmdd, "%Y%m%d").strftime("%d %b %Y")
    except ValueError:
        return yyyymmdd or "-"


def _pn(name: str) -> str:
    parts = name.split("^")
    return " ".join(p for p in (parts[1:2] + parts[:1]) if p) if "^" in name else name


_CMAPS: dict[str, frozenset[int]] = {}


def _covered(font: Path) -> frozenset[int]:
    """Code points a font has glyphs for (collections: the first face)."""
    key = str(font)
    if key not in _CMAPS:
        from fontTools.ttLib import TTFont

        try:
            tt = TTFont(str(font), fontNumber=0, lazy=True)
            _CMAPS[key] = frozenset(tt.getBestCmap() or {})
        except Exception as exc:  # noqa: BLE001 - fontTools raises many types for a bad file
            raise PdfExportError(f"cannot read font {font}: {exc}") from exc
    return _CMAPS[key]


def fallback_font(settings=None) -> Path | None:
    """The `report_fallback_font` setting: a TTF/OTF/TTC with the scripts DejaVu lacks (e.g. CJK)."""
    from app.settings import current_settings

    value = (settings or current_settings()).get("report_fallback_font") or ""
    return Path(value) if value else None


def check_glyphs(texts: list[str], fallback: Path | None) -> None:
    """Refuse to render text the fonts cannot show: a signed report never silently drops a character."""
    have = _covered(FONT_DIR / "DejaVuSans.ttf") & _covered(FONT_DIR / "DejaVuSans-Bold.ttf")
    if fallback is not None:
        if not fallback.is_file():
            raise PdfExportError(f"report_fallback_font {fallback} does not exist")
        have = have | _covered(fallback)
    missing = sorted({ch for text in texts for ch in text if ord(ch) >= 0x20 and ord(ch) not in have})
    if missing:
        shown = ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in missing[:12])
        more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
        raise PdfExportError(f"the report has characters the PDF fonts cannot show: {shown}{more}. Set "
                             "report_fallback_font to a font that has them (e.g. Noto Sans CJK or WenQuanYi "
                             "Micro Hei for Chinese, Japanese and Korean)")


class _ReportPdf(FPDF):
    def __init__(self, letterhead: Letterhead, footer_left: str, fallback: Path | None = None) -> None:
        super().__init__(format="A4", unit="mm")
        self.lh = letterhead
        self.footer_left = footer_left
        self.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        if fallback is not None:
            self.add_font("Fallback", "", str(fallback))
            self.add_font("Fallback", "B", str(fallback))
            self.set_fallback_fonts(["Fallback"])
        self.set_auto_page_break(True, margin=22)
        self.set_margins(18, 16, 18)

    def header(self) -> None:
        r, g, b = self.lh.accent_rgb
        if self.lh.logo and self.lh.logo.exists():
            self.image(str(self.lh.logo), x=self.w - 18 - 22, y=12, h=16)
        self.set_text_color(r, g, b)
        self.set_font("DejaVu", "B", 15)
        self.cell(0, 7, self.lh.institution, new_x="LMARGIN", new_y="NEXT")
        self.set_font("DejaVu", "", 9)
        self.set_text_color(80, 80, 80)
        for line in (self.lh.department, self.lh.address, self.lh.contact):
            if line:
                self.cell(0, 4.5, line, new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(r, g, b)
        self.set_line_width(0.6)
        self.line(18, self.get_y() + 2, self.w - 18, self.get_y() + 2)
        self.ln(6)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-16)
        self.set_font("DejaVu", "", 7.5)
        self.set_text_color(110, 110, 110)
        if self.lh.footer:
            self.cell(0, 4, self.lh.footer, new_x="LMARGIN", new_y="NEXT")
        self.cell(0, 4, self.footer_left)
        self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="R")


def render_pdf(doc: ReportDocument, letterhead: Letterhead | None = None,
               key_images: list[tuple[str, bytes]] | None = None) -> bytes:
    """The unsigned PDF bytes. `key_images`: (caption, PNG bytes) pairs to show after the text."""
    lh = letterhead or Letterhead.load()
    v, ident = doc.version, doc.identity
    fallback = fallback_font()
    texts = [*v.content.to_dict().values(), ident.patient_name, ident.patient_id, ident.study_description,
             ident.referring_physician, ident.accession, doc.title, v.author, v.signer,
             str((v.signature or {}).get("signer_name", "")), lh.institution, lh.department, lh.address,
             lh.contact, lh.footer, *(caption for caption, _ in key_images or [])]
    check_glyphs([t for t in texts if t], fallback)
    pdf = _ReportPdf(lh, f"{ident.patient_name and _pn(ident.patient_name)} · {ident.patient_id} · "
                         f"report {v.report_id} v{v.version_no} ({v.kind})", fallback)
    pdf.alias_nb_pages()
    pdf.set_title(f"{doc.title} report")
    pdf.set_author(v.signature.get("signer_name", v.author) if v.signature else v.author)
    pdf.set_subject(f"Study {ident.study_uid}")
    pdf.set_creator("RadStation")
    pdf.add_page()
    r, g, b = lh.accent_rgb

    pdf.set_font("DejaVu", "B", 13)
    title = f"{doc.title} report"
    if v.kind != "original":
        title += f" — {v.kind.upper()} (version {v.version_no})"
    pdf.cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    if not doc.signed:
        pdf.set_text_color(190, 30, 30)
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(0, 6, f"{v.status.upper()} — NOT SIGNED", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)

    rows = [("Patient", _pn(ident.patient_name) or "-", "Patient ID", ident.patient_id or "-"),
            ("Birth date", _fmt_date(ident.patient_birth_date), "Sex", ident.patient_sex or "-"),
            ("Study date", _fmt_date(ident.study_date), "Accession", ident.accession or "-"),
            ("Referring", _pn(ident.referring_physician) or "-", "Exam", ident.study_description or doc.title)]
    pdf.set_fill_color(240, 244, 250)
    pdf.ln(1)
    for k1, v1, k2, v2 in rows:
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(24, 6, k1, fill=True)
        pdf.set_font("DejaVu", "", 9)
        pdf.cell(63, 6, v1[:48], fill=True)
        pdf.set_font("DejaVu", "B", 9)
        pdf.cell(24, 6, k2, fill=True)
        pdf.set_font("DejaVu", "", 9)
        pdf.cell(0, 6, v2[:48], fill=True, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    for key, text in v.content.to_dict().items():
        if not text.strip():
            continue
        pdf.set_font("DejaVu", "B", 10.5)
        pdf.set_text_color(r, g, b)
        pdf.cell(0, 6, SECTION_TITLES[key].upper(), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("DejaVu", "", 10.5)
        pdf.multi_cell(0, 5.4, text.strip(), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2.5)

    if key_images:
        pdf.set_font("DejaVu", "B", 10.5)
        pdf.set_text_color(r, g, b)
        pdf.cell(0, 6, "KEY IMAGES", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        x0, size = pdf.l_margin, 55
        x = x0
        if pdf.get_y() + size + 8 > pdf.h - 22:
            pdf.add_page()
        y = pdf.get_y()
        for caption, png in key_images:
            if x + size > pdf.w - pdf.r_margin:
                x, y = x0, y + size + 8
                if y + size + 8 > pdf.h - 22:
                    pdf.add_page()
                    y = pdf.get_y()
            pdf.image(io.BytesIO(png), x=x, y=y, w=size, h=size, keep_aspect_ratio=True)
            pdf.set_xy(x, y + size + 0.5)
            pdf.set_font("DejaVu", "", 7)
            pdf.cell(size, 4, caption[:40], align="C")
            x += size + 4
        pdf.set_xy(x0, y + size + 7)

    pdf.ln(2)
    ai = v.ai_draft
    if v.ai_generated and ai:
        pdf.set_font("DejaVu", "", 8)
        pdf.set_text_color(90, 90, 90)
        state = "edited" if v.human_edited else ("accepted" if v.ai_accepted else "NOT reviewed")
        pdf.multi_cell(0, 4, f"Drafted with AI assistance ({ai.get('engine', '?')}, weights "
                             f"{str(ai.get('weights_hash', ''))[:12] or '?'}, seed {ai.get('seed', '?')}); "
                             f"draft {state} by the reporting radiologist.", align="L", new_x="LMARGIN",
                       new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    if doc.signed:
        sig = v.signature
        when = dt.datetime.fromisoformat(v.signed_at).astimezone(dt.UTC).strftime("%d %b %Y %H:%M UTC")
        pdf.set_draw_color(r, g, b)
        pdf.set_line_width(0.3)
        pdf.line(18, pdf.get_y() + 1, pdf.w - 18, pdf.get_y() + 1)
        pdf.ln(3)
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(0, 5.5, f"Electronically signed by {sig.get('signer_name') or v.signer} on {when}",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 7.5)
        pdf.set_text_color(90, 90, 90)
        pdf.cell(0, 4, f"Certificate SHA-256 {certificate_fingerprint(sig['certificate_der'])}",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    return bytes(pdf.output())


def sign_pdf(pdf_bytes: bytes, identity: SigningIdentity, signer_name: str, reason: str = "Report signed",
             timestamper=None) -> bytes:
    """PAdES signature over the whole PDF with the user's key (pyHanko); the key may live in a PKCS#12 file
    or on a PKCS#11 token: only `identity.sign_sha256` touches it. `timestamper`: an RFC 3161 TSA (B-T)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    meta = signers.PdfSignatureMetadata(field_name=SIGNATURE_FIELD, md_algorithm="sha256", reason=reason,
                                        name=signer_name, subfilter=fields.SigSeedSubFilter.PADES)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes), strict=False)
    out = signers.sign_pdf(writer, meta, signer=_identity_signer(identity), timestamper=timestamper)
    return out.getvalue()


def _identity_signer(identity):
    """A pyHanko Signer whose raw signature comes from `identity.sign_sha256`."""
    from asn1crypto import algos
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = asn1_x509.Certificate.load(identity.certificate_der)
    chain = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
             for c in getattr(identity, "chain", ())]
    mech = "sha256_rsa" if cert.public_key.algorithm == "rsa" else "sha256_ecdsa"

    class _Signer(signers.Signer):
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            if digest_algorithm != "sha256":
                raise ValueError(f"only SHA-256 signatures are made, not {digest_algorithm}")
            return bytes(512) if dry_run else identity.sign_sha256(data)

    return _Signer(signing_cert=cert, cert_registry=SimpleCertificateStore.from_certs([cert, *chain]),
                   signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mech}))
