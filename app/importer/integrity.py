"""Is a DICOM file whole? A walk over its element structure that reads lengths, not values.

pydicom reads a file cut inside a sequence of undefined length without complaint (the sequence simply
ends early), so a structured report cut to 10 of its 28 content items looks complete. This walk checks
what a complete file must satisfy: every element header is whole, every defined length fits inside its
container, every undefined-length sequence and item is closed by its delimiter, and encapsulated pixel
data ends with a sequence delimiter. Values are skipped, never decoded, so the walk costs microseconds
per element and never allocates more than an element header.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import keyword_for_tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC", b"UR", b"SV", b"UV"})
MAX_ELEMENTS = 5_000_000  # a walk over more than this is refused (pathological or hostile nesting)
MAX_DEPTH = 64


class StructureError(ValueError):
    """The file's structure is broken; the message says where (byte offset and element)."""


@dataclass(frozen=True)
class PixelElement:
    """Where the top-level pixel data element is and what it holds (lengths only)."""

    tag: int
    offset: int  # of the value
    length: int  # bytes of the value; for encapsulated data the bytes up to the delimiter
    encapsulated: bool
    fragments: int = 0  # encapsulated: items after the basic offset table


@dataclass(frozen=True)
class Structure:
    """What the walk found: the dataset's start, its pixel element and the first truncation, if any."""

    dataset_offset: int
    transfer_syntax: str
    elements: int
    pixel: PixelElement | None
    truncated: str = ""  # why the file is incomplete ('' = whole)
    cut_offset: int = 0  # truncated: where the top-level element holding the cut starts
    cut_tag: int = 0  # truncated: that element's tag

    @property
    def pixels_cut(self) -> bool:
        """The cut is inside the pixel data (or what should be it)."""
        return bool(self.truncated) and self.cut_tag in PIXEL_TAGS


_PIXEL_NAMES = {0x7FE00010: "Pixel Data", 0x7FE00008: "Float Pixel Data", 0x7FE00009: "Double Float Pixel Data"}


def _name(tag: int) -> str:
    """'Pixel Data', 'ContentSequence (0040,A730)' or '(0009,1010)': how messages name an element."""
    if tag in _PIXEL_NAMES:
        return _PIXEL_NAMES[tag]
    keyword = keyword_for_tag(tag) if tag >> 16 != 0xFFFE else ""
    code = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return f"{keyword} {code}" if keyword else code


def _looks_like_vr(raw: bytes) -> bool:
    return 65 <= raw[0] <= 90 and 65 <= raw[1] <= 90


@dataclass
class _Frame:
    kind: str  # "root" | "seq" | "item"
    limit: int  # absolute offset the frame cannot pass: its own end, or its container's
    defined: bool  # the limit is the frame's own declared end
    implicit: bool
    tag: int = 0
    items: int = 0


