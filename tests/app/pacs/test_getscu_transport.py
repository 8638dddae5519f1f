"""C-GET by DCMTK's getscu (app.pacs.getscu): the same rows and files as pynetdicom from a real Orthanc,
crafted files refused by the same delivery checks, cancel mid-retrieve, errors classified, and the
transport choice (setting, TLS, getscu missing)."""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
import stat
import struct
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

import app.pacs.getscu as getscu_module
from app.db.database import Database
from app.db.models import Instance, Series, Study
from app.importer.store import ManagedStore
from app.pacs.cancel import CancelToken
from app.pacs.errors import AssociationRejectedError, PacsConfigError, PacsConnectionError, RetrieveCancelled
from app.pacs.getscu import (
    STALL_FILES,
    GetscuRetriever,
    _meta,
    _stalled,
    accept_file,
    choose_transport,
    getscu_arguments,
)
from app.pacs.receive import _file_meta_bytes
from app.pacs.retrieve import RetrieveService, StudyProgress
from app.pacs.scope import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DOES_NOT_MATCH,
    STATUS_NOT_AUTHORIZED,
    RefusedInstance,
    RequestedScope,
)
from app.pacs.sink import local_sop_uids
from app.settings_schema import BY_KEY, validate
from tests.support.orthanc_fixture import make_study
from tests.support.pacs_helpers import dimse_node, free_port

needs_getscu = pytest.mark.skipif(shutil.which("getscu") is None, reason="DCMTK's getscu is not installed")
STUDY_UID = "1.2.826.0.1.3680043.8.498.27"


def _rows(database: Database) -> list[tuple]:
    with database.session() as session:
        return sorted(session.execute(
            select(Study.study_uid, Series.series_uid, Instance.sop_instance_uid, Instance.file_sha256,
                   Instance.file_size, Instance.file_path)
            .join(Series, Instance.series_db_id == Series.id).join(Study, Series.study_db_id == Study.id)
        ).all())


def _open(tmp_path: Path, name: str) -> Database:
    return Database.open(f"sqlite:///{tmp_path / name}.db", store_dir=tmp_path / f"store-{name}")


def _staging_left(database: Database) -> list[str]:
    staging = database.store_dir / ".staging"
    return sorted(p.name for p in staging.iterdir()) if staging.exists() else []


@needs_getscu
@pytest.mark.orthanc
def test_both_transports_store_the_same_rows_and_bytes(orthanc, pacs_studies, tmp_path) -> None:
    study = pacs_studies.current_ct
    uid = study[0].StudyInstanceUID
    rows = {}
    for transport in ("pynetdicom", "dcmtk"):
        database = _open(tmp_path, transport)
        try:
            seen: list[StudyProgress] = []
            result = RetrieveService(database, dimse_node(orthanc), cget_transport=transport).retrieve_study(
                uid, seen.append)
            assert result.state == "done", result.message
            assert (result.imported, result.failed) == (len(study), 0)
            assert max(p.done for p in seen if p.state == "running") == len(study)
            rows[transport] = _rows(database)
            for *_, sha, size, rel in rows[transport]:
                data = database.store_path(rel).read_bytes()
                assert (hashlib.sha256(data).hexdigest(), len(data)) == (sha, size)
            assert _staging_left(database) == []  # getscu's private folder is gone
        finally:
            database.dispose()
    assert rows["dcmtk"] == rows["pynetdicom"]  # same rows, same hashes: the same bytes on disk
    assert {r[2] for r in rows["dcmtk"]} == {ds.SOPInstanceUID for ds in study}
    stored = dcmread(tmp_path / "store-dcmtk" / rows["dcmtk"][0][5])
    original = next(ds for ds in study if ds.SOPInstanceUID == stored.SOPInstanceUID)
    assert stored.PixelData == original.PixelData


