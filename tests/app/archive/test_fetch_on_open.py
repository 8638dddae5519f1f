"""Two workstations, one database, one Orthanc: a study imported on A is listed on B without its files, and
B fetches them from the PACS on open (first image first), byte-identical to A's; bytes the PACS alters are
refused; an evicted study comes back the same way; a PACS that is down is one clear sentence."""

from __future__ import annotations

import pytest

from app.archive.cache import StudyCache
from app.archive.fetch import FetchError, fetch_study, missing_instances
from app.db.database import Database
from app.importer import ImportService
from app.pacs.nodes import PacsNode
from tests.support.orthanc_fixture import OrthancServer, make_study

pytestmark = pytest.mark.orthanc


BOTH = pytest.mark.parametrize("db_backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])


def _import_on_a(a: Database, orthanc: OrthancServer, tmp_path, uid: str, n_series: int = 2, n: int = 3) -> list:
    study = make_study("ARCH-1", "ARCHIVE^TEST", study_uid=uid, n_series=n_series, n_instances=n, seed=7)
    src = tmp_path / f"src-{uid}"
    src.mkdir()
    for k, ds in enumerate(study):
        ds.save_as(src / f"{k}.dcm", enforce_file_format=True)
    report = ImportService(a).run([src])
    assert report.imported == len(study)
    for path in sorted((a.store_dir / uid).rglob("*.dcm")):  # A's archive copy: the very bytes A stored
        orthanc.upload(path)
    return study


def _node(orthanc: OrthancServer) -> PacsNode:
    return PacsNode(name="archive", protocol="dicomweb", url=orthanc.dicomweb_url, timeout=10)


@BOTH
def test_b_fetches_a_study_imported_on_a_first_image_first(orthanc, two_workstations, tmp_path) -> None:
    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.77.1"
    study = _import_on_a(a, orthanc, tmp_path, uid)
    missing = missing_instances(b, uid)
    assert len(missing) == len(study) and not missing_instances(a, uid)  # listed on B, files only on A
    seen: list[tuple[int, int]] = []
    result = fetch_study(b, _node(orthanc), uid, lambda done, total, _msg: seen.append((done, total)))
    assert result.complete and result.placed == len(study) and not missing_instances(b, uid)
    assert seen[0] == (0, len(study)) and seen[1] == (1, len(study)) and seen[-1] == (len(study), len(study))
    first = missing[0]  # the first image (lowest series and instance number) arrived first
    assert first.order[:2] == min(m.order[:2] for m in missing)
    for m in missing:
        assert b.store_path(m.file_path).read_bytes() == a.store_path(m.file_path).read_bytes()
    assert fetch_study(b, _node(orthanc), uid).expected == 0  # nothing left to fetch

    cache = StudyCache(b.store_dir, limit_bytes=1)  # evicted on B: listed still, fetched again on open
    assert [s.study_uid for s in cache.evict()] == [uid] and len(missing_instances(b, uid)) == len(study)
    assert fetch_study(b, _node(orthanc), uid).complete

    # read and sign on B: the report is in the shared database, visible to A at once
    from app.reports.service import ReportService
    from app.reports.users import UserService
    from tests.support.reports_testing import FAST_HASHER, PASSWORD, ReportEnv, make_user

    users = UserService(b, hasher=FAST_HASHER)
    rad = make_user(ReportEnv(b, users, ReportService(b, users), tmp_path / "home", uid), "radb", "radiologist")
    service_b = ReportService(b, users)
    version = service_b.open_or_create(uid, rad)
    service_b.save_draft(version.id, {"findings": "Fetched on B and read there.", "impression": "Normal."}, rad)
    signed = service_b.sign(version.id, rad, PASSWORD)
    assert signed.is_signed
    on_a = ReportService(a, UserService(a, hasher=FAST_HASHER)).working_version(uid)
    assert on_a is not None and on_a.is_signed and on_a.id == signed.id


def test_altered_bytes_from_the_pacs_are_refused(orthanc, two_workstations, tmp_path) -> None:
    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.77.2"
    study = _import_on_a(a, orthanc, tmp_path, uid, n_series=1, n=2)
    victim = study[1].SOPInstanceUID
    orthanc.rest("DELETE", f"/instances/{_orthanc_id(orthanc, victim)}")
    forged = study[1].copy()
    forged.PatientName = "SOMEONE^ELSE"  # same UIDs, other content
    orthanc.upload(forged)
    result = fetch_study(b, _node(orthanc), uid)
    assert result.placed == 1 and not result.complete
    assert len(result.refused) == 1 and f"other bytes for instance {victim}" in result.refused[0]
    assert [m.sop_uid for m in missing_instances(b, uid)] == [victim]  # nothing forged was kept
    assert "1 refused" in result.message


def test_pacs_down_is_one_clear_sentence(two_workstations, tmp_path, orthanc) -> None:
    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.77.3"
    _import_on_a(a, orthanc, tmp_path, uid, n_series=1, n=1)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = PacsNode(name="gone", protocol="dicomweb", url=f"http://127.0.0.1:{s.getsockname()[1]}/dicom-web",
                        timeout=3)
    with pytest.raises(FetchError, match=f"cannot fetch study {uid} from .*gone"):
        fetch_study(b, dead, uid)
    assert len(missing_instances(b, uid)) == 1


def _orthanc_id(orthanc: OrthancServer, sop_uid: str) -> str:
    found = orthanc.rest("POST", "/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}})
    return found[0]


@BOTH
def test_opening_a_study_on_b_fetches_it_in_the_background_then_shows_it(qtbot, orthanc, two_workstations,
                                                                         tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow
    from app.pacs.nodes import NodeStore
    from app.settings import Settings

    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.77.4"
    study = _import_on_a(a, orthanc, tmp_path, uid, n_series=1, n=2)
    NodeStore().save_all([_node(orthanc)])
    settings = Settings()
    settings.set("archive", {"node": "archive", "cache_limit_gb": 1})
    settings.save()
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args, **kw: shown.append(args[2]))
    window = MainWindow(b)
    qtbot.addWidget(window)
    window.show()
    assert not window.open_study(uid)  # not here yet: fetching, the window stays usable
    assert "Fetching study" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.study is not None, timeout=60000)  # open on the first image
    qtbot.waitUntil(lambda: not window._archive.is_fetching(), timeout=60000)  # the rest arrive meanwhile
    assert not shown, shown
    image = window.workspace.current_image()
    assert image is not None and image.study_uid == uid
    assert not missing_instances(b, uid) and len(list((b.store_dir / uid).rglob("*.dcm"))) == len(study)
    assert window._archive.cache.studies()[-1].study_uid == uid  # most recently used
    # the cache is trimmed off the GUI thread on open, never the open study: with a tiny limit only it stays
    window._archive.cache.limit_bytes = 1
    other = "1.2.826.0.1.3680043.10.1138.77.5"
    _import_on_a(b, orthanc, tmp_path, other, n_series=1, n=1)  # a study that came in on B itself
    trim = window._archive.opened(uid)
    assert trim is not None
    trim.join(30)
    assert window._archive.cache.holds(uid) and not window._archive.cache.holds(other)
    ws = window.workspace  # the open study's background work (series icons, presentation states) ends first
    qtbot.waitUntil(lambda: ws.thumbnails.icons_ready() and ws.study_objects_ready(), timeout=30000)
