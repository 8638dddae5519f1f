"""The per-instance shortcuts of the receive path (issue 27) give the bytes the libraries would give:
the file meta pydicom writes, the C-STORE response pynetdicom encodes, and data sets stored byte for byte
when a peer packs several fragments into one PDU or splits them across many."""

from __future__ import annotations

import logging
import struct
import time
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, generate_uid
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom import _config as pynetdicom_config
from pynetdicom._handlers import standard_dimse_recv_handler
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from sqlalchemy import select
from test_scp_security import _config, _push

from app.db.models import Instance
from app.pacs.assoc_logging import drop_unlogged_handlers
from app.pacs.receive import IMPLEMENTATION_UID, IMPLEMENTATION_VERSION, _file_meta_bytes, _middle_fragments
from app.pacs.scp import StorageScp
from app.pacs.sink import ImportSink
from app.pacs.store_response import encode_store_response
from tests.support.synthetic_dicom import SyntheticStudy, make_instance

CT = "1.2.840.10008.5.1.4.1.1.2"


def _pydicom_meta(sop_class: str, sop_instance: str, syntax: str, source_ae: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae[:16]
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + buf.getvalue()


@pytest.mark.parametrize("args", [
    (CT, "1.2.3.4", "1.2.840.10008.1.2.1", "ORTHANC"),  # even / odd lengths, AE padded
    (CT, "1.2.3.45", "1.2.840.10008.1.2", ""),  # no source AE
    ("1.2", generate_uid(), "1.2.840.10008.1.2.4.50", "A_VERY_LONG_AE_TITLE"),  # AE cut to 16
])
def test_file_meta_is_what_pydicom_writes(args, tmp_path) -> None:
    assert _file_meta_bytes(*args) == _pydicom_meta(*args)
    (tmp_path / "meta.dcm").write_bytes(_file_meta_bytes(*args))
    meta = read_file_meta_info(tmp_path / "meta.dcm")
    assert meta.MediaStorageSOPInstanceUID == args[1] and meta.TransferSyntaxUID == args[2]


@pytest.mark.parametrize("message_id, status, sop_class, sop_instance", [
    (1, 0x0000, CT, "1.2.3.4"),
    (65535, 0xA700, CT, "1.2.3.45"),
    (7, 0xB007, None, None),
])
def test_store_response_is_what_pynetdicom_encodes(message_id, status, sop_class, sop_instance) -> None:
    rsp = C_STORE()
    rsp.MessageID = rsp.MessageIDBeingRespondedTo = message_id
    rsp.Status = status
    if sop_class:
        rsp.AffectedSOPClassUID = sop_class
        rsp.AffectedSOPInstanceUID = sop_instance
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    assert encode_store_response(message_id, status, sop_class, sop_instance) == encode(message.command_set, True, True)


def _pdv(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">I", len(data) + 2) + bytes((context_id, control)) + data


def test_only_whole_middle_data_fragments_take_the_short_path() -> None:
    two = bytearray(_pdv(3, 0x00, b"abcd") + _pdv(3, 0x00, b"ef"))
    assert [bytes(p) for p in _middle_fragments(two, 3)] == [b"abcd", b"ef"]
    assert _middle_fragments(two, 5) is None  # another presentation context
    assert _middle_fragments(bytearray(_pdv(3, 0x02, b"end")), 3) is None  # last fragment: pynetdicom's
    assert _middle_fragments(bytearray(_pdv(3, 0x01, b"cmd")), 3) is None  # command fragment
    assert _middle_fragments(bytearray(_pdv(3, 0x00, b"abcd") + _pdv(3, 0x02, b"z")), 3) is None
    overrun = bytearray(struct.pack(">I", 100) + bytes((3, 0)) + b"short")  # claims more than the PDU holds
    assert _middle_fragments(overrun, 3) is None
    assert _middle_fragments(bytearray(b"\x00\x00\x00"), 3) is None
    assert _middle_fragments(bytearray(), 3) is None


def test_fragments_packed_and_split_any_way_are_stored_byte_for_byte(database) -> None:
    """A peer speaking raw PDUs: the command, then the data set as two fragments in one PDU, one alone,
    and the last; the stored file ends with exactly the bytes sent, and the answer is a plain success."""
    ds = make_instance(SyntheticStudy(patient_id="RAW"), generate_uid(), size=64)
    with StorageScp(_config(), ImportSink(database)) as server:
        ae = AE(ae_title="CT1")
        ae.requested_contexts = StoragePresentationContexts[:100]
        ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 30
        assoc = ae.associate("127.0.0.1", server.port, ae_title="RADSTATION")
        assert assoc.is_established
        try:
            cx = next(c for c in assoc.accepted_contexts if c.abstract_syntax == ds.SOPClassUID)
            syntax = UID(cx.transfer_syntax[0])
            data = encode(ds, syntax.is_implicit_VR, syntax.is_little_endian)
            rq = C_STORE()
            rq.MessageID, rq.Priority = 7, 2
            rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
            rq.DataSet = BytesIO(b"present")
            message = C_STORE_RQ()
            message.primitive_to_message(rq)
            command = encode(message.command_set, True, True)
            cid = cx.context_id
            q = len(data) // 4
            pdus = [[_pdv(cid, 0x03, command)],
                    [_pdv(cid, 0x00, data[:q]), _pdv(cid, 0x00, data[q : 2 * q])],
                    [_pdv(cid, 0x00, data[2 * q : 3 * q])],
                    [_pdv(cid, 0x02, data[3 * q :])]]
            assoc._reactor_checkpoint.clear()  # as pynetdicom's own send_* do: its reactor leaves the answer
            while not assoc._is_paused:
                time.sleep(0.001)
            raw = assoc.dul.socket.socket
            for pdvs in pdus:
                body = b"".join(pdvs)
                raw.sendall(struct.pack(">BBL", 0x04, 0, len(body)) + body)
            _cid, rsp = assoc.dimse.get_msg(block=True)
            assert rsp is not None and int(rsp.Status) == 0 and rsp.MessageIDBeingRespondedTo == 7
            assert rsp.AffectedSOPInstanceUID == ds.SOPInstanceUID
        finally:
            assoc._reactor_checkpoint.set()
            assoc.release()
        with database.session() as s:
            inst = s.scalars(select(Instance)).one()
        stored = database.store_path(inst.file_path).read_bytes()
        assert stored.endswith(data) and len(stored) == len(_file_meta_bytes(
            ds.SOPClassUID, ds.SOPInstanceUID, syntax, "CT1")) + len(data)
        assert dcmread(BytesIO(stored)).PixelData == ds.PixelData
        again = make_instance(SyntheticStudy(patient_id="RAW"), generate_uid(), size=16)
        assert _push(server.port, [again]) == [(0, "")]  # an ordinary peer right after


@pytest.mark.parametrize("level, kept", [(logging.WARNING, False), (logging.INFO, True)])
def test_pynetdicom_log_formatting_only_when_its_logger_would_print_it(database, level, kept) -> None:
    logger = logging.getLogger("pynetdicom")
    before = logger.level
    logger.setLevel(level)
    try:
        with StorageScp(_config(), ImportSink(database)) as server:
            ae = AE(ae_title="CT1")
            ae.requested_contexts = StoragePresentationContexts[:10]
            assoc = ae.associate("127.0.0.1", server.port, ae_title="RADSTATION",
                                 evt_handlers=[(evt.EVT_ESTABLISHED, drop_unlogged_handlers)])
            assert assoc.is_established
            try:
                bound = [h for h, _ in assoc.get_handlers(evt.EVT_DIMSE_RECV)]
                assert (standard_dimse_recv_handler in bound) is kept
                assert pynetdicom_config.LOG_RESPONSE_IDENTIFIERS is kept
            finally:
                assoc.release()
    finally:
        logger.setLevel(before)
        pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = pynetdicom_config.LOG_REQUEST_IDENTIFIERS = True
