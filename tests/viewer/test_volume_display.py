"""The 3D renderer's volume: block means down to a voxel budget on software OpenGL, untouched otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.volume.display import block_factor, display_volume, is_software_renderer


def test_software_renderers_are_recognised_and_gpus_are_not():
    assert is_software_renderer("llvmpipe (LLVM 15.0.6, 256 bits)")
    assert is_software_renderer("Google SwiftShader")
    assert not is_software_renderer("NVIDIA GeForce RTX 3060/PCIe/SSE2")
    assert not is_software_renderer("AMD Radeon Pro 5500M OpenGL Engine")


def test_block_factor_is_the_smallest_that_fits():
    assert block_factor((200, 512, 512), 200 * 512 * 512) == 1
    assert block_factor((200, 512, 512), 16 * 1024 * 1024) == 2  # 100 x 256 x 256 = 6.5 M
    f = block_factor((601, 512, 512), 2_000_000)
    assert (601 // f) * (512 // f) ** 2 <= 2_000_000 < (601 // (f - 1)) * (512 // (f - 1)) ** 2
    with pytest.raises(ValueError):
        block_factor((10, 10, 10), 0)


def test_display_volume_averages_blocks_and_scales_spacing():
    vol = np.arange(4 * 6 * 6, dtype=np.int16).reshape(4, 6, 6)
    d = display_volume(vol, (2.5, 0.7, 0.7), max_voxels=4 * 6 * 6 // 8)
    assert d.factor == 2 and d.reduced and d.array.shape == (2, 3, 3) and d.array.flags.c_contiguous
    assert d.spacing_zyx == pytest.approx((5.0, 1.4, 1.4))
    assert d.array[1, 2, 0] == pytest.approx(vol[2:4, 4:6, 0:2].mean())
    same = display_volume(vol, (2.5, 0.7, 0.7), max_voxels=None)
    assert same.factor == 1 and not same.reduced and np.array_equal(same.array, vol)


def test_display_volume_refuses_what_it_cannot_average():
    with pytest.raises(ValueError, match="3D"):
        display_volume(np.zeros((4, 4)), (1, 1, 1), 8)
    with pytest.raises(ValueError, match="too thin"):
        display_volume(np.zeros((1, 400, 400)), (1, 1, 1), 1000)
