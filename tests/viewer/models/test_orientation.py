"""Orientation letters on the view edges, without Qt."""

from __future__ import annotations

from pydicom.dataset import Dataset

from viewer.models.orientation import direction_label, edge_labels, image_axes
from viewer.models.view_state import ViewState


def _state() -> ViewState:
    s = ViewState()
    s.set_image_size(100, 100)
    return s


def test_direction_letters():
    assert direction_label((1, 0, 0)) == "L"
    assert direction_label((0, -1, 0)) == "A"
    assert direction_label((0, 0.5, -0.9)) == "FP"
    assert direction_label((0, 0, 0)) == ""


def test_axial_labels_follow_flip_and_rotation():
    row, col = (1, 0, 0), (0, 1, 0)  # standard axial: columns to the patient's left, rows posterior
    s = _state()
    assert edge_labels(row, col, s) == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    s.toggle_flip_h()
    assert edge_labels(row, col, s)["right"] == "R"
    s.toggle_flip_h()
    s.rotate_cw()  # what was at the top (A) is now on the right
    assert edge_labels(row, col, s)["right"] == "A" and edge_labels(row, col, s)["bottom"] == "L"


def test_axes_from_iop_or_patient_orientation():
    ds = Dataset()
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal
    row, col = image_axes(ds)
    assert direction_label(row) == "L" and direction_label(col) == "F"
    dx = Dataset()
    dx.PatientOrientation = ["L", "F"]  # PA chest as usually displayed
    row, col = image_axes(dx)
    assert edge_labels(row, col, _state()) == {"right": "L", "left": "R", "bottom": "F", "top": "H"}
    assert image_axes(Dataset()) is None
    bad = Dataset()
    bad.PatientOrientation = ["X", "F"]
    assert image_axes(bad) is None
