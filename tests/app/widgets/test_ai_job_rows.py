"""Draft job rows as the radiologist sees them: named by patient and accession (as the worklist shows them),
never by a hash, and "Cancel batch" stops what is left without turning rows that finished into cancelled
ones. A real worker process runs the tiny LLaVA backend on the demo studies' database rows."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from app.ai.drafting import DraftService
from app.ai.engine_client import EngineClient
from app.ai.study_images import StudyImage
from app.db.models import Study
from app.demo_studies import demo_study_uids, ensure_demo_imported
from app.formatting import person_name
from app.settings import Settings
from app.widgets.ai_panel import AiPanel
from tests.support.tiny_backends import build_tiny_llava

TIMEOUT = 60_000


def _images(seed: int) -> list[StudyImage]:
    rng = np.random.default_rng(seed)
    return [StudyImage(rng.integers(0, 4095, (64, 64), dtype=np.uint16), f"1.9.{seed}.1", "DX", "PA", "PA")]


@pytest.fixture
def panel(qtbot, db, tmp_path):
    ensure_demo_imported(db)
    model = build_tiny_llava(tmp_path / "tiny-llava")
    client = EngineClient("hf-vlm", {"path": str(model), "device": "cpu", "threads": 1, "max_new_tokens": 8})
    widget = AiPanel(client, DraftService(client, db), Settings(tmp_path / "settings.json"))
    qtbot.addWidget(widget)
    widget.resize(460, 560)
    widget.show()
    yield widget
    client.shutdown()


def test_rows_are_named_by_patient_and_cancel_batch_keeps_finished_rows(qtbot, panel, db) -> None:
    uids = demo_study_uids()[:3]
    with db.session() as s:
        studies = {st.study_uid: (person_name(st.patient.name), st.accession)
                   for st in s.scalars(select(Study).where(Study.study_uid.in_(uids)))}
    panel.drafts.steps = 4000  # long enough to cancel the later ones while they wait or run
    with qtbot.waitSignal(panel.drafts.draftReady, timeout=TIMEOUT) as first:
        panel.drafts.steps = 8
        jobs = panel.pre_draft([(uids[0], _images(1))])
    assert first.args[0] == uids[0]
    labels = [panel.rows[j].label.text() for j in jobs]
    name, accession = studies[uids[0]]
    assert name and name in labels[0] and (not accession or accession in labels[0])
    assert uids[0] not in labels[0] and uids[0][-16:] not in labels[0]  # not a UID or a hash

    panel.drafts.steps = 4000
    done_row = panel.rows[jobs[0]]
    assert done_row.state == "done"
    later = panel.pre_draft([(uids[1], _images(2)), (uids[2], _images(3))])
    with qtbot.waitSignal(panel.client.progress, timeout=TIMEOUT):
        pass
    assert panel.batch_cancel.isVisible()
    with qtbot.waitSignal(panel.drafts.batchFinished, timeout=TIMEOUT) as finished:
        qtbot.mouseClick(panel.batch_cancel, Qt.MouseButton.LeftButton)
    assert finished.args == [0, 2]
    assert {panel.rows[j].state for j in later} == {"cancelled"}
    assert done_row.state == "done"  # the earlier finished draft keeps its done state
    assert "cancelled" in panel.batch_label.text()


def test_cancel_batch_mid_way_never_marks_a_finished_draft_cancelled(qtbot, panel) -> None:
    """Short drafts: some finish before the click lands. Each row ends done (it produced a draft) or
    cancelled, and the done ones are exactly the drafts that arrived."""
    uids = demo_study_uids()[:3]
    panel.drafts.steps = 8
    arrived: list[str] = []
    ended: list[tuple[int, int]] = []
    panel.drafts.draftReady.connect(lambda uid, _draft: arrived.append(uid))
    panel.drafts.batchFinished.connect(lambda drafted, failed: ended.append((drafted, failed)))
    jobs = panel.pre_draft([(uid, _images(i)) for i, uid in enumerate(uids)])
    qtbot.waitUntil(lambda: bool(arrived), timeout=TIMEOUT)
    if panel.batch_cancel.isVisible():
        qtbot.mouseClick(panel.batch_cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(ended), timeout=TIMEOUT)
    states = [panel.rows[j].state for j in jobs]
    assert set(states) <= {"done", "cancelled"}
    assert states.count("done") == len(arrived) == ended[0][0] >= 1
    assert states[0] == "done"
