"""The mouse tools of a viewport and the keyboard map, shared by the viewport and the workspace toolbar.

Qt-free: keys are written as QKeySequence text ("Ctrl+R", "PgUp") so one table drives both the
viewport's key handling and the tooltips of the toolbar buttons.
"""

from __future__ import annotations

from enum import StrEnum


class Tool(StrEnum):
    """What the left mouse button does. Right-drag is always window/level, middle-drag always pan."""

    WINDOW = "window"
    PAN = "pan"
    ZOOM = "zoom"
    DISTANCE = "distance"
    ANGLE = "angle"
    RECT = "rect"
    ELLIPSE = "ellipse"
    ARROW = "arrow"
    TEXT = "text"

    @property
    def is_measurement(self) -> bool:
        return self in MEASUREMENT_TOOLS

    @property
    def is_annotation(self) -> bool:
        return self in ANNOTATION_TOOLS

    @property
    def label(self) -> str:
        return TOOL_LABELS[self]


MEASUREMENT_TOOLS = (Tool.DISTANCE, Tool.ANGLE, Tool.RECT, Tool.ELLIPSE)
ANNOTATION_TOOLS = (Tool.ARROW, Tool.TEXT)
TOOL_LABELS = {
    Tool.WINDOW: "Window/level",
    Tool.PAN: "Pan",
    Tool.ZOOM: "Zoom",
    Tool.DISTANCE: "Distance",
    Tool.ANGLE: "Angle",
    Tool.RECT: "Rectangle ROI",
    Tool.ELLIPSE: "Ellipse ROI",
    Tool.ARROW: "Arrow (drag from the finding; label optional)",
    Tool.TEXT: "Text note (click, type, Enter)",
}
TOOL_KEYS = {
    Tool.WINDOW: "W",
    Tool.PAN: "P",
    Tool.ZOOM: "Z",
    Tool.DISTANCE: "D",
    Tool.ANGLE: "G",
    Tool.RECT: "B",
    Tool.ELLIPSE: "O",
    Tool.ARROW: "X",
    Tool.TEXT: "N",
}

# key text -> viewport command (see Viewport.run_command). Digits 1-9 are window presets (PRESET_KEYS).
COMMAND_KEYS: dict[str, str] = {
    "0": "window_default",
    "R": "reset_view",
    "Up": "previous",
    "Left": "previous",
    "Down": "next",
    "Right": "next",
    "PgUp": "page_previous",
    "PgDown": "page_next",
    "Home": "first",
    "End": "last",
    "Space": "cine",
    "A": "anonymise",
    "Y": "toggle_overlay",
    "I": "invert",
    "H": "flip_h",
    "V": "flip_v",
    "T": "rotate_cw",
    "Shift+T": "rotate_ccw",
    "F": "fit",
    "Ctrl+1": "actual_size",
    "+": "zoom_in",
    "=": "zoom_in",
    "Shift++": "zoom_in",
    "-": "zoom_out",
    "Ctrl+R": "reset_view",
    "Del": "delete_measurement",
    "Backspace": "delete_measurement",
    "Esc": "cancel",
    "Ctrl+Z": "undo_measurement",
    "Ctrl+Shift+Z": "redo_measurement",
}
COMMAND_KEYS.update({key: f"tool:{tool.value}" for tool, key in TOOL_KEYS.items()})

COMMAND_LABELS: dict[str, str] = {
    "window_default": "Header window",
    "previous": "Previous image",
    "next": "Next image",
    "page_previous": "Back 10 images",
    "page_next": "Forward 10 images",
    "first": "First image",
    "last": "Last image",
    "cine": "Play/stop cine",
    "anonymise": "Anonymise overlays",
    "toggle_overlay": "Show/hide the AI map",
    "invert": "Invert",
    "flip_h": "Flip horizontal",
    "flip_v": "Flip vertical",
    "rotate_cw": "Rotate 90\u00b0 clockwise",
    "rotate_ccw": "Rotate 90\u00b0 counter-clockwise",
    "fit": "Fit to window",
    "actual_size": "1:1 (actual pixels)",
    "zoom_in": "Zoom in",
    "zoom_out": "Zoom out",
    "reset_view": "Reset view",
    "delete_measurement": "Delete selected measurement",
    "cancel": "Cancel drawing / deselect",
    "undo_measurement": "Undo the last measurement/annotation change",
    "redo_measurement": "Redo a measurement/annotation change",
}


COMMAND_LABELS.update({f"tool:{tool.value}": f"Tool: {label}" for tool, label in TOOL_LABELS.items()})
COMMAND_LABELS["interpolation"] = "Smooth / pixelated display (interpolation)"
COMMAND_KEYS["Shift+I"] = "interpolation"
COMMAND_LABELS["toggle_interest"] = "Flag / unflag the image as Of Interest (key object, sent as a KOS)"
COMMAND_KEYS["K"] = "toggle_interest"
DEFAULT_COMMAND_KEYS: dict[str, str] = dict(COMMAND_KEYS)
_active: dict[str, str] = dict(COMMAND_KEYS)


def bindings() -> dict[str, str]:
    """Key text -> command as now in force (defaults plus the user's remapping)."""
    return _active


def set_key_overrides(overrides: dict[str, str]) -> list[str]:
    """Remap commands: {command: key text}; '' removes a command's keys. A key taken from another command
    leaves that command without it. Returns problems (unknown commands) instead of failing."""
    global _active
    active = dict(DEFAULT_COMMAND_KEYS)
    problems = []
    for command, key in overrides.items():
        if command not in COMMAND_LABELS:
            problems.append(f"unknown viewer command {command!r}")
            continue
        active = {k: c for k, c in active.items() if c != command}
        if key:
            active[key] = command
    _active = active
    return problems


def keys_for(command: str) -> list[str]:
    return [k for k, c in _active.items() if c == command]


def key_for(command: str) -> str:
    """The first key bound to `command`, for tooltips ('' if none)."""
    keys = keys_for(command)
    return keys[0] if keys else ""
