"""Presentation states and key object selections from other viewers, read into the viewer's Qt-free models."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from tests.support.presentation_samples import foreign_gsps, foreign_kos, read, save
from tests.support.widget_samples import write_ct_series
from viewer.models.view_state import ViewState  # noqa: E402
from viewer.presentation.apply import apply_presentation  # noqa: E402
from viewer.presentation.gsps import PresentationState, PresentationStateReadError  # noqa: E402
from viewer.presentation.key_images import KeyObjectReadError, KeySelection  # noqa: E402
from viewer.presentation.study_objects import StudyObjects  # noqa: E402


@pytest.fixture
def images(tmp_path):
    series = write_ct_series(tmp_path / "ct", n=3)
    return series, [read(p) for p in series.paths]


def test_gsps_from_another_viewer_is_read_per_image(images, tmp_path):
    series, ds = images
    path = save(foreign_gsps(ds[:2], annotate=ds[0]), tmp_path / "pr.dcm")
    ps = PresentationState.from_file(path)
    assert ps.referenced == {ds[0].SOPInstanceUID, ds[1].SOPInstanceUID} and ps.title().startswith("OTHER VIEWER")
    assert "by Smith Ann 2024-05-05" in ps.title() and ps.skipped == []
    first = ps.for_image(ds[0].SOPInstanceUID)
    assert (first.window.center, first.window.width) == (100.0, 600.0)
    assert (first.rotation, first.flip_h, first.inverse) == (1, True, False)
    assert (first.area.x0, first.area.y0, first.area.x1, first.area.y1) == (10.0, 20.0, 50.0, 60.0)
    assert [g.kind for g in first.graphics] == ["CIRCLE", "POLYLINE"] and first.graphics[1].filled
    assert first.graphics[0].points == ((20.0, 20.0), (28.0, 20.0))
    assert [(t.text, t.anchor_units if t.box is None else t.box_units) for t in first.texts] == [
        ("nodule?", "PIXEL"), ("DISPLAY NOTE", "DISPLAY")]
    red = ps.layer_colors["FINDINGS"]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # CIELab of sRGB red read back as red
    second = ps.for_image(ds[1].SOPInstanceUID)
    assert second.window == first.window and second.graphics == ()  # annotations only on the image they name
    assert ps.for_image(ds[2].SOPInstanceUID) is None


def test_applied_to_the_view_state_shows_the_area_rotated_and_windowed(images):
    _, ds = images
    from viewer.presentation.gsps import PresentationState as PS

    pres = PS.from_dataset(foreign_gsps(ds[:1], inverse=True)).for_image(ds[0].SOPInstanceUID)
    state = ViewState()
    state.set_image_size(80, 64)
    apply_presentation(state, pres, monochrome1=False, widget_w=400, widget_h=400)
    assert state.window.center == 100 and state.invert and state.rotation == 1 and state.flip_h and not state.fit
    # the 40x40 area fills the 400x400 widget, centred
    assert state.effective_zoom(400, 400) == pytest.approx(10.0)
    assert state.image_to_widget(30, 40, 400, 400) == pytest.approx((200, 200))
    corners = [state.image_to_widget(x, y, 400, 400) for x, y in ((10, 20), (50, 60))]
    assert sorted(round(c) for xy in corners for c in xy) == [0, 0, 400, 400]
    # a MONOCHROME1 image already shows low values white: INVERSE then needs no extra inversion
    apply_presentation(state, pres, monochrome1=True, widget_w=400, widget_h=400)
    assert not state.invert


def test_unreadable_or_foreign_objects_are_named_not_crashed(images, tmp_path):
    series, ds = images
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not dicom at all")
    with pytest.raises(PresentationStateReadError, match="broken.dcm"):
        PresentationState.from_file(broken)
    with pytest.raises(PresentationStateReadError, match="not a presentation state"):
        PresentationState.from_file(series.paths[0])
    with pytest.raises(KeyObjectReadError, match="not a Key Object"):
        KeySelection.from_file(series.paths[0])
    odd = foreign_gsps(ds[:1])
    odd.GraphicAnnotationSequence[0].GraphicObjectSequence[0].GraphicData = [1.0, 2.0, 3.0]
    with pytest.raises(PresentationStateReadError, match="odd number"):
        PresentationState.from_dataset(odd, "odd.dcm")
    gsps = save(foreign_gsps(ds[:1]), tmp_path / "pr.dcm")
    objects = StudyObjects.from_paths([broken, gsps, series.paths[0]])
    assert len(objects.states) == 1 and len(objects.problems) == 1 and "broken.dcm" in objects.problems[0]


def test_kos_marks_key_images_per_series(images, tmp_path):
    series, ds = images
    kos = save(foreign_kos(ds[1:3]), tmp_path / "ko.dcm")
    sel = KeySelection.from_file(kos)
    assert sel.title == "Of Interest" and sel.observer == "Smith Ann" and sel.description == "see these"
    assert set(sel.images) == {ds[1].SOPInstanceUID, ds[2].SOPInstanceUID}
    assert set(sel.images.values()) == {series.series_uid}
    report = save(foreign_kos(ds[2:3], codes.DCM.ForReportAttachment), tmp_path / "ko2.dcm")
    objects = StudyObjects.from_paths([kos, report])
    assert objects.key_image_counts() == {series.series_uid: 2}
    assert objects.key_titles(ds[2].SOPInstanceUID) == ["Of Interest", "For Report Attachment"]
    assert objects.key_titles(ds[0].SOPInstanceUID) == []


def test_newest_presentation_state_of_an_image_comes_first(images, tmp_path):
    _, ds = images
    old = save(foreign_gsps(ds[:1], label="OLD", date="20200101"), tmp_path / "old.dcm")
    new = save(foreign_gsps(ds[:1], label="NEW", date="20250101"), tmp_path / "new.dcm")
    objects = StudyObjects.from_paths([old, new])
    assert [s.label for s in objects.states_for(ds[0].SOPInstanceUID)] == ["NEW", "OLD"]


def test_annotations_limited_to_one_frame_of_a_multiframe_image(images, tmp_path):
    import highdicom as hd
    import numpy as np

    from tests.support.widget_samples import write_us_multiframe

    _, ct = images
    us = read(write_us_multiframe(tmp_path / "us", frames=3).paths[0])
    layer = hd.pr.GraphicLayer(layer_name="L", order=1)
    ann = hd.pr.GraphicAnnotation(
        referenced_images=[ct[0]], graphic_layer=layer,
        graphic_objects=[hd.pr.GraphicObject(graphic_type="POINT", graphic_data=np.array([[5.0, 6.0]]),
                                             units="PIXEL")])
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[ct[0]], series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="Other", manufacturer_model_name="V", software_versions="1",
        device_serial_number="1", content_label="FRAMES", graphic_annotations=[ann], graphic_layers=[layer])
    # highdicom builds frame references for enhanced multi-frame sources only; other viewers write them for
    # any multi-frame image: point the references at the ultrasound clip's second frame
    uid = us.SOPInstanceUID
    gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID = uid
    ref = gsps.GraphicAnnotationSequence[0].ReferencedImageSequence[0]
    ref.ReferencedSOPInstanceUID, ref.ReferencedFrameNumber = uid, 2
    ps = PresentationState.from_file(save(gsps, tmp_path / "pr.dcm"))
    assert [len(ps.for_image(uid, f).graphics) for f in range(3)] == [0, 1, 0]
    assert ps.for_image(uid, 1).graphics[0].points == ((5.0, 6.0),)
