"""What RadStation writes is what another RadStation shows: a GSPS (measurement, window, rotation, area) and a
KOS go through a real Orthanc, are retrieved into another database and are applied/marked in its viewer."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.common import ImageRef, header_of
from app.dicom_objects.display import DisplayState
from app.dicom_objects.key_objects import build_kos
from app.dicom_objects.presentation_state import build_gsps
from tests.support.dicom_tools import dciodvfy_errors, save
from viewer.imaging.window import WindowLevel
from viewer.measure.shapes import Distance


@pytest.mark.orthanc
def test_gsps_and_kos_round_trip_through_orthanc_into_the_viewer(dx, dx_path, orthanc, tmp_path, qtbot, home):
    from app.db.database import Database
    from app.db.queries import study_ref
    from app.pacs.nodes import PacsNode
    from app.pacs.retrieve import RetrieveService
    from viewer.widgets.workspace import ViewerWorkspace

    display = DisplayState(window=WindowLevel(1800.0, 2500.0, "soft"), rotation=1,
                           area=(20.0, 30.0, 180.0, 190.0))
    gsps = build_gsps([AnnotatedImage(dx, [Distance(p0=(40.0, 60.0), p1=(160.0, 60.0), label="heart")], display)],
                      series_uid=hd.UID(), sop_uid=hd.UID(), creator="Dr Rad")
    kos = build_kos(header_of(dx), [ImageRef.of(dx)], series_uid=hd.UID(), sop_uid=hd.UID(), observer="Dr Rad")
    files = [save(gsps, tmp_path / "gsps.dcm"), save(kos, tmp_path / "kos.dcm")]
    for f in files:
        assert not dciodvfy_errors(f), f

    orthanc.clear()
    try:
        for f in (dx_path, *files):
            orthanc.upload(f)
        node = PacsNode(name="pacs", protocol="dimse", ae_title=orthanc.aet, host="127.0.0.1",
                        port=orthanc.dicom_port, calling_ae=orthanc.client_aet, timeout=30)
        other = Database.open(f"sqlite:///{tmp_path / 'other.db'}", store_dir=tmp_path / "other-store")
        try:
            result, = RetrieveService(other, node).retrieve_studies([str(dx.StudyInstanceUID)])
            assert result.state in ("done", "complete", "ok", "retrieved"), result.message
            with other.session() as s:
                ref = study_ref(s, str(dx.StudyInstanceUID))
        finally:
            other.dispose()
    finally:
        orthanc.clear()
    assert len(ref.object_paths) == 2 and [s.modality for s in ref.series] == [str(dx.Modality)]

    ws = ViewerWorkspace()
    qtbot.addWidget(ws)
    ws.resize(900, 700)
    ws.show()
    qtbot.waitExposed(ws)
    ws.open_study(ref)
    qtbot.waitUntil(ws.study_objects_ready, timeout=5000)
    vp = ws.active_viewport()
    assert vp.current_image().sop_instance_uid == dx.SOPInstanceUID
    applied = vp.presentation_state()
    assert applied is not None and applied.label == "MEASUREMENTS" and "Rad" in applied.creator
    assert (vp.state.window.center, vp.state.window.width, vp.state.rotation) == (1800.0, 2500.0, 1)
    w, h = vp.width(), vp.height()
    assert vp.state.image_to_widget(100.0, 110.0, w, h) == pytest.approx((w / 2, h / 2), abs=1.0)
    pres = applied.for_image(dx.SOPInstanceUID)
    assert [g.kind for g in pres.graphics] == ["POLYLINE"] and "heart" in pres.texts[0].text
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=10000)
    img = vp.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    arr = arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).astype(int)
    r, g, b = applied.layer_colors["MEASUREMENTS"]
    assert g > r + 60 and g > b + 60  # the layer's recommended CIELab colour is green
    # the measurement line's middle (100, 60) in that green (the image is grey) where the rotated view puts it
    x, y = (round(v) for v in vp.state.image_to_widget(100.0, 60.0, w, h))
    patch = arr[y - 3: y + 4, x - 3: x + 4]
    assert ((patch[..., 1] > patch[..., 0] + 50) & (patch[..., 1] > patch[..., 2] + 50)).any()
    assert vp.key_image_titles() == ["For Report Attachment"]
    assert ws.thumbnails.key_image_count(ref.series[0].series_uid) == 1
