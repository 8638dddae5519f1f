"""Keeping studies on this workstation and the Local image cache view, driven by clicks: the worklist's
"Keep on this workstation" / "Allow removal" with its marker, pins that survive a restart, and "Remove from
this workstation" refused (with the reason) for the open study, a kept one and one whose report is a draft.
No PACS is contacted: every study here is local (the archive node only makes the store a cache)."""

from __future__ import annotations

import datetime as dt
import re
from datetime import date

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from sqlalchemy import update

from app.archive.fetch import missing_instances
from app.db.models import Study
from app.importer import ImportService
from app.pacs.nodes import NodeStore, PacsNode
from app.settings import Settings
from app.widgets.worklist import COLUMNS, KEPT_MARK, KEPT_ROLE
from tests.support.synthetic_dicom import SyntheticStudy, write_series

pytestmark = pytest.mark.usefixtures("home")


@pytest.fixture
def studies(db, tmp_path):  # type: ignore[no-untyped-def]
    """Three local studies: kept (X), open (Y), report in draft (Z)."""
    uids = {}
    for key, name in (("X", "KEEP^XAVIER"), ("Y", "OPEN^YVONNE"), ("Z", "DRAFT-CARDIOMEGALY^ZOE ELIZABETH")):
        study = SyntheticStudy(name, f"P-{key}", date(2026, 12, 1))
        write_series(tmp_path / key, study, 2)
        assert ImportService(db).run([tmp_path / key]).imported == 2
        uids[key] = study.study_uid
    db.run_write(lambda s: s.execute(update(Study).where(Study.study_uid == uids["Z"]).values(report_status="draft")))
    return uids


def _window(qtbot, db, monkeypatch, said: list[str]):  # type: ignore[no-untyped-def]
    from app.main_window import MainWindow

    NodeStore().save_all([PacsNode(name="archive", protocol="dicomweb", url="http://127.0.0.1:9/dicom-web")])
    settings = Settings()
    settings.set("archive", {"node": "archive", "cache_limit_gb": 50})
    settings.set("kiosk_mode", True)
    settings.save()
    for kind in ("information", "warning"):
        monkeypatch.setattr(QMessageBox, kind, lambda *args, **kw: said.append(str(args[2])))
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: QMessageBox.StandardButton.Yes)
    window = MainWindow(db)
    qtbot.addWidget(window)
    window.show()
    window.tabs.setCurrentWidget(window.worklist)
    qtbot.waitExposed(window)
    window.worklist.refresh()
    return window


def _row(worklist, uid: str) -> int:  # type: ignore[no-untyped-def]
    return next(i for i, r in enumerate(worklist.model.rows) if r.study_uid == uid)


def _menu_click(qtbot, worklist, uid: str, label: str) -> None:  # type: ignore[no-untyped-def]
    """Right-click the study's row, click `label` in the menu."""
    rect = worklist.table.visualRect(worklist.model.index(_row(worklist, uid), 0))
    worklist.table.customContextMenuRequested.emit(rect.center())
    menu = worklist.context_menu
    labels = [a.text() for a in menu.actions()]
    assert label in labels, labels
    action = menu.actions()[labels.index(label)]
    qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(action).center())


def _click_row(qtbot, dialog, uid: str) -> None:  # type: ignore[no-untyped-def]
    r = next(i for i, row in enumerate(dialog.listing.rows) if row.study_uid == uid)
    rect = dialog.table.visualItemRect(dialog.table.item(r, 0))
    qtbot.mouseClick(dialog.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dialog.selected_uid() == uid


def _listed(qtbot, dialog) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: dialog.listing is not None and not dialog.busy(), timeout=30000)


