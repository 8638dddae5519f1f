"""The one Part 10 file-meta walker (app.importer.integrity.part10_meta_elements), used by the integrity
check, the DICOMweb part check and the getscu transport: every meta element with a 4-byte length (UR, UC,
OV...) is stepped over correctly, and a meta group cut short is an error, never a wrong UID."""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from app.importer.integrity import StructureError, _meta_end, part10_meta_elements, part_sop_instance_uid
from app.pacs.getscu import _meta


def _part10(uid: str, *, source_url: str | None = None) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if source_url is not None:  # (0002,0102) Private Information is OB; (0002,0017) Source Presentation Address is UR
        meta.add_new(0x00020017, "UR", source_url)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.PatientID = CTImageStorage, uid, "P1"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_a_long_length_element_before_the_uids_does_not_derail_the_walk() -> None:
    uid = generate_uid()
    data = _part10(uid, source_url="http://pacs.example/" + "x" * 300)  # longer than any 2-byte length
    elems = [e for e, *_ in part10_meta_elements(data)]
    assert 0x0017 in elems and 0x0003 in elems
    end, cls, inst, syntax = _meta(memoryview(data))
    assert (cls, inst, syntax) == (CTImageStorage, uid, ExplicitVRLittleEndian)
    assert struct.unpack_from("<H", data, end)[0] == 0x0008  # the data set starts right after the meta
    assert _meta_end(data) == (end, ExplicitVRLittleEndian)
    assert part_sop_instance_uid(data) == uid


@pytest.mark.parametrize("inside", [0, 5, 20])
def test_a_meta_group_cut_inside_a_value_is_refused_by_every_reader(inside: int) -> None:
    uid = generate_uid()
    whole = _part10(uid)
    data = whole[: whole.index(uid.encode()) + inside]  # cut inside the SOP Instance UID's value
    with pytest.raises(ValueError):
        _meta(memoryview(data))
    with pytest.raises(StructureError):
        _meta_end(data)
    assert part_sop_instance_uid(data) == ""  # never a UID cut short


def test_a_meta_group_cut_between_elements_lacks_its_uids() -> None:
    uid = generate_uid()
    whole = _part10(uid)
    data = whole[: whole.index(uid.encode()) - 8]  # cut at the start of the instance UID's element
    with pytest.raises(ValueError, match="lacks"):
        _meta(memoryview(data))
    assert part_sop_instance_uid(data) == ""


def test_no_preamble_is_no_meta() -> None:
    data = _part10(generate_uid())[128:]  # 'DICM' missing where it must be
    with pytest.raises(ValueError, match="DICM"):
        list(part10_meta_elements(data))
    assert part_sop_instance_uid(data) == ""
    assert _meta_end(data) == (0, "")


def test_a_lying_undefined_length_in_the_meta_is_refused() -> None:
    data = bytearray(_part10(generate_uid()))
    # the first element is (0002,0000) UL 4: turn it into an OB-style element with an undefined length
    assert struct.unpack_from("<HH2s", data, 132) == (0x0002, 0x0000, b"UL")
    struct.pack_into("<HH2sHL", data, 132, 0x0002, 0x0000, b"OB", 0, 0xFFFFFFFF)
    with pytest.raises(ValueError):
        list(part10_meta_elements(bytes(data)))
    assert part_sop_instance_uid(bytes(data)) == ""
