"""Full what-if flow offscreen on the demo nodule study with a tiny model: instruction -> edited text
-> job on the worker thread (progress) -> two variants -> linked views, blend, difference map ->
saved as a SYNTHETIC series; plus cancel and bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.counterfactual import acquired_instance_uids, is_synthetic, synthetic_series_uids
from app.db.database import Database
from app.importer import ImportService
from app.widgets.whatif_view import WhatIfView
from engines.models.tiny import make_tiny_checkpoint
from engines.pipeline import MedimPipeline

DEMO_NODULE = Path(__file__).resolve().parents[3] / "resources/demo/PT000002/ST000000/SE000000/IM000000"
REPORT = ("The heart is normal in size. There is a right upper lobe nodule. No pleural effusion.\n\n"
          "IMPRESSION: Right upper lobe nodule.")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADSTATION_DB_URL", raising=False)
    database = Database.open()
    yield database
    database.dispose()


@pytest.fixture
def view(qtbot, tiny_dir: Path, db: Database) -> Iterator[WhatIfView]:
    gui_thread = threading.get_ident()
    loaded_on: list[int] = []

    def factory() -> MedimPipeline:
        loaded_on.append(threading.get_ident())
        return MedimPipeline.from_pretrained(tiny_dir, device="cpu")

    w = WhatIfView(factory, database=db)
    w.loaded_on, w.gui_thread = loaded_on, gui_thread  # type: ignore[attr-defined]
    qtbot.addWidget(w, before_close_func=lambda v: v.shutdown())  # pytest-qt closes it before teardown
    w.resize(900, 600)
    w.show()
    yield w


def test_full_flow_on_the_demo_study(qtbot, view: WhatIfView, db: Database) -> None:
    source = pydicom.dcmread(DEMO_NODULE)
    assert ImportService(db).import_dataset(source).ok
    view.set_case(source.pixel_array, REPORT, source)
    view.instruction.setText("remove the nodule")
    steps: list[int] = []
    view.progress.valueChanged.connect(steps.append)
    with qtbot.waitSignal(view.resultReady, timeout=60000) as blocker:
        assert view.start()
        assert view.is_running() and view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    result = blocker.args[0]
    assert view.loaded_on and view.loaded_on[0] != view.gui_thread  # the model ran off the GUI thread
    assert "nodule" not in view.report_edit.toPlainText().lower().replace("no pulmonary nodule", "")
    assert [c.describe() for c in result.edit.changes] == ["remove Lung Lesion"]
    assert len(result.variants) == 2 and view.variant_combo.count() == 2
    assert len(steps) > 2 and not view.is_running()

    # linked zoom/pan/W-L both ways
    view.original_view.zoom_by(2.0)
    assert view.counterfactual_view.state.zoom == view.original_view.state.zoom
    view.counterfactual_view.state.pan_x = 5.0
    view.counterfactual_view.stateChanged.emit()
    assert view.original_view.state.pan_x == 5.0

    # slider: at 0 the right view is the original's reconstruction (+ warning bands)
    view.blend_slider.setValue(0)
    shown0 = view.shown_counterfactual()
    assert shown0 is not None and shown0.shape == result.reconstruction.shape
    view.blend_slider.setValue(100)
    view.variant_combo.setCurrentIndex(1)
    assert view.current_variant_index() == 1
    assert view.counterfactual_view.state.zoom == view.original_view.state.zoom  # kept across variants
    assert view.counterfactual_view.overlay()["colormap"] == "jet"
    view.diff_box.setChecked(False)
    assert view.counterfactual_view.overlay() == {}

    stored = view.save_current()
    assert stored is not None
    assert synthetic_series_uids(db, source.StudyInstanceUID) == {stored.series_uid}
    assert acquired_instance_uids(db, source.StudyInstanceUID) == [source.SOPInstanceUID]
    with db.session() as s:
        from sqlalchemy import select

        from app.db.models import Instance

        path = s.scalar(select(Instance.file_path).where(Instance.sop_instance_uid == stored.sop_instance_uids[0]))
    sc = pydicom.dcmread(db.store_path(path))
    assert is_synthetic(sc)
    assert "model unknown" not in sc.DerivationDescription and "model weights" in sc.DerivationDescription


def test_cancel_and_bad_input_leave_the_view_usable(qtbot, view: WhatIfView) -> None:
    img = (np.random.default_rng(0).random((64, 48)) * 4000).astype(np.uint16)
    assert not view.start()  # no image yet
    assert "Open an image" in view.status.text()
    view.set_case(img, REPORT)
    view.instruction.setText("add a smile")
    assert not view.start() and "no finding recognised" in view.status.text()
    view.instruction.clear()
    view.report_edit.setPlainText(REPORT)
    assert not view.start() and "same findings" in view.status.text()
    view.report_edit.setPlainText(REPORT.replace("There is a right upper lobe nodule.", "No nodule.")
                                  .replace("Right upper lobe nodule.", "Normal chest."))
    view.variants_spin.setValue(8)
    with qtbot.waitSignal(view.cancelled, timeout=60000):
        assert view.start()
        view.cancel()
    assert not view.is_running() and view.status.text() == "Cancelled."
    assert view.report_edit.toPlainText().startswith("The heart")  # the user's text is kept
    with qtbot.waitSignal(view.resultReady, timeout=60000):
        view.variants_spin.setValue(1)
        assert view.start()
    assert view.save_button.isEnabled() is False  # no source dataset: nothing to reference
    with pytest.raises(ValueError, match="2D"):
        view.set_case(np.zeros(5), REPORT)


def test_drawn_ellipse_is_the_resampled_region(qtbot, view: WhatIfView) -> None:
    from viewer.measure.shapes import EllipseROI

    img = (np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)
    view.set_case(img, REPORT)
    view.paint_box.setChecked(True)
    assert view.original_view.tool().value == "ellipse"
    view.report_edit.setPlainText("The heart is normal in size. No nodule. No pleural effusion.")
    assert not view.start() and "no ellipse or rectangle" in view.status.text()
    view.original_view.add_measurement(EllipseROI(p0=(0.0, 0.0), p1=(32.0, 32.0)))
    mask = view.painted_mask()
    assert mask is not None and mask[16, 16] and not mask[60, 60]
    with qtbot.waitSignal(view.resultReady, timeout=60000) as blocker:
        view.variants_spin.setValue(1)
        assert view.start()
    result = blocker.args[0]
    g = result.token_mask.shape[0]
    assert result.scores is None and result.token_mask[g // 4, g // 4] and not result.token_mask[-1, -1]


def test_original_pane_keeps_the_patient_modality_and_scaled_spacing(qtbot, view: WhatIfView) -> None:
    """The left pane is the acquired image, resampled for the model: it still says whose image it is and
    measures in mm (spacing scaled by the resampling), instead of "(no name)", OT, spacing unknown."""
    source = pydicom.dcmread(DEMO_NODULE)
    view.set_case(source.pixel_array, REPORT, source)
    shown = view.original_view.current_image()
    assert shown is not None
    ds = shown.dataset
    assert str(ds.PatientName) == str(source.PatientName) and ds.PatientID == source.PatientID
    assert shown.modality == source.Modality != "OT"
    spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing")
    assert spacing is not None and shown.pixel_spacing is not None
    assert shown.pixel_spacing[0] == pytest.approx(float(spacing[0]) * source.Rows / shown.rows)
    assert shown.pixel_spacing[1] == pytest.approx(float(spacing[1]) * source.Columns / shown.columns)
