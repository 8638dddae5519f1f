"""GSPS: measurements and the display in use, checked by dciodvfy and DCMTK (dcmpschk, dcmp2pgm)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest

from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.display import DisplayState, dicom_transform, viewer_transform
from app.dicom_objects.presentation_state import PresentationStateError, build_gsps
from tests.support.dicom_tools import dciodvfy_errors, dcmp2pgm, dcmp2pgm_dump, dcmpschk, save
from viewer.imaging.window import WindowLevel
from viewer.measure.shapes import Angle, Arrow, Distance, EllipseROI, Note, RectROI
from viewer.models.view_state import ViewState

SHAPES = [Distance(p0=(10.5, 12.5), p1=(100.5, 120.5), label="RUL"), Angle(p0=(50, 50), vertex=(60, 80), p1=(90, 60)),
          RectROI(p0=(20, 30), p1=(60, 70)), EllipseROI(p0=(70, 20), p1=(110, 50))]


def _gsps(ds, display=None, shapes=SHAPES):
    return build_gsps([AnnotatedImage(ds, list(shapes), display or DisplayState())], series_uid=hd.UID(),
                      sop_uid=hd.UID(), creator="Dr Jane Doe")


@pytest.mark.parametrize("source", ["dx", "ct"])
def test_gsps_is_valid_and_read_back_by_dcmtk(source, request, tmp_path):
    ds = request.getfixturevalue(source)
    display = DisplayState(window=WindowLevel(40, 400, "soft"), rotation=1, flip_h=True, area=(10.2, 5.0, 100.7, 90.0))
    path = save(_gsps(ds, display), tmp_path / "gsps.dcm")
    assert not dciodvfy_errors(path)
    dcmpschk(path)
    back = pydicom.dcmread(path)  # highdicom 0.28 writes GSPS but has no reader; dcmpschk parsed it above
    assert back.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert back.SoftcopyVOILUTSequence[0].WindowCenter == 40 and back.SoftcopyVOILUTSequence[0].WindowWidth == 400
    assert (back.ImageRotation, back.ImageHorizontalFlip) == (90, "Y")
    ann = back.GraphicAnnotationSequence[0]
    assert [g.GraphicType for g in ann.GraphicObjectSequence] == ["POLYLINE", "POLYLINE", "POLYLINE", "ELLIPSE"]
    assert list(ann.GraphicObjectSequence[0].GraphicData) == [10.5, 12.5, 100.5, 120.5]
    texts = [t.UnformattedTextValue for t in ann.TextObjectSequence]
    assert texts[0].startswith("RUL\n") and " mm" in texts[0]
    assert "°" in texts[1] and "mean" in texts[2] and "area" in texts[3]
    if source == "ct":
        assert "HU" in texts[2]


def test_dcmp2pgm_renders_the_window_rotation_and_flip(dx, dx_path, tmp_path):
    """DCMTK applies our GSPS: the rotated/flipped render is the upright render turned and mirrored, and the
    window differs from the header's."""
    window = WindowLevel(90, 120)
    upright = save(_gsps(dx, DisplayState(window=window)), tmp_path / "upright.dcm")
    turned = save(_gsps(dx, DisplayState(window=window, rotation=1, flip_h=True)), tmp_path / "turned.dcm")
    header = dcmp2pgm(dx_path, None, tmp_path / "header.pgm")
    a = dcmp2pgm(dx_path, upright, tmp_path / "a.pgm")
    b = dcmp2pgm(dx_path, turned, tmp_path / "b.pgm")
    assert not np.array_equal(a, header)  # our window, not the header's
    assert np.array_equal(b, np.fliplr(np.rot90(a, k=-1)))  # rotate 90 clockwise, then flip horizontally


def test_inverted_display_sets_an_inverse_presentation_lut(dx, dx_path, tmp_path):
    plain = save(_gsps(dx, DisplayState(window=WindowLevel(90, 120))), tmp_path / "p.dcm")
    inverted = save(_gsps(dx, DisplayState(window=WindowLevel(90, 120), invert=True)), tmp_path / "i.dcm")
    assert pydicom.dcmread(inverted).PresentationLUTShape == "INVERSE"
    a, b = dcmp2pgm(dx_path, plain, tmp_path / "a.pgm"), dcmp2pgm(dx_path, inverted, tmp_path / "b.pgm")
    assert np.abs(a.astype(int) + b.astype(int) - 255).max() <= 1


def test_viewer_rotation_and_flip_map_to_dicom_and_back():
    for rotation in range(4):
        for flip_h in (False, True):
            degrees, flip = dicom_transform(rotation, flip_h, False)
            assert (degrees, flip) == (rotation * 90, flip_h)
            assert viewer_transform(degrees, flip) == (rotation, flip_h, False)
    assert dicom_transform(0, False, True) == (180, True)  # a vertical flip is a horizontal one turned 180


