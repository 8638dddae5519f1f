"""3D volume rendering of a CT/MR volume with VTK inside Qt (QVTKRenderWindowInteractor).

Only the VTK modules needed are imported (never `import vtk`), which keeps the packaged app small.
VTK's Qt widget needs a real display (X11/Wayland, or Xvfb in tests); it does not render on Qt's
offscreen platform, so the workspace refuses 3D there with a message instead of crashing.
On software OpenGL (no GPU) the CPU ray caster renders a block-averaged volume (viewer.volume.display):
VTK's GPU ray caster emulated on the CPU froze the GUI for tens of seconds per frame.
"""

from __future__ import annotations

import threading

import numpy as np
import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the interactor styles)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL render window)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (registers the GPU volume mappers)
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPiecewiseFunction
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkColorTransferFunction,
    vtkRenderer,
    vtkVolume,
    vtkVolumeProperty,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

from viewer.io.refs import SeriesRef
from viewer.volume.display import SOFTWARE_MAX_VOXELS, DisplayVolume, display_volume, is_software_renderer
from viewer.volume.loader import VolumeCancelled, VolumeResult, load_volume
from viewer.volume.presets import DEFAULT_PRESET, VOLUME_PRESETS, VolumePreset
from viewer.widgets.background import BackgroundRunner


