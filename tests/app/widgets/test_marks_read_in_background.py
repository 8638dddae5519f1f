"""A study switch reads the image's measurements and the study's "Of Interest" flags from the database off the
GUI thread (issue 26: 20-50 ms each on the GUI thread per switch): the image shows at once, the stored shapes
and marks when read, and what the reader drew or flagged meanwhile survives next to them, in the database too."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from PySide6.QtCore import Qt

from app.db.database import Database
from app.db.interest_store import DbInterestStore
from app.db.measurement_store import DbMeasurementStore
from tests.support.input_events import drag
from tests.support.widget_samples import STUDY_UID, write_ct_series
from viewer.io.refs import StudyRef
from viewer.measure.shapes import Distance
from viewer.presentation.interest import interest_ref
from viewer.widgets.background import pending_jobs
from viewer.widgets.workspace import ViewerWorkspace

pytestmark = pytest.mark.gui
TIMEOUT = 20000


class _HeldMeasurements(DbMeasurementStore):
    """The database store, its reads held until `gate` opens (a busy database under load)."""

    def __init__(self, database: Database, gate: threading.Event) -> None:
        super().__init__(database)
        self.gate = gate

    def load(self, sop_instance_uid: str):  # type: ignore[no-untyped-def]
        self.gate.wait(30)
        return super().load(sop_instance_uid)


class _HeldInterest(DbInterestStore):
    def __init__(self, database: Database, gate: threading.Event) -> None:
        super().__init__(database)
        self.gate = gate

    def load(self, study_uid: str):  # type: ignore[no-untyped-def]
        self.gate.wait(30)
        return super().load(study_uid)


def test_shapes_and_flags_arrive_after_the_image_and_edits_made_meanwhile_survive(qtbot, db: Database,
                                                                                  tmp_path: Path) -> None:
    s1 = write_ct_series(tmp_path / "s1", n=4, number=1, desc="Axial")
    s2 = write_ct_series(tmp_path / "s2", n=3, number=2, desc="Coronal")
    study = StudyRef(STUDY_UID, "Doe^Jane", "PID-4711", "20250102", "ACC99", "CT CHEST", (s1, s2))
    gate = threading.Event()
    ws = ViewerWorkspace(measurement_store=_HeldMeasurements(db, gate), interest_store=_HeldInterest(db, gate))
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    try:
        ws.open_study(study)
        vp = ws.active_viewport()
        image = vp.current_image()
        assert image is not None  # shown before anything was read from the database
        assert vp.measurements_model.reading and not ws.interest_ready()
        # stored earlier (another session): a measurement on this image, a flag on an image of the other series
        other = interest_ref(dcmread(s2.paths[0], stop_before_pixels=True))
        DbMeasurementStore(db).save(image.sop_instance_uid, [Distance(p0=(5, 5), p1=(40, 5), label="stored").to_dict()])
        DbInterestStore(db).set(other, True)
        # meanwhile the reader measures and flags the image on screen, with keys and the mouse
        vp.setFocus()
        qtbot.keyClick(vp, Qt.Key.Key_D)
        drag(vp, (300.0, 250.0), (500.0, 250.0))
        qtbot.keyClick(vp, Qt.Key.Key_K)
        assert [m.kind for m in vp.measurements()] == ["distance"] and vp.is_of_interest()
        assert [m["label"] for m in DbMeasurementStore(db).load(image.sop_instance_uid)] == ["stored"]  # not replaced
        gate.set()
        qtbot.waitUntil(lambda: not vp.measurements_model.reading and ws.interest_ready(), timeout=TIMEOUT)
        labels = [getattr(m, "label", "") for m in vp.measurements()]
        assert labels[0] == "stored" and len(labels) == 2  # the stored shape, then the one drawn meanwhile
        assert len(DbMeasurementStore(db).load(image.sop_instance_uid)) == 2  # both in the database
        assert vp.is_of_interest()  # the K pressed meanwhile is kept
        assert {r.sop_instance_uid for r in ws.interest_flags()} == {image.sop_instance_uid, other.sop_instance_uid}
        assert {r.sop_instance_uid for r in DbInterestStore(db).load(STUDY_UID)} == \
            {image.sop_instance_uid, other.sop_instance_uid}
        assert ws.thumbnails._key_counts == {s1.series_uid: 1, s2.series_uid: 1}
        qtbot.keyClick(vp, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo takes back only the drawn one
        assert [getattr(m, "label", "") for m in vp.measurements()] == ["stored"]
        assert [m["label"] for m in DbMeasurementStore(db).load(image.sop_instance_uid)] == ["stored"]
    finally:
        gate.set()
        qtbot.waitUntil(lambda: pending_jobs() == 0 and not ws.active_viewport().is_loading(), timeout=TIMEOUT)


def test_a_study_switched_away_from_drops_its_late_reads(qtbot, db: Database, tmp_path: Path) -> None:
    first = write_ct_series(tmp_path / "a", n=2, number=1, desc="A")
    gate = threading.Event()
    ws = ViewerWorkspace(measurement_store=_HeldMeasurements(db, gate), interest_store=_HeldInterest(db, gate))
    qtbot.addWidget(ws)
    ws.resize(900, 600)
    ws.show()
    try:
        ws.open_study(StudyRef(STUDY_UID, "Doe^Jane", "PID", "20250102", "ACC1", "CT", (first,)))
        uid = ws.active_viewport().current_image().sop_instance_uid
        DbMeasurementStore(db).save(uid, [Distance(p0=(1, 1), p1=(9, 1), label="A's").to_dict()])
        DbInterestStore(db).set(interest_ref(dcmread(first.paths[0], stop_before_pixels=True)), True)
        second = write_ct_series(tmp_path / "b", n=2, number=1, desc="B")
        ws.open_study(StudyRef("1.2.826.0.1.99", "Roe^Rick", "PID2", "20250103", "ACC2", "CT", (second,)))
        gate.set()
        vp = ws.active_viewport()
        qtbot.waitUntil(lambda: pending_jobs() == 0 and ws.interest_ready() and not vp.measurements_model.reading,
                        timeout=TIMEOUT)
        assert vp.measurements() == [] and ws.interest_flags() == [] and not vp.is_of_interest()
    finally:
        gate.set()
        qtbot.waitUntil(lambda: pending_jobs() == 0 and not ws.active_viewport().is_loading(), timeout=TIMEOUT)
