"""Window/level values, the preset table bound to keys 1-9, and the right-drag gesture maths.

Kept free of any image so the widget, overlays and tests can reason about W/L without pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class WindowLevel:
    """A VOI window in modality units (HU on CT). `function` follows VOI LUT Function (0028,1056)."""

    center: float
    width: float
    name: str = ""
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        if self.function not in VOI_FUNCTIONS:
            raise ValueError(f"unknown VOI LUT function {self.function!r}; expected one of {VOI_FUNCTIONS}")
        if not (self.width == self.width and self.center == self.center):  # NaN check without math import
            raise ValueError("window center/width must be numbers")

    @property
    def lower(self) -> float:
        return self.center - self.width / 2.0

    @property
    def upper(self) -> float:
        return self.center + self.width / 2.0

    def label(self) -> str:
        """Short overlay text, e.g. 'W 1500 L -600 (lung)'."""
        text = f"W {self.width:.0f} L {self.center:.0f}"
        return f"{text} ({self.name})" if self.name else text


# Common CT presets (HU). Values follow widely used PACS defaults.
PRESETS: dict[str, WindowLevel] = {
    "lung": WindowLevel(-600.0, 1500.0, "lung"),
    "mediastinum": WindowLevel(50.0, 350.0, "mediastinum"),
    "bone": WindowLevel(400.0, 1800.0, "bone"),
    "brain": WindowLevel(40.0, 80.0, "brain"),
    "abdomen": WindowLevel(60.0, 400.0, "abdomen"),
    "liver": WindowLevel(90.0, 150.0, "liver"),
    "stroke": WindowLevel(40.0, 40.0, "stroke"),
    "subdural": WindowLevel(75.0, 215.0, "subdural"),
}

# Key 1 is reserved for "header default" (the widget resets to DicomImage.default_window);
# keys 2-9 select the named presets below.
HEADER_DEFAULT_KEY = 1
PRESET_KEYS: dict[int, str] = {
    2: "lung",
    3: "mediastinum",
    4: "bone",
    5: "brain",
    6: "abdomen",
    7: "liver",
    8: "stroke",
    9: "subdural",
}

# How many value units one screen pixel of drag moves, relative to the image's value range.
DRAG_SENSITIVITY = 1.0 / 512.0
MIN_WIDTH = 1.0


def window_from_drag(start: WindowLevel, dx: float, dy: float, value_range: float) -> WindowLevel:
    """The window after a right-drag of (dx, dy) screen pixels from `start`.

    As in common PACS viewers: dragging right widens the window, dragging left narrows it; dragging
    down raises the center (image gets darker), up lowers it. The step scales with the image's value
    range so an 8-bit US and a 16-bit CT feel the same under the mouse.
    """
    step = max(float(value_range), 1.0) * DRAG_SENSITIVITY
    width = max(MIN_WIDTH, start.width + dx * step)
    center = start.center + dy * step
    return WindowLevel(center, width, "", start.function)
