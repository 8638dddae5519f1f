"""DICOM Digital Signatures (PS3.15 Annex C, PS3.5 C.12.1.1.3; Base RSA profile) on whole DICOM objects.

A signature covers every signable top-level element of the dataset (everything except the file meta group,
group lengths, the signature sequences themselves and trailing padding), with nested sequences in full,
plus the signature item's own MAC ID, UID, date/time, certificate type and purpose. The byte stream that
is hashed is the "signature format" of PS3.15 C.12.1.1.3.1 as DCMTK's `dcmsign` builds it: Explicit VR
Little Endian, element values as encoded, sequences and items without their length fields, a Sequence
Delimitation tag after each sequence and no Item Delimitation. The stream is taken from the file's own
bytes (not from a re-encoding), so every value byte is covered exactly as stored; `dcmsign --verify`
checks the same objects independently (tests do that).

RSA keys give RSASSA-PKCS1-v1_5 over SHA-256 (the Base RSA profile); EC keys give ECDSA over SHA-256.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pydicom import Dataset, dcmread
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

MAC_ALGORITHM = "SHA256"
CERTIFICATE_TYPE = "X509_1993_SIG"
PURPOSE_SCHEME = "ASTM-sigpurpose"
PURPOSES = {"1": "Author's Signature", "5": "Verification Signature", "15": "Addendum Signature",
            "16": "Modification Signature"}
EXTENDED_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
ITEM, ITEM_DELIM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
MAC_PARAMETERS_SEQ, DIGITAL_SIGNATURES_SEQ = 0x4FFE0001, 0xFFFAFFFA
# attributes of the signature item that are not part of the MAC (PS3.15 C.12.1.1.3.1)
_NOT_IN_MAC = frozenset({0x04000115, 0x04000120, 0x04000305, 0x04000310})
UNDEFINED = 0xFFFFFFFF
MAX_DEPTH = 64


class DicomSignatureError(ValueError):
    """The object cannot be signed, or its bytes cannot be read as a signed DICOM object."""


class RawSigner(Protocol):
    """A key that can sign: a PKCS#12 identity in memory or a PKCS#11 token."""

    @property
    def certificate_der(self) -> bytes: ...

    def sign_sha256(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 (RSA) or DER ECDSA (EC) signature over SHA-256 of `data`."""
        ...


# -- raw Explicit VR Little Endian walking ---------------------------------------------------------------
@dataclass
class RawElement:
    tag: int
    vr: str
    value: bytes = b""  # undecoded value bytes as stored (non-SQ)
    items: list[list[RawElement]] | None = None  # SQ: each item's elements
    offset: int = 0  # where the element starts in the buffer


def signable(tag: int, vr: str) -> bool:
    """DCMTK's DcmTagKey::isSignableTag plus its 'UN is never signable' rule."""
    group, elem = tag >> 16, tag & 0xFFFF
    if elem == 0 or group < 8 or group == 0xFFFA or tag in (0x00080001, MAC_PARAMETERS_SEQ, 0xFFFCFFFC):
        return False
    return vr != "UN"


def _u16(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<H", buf, pos)[0]


def _u32(buf: bytes, pos: int) -> int:
    return struct.unpack_from("<I", buf, pos)[0]


def _need(buf: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(buf):
        raise DicomSignatureError(f"truncated: {what} at byte {pos} runs past the end of the data")


def _tag_at(buf: bytes, pos: int) -> int:
    _need(buf, pos, 4, "tag")
    return (_u16(buf, pos) << 16) | _u16(buf, pos + 2)


def parse_elements(buf: bytes, pos: int, end: int, *, depth: int = 0,
                   stop_at_item_delim: bool = False) -> tuple[list[RawElement], int]:
    """Elements from `pos` up to `end` (or an Item Delimitation when the item has undefined length)."""
    if depth > MAX_DEPTH:
        raise DicomSignatureError("sequences nested too deeply")
    out: list[RawElement] = []
    last_tag = -1
    while pos < end:
        start = pos
        tag = _tag_at(buf, pos)
        if tag == ITEM_DELIM:
            if not stop_at_item_delim:
                raise DicomSignatureError(f"unexpected item delimiter at byte {pos}")
            _need(buf, pos, 8, "item delimiter")
            if _u32(buf, pos + 4) != 0:
                raise DicomSignatureError(f"item delimiter at byte {pos} has a non-zero length")
            return out, pos + 8
        if tag >> 16 == 0xFFFE:
            raise DicomSignatureError(f"unexpected item tag {tag:08X} at byte {pos}")
        if tag <= last_tag:
            raise DicomSignatureError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {pos} is out of order")
        last_tag = tag
        _need(buf, pos, 8, "element header")
        vr = buf[pos + 4:pos + 6].decode("latin-1")
        if not (vr.isalpha() and vr.isupper()):
            raise DicomSignatureError(f"bad value representation {vr!r} at byte {pos + 4}")
        if vr in EXTENDED_LENGTH_VRS:
            _need(buf, pos, 12, "element header")
            if _u16(buf, pos + 6) != 0:
                raise DicomSignatureError(f"reserved bytes of the element at byte {pos} are not zero")
            length, pos = _u32(buf, pos + 8), pos + 12
        else:
            length, pos = _u16(buf, pos + 6), pos + 8
        if vr == "SQ":
            items, pos = _parse_sequence(buf, pos, length, end, depth)
            out.append(RawElement(tag, vr, items=items, offset=start))
            continue
        if length == UNDEFINED:
            raise DicomSignatureError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has undefined length "
                                      "(encapsulated data is not supported in signed reports)")
        _need(buf, pos, length, f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        out.append(RawElement(tag, vr, bytes(buf[pos:pos + length]), offset=start))
        pos += length
    if stop_at_item_delim:
        raise DicomSignatureError("item without its delimiter")
    if pos != end:
        raise DicomSignatureError(f"element lengths overrun their container at byte {end}")
    return out, pos


def _parse_sequence(buf: bytes, pos: int, length: int, limit: int,
                    depth: int) -> tuple[list[list[RawElement]], int]:
    end = limit if length == UNDEFINED else pos + length
    if end > limit:
        raise DicomSignatureError(f"sequence at byte {pos} runs past its container")
    items: list[list[RawElement]] = []
    while True:
        if length != UNDEFINED and pos == end:
            return items, pos
        tag = _tag_at(buf, pos)
        _need(buf, pos, 8, "item header")
        ilen = _u32(buf, pos + 4)
        if tag == SEQ_DELIM and length == UNDEFINED:
            if ilen != 0:
                raise DicomSignatureError(f"sequence delimiter at byte {pos} has a non-zero length")
            return items, pos + 8
        if tag != ITEM:
            raise DicomSignatureError(f"expected an item at byte {pos}, found tag {tag:08X}")
        pos += 8
        if ilen == UNDEFINED:
            elements, pos = parse_elements(buf, pos, end, depth=depth + 1, stop_at_item_delim=True)
        else:
            if pos + ilen > end:
                raise DicomSignatureError(f"item at byte {pos - 8} runs past its sequence")
            elements, pos = parse_elements(buf, pos, pos + ilen, depth=depth + 1)
        items.append(elements)


def _header(tag: int, vr: str, length: int) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr in EXTENDED_LENGTH_VRS:
        return head + b"\0\0" + struct.pack("<I", length)
    if length > 0xFFFF:
        raise DicomSignatureError(f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) too long for its VR {vr}")
    return head + struct.pack("<H", length)


def _stream(element: RawElement, out: io.BytesIO) -> None:
    """One element in PS3.15 signature format."""
    if element.items is None:
        value = element.value + (b"\0" if len(element.value) % 2 else b"")  # DCMTK pads odd values
        out.write(_header(element.tag, element.vr, len(value)))
        out.write(value)
        return
    out.write(struct.pack("<HH", element.tag >> 16, element.tag & 0xFFFF) + b"SQ\0\0")
    for item in element.items:
        out.write(struct.pack("<HH", 0xFFFE, 0xE000))
        for child in item:
            if signable(child.tag, child.vr) and not _contains_un(child):
                _stream(child, out)
    out.write(struct.pack("<HH", 0xFFFE, 0xE0DD))


def _contains_un(element: RawElement) -> bool:
    if element.items is None:
        return element.vr == "UN"
    return any(_contains_un(c) for item in element.items for c in item)


def dataset_offset(data: bytes) -> int:
    """Where the dataset starts in Part 10 bytes (after preamble and the file meta group)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        raise DicomSignatureError("not a DICOM Part 10 file (no 'DICM' after the preamble)")
    pos = 132
    while pos < len(data) and _tag_at(data, pos) >> 16 == 0x0002:
        _need(data, pos, 8, "file meta element")
        vr = data[pos + 4:pos + 6].decode("latin-1")
        if vr in EXTENDED_LENGTH_VRS:
            _need(data, pos, 12, "file meta element")
            pos += 12 + _u32(data, pos + 8)
        else:
            pos += 8 + _u16(data, pos + 6)
    if pos > len(data):
        raise DicomSignatureError("the file meta information runs past the end of the file")
    return pos


def _explicit_le_dataset_bytes(data: bytes) -> tuple[bytes, Dataset]:
    """The dataset's Explicit VR Little Endian bytes (the file's own when it is in that syntax) and the
    parsed dataset."""
    try:
        ds = dcmread(io.BytesIO(data), force=False)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged input
        raise DicomSignatureError(f"not a readable DICOM file: {exc}") from exc
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts == ExplicitVRLittleEndian:
        return data[dataset_offset(data):], ds
    if ts is None or not UID(str(ts)).is_transfer_syntax:
        raise DicomSignatureError(f"the file meta Transfer Syntax UID {str(ts)!r} is not a DICOM transfer syntax")
    buf = io.BytesIO()  # another syntax: re-encode (DCMTK does the same before hashing)
    try:
        copy = Dataset(ds)
        copy.file_meta = ds.file_meta
        copy.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        copy.save_as(buf, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001
        raise DicomSignatureError(f"cannot re-encode the dataset for checking: {exc}") from exc
    out = buf.getvalue()
    return out[dataset_offset(out):], ds


def mac_stream(elements: list[RawElement], tags: list[int] | None = None) -> tuple[bytes, list[int]]:
    """The signature-format bytes of `elements` (those in `tags`, or every signable one) and the tags."""
    out = io.BytesIO()
    used: list[int] = []
    for e in elements:
        if tags is not None and e.tag not in tags:
            continue
        if not signable(e.tag, e.vr) or _contains_un(e):
            if tags is not None:
                raise DicomSignatureError(f"signed element ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) is not signable")
            continue
        _stream(e, out)
        used.append(e.tag)
    return out.getvalue(), used


def _signature_item_stream(item_elements: list[RawElement]) -> bytes:
    out = io.BytesIO()
    for e in item_elements:
        if signable(e.tag, e.vr) and e.tag not in _NOT_IN_MAC:
            _stream(e, out)
    return out.getvalue()


def _raw_item(ds: Dataset) -> list[RawElement]:
    """A pydicom item dataset as raw elements (encoded the way it will be written)."""
    holder = Dataset()
    holder.MACParametersSequence = [ds]  # any SQ tag: only the item's encoding matters
    buf = io.BytesIO()
    from pydicom.filewriter import write_dataset

    fp = _DicomBytes(buf)
    write_dataset(fp, holder)
    raw = buf.getvalue()
    elements, _ = parse_elements(raw, 0, len(raw))
    return elements[0].items[0]  # type: ignore[index]


def _DicomBytes(buf: io.BytesIO):  # noqa: N802 - factory for pydicom's little-endian explicit writer
    from pydicom.filebase import DicomFileLike

    fp = DicomFileLike(buf)
    fp.is_little_endian, fp.is_implicit_VR = True, False
    return fp


def _signature_item(uid: str, when: str, purpose: str, cert_der: bytes, mac_id: int) -> Dataset:
    item = Dataset()
    item.MACIDNumber = mac_id
    item.DigitalSignatureUID = uid
    item.DigitalSignatureDateTime = when
    item.CertificateType = CERTIFICATE_TYPE
    item.CertificateOfSigner = cert_der
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = purpose, PURPOSE_SCHEME, PURPOSES[purpose]
    item.DigitalSignaturePurposeCodeSequence = [code]
    return item


def sign_dataset(ds: Dataset, signer: RawSigner, *, purpose: str = "5", when: dt.datetime | None = None,
                 timestamper=None) -> bytes:
    """Sign every signable element of `ds`; returns the signed Part 10 file (Explicit VR Little Endian).

    The dataset is first written exactly as it will be stored, and the MAC is taken from those bytes, so
    what is signed is what lands on disk. `timestamper(signature) -> (type, token)` adds an RFC 3161
    certified timestamp over the signature value (PS3.15 C.12.1.1.3 Certified Timestamp)."""
    if "DigitalSignaturesSequence" in ds or "MACParametersSequence" in ds:
        raise DicomSignatureError("the dataset is already signed")
    if purpose not in PURPOSES:
        raise DicomSignatureError(f"unknown signature purpose {purpose!r}")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    body = data[dataset_offset(data):]
    elements, _ = parse_elements(body, 0, len(body))
    stream, tags = mac_stream(elements)
    when_text = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%d%H%M%S.%f+0000")
    item = _signature_item(generate_uid(), when_text, purpose, signer.certificate_der, mac_id=1)
    stream += _signature_item_stream(_raw_item(item))
    item.Signature = signer.sign_sha256(stream)
    if timestamper is not None:
        ts_type, token = timestamper(item.Signature)
        item.CertifiedTimestampType, item.CertifiedTimestamp = ts_type, token
    mac = Dataset()
    mac.MACIDNumber = 1
    mac.MACCalculationTransferSyntaxUID = ExplicitVRLittleEndian
    mac.MACAlgorithm = MAC_ALGORITHM
    mac.DataElementsSigned = tags
    ds.MACParametersSequence = [mac]
    ds.DigitalSignaturesSequence = [item]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    result = out.getvalue()
    check = verify_dicom_bytes(result)  # never hand out a signature that does not verify
    if not check.ok:
        raise DicomSignatureError("the new signature does not verify: " + "; ".join(check.problems))
    return result


# -- verification -------------------------------------------------------------------------------------------
@dataclass
class SignatureInfo:
    uid: str
    signed_at: str
    certificate_der: bytes
    purpose: str
    valid: bool
    reason: str
    signed_tags: list[int] = field(default_factory=list)
    timestamp: bytes | None = None
    signature: bytes = b""  # as stored (OB: an odd-length value carries one pad byte)

    @property
    def signature_as_signed(self) -> bytes:
        """The bytes the signer produced: an odd-length DER ECDSA value without its OB pad byte. A certified
        timestamp's imprint is over these."""
        return der_from_ob(self.signature)


@dataclass
class DicomSignatureCheck:
    signatures: list[SignatureInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dataset: Dataset | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.signatures) and all(s.valid for s in self.signatures)


def _verify_raw(stream: bytes, signature: bytes, cert_der: bytes) -> tuple[bool, str]:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        pub = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError as exc:
        return False, f"the signer's certificate cannot be read ({exc})"
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, stream, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            der = der_from_ob(signature)
            pub.verify(der, stream, ec.ECDSA(hashes.SHA256()))
        else:
            return False, f"unsupported public key type {type(pub).__name__}"
    except InvalidSignature:
        return False, "the DICOM signature does not match the signed elements (content altered)"
    except ValueError as exc:
        return False, f"the DICOM signature value is malformed ({exc})"
    return True, "DICOM signature valid"


def der_from_ob(value: bytes) -> bytes:
    """The DER SEQUENCE (the signer's certificate, an ECDSA signature) held in an OB value: OB values are padded
    to even length with one zero byte (PS3.5 7.1.1), so an odd-length DER value is stored one byte longer. Only
    that one pad byte is taken off, and only when the DER header's own length (short or long form: a P-521
    signature or a certificate is over 127 bytes) says the value ends just before it; anything else is returned
    as it is and left for its parser to refuse."""
    if len(value) < 2 or value[0] != 0x30:
        return value
    if value[1] < 0x80:
        header, length = 2, value[1]
    else:
        n = value[1] & 0x7F
        if not 1 <= n <= 4 or len(value) < 2 + n:
            return value
        header, length = 2 + n, int.from_bytes(value[2:2 + n], "big")
    if len(value) == header + length + 1 and value[-1] == 0 and length % 2 != header % 2:
        return value[:-1]
    return value


def _text(elements: dict[int, RawElement], tag: int) -> str:
    e = elements.get(tag)
    return e.value.decode("ascii", "replace").rstrip("\0 ") if e is not None and e.items is None else ""


def verify_dicom_bytes(data: bytes) -> DicomSignatureCheck:
    """Check every signature of the main dataset; never raises on bad input (problems say what is wrong)."""
    result = DicomSignatureCheck()
    try:
        body, ds = _explicit_le_dataset_bytes(data)
        result.dataset = ds
        elements, _ = parse_elements(body, 0, len(body))
    except (DicomSignatureError, struct.error, UnicodeDecodeError) as exc:
        result.problems.append(str(exc))
        return result
    by_tag = {e.tag: e for e in elements}
    sigs, macs = by_tag.get(DIGITAL_SIGNATURES_SEQ), by_tag.get(MAC_PARAMETERS_SEQ)
    if sigs is None or not sigs.items:
        result.problems.append("the object carries no DICOM digital signature")
        return result
    mac_items = {}
    for item in (macs.items or []) if macs is not None else []:
        fields = {e.tag: e for e in item}
        mac_id = fields.get(0x04000005)
        if mac_id is not None and len(mac_id.value) == 2:
            mac_items[_u16(mac_id.value, 0)] = fields
    covered: set[int] = set()
    for n, item in enumerate(sigs.items, 1):
        info = _check_one(n, item, mac_items, elements)
        result.signatures.append(info)
        covered.update(info.signed_tags)
        if not info.valid:
            result.problems.append(f"signature {n}: {info.reason}")
    extra = [e.tag for e in elements if signable(e.tag, e.vr) and e.tag not in covered]
    if extra:
        result.problems.append("elements not covered by any signature (added after signing): " +
                               ", ".join(f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in extra))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for meta_key, key in (("MediaStorageSOPClassUID", "SOPClassUID"),
                              ("MediaStorageSOPInstanceUID", "SOPInstanceUID")):
            if str(meta.get(meta_key, "")) != str(ds.get(key, "")):
                result.problems.append(f"file meta {meta_key} differs from the signed {key}")
    return result


def _check_one(n: int, item: list[RawElement], mac_items: dict[int, dict[int, RawElement]],
               elements: list[RawElement]) -> SignatureInfo:
    fields = {e.tag: e for e in item}
    cert = fields.get(0x04000115)
    sig = fields.get(0x04000120)
    info = SignatureInfo(uid=_text(fields, 0x04000100), signed_at=_text(fields, 0x04000105),
                         certificate_der=(der_from_ob(cert.value) if cert is not None and cert.items is None
                                          else b""),
                         purpose="", valid=False, reason="")
    purpose = fields.get(0x04000401)
    if purpose is not None and purpose.items:
        info.purpose = _text({e.tag: e for e in purpose.items[0]}, 0x00080100)
    ts = fields.get(0x04000310)
    info.timestamp = ts.value if ts is not None and ts.items is None else None
    mac_id = fields.get(0x04000005)
    if mac_id is None or len(mac_id.value) != 2 or _u16(mac_id.value, 0) not in mac_items:
        info.reason = "its MAC parameters are missing"
        return info
    params = mac_items[_u16(mac_id.value, 0)]
    if _text(params, 0x04000010) != ExplicitVRLittleEndian:
        info.reason = f"unsupported MAC calculation transfer syntax {_text(params, 0x04000010)!r}"
        return info
    if _text(params, 0x04000015) != MAC_ALGORITHM:
        info.reason = f"MAC algorithm {_text(params, 0x04000015)!r} is not accepted (SHA256 required)"
        return info
    tag_list = params.get(0x04000020)
    if tag_list is None or tag_list.vr != "AT" or len(tag_list.value) % 4 or not tag_list.value:
        info.reason = "the list of signed elements is missing or malformed"
        return info
    tags = [(_u16(tag_list.value, i) << 16) | _u16(tag_list.value, i + 2) for i in range(0, len(tag_list.value), 4)]
    info.signed_tags = tags
    present = {e.tag for e in elements}
    missing = [t for t in tags if t not in present]
    if missing:
        info.reason = "signed elements were removed: " + ", ".join(f"({t >> 16:04X},{t & 0xFFFF:04X})"
                                                                   for t in missing)
        return info
    if sig is None or sig.items is not None or not info.certificate_der:
        info.reason = "the signature value or the signer's certificate is missing"
        return info
    info.signature = sig.value
    if _text(fields, 0x04000110) != CERTIFICATE_TYPE:
        info.reason = f"certificate type {_text(fields, 0x04000110)!r} is not {CERTIFICATE_TYPE}"
        return info
    try:
        stream, _ = mac_stream(elements, tags)
    except DicomSignatureError as exc:
        info.reason = str(exc)
        return info
    stream += _signature_item_stream(item)
    info.valid, info.reason = _verify_raw(stream, sig.value, info.certificate_der)
    return info


def signature_values(data: bytes) -> list[bytes]:
    """The Signature values of a DICOM object's Digital Signatures Sequence (what identifies this signing even
    after a PACS re-encodes the file: the same value cannot verify over other content)."""
    ds = dcmread(io.BytesIO(data), force=True)
    return [bytes(item.Signature) for item in ds.get("DigitalSignaturesSequence", []) if "Signature" in item]


def iter_signed_tags(check: DicomSignatureCheck) -> Iterator[int]:
    for s in check.signatures:
        yield from s.signed_tags
