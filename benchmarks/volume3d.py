"""3D volume rendering: how long the GUI thread is blocked opening a CT in 3D, per frame and per preset.

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/volume3d.py [--slices 200] [--size 512]

Needs a display (VTK's Qt widget does not render offscreen). A synthetic CT (body cylinder, bone sphere)
of --slices x --size^2 int16 is shown in `VolumeRenderWindow` three ways, each in a fresh process:

- `product`: what the app does - on software OpenGL the CPU ray caster on block averages prepared off the
  GUI thread (viewer.volume.display), on a GPU the GPU ray caster at full resolution;
- `gpu mapper, full`: VTK's GPU ray caster at full resolution (the app before; emulated on the CPU here);
- `cpu mapper, full`: the CPU ray caster at full resolution.

Columns: `open` = set_volume_result on the GUI thread until the first picture (the stall a reader sees),
`frame` = a 10-degree rotation re-rendered, `preset` = switching to MIP; medians of --repeat processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the `viewer` package, not benchmarks/viewer.py beside this script


def _child(slices: int, size: int, variant: str) -> dict:
    import time

    import numpy as np
    import SimpleITK as sitk
    from PySide6.QtWidgets import QApplication

    from viewer.volume.display import SOFTWARE_MAX_VOXELS, display_volume
    from viewer.volume.loader import VolumeResult
    from viewer.widgets.volume_render_view import VolumeRenderWindow

    app = QApplication.instance() or QApplication([])
    n, s = slices, size
    z, y, x = np.ogrid[:n, :s, :s]
    vol = np.full((n, s, s), -1000, np.int16)
    vol[np.broadcast_to((y - s // 2) ** 2 + (x - s // 2) ** 2 < (s // 3) ** 2, vol.shape)] = 40
    ball = ((z - n // 2) * (s / n)) ** 2 + (y - s // 2) ** 2 + (x - s // 2) ** 2 < (s // 6) ** 2
    vol[np.broadcast_to(ball, vol.shape)] = 1200
    result = VolumeResult(image=sitk.GetImageFromArray(vol[:1]), array=vol, positions=np.zeros((n, 3)), paths=[],
                          spacing_zyx=(1.0, 0.7, 0.7), modality="CT", units="HU")
    win = VolumeRenderWindow()
    win.resize(720, 720)
    win.show()
    app.processEvents()
    view = win.view
    renderer = view.renderer_name()
    if variant == "product":
        budget = SOFTWARE_MAX_VOXELS if view.software_opengl() else None
        shown = display_volume(vol, result.spacing_zyx, budget)  # the loading thread's part, not timed
    else:
        shown = display_volume(vol, result.spacing_zyx, None)
        if variant.startswith("gpu"):
            view.mapper.SetRequestedRenderModeToGPU()
        else:
            view.mapper.SetRequestedRenderModeToRayCast()
    t = time.perf_counter()
    win.set_volume_result(result, shown)
    app.processEvents()
    opened = time.perf_counter() - t
    cam = view.renderer.GetActiveCamera()
    t = time.perf_counter()
    cam.Azimuth(10)
    view.render()
    frame = time.perf_counter() - t
    t = time.perf_counter()
    win.presets.setCurrentText("MIP")
    preset = time.perf_counter() - t
    return {"open": opened, "frame": frame, "preset": preset, "renderer": renderer,
            "shown": "x".join(str(v) for v in shown.array.shape[::-1])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=200)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=["product", "cpu mapper, full", "gpu mapper, full"])
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(_child(a.slices, a.size, a.child)))
        return 0
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("error: 3D rendering needs a display; run under xvfb-run", file=sys.stderr)
        return 2
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; volume "
          f"{a.size}x{a.size}x{a.slices} int16; window 720x720; medians of {a.repeat} processes\n")
    print("| variant | renderer | shown voxels | open (GUI blocked) s | frame s | preset s |")
    print("|---|---|---|---:|---:|---:|")
    for variant in a.variants:
        runs = []
        for _ in range(a.repeat):
            r = subprocess.run([sys.executable, __file__, "--child", variant, "--slices", str(a.slices),
                                "--size", str(a.size)], capture_output=True, text=True, cwd=ROOT,
                               env=dict(os.environ, QT_QPA_PLATFORM="xcb"), timeout=900)
            if r.returncode != 0:
                print(f"| {variant} | failed: {r.stderr.strip().splitlines()[-1:]} | | | | |")
                break
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        if runs:
            med = {k: statistics.median(x[k] for x in runs) for k in ("open", "frame", "preset")}
            print(f"| {variant} | {runs[0]['renderer'][:28]} | {runs[0]['shown']} | {med['open']:.2f} | "
                  f"{med['frame']:.2f} | {med['preset']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
