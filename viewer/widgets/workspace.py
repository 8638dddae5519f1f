"""The reading workspace the main window embeds: series strip, viewport layout, toolbar, MPR and 3D.

Embedding (app side):
    ws = ViewerWorkspace(measurement_store=db_store)
    window.setCentralWidget(ws)
    ws.open_study(study_ref)                    # StudyRef from the study database
    ws.imageChanged.connect(report_panel.on_image)
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer import hanging
from viewer.imaging.window import PRESET_KEYS, PRESETS
from viewer.io.refs import SeriesRef, StudyRef
from viewer.measure.store import InMemoryMeasurementStore
from viewer.models.tools import COMMAND_LABELS, TOOL_KEYS, Tool, key_for
from viewer.presentation.interest import InMemoryInterestStore, InterestRef, interest_ref
from viewer.presentation.study_objects import StudyObjects
from viewer.widgets.background import BackgroundRunner
from viewer.widgets.layout import LAYOUTS, ViewerLayout
from viewer.widgets.measurement_list import MeasurementList
from viewer.widgets.tag_browser import TagBrowserDialog
from viewer.widgets.thumbnails import SeriesThumbnails
from viewer.widgets.viewport import Viewport

VOLUME_MODALITIES = ("CT", "MR", "PT", "NM")
VIEW_COMMANDS = ("fit", "actual_size", "flip_h", "flip_v", "rotate_cw", "invert", "interpolation", "reset_view")


class ViewerWorkspace(QWidget):
    """Series thumbnails + a 1x1..4x4 grid of viewports + toolbar + measurement list; MPR replaces the grid
    when switched on. `apply_hanging` lays a study (and its priors) out by the matching hanging protocol."""

    imageChanged = Signal(object)  # DicomImage of the active viewport (or None)
    activeViewportChanged = Signal(object)  # the Viewport

    def __init__(self, parent: QWidget | None = None, measurement_store: Any = None, interest_store: Any = None) -> None:
        super().__init__(parent)
        self._store = measurement_store if measurement_store is not None else InMemoryMeasurementStore()
        self._interest_store = interest_store if interest_store is not None else InMemoryInterestStore()
        self._interest: dict[str, InterestRef] = {}  # the open study's "Of Interest" flags by SOP Instance UID
        self._interest_runner = BackgroundRunner(self)
        self._interest_reading: StudyRef | None = None  # the study whose flags are being read
        self._interest_changed: dict[str, tuple[InterestRef, bool]] = {}  # toggled while they were read
        self._study: StudyRef | None = None
        self._objects: StudyObjects | None = None
        self._objects_runner = BackgroundRunner(self)
        self._tag_dialog: TagBrowserDialog | None = None
        self._mpr = None  # MprView, built on first use (imports SimpleITK)
        self._volume_window = None  # VolumeRenderView window
        self._arriving = False  # the open study's files are still being fetched from the archive

        self.thumbnails = SeriesThumbnails(self)
        self.layout_view = ViewerLayout(self, self._store)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.layout_view)
        self.measurement_list = MeasurementList(self)
        self.measurement_list.setMinimumWidth(180)
        self.measurement_list.hide()
        self.hanging_protocol: hanging.HangingProtocol | None = None
        self.toolbar = QToolBar("Viewer", self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.banner = QLabel(self)
        self.banner.setVisible(False)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background:#5a4a00;color:#fff;padding:4px;")
        self._build_toolbar()

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(2)
        body.addWidget(self.thumbnails)
        self.split = QSplitter(Qt.Orientation.Horizontal, self)
        self.split.addWidget(self.stack)
        self.split.addWidget(self.measurement_list)
        self.split.setStretchFactor(0, 1)
        self.split.setCollapsible(0, False)
        body.addWidget(self.split, 1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(self.toolbar)
        outer.addWidget(self.banner)
        outer.addLayout(body, 1)

        self.thumbnails.seriesActivated.connect(self.load_series)
        self.layout_view.imageChanged.connect(self._image_changed)
        self.layout_view.activeViewportChanged.connect(self._active_changed)
        self.layout_view.viewportCreated.connect(self._adopt_viewport)
        self.measurement_list.set_viewport(self.active_viewport())

    # ================================================================ public API
    def open_study(self, study: StudyRef, measurement_store: Any = None) -> None:
        """Show `study`: thumbnails for its series, the first series (one per viewport) in the layout.
        `measurement_store` (a MeasurementStore) persists measurements; None keeps the current one."""
        if measurement_store is not None:
            self._store = measurement_store
        self._study = study
        self.show_2d()
        self.thumbnails.set_study(study)
        self.thumbnails.mark_derived(study.derived_series)
        self.layout_view.set_study(study, self._store)
        self._show_banner("" if study.series else "This study has no series with images.")
        self._load_interest(study)
        self._read_study_objects(study)
        self.active_viewport().setFocus()
        self.imageChanged.emit(self.current_image())

    def study(self) -> StudyRef | None:
        return self._study

    def set_arriving(self, on: bool) -> None:
        """Call with True before opening a study whose files are still being fetched (it opens on the first
        that arrived; the others say "arriving…" and show as files_arrived() is called), False when the fetch
        ended: then images still missing are named as such and the presentation states are read."""
        was, self._arriving = self._arriving, bool(on)
        for vp in self.layout_view.all_viewports():
            vp.set_arriving(self._arriving)
        if was and not self._arriving:
            self.files_arrived()
            self.thumbnails.stop_waiting()
            if self._study is not None:
                self._read_study_objects(self._study)

    def arriving(self) -> bool:
        return self._arriving

    def files_arrived(self) -> None:
        """More files of the open study are here: viewports and series icons that waited for them show them."""
        for vp in self.layout_view.all_viewports():
            vp.refresh_arrived()
        self.thumbnails.refresh_arrived()

    def _adopt_viewport(self, vp: Viewport) -> None:
        """A viewport the layout just created (a larger grid) shows the study's GSPS/KOS like the others and keeps
        the toolbar in step."""
        vp.stateChanged.connect(self._sync_toolbar)
        vp.set_study_objects(self._objects)
        vp.set_presentation_enabled(self._gsps_action.isChecked())
        vp.set_arriving(self._arriving)
        vp.interestRequested.connect(self.toggle_interest)
        vp.set_interest_marks(set(self._interest))

    # ================================================================ "Of Interest" flags
    def set_interest_store(self, store: Any) -> None:
        """Where the "Of Interest" flags persist (an InterestStore; None: in memory for this session)."""
        self._interest_store = store if store is not None else InMemoryInterestStore()
        if self._study is not None:
            self._load_interest(self._study)

    def interest_flags(self) -> list[InterestRef]:
        """The open study's images flagged "Of Interest"."""
        return list(self._interest.values())

    def toggle_interest(self, viewport: Viewport | None = None) -> bool | None:
        """Flag the image in `viewport` (default: the active one) "Of Interest", or unflag it; saved at once.
        Returns the new state, None when nothing was changed (no image, or the store failed: the banner says)."""
        vp = viewport or self.active_viewport()
        image = vp.current_image()
        if image is None or self._study is None:
            vp.show_notice("Open a study to flag an image Of Interest")
            return None
        try:
            ref = interest_ref(image.dataset)
            on = ref.sop_instance_uid not in self._interest
            self._interest_store.set(ref, on)
        except Exception as exc:  # the database is down or the header incomplete: say so, change nothing
            self._show_banner(f"Of Interest flag NOT saved: {exc}")
            self._sync_interest_action()
            return None
        if on:
            self._interest[ref.sop_instance_uid] = ref
        else:
            self._interest.pop(ref.sop_instance_uid, None)
        if self._interest_reading is not None:
            self._interest_changed[ref.sop_instance_uid] = (ref, on)  # kept when the stored flags arrive
        self._refresh_interest()
        vp.show_notice("Flagged Of Interest (sent with the report as a KOS)" if on else "Of Interest flag removed")
        return on

    def _load_interest(self, study: StudyRef) -> None:
        """Read the study's flags off the GUI thread (a database read stalled each study switch by 20-50 ms);
        the images show at once and the marks when read (a store in memory is read here). A flag set or removed meanwhile is saved at once and
        stays as the reader set it; a result for a study no longer open is dropped."""
        self._interest_runner.cancel_all()
        self._interest, self._interest_changed = {}, {}
        self._interest_reading = study
        self._refresh_interest()
        store = self._interest_store
        if isinstance(store, InMemoryInterestStore):  # nothing to wait for: read here
            self._interest_read(study, store, store.load(study.study_uid))
            return
        self._interest_runner.start(
            lambda _job: store.load(study.study_uid),
            on_done=lambda refs: self._interest_read(study, store, refs),
            on_error=lambda exc: self._interest_read(study, store, [], exc))

    def _interest_read(self, study: StudyRef, store: Any, refs: list[InterestRef],
                       error: BaseException | None = None) -> None:
        if self._study is not study or self._interest_store is not store or self._interest_reading is not study:
            return  # another study (or store) since: its own read is under way
        self._interest_reading = None
        if error is not None:  # the study is still read; the banner names the problem
            self._show_banner(f"Of Interest flags could not be read: {error}")
        merged = {r.sop_instance_uid: r for r in refs}
        for sop, (ref, on) in self._interest_changed.items():  # what the reader did meanwhile wins
            if on:
                merged[sop] = ref
            else:
                merged.pop(sop, None)
        self._interest, self._interest_changed = merged, {}
        self._refresh_interest()

    def interest_ready(self) -> bool:
        """Whether the open study's "Of Interest" flags have been read."""
        return self._interest_reading is None

    def _refresh_interest(self) -> None:
        """Mark the flags on every viewport's image and in the series strip's key image counts."""
        marks = set(self._interest)
        for vp in self.layout_view.all_viewports():
            vp.set_interest_marks(marks)
        self._refresh_key_counts()
        self._sync_interest_action()

    def _refresh_key_counts(self) -> None:
        per_series: dict[str, set[str]] = {}
        for sel in self._objects.key_selections if self._objects is not None else []:
            for sop, series in sel.images.items():
                if series:
                    per_series.setdefault(series, set()).add(sop)
        for ref in self._interest.values():
            per_series.setdefault(ref.series_uid, set()).add(ref.sop_instance_uid)
        self.thumbnails.set_key_image_counts({k: len(v) for k, v in per_series.items()})

    def _sync_interest_action(self) -> None:
        act = getattr(self, "_interest_action", None)
        if act is None:
            return
        vp = self.active_viewport()
        act.blockSignals(True)
        act.setChecked(vp.is_of_interest())
        act.blockSignals(False)
        act.setEnabled(vp.current_image() is not None)

    def set_study_objects(self, objects: StudyObjects) -> None:
        """Presentation states and key image selections of the open study: applied/marked in every viewport,
        key images counted in the series strip; unreadable ones named in the banner."""
        self._objects = objects
        for vp in self.layout_view.all_viewports():
            vp.set_study_objects(objects)
        self._refresh_key_counts()
        if objects.problems:
            self._show_banner("Not applied: " + "; ".join(objects.problems[:3])
                              + (f" (+{len(objects.problems) - 3} more)" if len(objects.problems) > 3 else ""))

    def study_objects(self) -> StudyObjects | None:
        return self._objects

    def study_objects_ready(self) -> bool:
        """Whether the open study's presentation states and key image selections have been read."""
        return self._objects is not None

    def _read_study_objects(self, study: StudyRef) -> None:
        """Read the study's GSPS/KOS files off the GUI thread (hundreds take seconds: benchmarks/study_objects.py);
        the images show at once and the presentation states apply when read. A result for a study that is no
        longer open is dropped."""
        self._objects_runner.cancel_all()
        self._objects = None
        for vp in self.layout_view.all_viewports():
            vp.set_study_objects(None)
        if self._arriving:
            return  # some may not be here yet: read when the fetch ends (set_arriving(False))
        if not study.object_paths:
            self.set_study_objects(StudyObjects())
            return
        self._objects_runner.submit(
            StudyObjects.from_paths, study.object_paths,
            on_done=lambda objects, s=study: self.set_study_objects(objects) if self._study is s else None,
            on_error=lambda exc, s=study: self._show_banner(f"Presentation states could not be read: {exc}")
            if self._study is s else None)

    def set_presentation_enabled(self, on: bool) -> None:
        """Presentation states (GSPS) on or off in every viewport."""
        for vp in self.layout_view.all_viewports():
            vp.set_presentation_enabled(on)
        if self._gsps_action.isChecked() != bool(on):
            self._gsps_action.setChecked(bool(on))

    def active_viewport(self) -> Viewport:
        return self.layout_view.active_viewport()

    def viewports(self) -> list[Viewport]:
        return self.layout_view.viewports()

    def current_image(self) -> Any:
        """The DicomImage shown in the active viewport (None if it is empty)."""
        return self.active_viewport().current_image()

    def load_series(self, series: SeriesRef, viewport: Viewport | None = None) -> None:
        self.show_2d()
        self.layout_view.load_series(series, viewport)
        self.active_viewport().setFocus()

    def set_layout(self, name: str) -> None:
        """A grid name from LAYOUTS: '1x1', '1x2', '2x2' ... '4x4'."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {list(LAYOUTS)}")
        self.show_2d()
        self.layout_view.set_grid(*LAYOUTS[name])
        self._layout_actions[name].setChecked(True)

    def apply_hanging(self, priors: list[StudyRef] | None = None, body_part: str = "",
                      site_protocols: list[dict] | None = None) -> hanging.HangingProtocol | None:
        """Lay the open study (and its priors, newest first) out by the first matching hanging protocol."""
        study = self._study
        if study is None:
            return None
        protocols, problems = hanging.load_protocols(site_protocols)
        protocol = hanging.choose(protocols, study, body_part, len(priors or []))
        if protocol is None:
            return None
        series = hanging.assign(protocol, study, list(priors or []))
        self.set_layout(protocol.layout)
        for vp, s in zip(self.viewports(), series, strict=False):
            shown = vp.series()
            # a viewport already showing that series keeps where the reader is in it (the protocol may arrive
            # after the reader began scrolling: its prior is looked up off the GUI thread)
            if s is not None and (shown is None or shown.series_uid != s.series_uid):
                vp.set_series(s)
        self.layout_view.set_active(self.viewports()[0])
        self.hanging_protocol = protocol
        self._show_banner("; ".join(problems))
        return protocol

    def toggle_measurements(self, on: bool | None = None) -> None:
        """Show or hide the measurement list beside the images (the images keep the rest)."""
        on = not self.measurement_list.isVisible() if on is None else on
        self.measurement_list.setVisible(on)
        self._measure_action.setChecked(on)
        if on:
            self.measurement_list.set_viewport(self.active_viewport())

    def set_tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)
        for vp in self.layout_view.all_viewports():
            vp.set_tool(tool)
        self._tool_actions[tool].setChecked(True)

    def set_overlay(self, values, opacity: float = 0.5, colormap: str = "jet", threshold: float | None = None,
                    caption: str = "", scale: tuple[str, str] = ("0", "1")) -> None:
        """Heat-map hook for the AI parts: painted over the active viewport's image with its caption and colour
        bar (see Viewport.set_overlay); the "AI map" button and the key Y hide and show it."""
        vp = self.active_viewport()
        vp.set_overlay(values, opacity, colormap, threshold, caption, scale)
        self._sync_overlay_action()

    def toggle_overlay(self) -> None:
        vp = self.active_viewport()
        vp.set_overlay_visible(not vp.overlay_visible())
        self._sync_overlay_action()

    def _sync_overlay_action(self) -> None:
        act = getattr(self, "_overlay_action", None)
        if act is None:
            return
        vp = self.active_viewport()
        act.setEnabled(vp.has_overlay())
        act.blockSignals(True)
        act.setChecked(vp.overlay_visible())
        act.blockSignals(False)

    def set_cine_fps(self, fps: float) -> None:
        for vp in self.layout_view.all_viewports():
            vp.set_cine_fps(fps)
        if self.fps.value() != round(fps):
            self.fps.setValue(round(fps))

    def set_anonymised(self, on: bool) -> None:
        for vp in self.layout_view.all_viewports():
            vp.set_anonymised(on)
        self._anon_action.setChecked(on)

    def show_tag_browser(self) -> TagBrowserDialog:
        if self._tag_dialog is None:
            self._tag_dialog = TagBrowserDialog(self)
        self._tag_dialog.set_image(self.current_image())
        self._tag_dialog.show()
        self._tag_dialog.raise_()
        return self._tag_dialog

    def tag_browser(self) -> TagBrowserDialog | None:
        return self._tag_dialog

    def show_2d(self) -> None:
        self.stack.setCurrentWidget(self.layout_view)
        if hasattr(self, "_mpr_action"):
            self._mpr_action.setChecked(False)

    def show_mpr(self, series: SeriesRef | None = None) -> Any:
        """Switch to MPR of `series` (default: the active viewport's). Returns the MprView, or None with
        a banner explaining why (not a volume modality, too few slices)."""
        series = series or self.active_viewport().series()
        problem = _volume_problem(series)
        if problem:
            self._show_banner(problem)
            self._mpr_action.setChecked(False)
            return None
        if self._mpr is None:
            from viewer.widgets.mpr_view import MprView

            self._mpr = MprView(self)
            self.stack.addWidget(self._mpr)
        self._show_banner("")
        self.stack.setCurrentWidget(self._mpr)
        self._mpr_action.setChecked(True)
        window = self.active_viewport().current_window()
        self._mpr.load_series(series, window)
        return self._mpr

    def mpr_view(self) -> Any:
        return self._mpr

    def show_3d(self, series: SeriesRef | None = None) -> Any:
        """Open a 3D volume rendering window of `series` (default: active). VTK's Qt widget needs a real
        display: on an offscreen platform this explains that instead of crashing."""
        series = series or self.active_viewport().series()
        problem = _volume_problem(series)
        if not problem and QGuiApplication.platformName() in ("offscreen", "minimal"):
            problem = "3D rendering needs a display (the Qt platform is offscreen)."
        if problem:
            self._show_banner(problem)
            return None
        from viewer.widgets.volume_render_view import VolumeRenderWindow

        if self._volume_window is None:
            self._volume_window = VolumeRenderWindow(self)
            self._place_on_screen(self._volume_window)
        self._volume_window.show()
        self._volume_window.load_series(series)
        return self._volume_window

    def _place_on_screen(self, window: QWidget) -> None:
        """Open a separate window inside the screen the workstation is on, centred over it."""
        screen = (self.window().screen() or QGuiApplication.primaryScreen()).availableGeometry()
        w = min(max(window.width(), 900), screen.width() - 40)
        h = min(max(window.height(), 700), screen.height() - 60)
        window.resize(w, h)
        centre = self.window().frameGeometry().center()
        x = min(max(screen.left(), centre.x() - w // 2), screen.right() - w)
        y = min(max(screen.top(), centre.y() - h // 2), screen.bottom() - h)
        window.move(x, y)

    def banner_text(self) -> str:
        return self.banner.text() if self.banner.isVisible() else ""

    # ================================================================ internals
    def _show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    def _image_changed(self, image: Any) -> None:
        self._sync_interest_action()
        if self._tag_dialog is not None and self._tag_dialog.isVisible():
            self._tag_dialog.set_image(image)
        self.imageChanged.emit(image)

    def _active_changed(self, vp: Viewport) -> None:
        self.measurement_list.set_viewport(vp)
        self._sync_interest_action()
        self.activeViewportChanged.emit(vp)

    def _run(self, command: str) -> None:
        mpr = self._mpr
        if mpr is not None and self.stack.currentWidget() is mpr and mpr.volume() is not None:
            # window commands act on what is on screen: the MPR planes share one W/L
            if command.startswith("preset:"):
                key = int(command.split(":", 1)[1])
                if key in PRESET_KEYS:
                    mpr.set_window(PRESETS[PRESET_KEYS[key]])
                    return
                command = "window_default"
            if command == "window_default":
                mpr.set_window(mpr.volume().window or mpr.window())
                return
        self.active_viewport().run_command(command)
        self.active_viewport().setFocus()

    def _action(self, text: str, tip_key: str = "", slot=None, checkable: bool = False) -> QAction:
        act = QAction(text, self)
        act.setToolTip(f"{text} ({tip_key})" if tip_key else text)
        act.setCheckable(checkable)
        if slot is not None:
            act.triggered.connect(slot)
        return act

    def _build_toolbar(self) -> None:
        tb = self.toolbar
        group = QActionGroup(self)
        group.setExclusive(True)
        self._tool_actions: dict[Tool, QAction] = {}
        short_tools = {Tool.WINDOW: "W/L", Tool.PAN: "Pan", Tool.ZOOM: "Zoom", Tool.DISTANCE: "Distance",
                       Tool.ANGLE: "Angle", Tool.RECT: "Rect ROI", Tool.ELLIPSE: "Ellipse ROI", Tool.ARROW: "Arrow",
                       Tool.TEXT: "Text"}
        for tool in Tool:
            act = self._action(short_tools[tool], TOOL_KEYS[tool], checkable=True)
            act.setToolTip(f"{tool.label} ({TOOL_KEYS[tool]})")
            act.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            group.addAction(act)
            tb.addAction(act)
            self._tool_actions[tool] = act
        self._tool_actions[Tool.WINDOW].setChecked(True)
        tb.addSeparator()

        presets = QMenu("Presets", self)
        presets.aboutToShow.connect(lambda: self._fill_presets(presets))
        self._fill_presets(presets)
        self._add_menu_button("Presets", presets)

        layouts = QMenu("Layout", self)
        lgroup = QActionGroup(self)
        self._layout_actions: dict[str, QAction] = {}
        for name in LAYOUTS:
            act = layouts.addAction(name)
            act.setCheckable(True)
            act.triggered.connect(lambda _=False, n=name: self.set_layout(n))
            lgroup.addAction(act)
            self._layout_actions[name] = act
        self._layout_actions["1x1"].setChecked(True)
        self._add_menu_button("Layout", layouts)
        tb.addSeparator()

        # the view commands live in one menu so MPR, 3D, Tags and cine stay on the toolbar at any width
        view = QMenu("View", self)
        view.setToolTipsVisible(True)
        self._view_actions: dict[str, QAction] = {}
        for cmd in VIEW_COMMANDS:
            act = view.addAction(f"{COMMAND_LABELS[cmd]}\t{key_for(cmd)}")
            act.triggered.connect(lambda _=False, c=cmd: self._run(c))
            self._view_actions[cmd] = act
        self._view_actions["interpolation"].setCheckable(True)
        self._view_actions["interpolation"].setChecked(True)
        self._add_menu_button("View", view)
        self._cine_action = self._action("Cine", key_for("cine"), lambda: self._run("cine"))
        tb.addAction(self._cine_action)
        self.fps = QSpinBox(self)
        self.fps.setRange(1, 60)
        self.fps.setValue(10)
        self.fps.setSuffix(" fps")
        self.fps.setToolTip("Cine rate (frames or images per second)")
        self.fps.valueChanged.connect(self.set_cine_fps)
        tb.addWidget(self.fps)
        self._anon_action = self._action("Anon", key_for("anonymise"), checkable=True)
        self._anon_action.setToolTip(f"Anonymise overlays: hide patient name, ID, birth date, accession ({key_for('anonymise')})")
        self._anon_action.toggled.connect(lambda on: [vp.set_anonymised(on) for vp in self.layout_view.all_viewports()])
        tb.addAction(self._anon_action)
        self._overlay_action = self._action("AI map", key_for("toggle_overlay"), checkable=True)
        self._overlay_action.setToolTip(f"Show or hide the AI map over the image ({key_for('toggle_overlay')}); "
                                        "enabled when an explanation map is shown")
        self._overlay_action.setEnabled(False)
        self._overlay_action.triggered.connect(lambda _on: self.toggle_overlay())
        tb.addAction(self._overlay_action)
        tb.addSeparator()

        self._interest_action = self._action("Of Interest", key_for("toggle_interest"), checkable=True)
        self._interest_action.setToolTip(f"Flag or unflag the image as Of Interest ({key_for('toggle_interest')}): "
                                         "marked like a key image, sent with the signed report as a KOS")
        self._interest_action.setEnabled(False)
        self._interest_action.triggered.connect(lambda _on: self.toggle_interest())
        tb.addAction(self._interest_action)
        self._measure_action = self._action("Measurements", "", lambda on: self.toggle_measurements(on),
                                            checkable=True)
        self._measure_action.setToolTip("Show the list of measurements (rename, select, delete)")
        tb.addAction(self._measure_action)
        tags = self._action("Tags", "Ctrl+T", self.show_tag_browser)
        tags.setShortcut(QKeySequence("Ctrl+T"))
        tags.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._mpr_action = self._action("MPR", "M", checkable=True)
        self._mpr_action.setShortcut(QKeySequence("M"))
        self._mpr_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._mpr_action.triggered.connect(lambda on: self.show_mpr() if on else self.show_2d())
        vr = self._action("3D", "Ctrl+3", self.show_3d)
        vr.setShortcut(QKeySequence("Ctrl+3"))
        vr.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._gsps_action = self._action("GSPS", "Shift+P", checkable=True)
        self._gsps_action.setToolTip("Apply presentation states (annotations, window, zoom from other viewers)"
                                     " (Shift+P)")
        self._gsps_action.setChecked(True)
        self._gsps_action.setShortcut(QKeySequence("Shift+P"))
        self._gsps_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._gsps_action.toggled.connect(self.set_presentation_enabled)
        self._gsps_next = self._action("Next GSPS", "Ctrl+Shift+P", lambda: self.active_viewport().next_presentation())
        self._gsps_next.setToolTip("Next presentation state of this image, when several viewers made one (Ctrl+Shift+P)")
        self._gsps_next.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self._gsps_next.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addAction(self._gsps_next)
        for act in (tags, self._mpr_action, vr, self._gsps_action):
            tb.addAction(act)
            self.addAction(act)
        for vp in self.layout_view.all_viewports():
            vp.stateChanged.connect(self._sync_toolbar)
            vp.overlayChanged.connect(self._sync_overlay_action)
            vp.interestRequested.connect(self.toggle_interest)

    def _add_menu_button(self, text: str, menu: QMenu) -> None:
        button = QToolButton(self)
        button.setText(text)
        button.setMenu(menu)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.toolbar.addWidget(button)

    def _fill_presets(self, menu: QMenu) -> None:
        """The presets of the active image's modality: HU presets for CT, contrast presets otherwise."""
        menu.clear()
        header = menu.addAction("Header window\t1 / 0")
        header.triggered.connect(lambda: self._run("window_default"))
        vp = self.active_viewport() if hasattr(self, "layout_view") else None
        table = vp.presets() if vp is not None else dict(PRESET_KEYS)
        for key, name in sorted(table.items()):
            wl = PRESETS.get(name)
            values = f"  W{wl.width:.0f} L{wl.center:.0f}" if wl is not None else ""
            act = menu.addAction(f"{name.title()}{values}\t{key}")
            act.triggered.connect(lambda _=False, k=key: self._run(f"preset:{k}"))

    def _sync_toolbar(self) -> None:
        vp = self.active_viewport()
        self._tool_actions[vp.tool()].setChecked(True)
        if hasattr(self, "_view_actions"):
            self._view_actions["interpolation"].setChecked(vp.smooth())
        if self._anon_action.isChecked() != vp.anonymised():
            self._anon_action.blockSignals(True)
            self._anon_action.setChecked(vp.anonymised())
            self._anon_action.blockSignals(False)


def _volume_problem(series: SeriesRef | None) -> str:
    """Why `series` cannot become a volume ('' if it can)."""
    if series is None:
        return "Load a CT or MR series into the active viewport first."
    if series.modality and series.modality not in VOLUME_MODALITIES:
        return f"MPR/3D needs a CT or MR series; this one is {series.modality}."
    if len(series.paths) < 3:
        return f"MPR/3D needs at least 3 slices; this series has {len(series.paths)}."
    return ""
