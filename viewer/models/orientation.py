"""Patient-orientation letters for the edges of a view (R/L, A/P, H/F), as radiologists expect them.

Qt-free. Patient axes are DICOM LPS: +x = patient Left, +y = Posterior, +z = Head. A view edge gets the
letters of the patient direction that points toward it, strongest component first ("L", or "LP" when
oblique), so a flipped or rotated view is always labelled truthfully.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from viewer.models.view_state import ViewState

_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))
_FROM_LETTER = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "H": (0, 0, 1), "F": (0, 0, -1)}
OBLIQUE_FRACTION = 0.35  # a component below this share of the strongest one is left out of the label


def direction_label(vec: Any) -> str:
    """'L', 'AF', ... for a patient-space direction ('' for a zero vector)."""
    v = np.asarray(vec, dtype=float)
    mags = np.abs(v)
    top = mags.max() if mags.size else 0.0
    if top <= 1e-9:
        return ""
    order = np.argsort(-mags, kind="stable")
    return "".join(_LETTERS[i][0 if v[i] > 0 else 1] for i in order if mags[i] >= OBLIQUE_FRACTION * top)


def _letters_vector(text: str) -> np.ndarray | None:
    vec = np.zeros(3)
    for ch in str(text).strip().upper():
        if ch not in _FROM_LETTER:
            return None
        vec += _FROM_LETTER[ch]
    return vec if np.any(vec) else None


def image_axes(ds: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(row direction, column direction) in patient space: where increasing column and increasing row
    point. From Image Orientation (Patient) (also per-frame), else Patient Orientation letters; None if
    the header says neither (e.g. a secondary capture)."""
    if ds is None:
        return None
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        for seq_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            seq = ds.get(seq_kw)
            if seq and seq[0].get("PlaneOrientationSequence"):
                iop = seq[0].PlaneOrientationSequence[0].get("ImageOrientationPatient")
                if iop is not None:
                    break
    if iop is not None:
        try:
            vals = [float(v) for v in iop]
        except (TypeError, ValueError):
            vals = []
        if len(vals) == 6:
            return np.array(vals[:3]), np.array(vals[3:])
    po = ds.get("PatientOrientation")
    if po is not None and len(po) == 2:
        row, col = _letters_vector(po[0]), _letters_vector(po[1])
        if row is not None and col is not None:
            return row, col
    return None


def edge_labels(row_dir: Any, col_dir: Any, state: ViewState) -> dict[str, str]:
    """Letters for the 'left', 'right', 'top' and 'bottom' edges of a viewport showing an image whose
    columns run along `row_dir` and rows along `col_dir`, under the view's rotation and flips."""
    m11, m12, m21, m22, _, _ = state.matrix(1000.0, 1000.0)
    linear = np.array([[m11, m21], [m12, m22]])  # image (dx, dy) -> widget (dx, dy)
    inv = np.linalg.inv(linear)
    axes = np.column_stack([np.asarray(row_dir, float), np.asarray(col_dir, float)])
    right = axes @ inv @ np.array([1.0, 0.0])
    down = axes @ inv @ np.array([0.0, 1.0])
    return {
        "right": direction_label(right),
        "left": direction_label(-right),
        "bottom": direction_label(down),
        "top": direction_label(-down),
    }