class _Walker:
    def __init__(self, buf: bytes | mmap.mmap, start: int, implicit: bool, little: bool) -> None:
        self.buf = buf
        self.size = len(buf)
        self.pos = start
        self.little = little
        self.e = "<" if little else ">"
        self.implicit = implicit
        self.elements = 0
        self.pixel: PixelElement | None = None
        self.top_start = start
        self.top_tag = 0

    def _tag_at(self, pos: int) -> tuple[int, int]:
        group, elem, length = struct.unpack_from(self.e + "HHL", self.buf, pos)
        return (group << 16) | elem, length

    def walk(self) -> str:
        """'' when whole, else the reason the structure is cut short."""
        stack = [_Frame("root", self.size, True, self.implicit)]
        buf, size, e = self.buf, self.size, self.e
        while True:
            frame = stack[-1]
            pos = self.pos
            limit = frame.limit
            if pos >= limit:
                if frame.kind == "root":
                    return ""
                if frame.defined:  # a defined-length item ends exactly here
                    stack.pop()
                    continue
                what = "sequence" if frame.kind == "seq" else "item"
                where = "file" if limit == size else "enclosing item"
                return (f"{where} ends inside {what} {_name(frame.tag)} at byte {pos} "
                        f"({frame.items} item(s) read, no delimiter)")
            self.elements += 1
            if self.elements > MAX_ELEMENTS:
                raise StructureError(f"more than {MAX_ELEMENTS} elements: refused")
            if len(stack) == 1:
                self.top_start, self.top_tag = pos, 0
            if pos + 8 > limit:
                return f"file ends inside an element header at byte {pos}"
            tag, length4 = self._tag_at(pos)
            if len(stack) == 1:
                self.top_tag = tag
            if tag >> 16 == 0xFFFE:
                self.pos = pos + 8
                if tag == SEQUENCE_END:
                    if frame.kind != "seq":
                        raise StructureError(f"sequence delimiter outside a sequence at byte {pos}")
                    stack.pop()
                elif tag == ITEM_END:
                    if frame.kind != "item":
                        raise StructureError(f"item delimiter outside an item at byte {pos}")
                    stack.pop()
                elif tag == ITEM:
                    if frame.kind != "seq":
                        raise StructureError(f"item tag outside a sequence at byte {pos}")
                    frame.items += 1
                    if len(stack) > MAX_DEPTH:
                        raise StructureError(f"sequences nested more than {MAX_DEPTH} deep at byte {pos}")
                    if length4 == UNDEFINED:
                        stack.append(_Frame("item", limit, False, frame.implicit, frame.tag, 0))
                    else:
                        end = self.pos + length4
                        if end > limit:
                            return (f"item {frame.items} of {_name(frame.tag)} declares {length4} bytes at byte "
                                    f"{pos} but its container holds only {limit - self.pos}")
                        stack.append(_Frame("item", end, True, frame.implicit, frame.tag, 0))
                else:
                    raise StructureError(f"unexpected delimiter tag {_name(tag)} at byte {pos}")
                continue
            if frame.kind == "seq":
                raise StructureError(f"{_name(tag)} inside sequence {_name(frame.tag)} where an item belongs "
                                     f"(byte {pos})")
            implicit = frame.implicit
            vr = b""
            if not implicit:
                vr = bytes(buf[pos + 4 : pos + 6])
                if not _looks_like_vr(vr):
                    implicit = True  # written implicit though declared explicit: pydicom reads it, so do we
            if implicit:
                length = length4
                value = pos + 8
            elif vr in _LONG_VRS:
                if pos + 12 > limit:
                    return f"file ends inside the header of {_name(tag)} at byte {pos}"
                (length,) = struct.unpack_from(e + "L", buf, pos + 8)
                value = pos + 12
            else:
                (length,) = struct.unpack_from(e + "H", buf, pos + 6)
                value = pos + 8
            if length == UNDEFINED:
                if tag in PIXEL_TAGS and len(stack) == 1:
                    problem = self._fragments(tag, value, limit)
                    if problem:
                        return problem
                    continue
                if len(stack) > MAX_DEPTH:
                    raise StructureError(f"sequences nested more than {MAX_DEPTH} deep at byte {pos}")
                # SQ, or UN / implicit with undefined length: a sequence; UN content is implicit VR LE
                stack.append(_Frame("seq", limit, False, implicit or vr == b"UN", tag, 0))
                self.pos = value
                continue
            end = value + length
            if end > limit:
                where = "the file" if limit == size else "its container"
                return (f"{_name(tag)} at byte {pos} declares {length} bytes but {where} holds only "
                        f"{max(0, limit - value)}")
            if tag in PIXEL_TAGS and len(stack) == 1:
                self.pixel = PixelElement(tag, value, length, encapsulated=False)
            self.pos = end

    def _fragments(self, tag: int, value: int, limit: int) -> str:
        pos = value
        count = 0
        while True:
            if pos + 8 > limit:
                return (f"file ends inside encapsulated {_name(tag)} after {max(0, count - 1)} fragment(s) "
                        "(no sequence delimiter)")
            item, length = self._tag_at(pos)
            self.elements += 1
            if item == SEQUENCE_END:
                self.pixel = PixelElement(tag, value, pos - value, encapsulated=True, fragments=max(0, count - 1))
                self.pos = pos + 8
                return ""
            if item != ITEM:
                raise StructureError(f"corrupt encapsulated {_name(tag)}: unexpected tag at byte {pos}")
            if length == UNDEFINED:
                raise StructureError(f"corrupt encapsulated {_name(tag)}: fragment of undefined length at byte {pos}")
            if pos + 8 + length > limit:
                return (f"encapsulated {_name(tag)} fragment {count} at byte {pos} declares {length} bytes "
                        f"but the file holds only {limit - pos - 8}")
            pos += 8 + length
            count += 1
            if self.elements > MAX_ELEMENTS:
                raise StructureError(f"more than {MAX_ELEMENTS} elements: refused")