@needs_getscu
@pytest.mark.orthanc
def test_dcmtk_resume_fetches_only_what_is_missing(orthanc, pacs_studies, tmp_path) -> None:
    """Image- and series-level identifiers (one getscu association each) are held to their own scope."""
    from app.importer import ImportService

    study = pacs_studies.current_ct
    database = _open(tmp_path, "resume")
    try:
        for ds in (study[0], study[1]):
            assert ImportService(database).import_dataset(ds).status == "imported"
        result = RetrieveService(database, dimse_node(orthanc), cget_transport="dcmtk").retrieve_study(
            study[0].StudyInstanceUID)
        assert result.state == "done", result.message
        assert (result.already_present, result.imported) == (2, 4)
    finally:
        database.dispose()


def _part10(path: Path, ds: Dataset, *, meta_instance: str | None = None) -> Path:
    """A Part 10 file as getscu writes one: file meta from the C-STORE request (`meta_instance`: what a
    lying request announced), then the data set bytes."""
    ds.save_as(path, enforce_file_format=True)
    if meta_instance:
        data = path.read_bytes()
        start = _meta(data)[0]  # type: ignore[arg-type]
        path.write_bytes(_file_meta_bytes(ds.SOPClassUID, meta_instance, ds.file_meta.TransferSyntaxUID, "GETSCU")
                         + data[start:])
    return path


def test_crafted_files_are_refused_by_the_delivery_checks(tmp_path) -> None:
    store = ManagedStore(tmp_path / "store")
    outdir = tmp_path / "getscu-out"
    outdir.mkdir()
    wanted, other = make_study("P", study_uid=generate_uid(), n_instances=1), make_study("Q", n_instances=1)
    scope = RequestedScope(wanted[0].StudyInstanceUID)

    good = accept_file(_part10(outdir / "a", wanted[0]), store, scope, "C-GET from test", "ORTHANC")
    assert good.probed is not None and good.probed.header.sop_instance_uid == wanted[0].SOPInstanceUID
    assert hashlib.sha256(good.path.read_bytes()).hexdigest() == good.sha256
    assert dcmread(good.path).file_meta.SourceApplicationEntityTitle == "ORTHANC"
    good.discard()

    cases = [
        (_part10(outdir / "b", other[0]), STATUS_NOT_AUTHORIZED, "not the requested study"),
        (_part10(outdir / "c", wanted[0], meta_instance=generate_uid()), STATUS_DOES_NOT_MATCH,
         "not the one announced"),
    ]
    bad = outdir / "d"
    bad.write_bytes(b"\0" * 128 + b"NOPE" + b"\1" * 300)
    cases.append((bad, STATUS_CANNOT_UNDERSTAND, "no DICOM file meta"))
    series_scope = RequestedScope(wanted[0].StudyInstanceUID, frozenset({"1.2.3"}))
    for path, status, words in cases:
        with pytest.raises(RefusedInstance) as caught:
            accept_file(path, store, scope, "C-GET from test", "ORTHANC")
        assert caught.value.status == status and words in str(caught.value)
        assert not path.exists()
    with pytest.raises(RefusedInstance, match="series .* which was not requested"):
        accept_file(_part10(outdir / "e", wanted[0]), store, series_scope, "C-GET from test", "ORTHANC")
    assert sorted(store.staging.iterdir()) == []  # nothing of a refused file is kept


def _element(elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit-VR little-endian group 0002 element."""
    if vr in (b"OB", b"UN"):
        return struct.pack("<HH2sHL", 0x0002, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, elem, vr, len(value)) + value


def _uid(text: str) -> bytes:
    raw = text.encode()
    return raw + b"\0" * (len(raw) % 2)


def _getscu_file(path: Path, ds: Dataset, *, ends_at: int | None = None, after: bytes = b"") -> tuple[Path, bytes]:
    """A Part 10 file with a hand-made meta group: a long (0002,0102) element ending at byte `ends_at`, then
    `after` (more meta elements), then the data set's bytes. Returns (path, data set bytes)."""
    data = _part10(path, ds).read_bytes()
    body = data[_meta(data)[0]:]  # type: ignore[arg-type]
    elems = (_element(0x0001, b"OB", b"\0\1") + _element(0x0002, b"UI", _uid(ds.SOPClassUID))
             + _element(0x0003, b"UI", _uid(ds.SOPInstanceUID))
             + _element(0x0010, b"UI", _uid(ds.file_meta.TransferSyntaxUID)))
    start = 128 + 4 + 12 + len(elems)
    if ends_at is not None:
        elems += _element(0x0102, b"OB", b"\xaa" * (ends_at - start - 12))
    elems += after
    path.write_bytes(b"\0" * 128 + b"DICM" + struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(elems)) + elems + body)
    return path, body