def test_keep_allow_and_remove_by_clicks_with_reasons_and_pins_that_survive_a_restart(
        qtbot, db, studies, monkeypatch) -> None:
    said: list[str] = []
    window = _window(qtbot, db, monkeypatch, said)
    wl = window.worklist
    x, y, z = studies["X"], studies["Y"], studies["Z"]

    _menu_click(qtbot, wl, x, "Keep on this workstation")
    qtbot.waitUntil(lambda: x in wl.model.kept, timeout=30000)
    index = wl.model.index(_row(wl, x), [c.sort_key for c in COLUMNS].index("images"))
    assert KEPT_MARK in wl.model.data(index) and wl.model.data(index, KEPT_ROLE)
    assert not wl.model.data(wl.model.index(_row(wl, y), 0), KEPT_ROLE)

    assert window.open_study(y)
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.thumbnails.icons_ready() and ws.study_objects_ready(), timeout=30000)

    window.actions_by_name["image_cache"].trigger()  # Tools > Local image cache
    dialog = window.image_cache_dialog
    _listed(qtbot, dialog)
    assert {r.study_uid for r in dialog.listing.rows} == {x, y, z}
    assert "Cache limit 50.0 GB; in use" in dialog.summary.text() and "3 studies" in dialog.summary.text()
    kept = {r.study_uid: r.kept for r in dialog.listing.rows}
    assert kept[x] and not kept[y] and not kept[z]
    assert dialog.listing.rows[0].study_uid == y  # opened last: listed first, with its last-opened time
    assert dialog.table.item(0, 4).text() and all(r.size > 0 for r in dialog.listing.rows)
    # dates as everywhere in the app ("01 Dec 2026", "07 Dec 2026 08:15"), names and dates never clipped
    assert dialog.table.item(0, 1).text() == "01 Dec 2026"
    assert re.fullmatch(r"\d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}", dialog.table.item(0, 4).text())
    metrics = dialog.table.fontMetrics()
    for column in (0, 1, 4):
        widest = max(metrics.horizontalAdvance(dialog.table.item(r, column).text()) for r in range(3))
        assert dialog.table.columnWidth(column) >= widest, (column, dialog.table.columnWidth(column), widest)

    for uid, why in ((y, "it is open in the viewer"), (x, "kept on this workstation"),
                     (z, "its report is draft")):
        _click_row(qtbot, dialog, uid)
        qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
        assert said and said[-1].startswith("Not removed:") and why in said[-1], said
        assert dialog.controller.cache.holds(uid)
    assert dialog.keep_button.isEnabled() and not dialog.allow_button.isEnabled()  # Z (last clicked) is not kept
    _click_row(qtbot, dialog, x)
    assert not dialog.keep_button.isEnabled() and dialog.allow_button.isEnabled()
    qtbot.mouseClick(dialog.allow_button, Qt.MouseButton.LeftButton)
    _listed(qtbot, dialog)
    assert not {r.study_uid: r.kept for r in dialog.listing.rows}[x]
    _click_row(qtbot, dialog, x)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)  # now it may go
    qtbot.waitUntil(lambda: dialog.listing is not None and not dialog.busy()
                    and x not in {r.study_uid for r in dialog.listing.rows}, timeout=30000)
    assert not dialog.controller.cache.holds(x) and len(missing_instances(db, x)) == 2  # listed, fetched on open
    assert "2 studies" in dialog.summary.text()

    _click_row(qtbot, dialog, z)  # keep Z, from the cache view this time
    qtbot.mouseClick(dialog.keep_button, Qt.MouseButton.LeftButton)
    _listed(qtbot, dialog)
    assert {r.study_uid: r.kept for r in dialog.listing.rows}[z]
    dialog.accept()
    qtbot.waitUntil(lambda: z in wl.model.kept and x not in wl.model.kept, timeout=30000)
    window.close()

    restarted = _window(qtbot, db, monkeypatch, said)  # a restart: the pin is in the database
    assert restarted.worklist.model.kept == {z}
    _menu_click(qtbot, restarted.worklist, z, "Allow removal")
    qtbot.waitUntil(lambda: not restarted.worklist.model.kept, timeout=30000)
    assert restarted._archive.pinned_uids() == set()


def test_without_an_archive_there_is_no_cache_to_manage(qtbot, db, studies, monkeypatch) -> None:
    from app.main_window import MainWindow

    settings = Settings()
    settings.set("kiosk_mode", True)
    settings.save()
    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda *args, **kw: said.append(str(args[2])))
    window = MainWindow(db)
    qtbot.addWidget(window)
    window.show()
    window.worklist.refresh()
    assert window.show_image_cache() is None and "not a cache" in said[0]
    wl = window.worklist
    rect = wl.table.visualRect(wl.model.index(0, 0))
    wl.table.customContextMenuRequested.emit(rect.center())
    labels = [a.text() for a in wl.context_menu.actions()]
    assert "Keep on this workstation" not in labels and "Allow removal" not in labels


def test_last_opened_reads_like_every_other_date_in_the_app() -> None:
    from app.formatting import format_datetime
    from app.widgets.image_cache import opened_text

    moment = dt.datetime(2026, 12, 7, 7, 22, tzinfo=dt.UTC)
    assert opened_text(moment.timestamp()) == format_datetime(moment)  # local time, "07 Dec 2026 HH:MM"
    assert opened_text(moment.timestamp()).startswith("07 Dec 2026 ")
    assert opened_text(0) == ""  # never opened
