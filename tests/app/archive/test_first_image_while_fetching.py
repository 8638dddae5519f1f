"""Fetch on open shows the first image before the rest of the study has arrived (real Orthanc, two
workstations on one database). The fetch itself is the real one; the tests only hold back the placing of
every file after the first (`_place` waits on an Event) so that "before the fetch finished" is a fact of
the test rather than a race: the first paint is recorded with the number of files on disk at that moment."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from test_fetch_on_open import _import_on_a, _node, _orthanc_id

import app.archive.fetch as fetch_module
from app.archive.fetch import missing_instances
from app.pacs.nodes import NodeStore
from app.settings import Settings
from viewer.widgets.viewport import ARRIVING

pytestmark = pytest.mark.orthanc

SQLITE = pytest.mark.parametrize("db_backend", ["sqlite"])


@pytest.fixture
def held_fetch(monkeypatch):
    """Every file after the first waits until `release` is set (set at teardown whatever happens)."""
    release = threading.Event()
    real_place = fetch_module._place
    calls = {"n": 0}

    def place(store, staged, by_sop, placed):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 1:
            release.wait(60)
        return real_place(store, staged, by_sop, placed)

    monkeypatch.setattr(fetch_module, "_place", place)
    yield release
    release.set()


def _window(qtbot, b, orthanc, monkeypatch):  # type: ignore[no-untyped-def]
    from app.main_window import MainWindow

    NodeStore().save_all([_node(orthanc)])
    settings = Settings()
    settings.set("archive", {"node": "archive", "cache_limit_gb": 0})
    settings.set("kiosk_mode", True)  # no log-in screen over the viewer: the first image is painted
    settings.save()
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args, **kw: warnings.append(str(args[2])))
    window = MainWindow(b)
    qtbot.addWidget(window)
    window.show()
    return window, warnings


def _files_here(db, uid: str) -> int:  # type: ignore[no-untyped-def]
    return len(list((db.store_dir / uid).rglob("*.dcm"))) if (db.store_dir / uid).is_dir() else 0


def _settle(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """Background work the open study started (series icons, presentation states, the AI's image read) is done."""
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.thumbnails.icons_ready() and not ws.thumbnails.waiting_for_files()
                    and ws.study_objects_ready() and not any(vp.is_loading() for vp in ws.viewports())
                    and (window._images_runner is None or not window._images_runner.busy()), timeout=60000)


@SQLITE
def test_the_first_image_is_shown_before_the_fetch_has_finished(qtbot, orthanc, two_workstations, tmp_path,
                                                                 monkeypatch, held_fetch) -> None:
    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.78.1"
    study = _import_on_a(a, orthanc, tmp_path, uid, n_series=2, n=3)
    window, warnings = _window(qtbot, b, orthanc, monkeypatch)
    order: list[str] = []
    at_first_paint: list[int] = []
    window._archive.fetched.connect(lambda *_: order.append("fetched"))

    def painted(quality: str) -> None:
        if not at_first_paint:
            at_first_paint.append(_files_here(b, uid))
            order.append("first paint")

    window.workspace.active_viewport().imageShown.connect(painted)
    assert not window.open_study(uid)  # nothing here yet: fetching, the window stays usable
    qtbot.waitUntil(lambda: bool(at_first_paint), timeout=60000)

    # the first image is on screen while only it has arrived and the fetch is still running
    assert at_first_paint == [1] and order == ["first paint"]
    assert window._archive.is_fetching(uid) and window.study is not None and window.study.study_uid == uid
    vp = window.workspace.active_viewport()
    assert vp.current_image() is not None and vp.current_image().sop_instance_uid == study[0].SOPInstanceUID
    assert window._fetch_bar.isVisible() and window._fetch_bar.value() == 1
    assert window._fetch_bar.maximum() == len(study)
    # the next image is not here yet: it says so, it is not an error
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    assert vp.current_image() is None and vp.message() == ARRIVING
    qtbot.waitUntil(window.workspace.thumbnails.icons_ready, timeout=30000)  # the icons' background reads ended
    assert window.workspace.thumbnails.waiting_for_files()  # series icons wait for their files
    assert "arrive from the archive" in window.ai_panel.images_label.text()  # the AI waits for the whole study
    assert window._images_runner is None or not window._images_runner.busy()

    with qtbot.waitSignal(window._archive.fetched, timeout=60000):
        held_fetch.set()
    assert order == ["first paint", "fetched"] and not warnings, warnings
    assert not missing_instances(b, uid) and _files_here(b, uid) == len(study)
    # the image that was arriving is shown now, in the same viewport, without reopening the study
    assert vp.state.slice_index == 1 and vp.current_image() is not None
    assert vp.current_image().sop_instance_uid == study[1].SOPInstanceUID
    assert not window._fetch_bar.isVisible() and not window.workspace.arriving()
    _settle(qtbot, window)
    qtbot.waitUntil(lambda: len(window._study_images) == len(study), timeout=60000)  # the AI reads them all now


