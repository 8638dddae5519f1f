"""GSPS: measurements and the display in use, checked by dciodvfy and DCMTK (dcmpschk, dcmp2pgm)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from dicom_tools import dciodvfy_errors, dcmp2pgm, dcmpschk, save

from app.dicom_objects.annotations import AnnotatedImage
from app.dicom_objects.display import DisplayState, dicom_transform, viewer_transform
from app.dicom_objects.presentation_state import PresentationStateError, build_gsps
from viewer.imaging.window import WindowLevel
from viewer.measure.shapes import Angle, Distance, EllipseROI, RectROI
from viewer.widgets.view_state import ViewState

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
