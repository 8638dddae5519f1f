"""CT transfer-function presets for 3D volume rendering (HU -> colour and opacity).

Plain data (Qt- and VTK-free) so the table can be checked and reused; values follow the widely used
3D Slicer / ParaView CT presets, simplified to a few control points.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VolumePreset:
    """Piecewise-linear transfer functions over modality values (HU on CT)."""

    name: str
    colors: tuple[tuple[float, float, float, float], ...]  # (value, r, g, b) with r, g, b in 0..1
    opacities: tuple[tuple[float, float], ...]  # (value, opacity 0..1)
    shade: bool = True
    blend: str = "composite"  # or "mip" (maximum intensity projection)

    def __post_init__(self) -> None:
        for points in (self.colors, self.opacities):
            values = [p[0] for p in points]
            if values != sorted(values):
                raise ValueError(f"preset {self.name!r}: control points must be in increasing order")
        if self.blend not in ("composite", "mip"):
            raise ValueError(f"preset {self.name!r}: blend must be 'composite' or 'mip'")


VOLUME_PRESETS: dict[str, VolumePreset] = {
    p.name: p
    for p in (
        VolumePreset(
            "CT bone",
            colors=((-3024, 0, 0, 0), (150, 0.55, 0.25, 0.15), (300, 0.90, 0.80, 0.60), (1000, 1, 1, 0.95),
                    (3071, 1, 1, 1)),
            opacities=((-3024, 0), (150, 0), (300, 0.3), (700, 0.8), (3071, 0.85)),
        ),
        VolumePreset(
            "CT soft tissue",
            colors=((-1000, 0, 0, 0), (-200, 0.55, 0.25, 0.15), (40, 0.88, 0.60, 0.50), (80, 1, 0.94, 0.88),
                    (400, 1, 1, 1)),
            opacities=((-1000, 0), (-200, 0), (-50, 0.05), (60, 0.35), (400, 0.6), (3000, 0.8)),
        ),
        VolumePreset(
            "CT lung",
            colors=((-1000, 0.3, 0.3, 1), (-600, 0, 0, 1), (-530, 0.13, 0.78, 0.07), (-460, 0.93, 0.92, 0.6),
                    (-400, 0.86, 0.56, 0.5), (2952, 1, 1, 1)),
            opacities=((-1000, 0), (-600, 0), (-599, 0.15), (-400, 0.15), (-399, 0), (2952, 0)),
        ),
        VolumePreset(
            "MIP",
            colors=((-1000, 0, 0, 0), (3000, 1, 1, 1)),
            opacities=((-1000, 0), (3000, 1)),
            shade=False,
            blend="mip",
        ),
    )
}
DEFAULT_PRESET = "CT bone"