@pytest.mark.parametrize("how", ["in memory", "mapped (large file)"])
def test_restaged_bytes_are_radstations_meta_then_the_data_set_whatever_the_meta(tmp_path, monkeypatch, how) -> None:
    """However getscu's meta is laid out (short; longer than the first read; ending right where the first
    read ends with more meta elements behind it), the staged file is RadStation's meta followed by exactly
    the data set bytes that arrived, owner-only, hashed, and getscu's file is gone."""
    if how.startswith("mapped"):
        monkeypatch.setattr(getscu_module, "IN_MEMORY_MAX", 0)
    store = ManagedStore(tmp_path / "store")
    scope = RequestedScope(STUDY_UID)
    ds = make_study("P", study_uid=STUDY_UID, n_instances=1, rows=64, columns=64)[0]
    prefix = getscu_module._PREFIX
    layouts = {
        "short meta": {},
        "meta longer than the first read": {"ends_at": prefix + 5000},
        "meta element ending where the first read ends": {"ends_at": prefix - 4,
                                                          "after": _element(0x0016, b"AE", b"GETSCU")},
    }
    expected_head = _file_meta_bytes(ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID, "ORTHANC")
    for name, layout in layouts.items():
        path, body = _getscu_file(tmp_path / name.replace(" ", "_"), ds, **layout)
        staged = accept_file(path, store, scope, "C-GET from test", "ORTHANC")
        stored = staged.path.read_bytes()
        assert stored == expected_head + body, name
        assert hashlib.sha256(stored).hexdigest() == staged.sha256 and staged.size == len(stored), name
        assert stat.S_IMODE(staged.path.stat().st_mode) == 0o600, name
        assert not path.exists(), name
        assert staged.probed is not None and staged.probed.header.sop_instance_uid == ds.SOPInstanceUID
        staged.discard()


def test_cut_or_tampered_getscu_files_are_refused_and_nothing_is_kept(tmp_path) -> None:
    """Files cut inside their meta or inside their pixel data, and a data set whose own SOP Instance UID
    differs from the meta's, are refused when read from memory as when read from the file."""
    store = ManagedStore(tmp_path / "store")
    scope = RequestedScope(STUDY_UID)
    ds = make_study("P", study_uid=STUDY_UID, n_instances=1, rows=64, columns=64)[0]
    whole, _ = _getscu_file(tmp_path / "whole", ds, ends_at=getscu_module._PREFIX + 5000)
    data = whole.read_bytes()
    cases = {
        "cut in meta": (data[: getscu_module._PREFIX + 100], STATUS_CANNOT_UNDERSTAND, "file meta"),
        "cut in pixels": (data[:-100], STATUS_CANNOT_UNDERSTAND, "truncated"),
    }
    other = copy.deepcopy(ds)
    other.SOPInstanceUID = generate_uid()
    lying = _part10(tmp_path / "lying", other, meta_instance=ds.SOPInstanceUID).read_bytes()
    cases["data set is another instance"] = (lying, STATUS_DOES_NOT_MATCH, "not the one announced")
    for name, (raw, status, words) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(raw)
        with pytest.raises(RefusedInstance) as caught:
            accept_file(path, store, scope, "C-GET from test", "ORTHANC")
        assert caught.value.status == status and words in str(caught.value), (name, str(caught.value))
        assert not path.exists(), name
    assert sorted(store.staging.iterdir()) == []