def test_display_from_the_viewers_state_gives_the_visible_area():
    from app.dicom_objects.display import display_from_view

    state = ViewState()
    state.set_image_size(256, 256)
    assert display_from_view(state, 512, 512).area is None  # fitted: the whole image
    state.set_zoom(4.0, 512, 512)  # 4x about the centre: a 128-pixel square around the middle is visible
    x0, y0, x1, y1 = display_from_view(state, 512, 512).area
    assert (round(x0), round(y0), round(x1), round(y1)) == (64, 64, 192, 192)


def test_colour_images_and_mixed_studies_are_refused(dx, ct):
    colour = dx.copy()
    colour.SamplesPerPixel = 3
    with pytest.raises(PresentationStateError, match="colour"):
        _gsps(colour)
    with pytest.raises(PresentationStateError, match="one study"):
        build_gsps([AnnotatedImage(dx, SHAPES[:1]), AnnotatedImage(ct, SHAPES[:1])], series_uid=hd.UID(),
                   sop_uid=hd.UID())


ANNOTATIONS = [Arrow(tip=(100.0, 120.0), tail=(160.0, 200.0), label="RUL nodule"), Arrow(tip=(30.0, 30.0), tail=(10.0, 60.0)),
               Note(anchor=(20.0, 220.0), label="Fluid level"), Distance(p0=(10, 10), p1=(60, 60))]


def test_arrows_and_notes_are_written_for_other_viewers(dx, dx_path, tmp_path):
    """An arrow is a shaft and a head (POLYLINEs meeting at the tip) with its label anchored at the tip and boxed
    at the tail; a note is a boxed text object. dciodvfy and dcmpschk accept it; DCMTK reads every object back
    when it renders the image through the GSPS."""
    path = save(_gsps(dx, shapes=ANNOTATIONS), tmp_path / "arrows.dcm")
    assert not dciodvfy_errors(path)
    dcmpschk(path)
    dump = dcmp2pgm_dump(dx_path, path, tmp_path / "out.pgm")
    assert "Number of text objects: 3" in dump and "Number of graphic objects: 5" in dump
    assert 'text 1: "RUL nodule"' in dump and "anchor point: 100\\120 units=pixel visible=no" in dump
    assert 'text 2: "Fluid level"' in dump and dump.count("type=polyline") == 5
    ann = pydicom.dcmread(path).GraphicAnnotationSequence[0]
    shaft, head = (list(g.GraphicData) for g in ann.GraphicObjectSequence[:2])
    assert shaft == [160.0, 200.0, 100.0, 120.0] and head[2:4] == [100.0, 120.0] and len(head) == 6
    label = ann.TextObjectSequence[0]
    x0, y0 = label.BoundingBoxTopLeftHandCorner
    x1, y1 = label.BoundingBoxBottomRightHandCorner
    assert x0 >= 160.0 and y0 < 200.0 < y1  # the label sits at the tail, beside it
    note = ann.TextObjectSequence[1]
    assert list(note.BoundingBoxTopLeftHandCorner) == [20.0, 220.0] and "AnchorPoint" not in note


def test_radstation_shows_its_own_arrows_and_notes_when_the_gsps_comes_back(qtbot, dx, dx_path, tmp_path):
    """The GSPS read by the viewer's presentation reader: the arrow's polylines and both texts on the image, drawn
    in the layer's colour where the arrow is."""
    from PySide6.QtGui import QImage

    from viewer.io.image import load_image
    from viewer.presentation.study_objects import StudyObjects
    from viewer.widgets.viewport import Viewport

    path = save(_gsps(dx, shapes=ANNOTATIONS[:3]), tmp_path / "arrows.dcm")
    objects = StudyObjects.from_paths([path])
    pres = objects.states_for(str(dx.SOPInstanceUID))[0].for_image(str(dx.SOPInstanceUID))
    assert [g.kind for g in pres.graphics] == ["POLYLINE"] * 4
    assert pres.graphics[0].points == ((160.0, 200.0), (100.0, 120.0))
    assert [t.text for t in pres.texts] == ["RUL nodule", "Fluid level"] and all(t.box for t in pres.texts)

    def green(vp) -> np.ndarray:
        img = vp.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
        arr = arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3).astype(int)
        return (arr[..., 1] > 150) & (arr[..., 0] < arr[..., 1] - 60) & (arr[..., 2] < arr[..., 1] - 60)

    vp = Viewport()
    qtbot.addWidget(vp)
    vp.resize(512, 512)
    vp.show()
    vp.set_image(load_image(dx_path))
    without = green(vp)
    vp.set_study_objects(objects)
    assert vp.presentation_state() is not None
    with_gsps = green(vp)
    tip = vp._to_widget((100.0, 120.0))
    mid = vp._to_widget((130.0, 160.0))
    for x, y in (tip, mid):
        assert with_gsps[round(y) - 3:round(y) + 4, round(x) - 3:round(x) + 4].any()
        assert not without[round(y) - 3:round(y) + 4, round(x) - 3:round(x) + 4].any()
    qtbot.waitUntil(lambda: not vp.is_loading(), timeout=10000)
