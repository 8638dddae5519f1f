"""The volume handed to the 3D renderer: full resolution on a GPU, block-averaged on software OpenGL.

Without a GPU, OpenGL is Mesa's llvmpipe: VTK's GPU ray caster then runs its shaders on the CPU and a
200 x 512^2 CT took 29-35 s to open and 10-20 s per frame here, all on the GUI thread. VTK's CPU ray
caster (vtkFixedPointVolumeRayCastMapper, chosen through vtkSmartVolumeMapper) is much faster there, and
its cost grows with the voxel count, so the volume is averaged over small blocks down to a voxel budget
first, in the loading thread, never on the GUI thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Voxels shown without a GPU: 200 x 256^2 CT opens in ~1.3 s and turns in ~0.6 s per frame on 2 cores.
SOFTWARE_MAX_VOXELS = 16 * 1024 * 1024
# Renderer names of software OpenGL implementations (lower case, matched as substrings).
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "software rasterizer", "gdi generic")


@dataclass(frozen=True)
class DisplayVolume:
    array: np.ndarray  # (z, y, x), C-contiguous
    spacing_zyx: tuple[float, float, float]
    factor: int  # 1 = full resolution; f = each voxel is the mean of an f^3 block

    @property
    def reduced(self) -> bool:
        return self.factor > 1


def is_software_renderer(renderer: str) -> bool:
    """True when an OpenGL renderer string names a CPU implementation (Mesa llvmpipe, SwiftShader, ...)."""
    name = renderer.lower()
    return any(key in name for key in SOFTWARE_RENDERERS)


def block_factor(shape: tuple[int, ...], max_voxels: int) -> int:
    """The smallest integer block edge that brings `shape` within `max_voxels` (1 when it already is)."""
    if max_voxels < 1:
        raise ValueError(f"max_voxels must be >= 1, got {max_voxels}")
    voxels = math.prod(shape)
    f = max(1, math.ceil((voxels / max_voxels) ** (1 / 3)))
    while math.prod(max(1, n // f) for n in shape) > max_voxels:
        f += 1
    return f


def display_volume(array: np.ndarray, spacing_zyx: tuple[float, float, float],
                   max_voxels: int | None = None) -> DisplayVolume:
    """`array` as the renderer should get it: unchanged when `max_voxels` is None or not exceeded, else
    the mean of each f x f x f block (edges that do not fill a block are dropped), computed one slab at a
    time so the extra memory is one output volume in float32."""
    if array.ndim != 3:
        raise ValueError(f"a volume is 3D (z, y, x), got shape {array.shape}")
    f = 1 if max_voxels is None else block_factor(array.shape, max_voxels)
    if f == 1:
        return DisplayVolume(np.ascontiguousarray(array), tuple(spacing_zyx), 1)  # type: ignore[arg-type]
    nz, ny, nx = (n // f for n in array.shape)
    if min(nz, ny, nx) < 1:
        raise ValueError(f"volume {array.shape} is too thin to average over {f}-voxel blocks")
    out = np.empty((nz, ny, nx), np.float32)
    for k in range(nz):
        slab = array[k * f:(k + 1) * f, : ny * f, : nx * f].astype(np.float32)
        out[k] = slab.reshape(f, ny, f, nx, f).mean(axis=(0, 2, 4))
    spacing = tuple(float(s) * f for s in spacing_zyx)
    return DisplayVolume(out, spacing, f)  # type: ignore[arg-type]
