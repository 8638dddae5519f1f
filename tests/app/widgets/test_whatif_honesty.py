"""The what-if view says what the engine's reading thinks of the edit before running, labels variants in
words, and records an override of the input gate. A tiny checkpoint with a finding head; its calibration
file's uncertain band decides what the reading answers (band [1, 1]: it sees nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.db.database import Database
from app.widgets.whatif_view import WhatIfView
from engines.calibration import FILE_NAME
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline

DEMO_NODULE = Path(__file__).resolve().parents[3] / "resources/demo/PT000002/ST000000/SE000000/IM000000"
REPORT = ("The heart is normal in size. There is a right upper lobe nodule. No pleural effusion.\n\n"
          "IMPRESSION: Right upper lobe nodule.")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-head"), findings=("No Finding", "Lung Lesion"))
    (d / FILE_NAME).write_text(json.dumps({"format": "radstation-calibration", "findings": {},
                                           "uncertain_band": [1.0, 1.0]}))  # every finding reads "no"
    return d


@pytest.fixture
def view(qtbot, tiny_dir: Path, tmp_path, monkeypatch) -> Iterator[WhatIfView]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    db = Database.open()
    w = WhatIfView(lambda: MedimPipeline.from_pretrained(tiny_dir, device="cpu"), database=db)
    qtbot.addWidget(w, before_close_func=lambda v: v.shutdown())  # pytest-qt closes it before teardown
    w.resize(900, 600)
    w.show()
    yield w
    db.dispose()


def test_removing_what_the_reading_does_not_see_is_said_first(qtbot, view: WhatIfView) -> None:
    source = pydicom.dcmread(DEMO_NODULE)
    view.set_case(source.pixel_array, REPORT, source)
    view.variants_spin.setValue(1)
    asked: list[list[str]] = []
    view.confirm_edit = lambda warnings: asked.append(warnings) and False  # the user says no
    view.instruction.setText("remove the nodule")
    assert view.start()
    qtbot.waitUntil(lambda: bool(asked) and not view.is_running(), timeout=120_000)
    assert "does not see lung lesion" in asked[0][0]
    assert view.status.text().startswith("Not run. The engine's reading does not see lung lesion")
    assert view.result() is None

    view.confirm_edit = lambda warnings: asked.append(warnings) or True  # now the user agrees
    with qtbot.waitSignal(view.resultReady, timeout=120_000) as blocker:
        assert view.start()
    result = blocker.args[0]
    assert len(asked) == 2 and result.signs == {"Lung Lesion": -1.0}
    label = view.variant_combo.itemText(0)
    assert label.startswith("Variant 1: the engine's reading of lung lesion ") and "->" in label
    assert any(w in label for w in ("as asked", "the wrong way", "barely moved"))
    assert "seed 0" in view.variant_combo.itemData(0, 3)  # the seed stays in the tooltip


def test_an_image_outside_the_scope_is_not_run_without_override(qtbot, view: WhatIfView) -> None:
    from pydicom.data import get_testdata_file

    from app.reports.models import AuditEntry

    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    view.set_case(mr.pixel_array.astype(np.float32), REPORT, mr)
    view.variants_spin.setValue(1)
    view.confirm_edit = lambda warnings: True
    answers = [False, True]
    view.confirm_override = lambda scope: answers.pop(0)
    view.user_provider = lambda: type("User", (), {"username": "rad7"})()
    view.instruction.setText("remove the nodule")
    assert view.start()
    qtbot.waitUntil(lambda: not view.is_running() and answers == [True], timeout=120_000)
    assert view.status.text().startswith("Not run: Out of scope: Modality MR")
    with qtbot.waitSignal(view.resultReady, timeout=120_000):
        view.instruction.clear()
        assert view.start()  # the edited text is kept; the user now overrides
    assert "outside the engine's scope at the user's request" in view.status.text()
    with view.database.session() as s:
        from sqlalchemy import select

        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "ai_scope_override")))
    assert [(e.username, e.object_id) for e in entries] == [("rad7", str(mr.StudyInstanceUID))]
