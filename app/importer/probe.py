"""Reading just enough of a DICOM file to index it, and deciding whether it is fit to import.

Headers are parsed with `stop_before_pixels` (fast on 10,000 files). The whole element structure is
walked first without reading values (`app.importer.integrity`): a file whose pixel data is cut short is
refused here rather than failing later in the viewer, and a file cut short elsewhere (a structured
report missing its last content items) is imported marked incomplete instead of looking whole. Every
problem becomes a `RejectedFile` with a reason a person can act on, or a warning kept beside an
instance that still imports.
"""

from __future__ import annotations

import functools
import io
import mmap
import re
import struct
import warnings
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage

from app.importer.integrity import Structure, StructureError, check_buffer

PIXEL_TAGS = {0x7FE00010: "Pixel Data", 0x7FE00008: "Float Pixel Data", 0x7FE00009: "Double Float Pixel Data"}
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class RejectedFile(ValueError):
    """The file cannot be imported; the message says why."""


@dataclass(frozen=True)
class InstanceHeader:
    """The header fields the database indexes, validated."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str = ""
    patient_id: str = ""
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: date | None = None
    study_time: str = ""
    accession: str = ""
    study_description: str = ""
    referring_physician: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    frame_of_reference_uid: str = ""
    instance_number: int | None = None
    number_of_frames: int = 0
    rows: int | None = None
    columns: int | None = None
    image_position: tuple[float, ...] | None = None
    image_orientation: tuple[float, ...] | None = None
    slice_location: float | None = None
    warnings: tuple[str, ...] = ()

    @property
    def is_image(self) -> bool:
        return is_image_sop_class(self.sop_class_uid)

    @classmethod
    def from_dataset(cls, ds: Dataset, *, has_pixels: bool | None = None) -> InstanceHeader:
        """Validate and extract; raises RejectedFile when a required UID is missing or unusable."""
        reader = _FieldReader(ds)
        meta = getattr(ds, "file_meta", None) or Dataset()
        if _meta_str(meta, "MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            raise RejectedFile("this is a DICOMDIR index, not an instance: import it as a DICOMDIR")
        study_uid = reader.uid("StudyInstanceUID")
        series_uid = reader.uid("SeriesInstanceUID")
        sop_uid = reader.uid("SOPInstanceUID")
        sop_class = reader.uid("SOPClassUID", required=False) or _meta_str(meta, "MediaStorageSOPClassUID")
        if not sop_class:
            raise RejectedFile("missing required SOP Class UID (0008,0016)")
        if sop_class == MediaStorageDirectoryStorage:
            raise RejectedFile("this is a DICOMDIR index, not an instance: import it as a DICOMDIR")
        meta_sop = _meta_str(meta, "MediaStorageSOPInstanceUID")
        if meta_sop and meta_sop != sop_uid:
            reader.warn(f"file meta SOP Instance UID {meta_sop} differs from the dataset's {sop_uid}")
        if has_pixels is None:
            has_pixels = any(tag in ds for tag in PIXEL_TAGS)
        if is_image_sop_class(sop_class) and not has_pixels:
            raise RejectedFile(f"{_sop_name(sop_class)} object has no Pixel Data")
        frames = reader.int("NumberOfFrames") if has_pixels else None
        return cls(
            study_uid=study_uid,
            series_uid=series_uid,
            sop_instance_uid=sop_uid,
            sop_class_uid=sop_class,
            transfer_syntax_uid=_meta_str(meta, "TransferSyntaxUID"),
            patient_id=reader.text("PatientID"),
            issuer=reader.text("IssuerOfPatientID"),
            patient_name=reader.text("PatientName"),
            birth_date=reader.text("PatientBirthDate")[:8],
            sex=reader.text("PatientSex"),
            study_date=reader.date("StudyDate"),
            study_time=reader.text("StudyTime")[:16],
            accession=reader.text("AccessionNumber"),
            study_description=reader.text("StudyDescription"),
            referring_physician=reader.text("ReferringPhysicianName"),
            modality=reader.text("Modality")[:16],
            series_number=reader.int("SeriesNumber"),
            series_description=reader.text("SeriesDescription"),
            body_part=reader.text("BodyPartExamined"),
            frame_of_reference_uid=reader.uid("FrameOfReferenceUID", required=False),
            instance_number=reader.int("InstanceNumber"),
            number_of_frames=(frames if frames and frames > 0 else 1) if has_pixels else 0,
            rows=reader.int("Rows"),
            columns=reader.int("Columns"),
            image_position=reader.floats("ImagePositionPatient", 3),
            image_orientation=reader.floats("ImageOrientationPatient", 6),
            slice_location=reader.float("SliceLocation"),
            warnings=tuple(reader.warnings),
        )


def is_image_sop_class(sop_class_uid: str) -> bool:
    name = UID(sop_class_uid).name
    return "Image Storage" in name or "Video" in name


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else f"SOP class {uid}"


def _meta_str(meta: Dataset, keyword: str) -> str:
    try:
        value = meta.get(keyword)
    except Exception:  # noqa: BLE001 - a garbled meta element is treated as absent
        return ""
    return str(value).strip("\x00 ") if value else ""


class _FieldReader:
    """Reads single fields, turning wrong VRs and unparsable values into warnings (or rejections)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _raw(self, keyword: str) -> Any:
        tag, allowed = _tag_info(keyword)
        try:
            raw = self.ds.get_item(tag)
        except Exception as exc:  # noqa: BLE001
            raise _BadValue(f"{keyword} cannot be read: {exc}") from exc
        if raw is None:
            return None
        fast = _fast_text(raw, allowed)
        if fast is not None:
            return fast
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                elem = self.ds[tag]
            except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad values
                raise _BadValue(f"{keyword} cannot be decoded: {exc}") from exc
        if elem.VR not in allowed:
            raise _BadValue(f"{keyword} has VR {elem.VR}, the standard says {' or '.join(allowed)}")
        for w in caught:
            self.warn(f"{keyword}: {w.message}")
        return elem.value

    def uid(self, keyword: str, *, required: bool = True) -> str:
        try:
            value = self._raw(keyword)
        except _BadValue as exc:
            if required:
                raise RejectedFile(f"wrong value representation: {exc}") from None
            self.warn(str(exc))
            return ""
        text = str(value).strip("\x00 ") if value is not None else ""
        if not text:
            if required:
                raise RejectedFile(f"missing required {keyword}")
            return ""
        if len(text) > 64:
            if required:
                raise RejectedFile(f"{keyword} is {len(text)} characters long (at most 64 allowed)")
            self.warn(f"{keyword} ignored: {len(text)} characters long (at most 64 allowed)")
            return ""
        if not _UID_RE.match(text):
            self.warn(f"{keyword} {text!r} is not a valid DICOM UID")
        return text

    def text(self, keyword: str) -> str:
        try:
            value = self._raw(keyword)
        except _BadValue as exc:
            self.warn(str(exc))
            return ""
        if value is None:
            return ""
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        return str(value).strip("\x00 ")[:200]

    def int(self, keyword: str) -> int | None:
        try:
            value = self._raw(keyword)
            return None if value in (None, "") else _to_int(value)
        except (_BadValue, TypeError, ValueError, OverflowError) as exc:
            self.warn(f"{keyword} ignored: {exc}")
            return None

    def float(self, keyword: str) -> float | None:
        try:
            value = self._raw(keyword)
            return None if value in (None, "") else float(value)
        except (_BadValue, TypeError, ValueError, OverflowError) as exc:
            self.warn(f"{keyword} ignored: {exc}")
            return None

    def floats(self, keyword: str, n: int) -> tuple[float, ...] | None:
        try:
            value = self._raw(keyword)
            if value in (None, ""):
                return None
            values = tuple(float(v) for v in ([value] if isinstance(value, str | int | float) else value))
        except (_BadValue, TypeError, ValueError, OverflowError) as exc:
            self.warn(f"{keyword} ignored: {exc}")
            return None
        if len(values) != n:
            self.warn(f"{keyword} ignored: {len(values)} values, expected {n}")
            return None
        return values

    def date(self, keyword: str) -> date | None:
        text = self.text(keyword)
        if not text:
            return None
        digits = text.replace(".", "").replace("-", "")  # old ACR-NEMA "1995.03.01" style too
        try:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
        except ValueError:
            self.warn(f"{keyword} {text!r} is not a date (YYYYMMDD)")
            return None