def image_data(array: np.ndarray, spacing_zyx: tuple[float, float, float]) -> vtkImageData:
    """Wrap a C-contiguous (z, y, x) array as vtkImageData without copying (caller keeps `array`)."""
    if array.ndim != 3:
        raise ValueError(f"a volume is 3D (z, y, x), got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError("volume array must be C-contiguous (use np.ascontiguousarray)")
    nz, ny, nx = array.shape
    data = vtkImageData()
    data.SetDimensions(nx, ny, nz)
    data.SetSpacing(spacing_zyx[2], spacing_zyx[1], spacing_zyx[0])
    scalars = numpy_to_vtk(array.reshape(-1), deep=False)
    scalars.SetName("values")
    data.GetPointData().SetScalars(scalars)
    return data


class VolumeRenderView(QWidget):
    """A VTK render window showing one volume with a transfer-function preset; rotate with the mouse."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vtk_widget = QVTKRenderWindowInteractor(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.vtk_widget)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.render_window.AddRenderer(self.renderer)
        self.vtk_widget.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.mapper = vtkSmartVolumeMapper()
        self.property = vtkVolumeProperty()
        self.property.SetInterpolationTypeToLinear()
        self.actor = vtkVolume()
        self.actor.SetMapper(self.mapper)
        self.actor.SetProperty(self.property)
        self._array: np.ndarray | None = None
        self._preset = DEFAULT_PRESET
        self._initialised = False
        self._renderer_name = ""

    def renderer_name(self) -> str:
        """The OpenGL renderer string ("llvmpipe (LLVM ...)", "NVIDIA ..."); initialises the window."""
        self._initialise()
        return self._renderer_name

    def software_opengl(self) -> bool:
        """True when OpenGL runs on the CPU: the view then ray-casts on the CPU, a reduced volume."""
        return is_software_renderer(self.renderer_name())

    def render_mode(self) -> str:
        return "CPU ray casting (software OpenGL)" if self.software_opengl() else "GPU ray casting"

    def _initialise(self) -> None:
        if self._initialised:
            return
        self.vtk_widget.Initialize()
        self._initialised = True
        self.render_window.Render()  # an empty scene: creates the OpenGL context the capabilities come from
        for line in (self.render_window.ReportCapabilities() or "").splitlines():
            if "renderer string" in line.lower():
                self._renderer_name = line.split(":", 1)[1].strip()
                break
        if is_software_renderer(self._renderer_name):
            self.mapper.SetRequestedRenderModeToRayCast()

    def set_volume(self, array: np.ndarray, spacing_zyx: tuple[float, float, float], flip_z: bool = True) -> None:
        """Show `array` (z, y, x, modality units). Camera looks from the patient's front, head up."""
        self._array = np.ascontiguousarray(array)
        self.mapper.SetInputData(image_data(self._array, spacing_zyx))
        if not self.renderer.HasViewProp(self.actor):
            self.renderer.AddVolume(self.actor)
        self.set_preset(self._preset, render=False)
        self.reset_camera(flip_z)
        self.render()

    def reset_camera(self, flip_z: bool = True) -> None:
        cam = self.renderer.GetActiveCamera()
        self.renderer.ResetCamera()
        fx, fy, fz = cam.GetFocalPoint()
        dist = cam.GetDistance()
        # DICOM rows run anterior -> posterior (+y), so the front of the patient is at -y
        cam.SetPosition(fx, fy - dist, fz)
        cam.SetViewUp(0.0, 0.0, 1.0 if flip_z else -1.0)
        self.renderer.ResetCamera()
        cam.Zoom(1.3)

    def preset(self) -> str:
        return self._preset

    def set_preset(self, name: str, render: bool = True) -> None:
        if name not in VOLUME_PRESETS:
            raise ValueError(f"unknown volume preset {name!r}; expected one of {sorted(VOLUME_PRESETS)}")
        self._preset = name
        apply_preset(self.property, self.mapper, VOLUME_PRESETS[name])
        if render:
            self.render()

    def render(self) -> None:
        self._initialise()
        self.render_window.Render()

    def grab_array(self, render: bool = True) -> np.ndarray:
        """The rendered picture as HxWx3 uint8 (top row first), read from the render window itself;
        Qt's grab() cannot see OpenGL content of this widget. `render=False` reads the last frame."""
        if render or not self._initialised:
            self.render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(self.render_window)
        grab.ShouldRerenderOff()  # a software-GL ray cast costs seconds; we rendered just above
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        out = grab.GetOutput()
        w, h, _ = out.GetDimensions()
        arr = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[..., :3]
        return np.ascontiguousarray(arr[::-1])

    def closeEvent(self, e) -> None:  # noqa: N802
        self.vtk_widget.Finalize()
        super().closeEvent(e)


def _display(vol: VolumeResult, budget: int | None) -> DisplayVolume:
    try:
        return display_volume(vol.array, vol.spacing_zyx, budget)
    except ValueError:  # too thin to average (a few huge slices): full resolution, slower but right
        return display_volume(vol.array, vol.spacing_zyx, None)


def apply_preset(prop: vtkVolumeProperty, mapper: vtkSmartVolumeMapper, preset: VolumePreset) -> None:
    color = vtkColorTransferFunction()
    for value, r, g, b in preset.colors:
        color.AddRGBPoint(value, r, g, b)
    opacity = vtkPiecewiseFunction()
    for value, a in preset.opacities:
        opacity.AddPoint(value, a)
    prop.SetColor(color)
    prop.SetScalarOpacity(opacity)
    prop.SetShade(preset.shade)
    prop.SetAmbient(0.2)
    prop.SetDiffuse(0.9)
    prop.SetSpecular(0.2)
    if preset.blend == "mip":
        mapper.SetBlendModeToMaximumIntensity()
    else:
        mapper.SetBlendModeToComposite()


class VolumeRenderWindow(QWidget):
    """A top-level window: preset chooser + VolumeRenderView; loads a series in the background."""

    volumeLoaded = Signal(object)
    loadFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("3D volume rendering")
        self.resize(720, 720)
        self.view = VolumeRenderView(self)
        self.presets = QComboBox(self)
        self.presets.addItems(list(VOLUME_PRESETS))
        self.presets.setCurrentText(DEFAULT_PRESET)
        self.presets.currentTextChanged.connect(self.view.set_preset)
        self.status = QLabel(self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_load)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Preset:", self))
        bar.addWidget(self.presets)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)
        self._runner = BackgroundRunner(self)
        self._cancel = threading.Event()
        self._done = [0, 0]
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(lambda: self.status.setText(f"Loading {self._done[0]}/{self._done[1]} slices\u2026"))
        self._series: SeriesRef | None = None

    def load_series(self, series: SeriesRef) -> None:
        if series == self._series:
            return
        self.cancel_load()
        self._series = series
        self._cancel = threading.Event()
        self._done = [0, len(series.paths)]
        cancel = self._cancel

        def progress(done: int, total: int) -> None:
            self._done = [done, total]

        self.cancel_button.show()
        self._timer.start()
        budget = SOFTWARE_MAX_VOXELS if self.view.software_opengl() else None

        def job() -> tuple[VolumeResult, DisplayVolume]:
            vol = load_volume(series.paths, progress=progress, cancel=cancel)
            return vol, _display(vol, budget)  # block averages in this thread, not the GUI's

        self._runner.submit(job, on_done=lambda r: self.set_volume_result(*r), on_error=self._failed)

    def cancel_load(self) -> None:
        self._cancel.set()
        self._runner.cancel_all()
        self._timer.stop()
        self.cancel_button.hide()

    def set_volume_result(self, vol: VolumeResult, shown: DisplayVolume | None = None) -> None:
        """Show `vol`; `shown` is what the renderer gets (computed here when not given: small volumes)."""
        self._timer.stop()
        self.cancel_button.hide()
        if shown is None:
            shown = _display(vol, SOFTWARE_MAX_VOXELS if self.view.software_opengl() else None)
        shape = "x".join(str(n) for n in vol.shape[::-1])
        warn = f" \u2014 \u26a0 {'; '.join(vol.warnings)}" if vol.warnings else ""
        reduced = (f" \u2014 shown at 1/{shown.factor} resolution (no GPU: {self.view.render_mode()})"
                   if shown.reduced else "")
        self.status.setText(f"{vol.modality} {shape}{warn}{reduced}")
        self.view.set_volume(shown.array, shown.spacing_zyx, vol.flip_z)
        self.volumeLoaded.emit(vol)

    def _failed(self, exc: BaseException) -> None:
        self._timer.stop()
        self.cancel_button.hide()
        self._series = None
        msg = "Loading cancelled." if isinstance(exc, VolumeCancelled) else f"Cannot build a volume: {exc}"
        self.status.setText(msg)
        self.loadFailed.emit(msg)

    def closeEvent(self, e) -> None:  # noqa: N802
        self.cancel_load()
        super().closeEvent(e)