@needs_getscu
@pytest.mark.orthanc
def test_cancel_mid_retrieve_stops_getscu_and_keeps_what_arrived(orthanc, tmp_path) -> None:
    study = make_study("CANCEL-GETSCU", "CANCEL^GETSCU", n_instances=120, rows=256, columns=256, seed=9)
    uid = study[0].StudyInstanceUID
    ids = [orthanc.upload(ds) for ds in study]
    database = _open(tmp_path, "cancel")
    try:
        cancel = CancelToken()

        def progress(p: StudyProgress) -> None:
            if p.state == "running" and p.done >= 1:
                cancel.cancel()

        service = RetrieveService(database, dimse_node(orthanc), cget_transport="dcmtk")
        with pytest.raises(RetrieveCancelled):
            service.retrieve_study(uid, progress, cancel)
        kept = local_sop_uids(database, uid)
        assert 1 <= len(kept) < len(study)
        for *_, sha, _size, rel in _rows(database):
            assert hashlib.sha256(database.store_path(rel).read_bytes()).hexdigest() == sha
        assert _staging_left(database) == []
        result = service.retrieve_study(uid)
        assert result.state == "done", result.message
        assert (result.already_present, result.imported) == (len(kept), len(study) - len(kept))
    finally:
        database.dispose()
        orthanc.rest("DELETE", f"/studies/{orthanc.rest('GET', f'/instances/{ids[0]}/study')['ID']}")


@needs_getscu
@pytest.mark.orthanc
def test_getscu_failures_are_classified(orthanc, tmp_path) -> None:
    store = ManagedStore(tmp_path / "store")
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = generate_uid()
    with pytest.raises(AssociationRejectedError, match="rejected the association"):
        GetscuRetriever(dimse_node(orthanc, ae_title="NOT-ORTHANC")).get(
            [ident], store=store, on_staged=lambda *_: None)
    with pytest.raises(PacsConnectionError, match="cannot open an association"):
        GetscuRetriever(dimse_node(orthanc, port=free_port())).get([ident], store=store, on_staged=lambda *_: None)
    assert sorted(store.staging.iterdir()) == []


def test_arguments_are_validated_and_need_no_shell(tmp_path) -> None:
    from app.pacs.nodes import PacsNode

    node = PacsNode(name="n", protocol="dimse", ae_title="PACS", host="pacs.example", port=104,
                    calling_ae="RADSTATION", timeout=20)
    ident = Dataset()
    ident.QueryRetrieveLevel = "IMAGE"
    ident.StudyInstanceUID = "1.2.3"
    ident.SeriesInstanceUID = "1.2.3.4"
    ident.SOPInstanceUID = ["1.2.3.4.5", "1.2.3.4.6"]
    args = getscu_arguments("/usr/bin/getscu", node, ident, tmp_path)
    assert args[-2:] == ["pacs.example", "104"]
    assert "+B" in args and args[args.index("-aec") + 1] == "PACS" and args[args.index("-aet") + 1] == "RADSTATION"
    assert "0008,0018=1.2.3.4.5\\1.2.3.4.6" in args and "0008,0052=IMAGE" in args
    ident.SeriesInstanceUID = "1.2.3; rm -rf /"
    with pytest.raises(PacsConfigError, match="is not a UID"):
        getscu_arguments("/usr/bin/getscu", node, ident, tmp_path)
    with pytest.raises(PacsConfigError, match="cannot be passed to getscu"):
        getscu_arguments("/usr/bin/getscu", node.with_changes(calling_ae="-od /etc"), ident, tmp_path)