@SQLITE
def test_a_refused_file_is_named_and_what_arrived_stays_shown(qtbot, orthanc, two_workstations, tmp_path,
                                                              monkeypatch, held_fetch) -> None:
    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.78.2"
    study = _import_on_a(a, orthanc, tmp_path, uid, n_series=1, n=3)
    victim = study[1].SOPInstanceUID  # the archive now holds other bytes for the second (the series' icon)
    orthanc.rest("DELETE", f"/instances/{_orthanc_id(orthanc, victim)}")
    forged = study[1].copy()
    forged.PatientName = "SOMEONE^ELSE"
    orthanc.upload(forged)
    window, warnings = _window(qtbot, b, orthanc, monkeypatch)
    assert not window.open_study(uid)
    qtbot.waitUntil(lambda: window.study is not None, timeout=60000)
    with qtbot.waitSignal(window._archive.failed, timeout=60000):
        held_fetch.set()
    assert len(warnings) == 1 and victim in warnings[0] and "other bytes" in warnings[0]
    assert window.study is not None and window.study.study_uid == uid  # still open, nothing lost
    assert [m.sop_uid for m in missing_instances(b, uid)] == [victim]
    vp = window.workspace.active_viewport()
    qtbot.keyClick(vp, Qt.Key.Key_Down)  # the refused one: named as missing, no longer "arriving"
    assert vp.current_image() is None and vp.message().startswith("Cannot display:")
    assert "not on this workstation" in vp.message()
    qtbot.keyClick(vp, Qt.Key.Key_Down)
    assert vp.current_image() is not None and vp.current_image().sop_instance_uid == study[2].SOPInstanceUID
    strip = window.workspace.thumbnails  # its icon no longer waits: it says why there is none
    assert not strip.waiting_for_files()
    assert "not on this workstation" in strip.item(0).toolTip()
    _settle(qtbot, window)


@SQLITE
def test_opening_another_study_cancels_the_fetch_and_keeps_what_arrived(qtbot, orthanc, two_workstations,
                                                                        tmp_path, monkeypatch, held_fetch) -> None:
    a, b = two_workstations
    uid = "1.2.826.0.1.3680043.10.1138.78.3"
    study = _import_on_a(a, orthanc, tmp_path, uid, n_series=1, n=4)
    local = "1.2.826.0.1.3680043.10.1138.78.4"
    _import_on_a(b, orthanc, tmp_path, local, n_series=1, n=1)  # a study that is on B already
    window, warnings = _window(qtbot, b, orthanc, monkeypatch)
    assert not window.open_study(uid)
    qtbot.waitUntil(lambda: window.study is not None, timeout=60000)
    worker = window._archive._worker
    assert worker is not None
    assert window.open_study(local)  # the reader moved on: the fetch stops
    assert not window._archive.is_fetching() and window.study.study_uid == local
    assert not window._fetch_bar.isVisible()
    held_fetch.set()
    qtbot.waitUntil(lambda: not worker.running(), timeout=60000)  # ended; what it reported is dropped
    assert not warnings, warnings  # cancelling is not an error to show
    assert not window._fetch_bar.isVisible() and window.study.study_uid == local
    here = _files_here(b, uid)
    assert 1 <= here < len(study)  # what arrived is kept (the one being placed when cancelled may be too)
    assert len(missing_instances(b, uid)) == len(study) - here
    _settle(qtbot, window)
