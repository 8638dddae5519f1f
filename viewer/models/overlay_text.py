"""What the four corners of a viewport say, and what the anonymise toggle hides.

Qt-free so the wording and the anonymisation can be tested directly; the viewport only paints it.
"""

from __future__ import annotations

from typing import Any

from viewer.models.view_state import ViewState

ANONYMISED = "ANONYMISED"
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")


def _text(ds: Any, keyword: str) -> str:
    value = getattr(ds, keyword, None) if ds is not None else None
    if value is None:
        return ""
    return str(value).replace("^", " ").strip()


def _date(value: str) -> str:
    """DICOM DA 'YYYYMMDD' -> 'YYYY-MM-DD' (left alone if it is not that)."""
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def corner_texts(
    image: Any,
    state: ViewState,
    widget_size: tuple[float, float],
    anonymised: bool = False,
    window_label: str = "",
) -> dict[str, list[str]]:
    """The lines for each corner. With `anonymised`, patient name, ID, birth date and accession number
    are replaced so a screen can be shown or captured without identifying the patient."""
    ds = getattr(image, "dataset", None)
    if anonymised:
        patient = [ANONYMISED]
    else:
        name = _text(ds, "PatientName") or "(no name)"
        pid = _text(ds, "PatientID")
        extra = " ".join(x for x in (_date(_text(ds, "PatientBirthDate")), _text(ds, "PatientSex")) if x)
        patient = [name] + ([f"ID {pid}"] if pid else []) + ([extra] if extra else [])
    top_left = patient

    top_right = [x for x in (_text(ds, "InstitutionName"),) if x and not anonymised]
    study_date = _date(_text(ds, "StudyDate"))
    if study_date:
        top_right.append(study_date)
    desc = _text(ds, "StudyDescription")
    if desc:
        top_right.append(desc)
    acc = _text(ds, "AccessionNumber")
    if acc and not anonymised:
        top_right.append(f"Acc {acc}")

    modality = getattr(image, "modality", "") or _text(ds, "Modality")
    series_no = _text(ds, "SeriesNumber")
    series_desc = _text(ds, "SeriesDescription")
    bottom_left = [" ".join(x for x in (modality, f"Se {series_no}" if series_no else "", series_desc) if x)]
    bottom_left.append(f"Im {state.slice_index + 1}/{state.slice_count}")
    if state.frame_count > 1:
        bottom_left.append(f"Fr {state.frame_index + 1}/{state.frame_count}")
    thickness = _text(ds, "SliceThickness")
    if thickness:
        bottom_left.append(f"Thk {thickness} mm")

    bottom_right = []
    if window_label:
        bottom_right.append(window_label)
    flags = []
    if state.rotation:
        flags.append(f"rot {state.rotation * 90}")
    if state.flip_h:
        flags.append("flip H")
    if state.flip_v:
        flags.append("flip V")
    if state.invert:
        flags.append("inverted")
    zoom = f"Zoom {state.zoom_percent(*widget_size)}%"
    bottom_right.append(" ".join([zoom] + flags))
    spacing = getattr(image, "pixel_spacing", None)
    source = getattr(image, "spacing_source", "") or ""
    if spacing:
        bottom_right.append(f"{spacing[0]:.3g}x{spacing[1]:.3g} mm ({source})" if source else
                            f"{spacing[0]:.3g}x{spacing[1]:.3g} mm")
    else:
        bottom_right.append("spacing unknown")
    return {
        "top_left": [x for x in top_left if x],
        "top_right": top_right,
        "bottom_left": [x for x in bottom_left if x],
        "bottom_right": bottom_right,
    }