def _meta_end(buf: bytes | mmap.mmap) -> tuple[int, str]:
    """(offset where the dataset starts, transfer syntax) of a Part 10 file; (0, '') without preamble."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        return 0, ""
    end, syntax = 132, ""
    try:
        for elem, value, length, end in part10_meta_elements(buf):  # noqa: B007 (the last `end` is the answer)
            if elem == 0x0010:
                syntax = meta_text(buf, value, length)
    except ValueError as exc:
        raise StructureError("file ends inside the file meta information") from exc
    return end, syntax


def check_buffer(buf: bytes | mmap.mmap, *, start: int | None = None, transfer_syntax: str | None = None) -> Structure:
    """Walk a whole file held in `buf` (bytes or an mmap). Raises StructureError when it is not
    truncation but nonsense (a delimiter in the wrong place, absurd nesting)."""
    meta_end, syntax = _meta_end(buf)
    if start is None:
        start = meta_end
    if transfer_syntax is not None:
        syntax = transfer_syntax
    if not syntax and start == 0:
        # no file meta (old ACR-NEMA style): guess the encoding from the first element, as pydicom does
        explicit = len(buf) >= 6 and _looks_like_vr(bytes(buf[4:6]))
        big = bytes(buf[0:2]) in (b"\x00\x08", b"\x00\x02")
        syntax = ExplicitVRBigEndian if explicit and big else ("" if explicit else ImplicitVRLittleEndian)
    implicit = syntax == ImplicitVRLittleEndian
    little = syntax != ExplicitVRBigEndian
    if syntax == DeflatedExplicitVRLittleEndian:
        try:
            body = zlib.decompressobj(-zlib.MAX_WBITS)
            data = body.decompress(bytes(buf[start:]), 1 << 31)
        except zlib.error as exc:
            return Structure(start, syntax, 0, None, f"deflated data set cannot be inflated: {exc}")
        if not body.eof:
            return Structure(start, syntax, 0, None, "deflated data set is cut short (no end of stream)")
        walker = _Walker(data, 0, implicit=False, little=True)
        problem = walker.walk()
        return Structure(start, syntax, walker.elements, None, problem)  # cut offsets are of inflated data
    walker = _Walker(buf, start, implicit, little)
    problem = walker.walk()
    if not problem:
        return Structure(start, syntax, walker.elements, walker.pixel, "")
    return Structure(start, syntax, walker.elements, walker.pixel, problem, walker.top_start, walker.top_tag)


def check_file(path: Path) -> Structure:
    """Walk the file at `path` (memory-mapped: nothing but element headers is read)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            return Structure(0, "", 0, None, "empty file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return check_buffer(buf)


def part10_meta_elements(buf: bytes | memoryview | mmap.mmap) -> Iterator[tuple[int, int, int, int]]:
    """The elements of a Part 10 file's meta group (0002), in order, as (element number, offset of the value,
    its length, offset after it); the last offset is where the data set starts. ValueError when the buffer
    has no 'DICM' after the preamble or ends inside the meta group."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        raise ValueError("no DICOM file meta (no 'DICM' after the preamble)")
    pos = 132
    while pos + 8 <= len(buf):
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            return
        if bytes(buf[pos + 4 : pos + 6]) in _LONG_VRS:
            if pos + 12 > len(buf):
                raise ValueError("the file ends inside its file meta")
            (length,) = struct.unpack_from("<L", buf, pos + 8)
            value = pos + 12
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            value = pos + 8
        if length == UNDEFINED or value + length > len(buf):
            raise ValueError("the file ends inside its file meta")
        yield elem, value, length, value + length
        pos = value + length


def meta_text(buf: bytes | memoryview | mmap.mmap, value: int, length: int) -> str:
    """A file meta element's value as text (UIDs, AE titles), padding stripped."""
    return bytes(buf[value : value + length]).decode("ascii", "replace").strip("\x00 ")


def part_sop_instance_uid(buf: bytes) -> str:
    """The Media Storage SOP Instance UID from a Part 10 file's meta header ('' when absent)."""
    try:
        for elem, value, length, _ in part10_meta_elements(buf):
            if elem == 0x0003:
                return meta_text(buf, value, length)
    except ValueError:
        return ""
    return ""
