"""The workstation's main window: worklist and viewer as tabs, report / AI panels docked beside them.

The window only wires parts together; each part (worklist, viewer workspace, report editor, engine client,
explain panel) is its own widget with its own tests, and none of them knows about the window.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from app.db.database import Database
from app.db.measurement_store import DbMeasurementStore
from app.db.queries import StudyNotFound, study_ref
from app.widgets.worklist import WorklistWidget
from viewer.io.refs import StudyRef
from viewer.widgets.workspace import ViewerWorkspace


class MainWindow(QMainWindow):
    """Worklist + viewer; `open_study(uid)` is the one way a study gets on screen."""

    studyOpened = Signal(str)

    def __init__(self, database: Database, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self.setWindowTitle("RadStation")
        self.resize(1500, 950)
        self._study: StudyRef | None = None
        self._measurements = DbMeasurementStore(database)

        self.worklist = WorklistWidget(database)
        self.workspace = ViewerWorkspace(measurement_store=self._measurements)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.worklist, "Worklist")
        self.tabs.addTab(self.workspace, "Viewer")
        self.setCentralWidget(self.tabs)
        self.worklist.studyOpenRequested.connect(self.open_study)

        self.side_tabs = QTabWidget()
        self.side_dock = QDockWidget("Report and AI", self)
        self.side_dock.setObjectName("side_dock")
        self.side_dock.setWidget(self.side_tabs)
        self.side_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.side_dock)
        self.side_dock.hide()

        self._build_menus()
        self.statusBar().showMessage(f"Database: {database.url}", 5000)

    # -- studies ---------------------------------------------------------------------------------
    @property
    def study(self) -> StudyRef | None:
        return self._study

    def open_study(self, study_uid: str) -> bool:
        """Show a study from the database in the viewer; a clear message if it cannot be opened."""
        try:
            with self.database.session() as session:
                ref = study_ref(session, study_uid)
        except StudyNotFound:
            QMessageBox.warning(self, "RadStation", f"Study {study_uid} is not in the database.")
            return False
        if not ref.series:
            QMessageBox.warning(self, "RadStation", "This study has no images that can be shown.")
            return False
        self._study = ref
        self.workspace.open_study(ref, self._measurements)
        self.tabs.setCurrentWidget(self.workspace)
        who = ref.patient_name.replace("^", " ").strip() or ref.patient_id
        self.setWindowTitle(f"RadStation - {who} - {ref.description or ref.study_date}")
        self.studyOpened.emit(study_uid)
        return True

    # -- import ----------------------------------------------------------------------------------
    def import_paths(self, paths: list[Path]) -> None:
        """Import in the background with progress and cancel; the worklist refreshes when done."""
        from app.widgets.import_dialog import ImportDialog

        dialog = ImportDialog(self.database, [str(p) for p in paths], parent=self)
        dialog.finished.connect(lambda *_: self.worklist.refresh())
        dialog.open()
        self._import_dialog = dialog

    def _import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder of DICOM files")
        if folder:
            self.import_paths([Path(folder)])

    def _import_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Import DICOM files, a DICOMDIR or a zip", "", "DICOM (*.dcm DICOMDIR *.zip);;All files (*)"
        )
        if files:
            self.import_paths([Path(f) for f in files])

    def _open_demo(self) -> None:
        from app.demo_studies import demo_study_uids, ensure_demo_imported

        try:
            ensure_demo_imported(self.database)
        except FileNotFoundError as exc:
            QMessageBox.warning(self, "RadStation", str(exc))
            return
        self.worklist.refresh()
        self.open_study(demo_study_uids()[0])

    # -- menus -----------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self._action("Import &folder...", self._import_folder, "Ctrl+Shift+O"))
        file_menu.addAction(self._action("Import &files, DICOMDIR or zip...", self._import_files, "Ctrl+O"))
        file_menu.addAction(self._action("Open &demo study", self._open_demo))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self._action("&Worklist", lambda: self.tabs.setCurrentWidget(self.worklist), "F2"))
        view_menu.addAction(self._action("&Viewer", lambda: self.tabs.setCurrentWidget(self.workspace), "F3"))
        view_menu.addAction(self.side_dock.toggleViewAction())
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&About RadStation", self._about))

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About RadStation",
            "RadStation: an offline reading workstation with a local AI engine.\n"
            "AI output is a draft for a radiologist to review; synthetic images are never for diagnosis.\n\n"
            "Demo images: NIH Clinical Center ChestX-ray14 (https://nihcc.app.box.com/v/ChestXray-NIHCC; "
            "Wang et al., CVPR 2017).",
        )
