"""ExplainPanel driven offscreen against a real (tiny) engine, and an overlay on a demo radiograph.

Run as a script to refresh docs/screenshots/explain_overlay.png with real weights:
    .venv/bin/python tests/app/widgets/test_explain_panel.py --weights resources/weights/medim-small
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo"
REPORT = "FINDINGS: The heart is normal in size. Small left pleural effusion. IMPRESSION: Mild pulmonary edema."


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory):
    from engines.models.tiny import make_tiny_checkpoint
    from engines.pipeline import MedimPipeline

    d = make_tiny_checkpoint(tmp_path_factory.mktemp("explain_panel_engine"), text_len=48)
    return MedimPipeline.from_pretrained(d, "cpu")


def _panel(qtbot, engine, tmp_path, **kw):
    from app.widgets.explain_panel import ExplainPanel
    from explain.cache import ExplanationCache

    loads = []

    def factory():
        loads.append(1)
        return engine

    p = ExplainPanel(factory, ExplanationCache(tmp_path / "cache"), k_drafts=2, **kw)
    qtbot.addWidget(p)
    return p, loads


def _study_image(shape=(48, 64)) -> np.ndarray:
    return np.random.default_rng(3).random(shape).astype(np.float32)


def test_explain_click_controls_toggle_and_cache(qtbot, tiny_engine, tmp_path):
    p, loads = _panel(qtbot, tiny_engine, tmp_path)
    img = _study_image()
    p.set_study("1.2.3", [img], REPORT)
    assert "Explain" in p.status.text()
    with qtbot.waitSignal(p.explanationReady, timeout=120000):
        p.explain()
    assert not p.is_busy() or qtbot.waitUntil(lambda: not p.is_busy(), timeout=5000) is None
    assert p.sentences.count() == 3 and p.findings.count() == 3
    assert "drafts agree" in p.findings.item(1).text()
    got = []
    p.overlayRequested.connect(lambda m, o, c, t: got.append((m, o, c, t)))
    p.select_sentence(1)
    m, opacity, cmap, thr = got[-1]
    assert m.shape == img.shape and np.isfinite(m).all() and (opacity, cmap, thr) == (0.5, "jet", 0.2)
    p.opacity.setValue(80)
    p.colormap.setCurrentText("hot")
    p.threshold.setValue(0)
    assert got[-1][1:] == (0.8, "hot", 0.0) and got[-1][0] is m  # same map, no recomputation
    assert p.colour_bar.colormap == "hot"
    p.method.setCurrentIndex(1)  # integrated gradients
    assert got[-1][0] is not m and got[-1][0].shape == img.shape
    p.select_finding(2)
    assert p.sentences.currentRow() == -1 and got[-1][0].shape == img.shape
    p.uncertainty.setChecked(True)
    unc = got[-1][0]
    assert unc.shape == img.shape and np.isfinite(unc).all()
    p.clear_button.click()
    assert got[-1][0] is None and not p.uncertainty.isChecked()
    # Same study and text again: from the cache, no thread, no second engine load.
    p.set_study("1.2.3", [img], REPORT)
    assert p.explanation is not None and not p.is_busy() and "cache" in p.status.text()
    # An edit is a new report version: not served from the cache.
    p.set_study("1.2.3", [img], REPORT.replace("Small", "Large"))
    assert p.explanation is None
    assert loads == [1]


def test_cancel_and_bad_input(qtbot, tiny_engine, tmp_path):
    p, _ = _panel(qtbot, tiny_engine, tmp_path)
    p.set_study("9.9", [_study_image()], "")
    assert not p.explain_button.isEnabled() and "empty" in p.status.text()
    p.set_study("9.9", [_study_image()], REPORT)
    p.explain()
    p.cancel()
    qtbot.waitUntil(lambda: not p.is_busy(), timeout=120000)
    assert p.status.text() == "Cancelled" and p.explanation is None
    with pytest.raises(ValueError, match="no map"):
        p.export_current(None, tmp_path / "x.dcm")


def _demo_dx(name: str = "CARDIO"):
    if not (DEMO / "DICOMDIR").exists():
        pytest.skip("resources/demo is not built yet")
    from viewer.demo import demo_studies

    return next(s for s in demo_studies(DEMO) if s.series[0].modality == "DX" and name in s.patient_name)


def overlay_screenshot(qtbot, engine, out: Path, report: str, pick: tuple[str, int] = ("sentence", 0),
                       method: int = 0, cache_dir: Path | None = None, uncertainty: bool = False) -> np.ndarray:
    """A Viewport with a demo radiograph and the panel beside it, wired as the main window wires them."""
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    from app.widgets.explain_panel import ExplainPanel
    from explain.cache import ExplanationCache
    from viewer.measure.store import InMemoryMeasurementStore
    from viewer.widgets.viewport import Viewport

    study = _demo_dx()
    host = QWidget()
    if qtbot is not None:
        qtbot.addWidget(host)
    vp = Viewport(measurement_store=InMemoryMeasurementStore())
    panel = ExplainPanel(lambda: engine, ExplanationCache(cache_dir), k_drafts=2)
    lay = QHBoxLayout(host)
    lay.addWidget(vp, 3)
    lay.addWidget(panel, 2)
    panel.overlayRequested.connect(lambda m, o, c, t: vp.set_overlay(m, o, c, t if t > 0 else None))
    host.resize(1200, 700)
    host.show()
    vp.set_series(study.series[0])
    img = vp.current_image()
    pixels = img.frame(0)
    panel.set_study(study.study_uid, [pixels], report)
    from PySide6.QtCore import QCoreApplication

    done = []
    panel.explanationReady.connect(done.append)
    panel.explain()
    import time

    t0 = time.monotonic()
    while not done and time.monotonic() - t0 < 600:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert done, panel.status.text()
    panel.method.setCurrentIndex(method)
    (panel.select_sentence if pick[0] == "sentence" else panel.select_finding)(pick[1])
    if uncertainty:
        panel.uncertainty.setChecked(True)
    QCoreApplication.processEvents()
    assert vp.overlay()["shape"] == tuple(pixels.shape[:2])
    shot = host.grab().toImage()
    out.parent.mkdir(parents=True, exist_ok=True)
    assert shot.save(str(out))
    from PySide6.QtGui import QImage

    g = vp.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(g.constBits(), np.uint8).reshape(g.height(), g.bytesPerLine())[:, : g.width() * 3]
    arr = arr.reshape(g.height(), g.width(), 3).copy()
    panel.shutdown()
    return arr


def test_overlay_on_a_demo_radiograph(qtbot, tiny_engine, tmp_path):
    out = tmp_path / "explain_overlay.png"
    arr = overlay_screenshot(qtbot, tiny_engine, out, REPORT, ("sentence", 1)).astype(int)
    # Colour over a grey radiograph: channels differ where the overlay is painted.
    assert (np.abs(arr[..., 0] - arr[..., 2]) > 40).mean() > 0.05
    target = os.environ.get("RADSTATION_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(target) / out.name)


if __name__ == "__main__":  # refresh the docs screenshot with real weights
    import argparse

    from PySide6.QtWidgets import QApplication

    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, default=ROOT / "resources" / "weights" / "medim-small")
    ap.add_argument("--report", default="FINDINGS: The heart is enlarged. The lungs are clear. "
                                        "IMPRESSION: Cardiomegaly.")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots" / "explain_overlay.png")
    ap.add_argument("--finding", type=int, default=None)
    ap.add_argument("--sentence", type=int, default=0)
    ap.add_argument("--method", type=int, default=0)
    ap.add_argument("--uncertainty", action="store_true", help="show the image uncertainty map instead")
    a = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv)
    from engines.pipeline import MedimPipeline

    eng = MedimPipeline.from_pretrained(a.weights, "cpu")
    pick = ("finding", a.finding) if a.finding is not None else ("sentence", a.sentence)
    overlay_screenshot(None, eng, a.out, a.report, pick, a.method, uncertainty=a.uncertainty)
    print(a.out)


def test_findings_list_shows_the_heads_reading_next_to_the_usual():
    from types import SimpleNamespace

    from app.widgets.explain_panel import _head_note

    exp = SimpleNamespace(head_probabilities={"Pneumonia": 0.71}, head_prior={"Pneumonia": 0.565})
    assert _head_note(exp, "Pneumonia") == " - head 71% (usual 56%)"
    assert _head_note(exp, "Edema") == ""
    assert _head_note(SimpleNamespace(head_probabilities={"Edema": 0.2}, head_prior={}), "Edema") == " - head 20%"
