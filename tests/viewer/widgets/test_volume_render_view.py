"""3D volume rendering: presets and VTK data wrapping here; the Qt/VTK widget under Xvfb in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from viewer.volume.presets import VOLUME_PRESETS, VolumePreset

SCENE = Path(__file__).with_name("vtk_scene.py")


def test_presets_are_ordered_and_validated():
    assert {"CT bone", "CT soft tissue", "CT lung", "MIP"} <= set(VOLUME_PRESETS)
    with pytest.raises(ValueError):
        VolumePreset("bad", colors=((10, 0, 0, 0), (0, 1, 1, 1)), opacities=((0, 0), (1, 1)))
    with pytest.raises(ValueError):
        VolumePreset("bad", colors=((0, 0, 0, 0),), opacities=((0, 0),), blend="sum")


def test_image_data_wraps_zyx_arrays_without_copy():
    from vtkmodules.util.numpy_support import vtk_to_numpy

    from viewer.widgets.volume_render_view import image_data

    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    data = image_data(arr, (2.5, 1.0, 0.5))
    assert data.GetDimensions() == (4, 3, 2) and data.GetSpacing() == (0.5, 1.0, 2.5)
    assert data.GetScalarComponentAsDouble(3, 2, 1, 0) == arr[1, 2, 3]
    assert np.shares_memory(vtk_to_numpy(data.GetPointData().GetScalars()), arr)
    with pytest.raises(ValueError):
        image_data(arr[:, :, ::2], (1, 1, 1))


def run_scene(display: str, out: Path, *extra: str) -> dict:
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    r = subprocess.run([sys.executable, str(SCENE), str(out), *extra], env=env, capture_output=True, text=True,
                       timeout=240, cwd=Path(__file__).parents[3])
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.xvfb
def test_volume_rendering_draws_the_phantom_under_xvfb(xvfb_display, tmp_path):
    facts = run_scene(xvfb_display, tmp_path / "vr.png", "280")
    mip, bone = facts["presets"]["MIP"], facts["presets"]["CT bone"]
    assert 0.03 < mip["lit_fraction"] < 0.9  # something drawn, not a blank or a full-screen fill
    assert 0.03 < bone["lit_fraction"] < 0.9
    assert abs(mip["mean"] - bone["mean"]) > 1  # the preset changes the picture
    assert (tmp_path / "vr.png").stat().st_size > 2000


@pytest.mark.xvfb
def test_software_opengl_ray_casts_on_the_cpu_a_reduced_volume(xvfb_display, tmp_path, monkeypatch):
    """Xvfb's OpenGL is Mesa llvmpipe: the view must pick the CPU ray caster and, over the voxel budget,
    render block averages (and say so), not emulate the GPU mapper for tens of seconds per frame."""
    monkeypatch.setenv("SCENE_MAX_VOXELS", str(48 ** 3 // 8))
    facts = run_scene(xvfb_display, tmp_path / "vr_small.png", "200")
    assert "llvmpipe" in facts["renderer"].lower() or "softpipe" in facts["renderer"].lower()
    assert facts["render_mode"].startswith("CPU ray casting")
    assert facts["shown_shape"] == [24, 24, 24]
    assert "shown at 1/2 resolution" in facts["status"]
    assert 0.01 < facts["presets"]["CT bone"]["lit_fraction"] < 0.9  # still a picture of the phantom (blank: 0)
