"""Multiplanar reformats of a (z, y, x) volume as numpy views, and the crosshair index maths between
planes. Slices are views (no copies), so scrolling a 300 MB volume costs nothing but the rendering.

Display convention: axial rows run anterior->posterior and columns right->left of the patient (as
stored); coronal and sagittal show the head at the top when `flip_z` is set (slice index growing
toward the head, the usual case, see `VolumeResult.flip_z`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["PLANES", "MPRGeometry", "Plane", "mpr_slice"]

Plane = Literal["axial", "coronal", "sagittal"]
PLANES: tuple[Plane, ...] = ("axial", "coronal", "sagittal")


def _check_plane(plane: str) -> None:
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}; expected one of {PLANES}")


def mpr_slice(
    volume_array: np.ndarray,
    spacing: tuple[float, float, float],
    plane: Plane,
    index: int,
    *,
    flip_z: bool = True,
) -> tuple[np.ndarray, tuple[float, float]]:
    """One reformatted slice (a view) and its (row, column) pixel spacing in mm.

    `spacing` is in array-axis order (z, y, x), as `VolumeResult.spacing_zyx`. The caller draws the
    slice with pixel aspect row_spacing / column_spacing so anatomy keeps its true proportions.
    """
    return MPRGeometry(volume_array.shape, spacing, flip_z).slice(volume_array, plane, index)


@dataclass(frozen=True)
class MPRGeometry:
    """Index conversions for a (z, y, x) volume of `shape` with `spacing_zyx` (mm)."""

    shape: tuple[int, ...]
    spacing_zyx: tuple[float, float, float]
    flip_z: bool = True

    def __post_init__(self) -> None:
        if len(self.shape) != 3:
            raise ValueError(f"a volume has 3 axes (z, y, x), got shape {self.shape}")
        if len(self.spacing_zyx) != 3 or any(not s > 0 for s in self.spacing_zyx):
            raise ValueError(f"spacing must be 3 positive numbers (z, y, x), got {self.spacing_zyx}")

    def n_slices(self, plane: Plane) -> int:
        _check_plane(plane)
        nz, ny, nx = self.shape
        return {"axial": nz, "coronal": ny, "sagittal": nx}[plane]

    def slice_shape(self, plane: Plane) -> tuple[int, int]:
        nz, ny, nx = self.shape
        return {"axial": (ny, nx), "coronal": (nz, nx), "sagittal": (nz, ny)}[plane]

    def pixel_spacing(self, plane: Plane) -> tuple[float, float]:
        """(row, column) mm of the reformatted slice."""
        _check_plane(plane)
        sz, sy, sx = self.spacing_zyx
        return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[plane]

    def aspect(self, plane: Plane) -> float:
        """Row spacing / column spacing: how much taller than wide one displayed pixel must be."""
        r, c = self.pixel_spacing(plane)
        return r / c

    def slice(self, volume: np.ndarray, plane: Plane, index: int) -> tuple[np.ndarray, tuple[float, float]]:
        _check_plane(plane)
        if tuple(volume.shape) != tuple(self.shape):
            raise ValueError(f"volume shape {volume.shape} does not match geometry {self.shape}")
        n = self.n_slices(plane)
        if not 0 <= index < n:
            raise IndexError(f"{plane} slice {index} out of range (0..{n - 1})")
        zs = slice(None, None, -1) if self.flip_z else slice(None)
        if plane == "axial":
            view = volume[index]
        elif plane == "coronal":
            view = volume[zs, index, :]
        else:
            view = volume[zs, :, index]
        return view, self.pixel_spacing(plane)

    def plane_index(self, plane: Plane, zyx: tuple[int, int, int]) -> int:
        """Which slice of `plane` passes through voxel `zyx`."""
        _check_plane(plane)
        z, y, x = zyx
        return {"axial": z, "coronal": y, "sagittal": x}[plane]

    def _row_of_z(self, z: int) -> int:
        return self.shape[0] - 1 - z if self.flip_z else z

    def to_plane(self, plane: Plane, zyx: tuple[int, int, int]) -> tuple[int, int]:
        """(row, column) of voxel `zyx` inside the `plane` slice through it: where to draw the crosshair."""
        _check_plane(plane)
        z, y, x = zyx
        if plane == "axial":
            return y, x
        if plane == "coronal":
            return self._row_of_z(z), x
        return self._row_of_z(z), y

    def from_plane(self, plane: Plane, index: int, row: float, col: float) -> tuple[int, int, int]:
        """The voxel (z, y, x) under (row, col) of slice `index` of `plane`, clipped into the volume.

        This is the linked-crosshair update: a click in one view moves the other two views' slices."""
        _check_plane(plane)
        nz, ny, nx = self.shape
        r, c = int(np.floor(row)), int(np.floor(col))
        if plane == "axial":
            z, y, x = index, r, c
        elif plane == "coronal":
            z, y, x = self._row_of_z(r), index, c
        else:
            z, y, x = self._row_of_z(r), c, index
        return (
            int(np.clip(z, 0, nz - 1)),
            int(np.clip(y, 0, ny - 1)),
            int(np.clip(x, 0, nx - 1)),
        )

    def center(self) -> tuple[int, int, int]:
        nz, ny, nx = self.shape
        return nz // 2, ny // 2, nx // 2