def test_transport_choice(monkeypatch, tmp_path) -> None:
    from app.pacs.nodes import PacsNode

    node = PacsNode(name="n", protocol="dimse", ae_title="PACS", host="127.0.0.1", port=104)
    fake_tls = node.with_changes(tls=True)
    exe = shutil.which("getscu")
    if exe is not None:
        assert choose_transport("auto", node) == "dcmtk"
        assert choose_transport("dcmtk", node) == "dcmtk"
    assert choose_transport("pynetdicom", node) == "pynetdicom"
    assert choose_transport("auto", fake_tls) == "pynetdicom" and choose_transport("dcmtk", fake_tls) == "pynetdicom"
    assert choose_transport("auto", node.with_changes(calling_ae="-X")) == "pynetdicom"
    with pytest.raises(PacsConfigError, match="one of auto, pynetdicom, dcmtk"):
        choose_transport("fast", node)
    monkeypatch.setenv("RADSTATION_GETSCU", str(tmp_path / "no-getscu"))
    assert choose_transport("auto", node) == "pynetdicom"
    with pytest.raises(PacsConfigError, match="getscu is not installed"):
        choose_transport("dcmtk", node)
    spec = BY_KEY["pacs_cget_transport"]
    assert validate(spec, "dcmtk") == "" and "one of auto, pynetdicom, dcmtk" in validate(spec, "fast")


def test_the_delayed_ack_stall_is_recognised_only_for_small_slow_files() -> None:
    ms = 1_000_000
    stalled = [(k * 44 * ms, 8_000) for k in range(STALL_FILES)]  # 8 KB every 44 ms: Nagle + delayed ACK
    assert _stalled(stalled)
    assert not _stalled(stalled[:-1])  # too few to judge
    assert not _stalled([(k * 3 * ms, 8_000) for k in range(STALL_FILES)])  # small but fast (333/s)
    assert _stalled([(k * 9 * ms, 130_000) for k in range(STALL_FILES)])  # 128 KB at 111/s: pynetdicom is faster
    assert not _stalled([(k * 44 * ms, 520_000) for k in range(STALL_FILES)])  # slow but large: the link


@needs_getscu
@pytest.mark.orthanc
def test_auto_hands_small_instances_over_to_pynetdicom_when_getscu_stalls(orthanc, tmp_path, caplog) -> None:
    """Orthanc leaves Nagle on: small instances reach getscu at the ~40 ms delayed-ACK pace. Under auto the
    getscu run gives way after STALL_FILES files and pynetdicom fetches the rest; everything arrives once."""
    study = make_study("STALL-GETSCU", "STALL^GETSCU", n_instances=3 * STALL_FILES, rows=32, columns=32, seed=5)
    uid = study[0].StudyInstanceUID
    ids = [orthanc.upload(ds) for ds in study]
    database = _open(tmp_path, "stall")
    try:
        with caplog.at_level(logging.INFO, logger="app.pacs.retrieve"):
            result = RetrieveService(database, dimse_node(orthanc), cget_transport="auto").retrieve_study(uid)
        assert result.state == "done", result.message
        assert (result.imported, result.duplicates, result.failed) == (len(study), 0, 0)
        assert any("delayed-ACK pace" in r.getMessage() for r in caplog.records)
        assert local_sop_uids(database, uid) == {ds.SOPInstanceUID for ds in study}
        assert _staging_left(database) == []
    finally:
        database.dispose()
        orthanc.rest("DELETE", f"/studies/{orthanc.rest('GET', f'/instances/{ids[0]}/study')['ID']}")


def test_settings_dialog_offers_the_transports_and_saves_the_choice(qtbot, tmp_path) -> None:
    import json

    from PySide6.QtCore import Qt

    from app.settings import Settings
    from app.widgets.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(tmp_path / "settings.json"))
    qtbot.addWidget(dialog)
    dialog.show()
    combo = dialog.editors["pacs_cget_transport"]
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "pynetdicom", "dcmtk"]
    assert combo.currentText() == "auto" and not combo.isEditable()
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_End)  # the last choice: dcmtk
    assert combo.currentText() == "dcmtk"
    assert dialog.save()
    assert json.loads((tmp_path / "settings.json").read_text())["pacs_cget_transport"] == "dcmtk"