_ASCII_VRS = frozenset({"UI", "CS", "SH", "LO", "DA", "TM", "DT", "IS", "DS", "AS", "PN", "AE"})


def _fast_text(raw: Any, allowed: tuple[str, ...]) -> str | list[str] | None:
    """Plain-ASCII text values straight from the undecoded element (pydicom's conversion dominated
    the probe time); None sends anything else (other VRs, character sets, UN) through pydicom."""
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return None
    vr = raw.VR or allowed[0]
    if vr not in allowed or vr not in _ASCII_VRS:
        return None
    try:
        text = raw.value.decode("ascii")
    except UnicodeDecodeError:
        return None
    text = text.rstrip("\x00 ").strip()
    if vr in ("IS", "DS") and "\\" in text:
        return [v.strip() for v in text.split("\\")]
    return text


def _to_int(value: Any) -> int:
    """IS values like "12" (or "12.0", which pydicom also accepts); anything else raises ValueError."""
    try:
        return int(value)
    except (TypeError, ValueError):
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"{value!r} is not an integer") from None
        return int(number)


@functools.cache
def _tag_info(keyword: str) -> tuple[BaseTag, tuple[str, ...]]:
    tag = Tag(keyword)
    return tag, tuple(dictionary_VR(tag).split(" or "))


class _BadValue(ValueError):
    pass


@dataclass(frozen=True)
class ProbedFile:
    """A file judged importable: its header, the dataset when the store must re-encode it, and why it is
    incomplete when its structure is cut short outside the pixel data (it is stored, and flagged)."""

    path: Path
    header: InstanceHeader
    rewrite: Dataset | None = None  # set when the file is not Part 10 (no preamble / meta)
    incomplete: str = ""


def probe_file(path: Path) -> ProbedFile:
    """Read and validate one file; raises RejectedFile with the reason it cannot be imported."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RejectedFile(f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise RejectedFile("empty file")
    try:
        with open(path, "rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return probe_buffer(path, buf)
    except RejectedFile:
        raise
    except OSError as exc:
        raise RejectedFile(f"cannot read file: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. the file emptied since it was looked at: never a crash
        raise RejectedFile(f"broken DICOM: {type(exc).__name__}: {exc}"[:300]) from None


def probe_buffer(path: Path, buf: bytes | bytearray | mmap.mmap) -> ProbedFile:
    """`probe_file` of a file whose whole content is already in memory (`buf`, exactly the bytes of the
    file at `path`): the same checks and the same answer, without opening it again."""
    size = len(buf)
    if size == 0:
        raise RejectedFile("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _probe_buffer(path, buf, size)
    except RejectedFile:
        raise
    except OSError as exc:
        raise RejectedFile(f"cannot read file: {exc.strerror or exc}") from None
    except MemoryError:
        raise RejectedFile("corrupt header: an element claims an impossible length") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a broken file, never a crash
        raise RejectedFile(f"broken DICOM: {type(exc).__name__}: {exc}"[:300]) from None


def _probe_buffer(path: Path, buf: bytes | bytearray | mmap.mmap, size: int) -> ProbedFile:
    if size < 132 or buf[128:132] != b"DICM":
        return _probe_without_preamble(path, buf, size)
    try:
        structure = check_buffer(buf)
    except StructureError as exc:
        raise RejectedFile(f"corrupt DICOM structure: {exc}") from None
    incomplete = ""
    if structure.truncated:
        if structure.pixels_cut:
            raise RejectedFile(f"truncated: {structure.truncated}")
        incomplete = f"truncated: {structure.truncated}"
        if structure.cut_offset <= structure.dataset_offset:
            raise RejectedFile(f"truncated header: {structure.truncated}")
    # The header alone, copied out of the map (pydicom reads it in many small reads: from bytes, in C)
    end = structure.cut_offset if incomplete else structure.pixel.offset if structure.pixel is not None else size
    try:
        ds = pydicom.dcmread(io.BytesIO(buf[:end]), stop_before_pixels=True)
    except (EOFError, struct.error) as exc:
        raise RejectedFile(f"truncated header: {exc}") from None
    if structure.transfer_syntax == DeflatedExplicitVRLittleEndian:
        # The deflated body cannot be checked in place: read it whole (rare, and small files).
        full = pydicom.dcmread(io.BytesIO(buf[:]))
        return ProbedFile(path, _with_incomplete(InstanceHeader.from_dataset(full), incomplete), None, incomplete)
    has_pixels = structure.pixel is not None
    if has_pixels:
        _check_pixels(structure, ds)
    elif incomplete and is_image_sop_class(_sop_class_of(ds)):
        raise RejectedFile(f"truncated before its Pixel Data: {structure.truncated}")
    header = InstanceHeader.from_dataset(ds, has_pixels=has_pixels)
    return ProbedFile(path, _with_incomplete(header, incomplete), None, incomplete)


def _sop_class_of(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None) or Dataset()
    try:
        return str(ds.get("SOPClassUID", "") or "") or _meta_str(meta, "MediaStorageSOPClassUID")
    except Exception:  # noqa: BLE001
        return ""


def _with_incomplete(header: InstanceHeader, incomplete: str) -> InstanceHeader:
    if not incomplete:
        return header
    return _with_warning(header, f"stored marked incomplete ({incomplete})")


def _probe_without_preamble(path: Path, buf: bytes | bytearray | mmap.mmap, size: int) -> ProbedFile:
    """Old ACR-NEMA style files with no 'DICM' marker: accepted only when they start like a dataset."""
    head = buf[:8]
    if head[:2] not in (b"\x08\x00", b"\x00\x08", b"\x02\x00", b"\x00\x02"):
        raise RejectedFile("not a DICOM file (no 'DICM' marker and no DICOM data at the start)")
    try:
        structure = check_buffer(buf)
    except StructureError as exc:
        raise RejectedFile(f"not a DICOM file (no 'DICM' marker; {exc})") from None
    if structure.truncated:
        raise RejectedFile(f"not a DICOM file or truncated (no 'DICM' marker; {structure.truncated})")
    try:
        ds = pydicom.dcmread(io.BytesIO(buf[:]), force=True)
    except Exception as exc:  # noqa: BLE001
        raise RejectedFile(f"not a DICOM file (no 'DICM' marker; reading it anyway failed: {exc})") from None
    if len(ds) == 0:
        raise RejectedFile("not a DICOM file (no 'DICM' marker and no readable elements)")
    header = InstanceHeader.from_dataset(ds)
    note = "no DICOM preamble/file meta: stored re-encoded as a standard DICOM file"
    header = _with_warning(header, note)
    return ProbedFile(path, header, rewrite=ds)


def _with_warning(header: InstanceHeader, note: str) -> InstanceHeader:
    return replace(header, warnings=(*header.warnings, note))


def _check_pixels(structure: Structure, ds: Dataset) -> None:
    """The pixel element is whole (the walk saw to that); is it big enough for the image it claims?"""
    pixel = structure.pixel
    assert pixel is not None
    name = PIXEL_TAGS[pixel.tag]
    if pixel.encapsulated:
        if pixel.fragments < 1:
            raise RejectedFile(f"encapsulated {name} holds no image fragments")
        return
    if pixel.length == 0:
        raise RejectedFile(f"{name} is empty")
    expected = _expected_native_bytes(ds) if pixel.tag == 0x7FE00010 else None
    if expected is not None and pixel.length < expected:
        raise RejectedFile(f"{name} holds {pixel.length} bytes but {expected} are needed for the image size")


def _expected_native_bytes(ds: Dataset) -> int | None:
    """Bytes uncompressed pixel data must hold, or None when the header does not say (or is compressed)."""
    ts = _meta_str(ds.file_meta, "TransferSyntaxUID") if hasattr(ds, "file_meta") else ""
    if ts and UID(ts).is_compressed:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    except Exception:  # noqa: BLE001 - missing or garbled image attributes: no size check
        return None
    if photometric == "YBR_FULL_422" and spp == 3:
        # PS3.3 C.7.6.3.1.2: two luminance samples share one Cb/Cr pair, so 2 samples per pixel on average
        return (rows * cols * 2 * frames * bits + 7) // 8
    pixels = rows * cols * spp * frames
    return (pixels * bits + 7) // 8
