"""The workstation's main window: worklist and viewer as tabs, report / AI panels docked beside them.

The window only wires parts together; each part (worklist, viewer workspace, report editor, engine client,
explain panel, lock screen) is its own widget with its own tests, and none of them knows about the window.

No patient data is shown before someone logs in (the lock screen covers the window) unless the site turned
on `kiosk_mode`; input anywhere in the application keeps the session alive, and an idle session locks the
screen (the report text is kept and saved after the same user unlocks).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from app import access_audit
from app.db.database import Database
from app.db.interest_store import DbInterestStore
from app.db.measurement_store import DbMeasurementStore
from app.db.queries import StudyNotFound, study_ref
from app.formatting import format_date, person_name
from app.reports.users import AuthSession, UserService
from app.settings import Settings, use_settings

# imported here, not in the study-open path (this and PriorReportsPanel): PySide's import hook reads a module's
# source the first time the GUI thread imports it (~25 ms of the first open under load; the warm-up thread's
# import does not spare the GUI thread this)
from app.study_actions import hanging_inputs
from app.widgets.activity import ActivityMonitor
from app.widgets.lock_screen import LockScreen
from app.widgets.prior_reports import PriorReportsPanel
from app.widgets.report_editor import ReportEditor
from app.widgets.worklist import WorklistWidget
from viewer.io.refs import StudyRef
from viewer.widgets.workspace import ViewerWorkspace


class MainWindow(QMainWindow):
    """Worklist + viewer; `open_study(uid)` is the one way a study gets on screen."""

    studyOpened = Signal(str)

    def __init__(self, database: Database, parent: QWidget | None = None, *, settings: Settings | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self._settings_problem = ""
        if settings is None:
            settings, self._settings_problem = Settings.load_or_defaults()
        self.settings = settings
        use_settings(settings)  # modules not handed a Settings object read these, not settings.json
        self.setWindowTitle("RadStation")
        self.resize(1600, 1000)
        self._study: StudyRef | None = None
        self._measurements = DbMeasurementStore(database)
        self.users = UserService.from_settings(database, self.settings)
        self.auth: AuthSession | None = None
        self.report_editor: ReportEditor | None = None
        self._spare_editor: ReportEditor | None = None  # built while nobody waits, for the next study opened
        self._shown_once = False
        self._warm_runner = None  # BackgroundRunner of the study-open warm-up (app.study_open_warmup)
        self._study_images: list = []  # the open study's images as the engine reads them
        self._images_for = ""  # the study whose images are being read for the AI panels ('' = none pending)
        self._images_runner = None  # BackgroundRunner, built on first use
        self._hang_runner = None  # BackgroundRunner for the hanging protocol's prior lookup, built on first use
        self._hanging_for: StudyRef | None = None  # the study whose hanging protocol is on its way
        self._docs_runner = None  # BackgroundRunner reading the study's SR/PDF documents, built on first use
        self._settings_save: QTimer | None = None  # a deferred settings write (see _remember)
        self.kiosk = bool(self.settings.get("kiosk_mode", False))
        self.locked = False
        self._hidden_while_locked: list[QWidget] = []

        self.worklist = WorklistWidget(database, settings=self.settings)
        self.workspace = ViewerWorkspace(measurement_store=self._measurements)
        self.workspace.set_interest_store(DbInterestStore(database))  # K: "Of Interest" flags, sent as a KOS
        self.tabs = QTabWidget()
        self.tabs.addTab(self.worklist, "Worklist")
        self.tabs.addTab(self.workspace, "Viewer")
        self.lock_screen = LockScreen(self.users)
        self.lock_screen.loggedIn.connect(self._on_gate_login)
        self.lock_screen.createAccountRequested.connect(self._create_account)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.tabs)
        self.pages.addWidget(self.lock_screen)
        self.setCentralWidget(self.pages)
        self.worklist.studyOpenRequested.connect(self.open_study)
        access_audit.set_actor(None)  # the workstation: nobody logged in yet
        self._audited_series: set[str] = set()
        self.workspace.imageChanged.connect(self._audit_image)
        self.worklist.actionRequested.connect(self._worklist_action)

        self.side_tabs = QTabWidget()
        self.side_dock = QDockWidget("Report and AI", self)
        self.side_dock.setObjectName("side_dock")
        self.side_dock.setWidget(self.side_tabs)
        self.side_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                   | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                                   | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.side_dock)
        self.side_dock.hide()

        self._user_label = QLabel("not logged in")
        self.statusBar().addPermanentWidget(self._user_label)
        self.activity = ActivityMonitor(lambda: self.auth, self)
        self.activity.idle.connect(lambda: self.lock("Locked after "
                                                     f"{self.users.session_timeout.total_seconds() / 60:.0f} "
                                                     "minutes without activity."))
        if (app := QApplication.instance()) is not None:
            app.installEventFilter(self.activity)
        self.pacs_panel = None  # built on first use (PACS menu)
        self.prior_reports = None  # built when a study with reports from the PACS opens
        self.prior_view = None
        self.scp = self._start_storage_scp()
        self._prefetch = self._make_prefetcher()
        self._archive = self._make_archive_fetch()
        self._build_ai()
        self._build_outbox()
        from app.audit_forwarder import AuditForwarder

        self.audit_forwarder = AuditForwarder(self.database, parent=self)  # IHE ATNA, when configured
        self.audit_forwarder.start()
        self._build_menus()
        if self.settings.get("anonymise_overlays", False):
            self.workspace.set_anonymised(True)
        self.statusBar().showMessage(self._settings_problem or f"Database: {database.url}", 10000)
        self._update_actions()
        if not self.kiosk:
            self.lock()

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
        arriving = self._archive is not None and self._archive.needs_fetch(study_uid)
        if arriving and not self._archive.first_image_here(study_uid):
            self._archive.start(study_uid)  # its files are on the archive only: opened when the first is here
            self.statusBar().showMessage(f"Fetching study {study_uid} from {self._archive.node.describe()}...")
            return False
        if not ref.series:
            QMessageBox.warning(self, "RadStation", "This study has no images that can be shown.")
            return False
        self._study = ref
        if self._archive is not None:
            if not arriving and self._archive.is_fetching():
                self._archive.cancel()  # another study is read now: a fetch still running stops
                self._fetch_bar.hide()
            self._archive.opened(study_uid)
        self.workspace.set_arriving(arriving)
        access_audit.study_opened(self.database, study_uid, wait=False)  # written in order by the audit thread
        self._audited_series = set()
        self.workspace.open_study(ref, self._measurements)
        self._hang(ref)
        self.tabs.setCurrentWidget(self.workspace)
        self._update_title()
        self._remember("last_study_uid", study_uid, later=True)
        self._show_report_editor()
        self._show_prior_reports()
        self._ai_study_changed()
        if self._prefetch is not None:
            self._prefetch.start(study_uid)
        self.studyOpened.emit(study_uid)
        return True

    def _audit_image(self, image: object) -> None:
        """Images of a series shown for the first time since the study was opened: one audit entry."""
        series = str(getattr(image, "series_uid", "") or "")
        if image is None or not series or series in self._audited_series:
            return
        self._audited_series.add(series)
        access_audit.images_viewed(self.database, str(getattr(image, "study_uid", "")), series,
                                   str(getattr(image, "modality", "")), wait=False)

    def _hang(self, ref: StudyRef) -> None:
        """Lay the study out by its hanging protocol (current + prior, PA + lateral...). The prior and the
        exam are looked up off the GUI thread; the layout follows when they arrive, if `ref` is still open."""
        if not self.settings.get("hanging_protocols_enabled", True):
            return
        from viewer.widgets.background import BackgroundRunner

        if self._hang_runner is None:
            self._hang_runner = BackgroundRunner(self)
        self._hanging_for = ref
        self._hang_runner.submit(hanging_inputs, self.database, ref.study_uid,
                                 on_done=lambda inputs, r=ref: self._apply_hanging(r, *inputs),
                                 on_error=lambda exc, r=ref: self._hanging_failed(r, exc))

    def _apply_hanging(self, ref: StudyRef, priors: list[StudyRef], body_parts: tuple[str, ...]) -> None:
        if self._study is not ref or self._hanging_for is not ref:
            return  # another study was opened meanwhile (or the user hung this one by hand): dropped
        self._hanging_for = None
        try:
            site = self.settings.get("hanging_protocols", []) or []
            protocol = self.workspace.apply_hanging(priors, " ".join(body_parts), site)
        except Exception as exc:  # noqa: BLE001 - a bad protocol must not stop the study from being read
            self._hanging_failed(ref, exc)
            return
        if protocol is not None and protocol.layout != "1x1":
            self.statusBar().showMessage(f"Hanging protocol: {protocol.name}", 6000)

    def _hanging_failed(self, ref: StudyRef, exc: BaseException) -> None:
        if self._study is ref:
            self.statusBar().showMessage(f"Hanging protocol not applied: {exc}", 10000)

    def start_up(self, study_uid: str | None = None) -> None:
        """What the window shows first: the given study, else the worklist or the last study (setting
        `startup_view`), never a demo study by default."""
        if study_uid is None and self.settings.get("startup_view", "worklist") == "last_study":
            study_uid = str(self.settings.get("last_study_uid", "") or "") or None
        if study_uid:
            with self.database.session() as session:
                try:
                    study_ref(session, study_uid)
                except StudyNotFound:
                    study_uid = None
        if study_uid:
            self.open_study(study_uid)
        else:
            self.tabs.setCurrentWidget(self.worklist)
            self.worklist.refresh_soon()

    # -- worklist row actions -----------------------------------------------------------------------
    def _worklist_action(self, action: str, study_uid: str) -> None:
        """The worklist's context menu: open (with prior), export (anonymised), send, delete."""
        if action == "open":
            self.open_study(study_uid)
        elif action == "open_with_prior":
            self.open_with_prior(study_uid)
        elif action in ("export", "export_anonymised"):
            folder = QFileDialog.getExistingDirectory(self, "Export the study to a folder")
            if folder:
                self.export_study(study_uid, Path(folder), anonymised=action == "export_anonymised")
        elif action == "send":
            self._send_study(study_uid)
        elif action == "delete":
            self.delete_study(study_uid)
        elif action in ("pin", "unpin") and self._archive is not None:
            self.keep_on_workstation(study_uid, action == "pin")

    def open_with_prior(self, study_uid: str) -> bool:
        """Current study left, the same patient's previous study right (a 1x2 hanging)."""
        from app.study_actions import load_study, prior_study_uid

        if not self.open_study(study_uid):
            return False
        self._hanging_for = None  # hung here by hand: the automatic protocol, still on its way, is dropped
        prior_uid = prior_study_uid(self.database, study_uid)
        if prior_uid is None:
            self.statusBar().showMessage("No earlier study of this patient on this workstation.", 8000)
            return True
        prior = load_study(self.database, prior_uid)
        series = next((s for s in prior.series if s.paths and s.modality not in ("SR", "KO", "PR", "DOC")), None)
        if series is None:
            return True
        self.workspace.set_layout("1x2")
        self.workspace.load_series(series, self.workspace.viewports()[1])
        self.workspace.layout_view.set_active(self.workspace.viewports()[0])
        self.statusBar().showMessage(f"Prior of {format_date(prior.study_date)} on the right.", 8000)
        return True

    def export_study(self, study_uid: str, folder: Path, anonymised: bool = False):
        from app.study_actions import export_study, load_study
        from app.widgets.background_job import BackgroundJob

        study = load_study(self.database, study_uid)
        job = BackgroundJob("Exporting the study" + (" (anonymised)" if anonymised else ""),
                            lambda progress, cancelled: export_study(study, folder, anonymised=anonymised,
                                                                     progress=progress, cancelled=cancelled,
                                                                     database=self.database),
                            self)
        job.finished.connect(lambda r: self.statusBar().showMessage(
            f"{'Cancelled after' if r.cancelled else 'Exported'} {r.written} files to {r.folder}", 10000))
        job.failed.connect(lambda msg: QMessageBox.warning(self, "Export", f"Export failed: {msg}"))
        self._job = job.start()
        return job

    def _send_study(self, study_uid: str) -> None:
        from app.pacs.errors import PacsConfigError
        from app.pacs.nodes import NodeStore
        from app.reports.send import send
        from app.study_actions import load_study
        from app.widgets.background_job import BackgroundJob

        try:
            nodes = {n.name: n for n in NodeStore(self.settings).load()}
        except PacsConfigError as exc:
            QMessageBox.warning(self, "Send to PACS", str(exc))
            return
        if not nodes:
            QMessageBox.information(self, "Send to PACS", "No PACS is configured (PACS > Nodes and Storage SCP…).")
            return
        name, ok = QInputDialog.getItem(self, "Send to PACS", "Send the study's images to:", sorted(nodes), 0, False)
        if not ok:
            return
        paths = [p for s in load_study(self.database, study_uid).series for p in s.paths]

        def work(progress, cancelled) -> int:
            sent = 0
            try:
                for n, path in enumerate(paths):
                    if cancelled():
                        return n
                    send(nodes[name], path.read_bytes())
                    sent = n + 1
                    progress(sent, len(paths))
                return sent
            finally:  # what left the workstation is audited, also when the send stopped part-way
                if sent:
                    access_audit.exported(self.database, study_uid, f"{sent} image file(s) sent", f"PACS {name}")

        job = BackgroundJob(f"Sending to {name}", work, self)
        job.finished.connect(lambda n: self.statusBar().showMessage(f"Sent {n} of {len(paths)} images to {name}",
                                                                    10000))
        job.failed.connect(lambda msg: QMessageBox.warning(self, "Send to PACS", f"Sending stopped: {msg}"))
        self._job = job.start()

    def delete_study(self, study_uid: str, confirm: bool | None = None) -> bool:
        from app.study_actions import StudyActionError, delete_study

        row = next((r for r in self.worklist.model.rows if r.study_uid == study_uid), None)
        what = (f"{person_name(row.patient_name)}, {row.description or 'study'} of {format_date(row.study_date)}"
                if row else study_uid)
        if confirm is None:
            box = QMessageBox(QMessageBox.Icon.Warning, "Delete study",
                              f"Delete {what} and its images from this workstation?\n\n"
                              "Copies in the PACS are not touched. This cannot be undone.", parent=self)
            delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
            cancel = box.addButton(QMessageBox.StandardButton.Cancel)
            box.setDefaultButton(cancel)  # Enter never deletes by accident
            box.setEscapeButton(cancel)
            self.confirm_box = box
            box.exec()
            confirm = box.clickedButton() is delete
        if not confirm:
            return False
        if self._study is not None and self._study.study_uid == study_uid:
            QMessageBox.information(self, "Delete study", "Close the study first: it is open in the viewer.")
            return False
        try:
            removed = delete_study(self.database, study_uid)
        except StudyActionError as exc:
            QMessageBox.warning(self, "Delete study", str(exc))
            return False
        self.worklist.refresh_soon()
        self.statusBar().showMessage(f"Deleted {what} ({removed} files).", 10000)
        return True

    # -- AI ----------------------------------------------------------------------------------------
    def _build_ai(self) -> None:
        """Engine client (worker process started on the first job), draft and question panels."""
        from app.ai.services import AiServices
        from app.widgets.ai_panel import AiPanel
        from app.widgets.qa_panel import QaPanel

        self.ai = AiServices.from_settings(self.settings, self.database, self)
        self.ai_panel = AiPanel(self.ai.client, self.ai.drafts, self.settings)
        self.qa_panel = QaPanel(self.ai.qa)
        self.side_tabs.addTab(self.ai_panel, "AI draft")
        self.side_tabs.addTab(self.qa_panel, "Questions")
        self._engine_label = QLabel("")
        self.statusBar().addPermanentWidget(self._engine_label)
        self.ai_panel.statusText.connect(self._engine_label.setText)
        self.ai_panel.draftReady.connect(self._on_draft_ready)
        self.ai_panel.user_provider = self.qa_panel.user_provider = lambda: self.auth  # who overrides the gate
        self._pending_drafts: dict[str, dict] = {}

        from app.model_runner import ClientRunner
        from app.widgets.explain_panel import ExplainPanel

        self.model_runner = ClientRunner(self.ai.client.core)  # explanations, what-if: the same worker
        from app.paths import data_dir
        from explain.cache import ExplanationCache

        self.explain_panel = ExplainPanel(
            self.model_runner, cache=ExplanationCache(data_dir() / "explain"), engine_key=self.model_runner.key
        )
        self.explain_panel.overlayRequested.connect(self._on_explain_overlay)
        self.side_tabs.addTab(self.explain_panel, "Explain")
        from app.widgets.similar_panel import SimilarPanel

        self.similar_panel = SimilarPanel(self.model_runner, self.settings, self._similar_case_image)
        self.side_tabs.addTab(self.similar_panel, "Similar studies")
        self.whatif_view = None  # built on first use

    def _ai_study_changed(self) -> None:
        """Hand the open study to the AI panels. Its images are decoded on a background thread (every pixel
        of the study: half a second and more on the GUI thread); the panels get them when they arrive, if
        that study is still the open one."""
        from viewer.widgets.background import BackgroundRunner

        uid = self._study.study_uid if self._study else ""
        self._study_images = []
        self._images_for = uid
        self.ai_panel.set_study(uid, [], stored_rows=[])  # its stored drafts come with the images (below)
        self.qa_panel.set_study("", [])  # no question about this study before its images are there
        self._refresh_explain()
        self.similar_panel.set_study(uid, [])
        if not uid:
            return
        reading = "Reading the study's images\u2026"
        if self.workspace.arriving():  # read when the fetch from the archive has ended (_fetch_ended)
            reading = "Waiting for the study's images to arrive from the archive\u2026"
        for label in (self.ai_panel.images_label, self.similar_panel.status, self.explain_panel.status):
            label.setText(reading)
        if self.workspace.arriving():
            return
        if self._images_runner is None:
            self._images_runner = BackgroundRunner(self)
        self._images_runner.submit(_read_for_ai, self.database, self.ai_panel.drafts.db, uid,
                                   on_done=lambda read, u=uid: self._ai_images_loaded(u, *read),
                                   on_error=lambda exc, u=uid: self._ai_images_failed(u, exc))

    @property
    def ai_images_ready(self) -> bool:
        """The open study's images reached the AI panels (tests and the UI-stall probe wait for it)."""
        return self._images_for == ""

    def _ai_images_loaded(self, study_uid: str, images: list, stored_rows: list | None = None) -> None:
        if self._study is None or self._study.study_uid != study_uid or self._images_for != study_uid:
            return  # another study was opened meanwhile: its own load is on the way
        self._images_for = ""
        self._ai_set_images(study_uid, images, stored_rows)
        pending = self._pending_drafts.pop(study_uid, None)
        if pending is not None:
            self._on_draft_ready(study_uid, pending)

    def _report_opened(self, study_uid: str) -> None:
        """A draft that came while the report was still opening goes in now (once the images are here too)."""
        if self._images_for != study_uid and study_uid in self._pending_drafts:
            self._on_draft_ready(study_uid, self._pending_drafts.pop(study_uid))

    def _ai_images_failed(self, study_uid: str, exc: BaseException) -> None:
        if self._images_for != study_uid:
            return
        self._images_for = ""
        self.ai_panel.images_label.setText(f"The AI cannot read this study's images: {exc}")
        self.statusBar().showMessage(f"AI: the study's images could not be read ({exc})", 10000)

    def _ai_set_images(self, study_uid: str, images: list, stored_rows: list | None = None) -> None:
        self.ai_panel.set_study(study_uid, images, stored_rows)
        self.qa_panel.set_study(study_uid, images)
        self._study_images = images
        self._refresh_explain()
        self.similar_panel.set_study(study_uid, [im.pixels for im in images])

    def _on_draft_ready(self, study_uid: str, draft: dict) -> None:
        """Put a finished draft into the open report; keep it for later when it cannot go there yet."""
        from app.reports.service import ReportError

        self.worklist.refresh_soon()  # the AI-draft column

        editor = self.report_editor
        if self._study is None or study_uid != self._study.study_uid or editor is None or self.auth is None:
            self._pending_drafts[study_uid] = draft  # also stored in the database (AiDraft) by the service
            if self._study is not None and study_uid == self._study.study_uid:
                self.statusBar().showMessage("AI draft ready: log in to put it into the report", 10000)
            return
        try:
            editor.load_ai_draft(draft["findings"], draft["impression"], draft["provenance"],
                                 draft.get("token_uncertainty"))
        except ReportError as exc:
            self._pending_drafts[study_uid] = draft
            self.statusBar().showMessage(f"AI draft not loaded: {exc}", 10000)
            return
        self.side_tabs.setCurrentWidget(editor)
        self.statusBar().showMessage(f"AI draft loaded. {draft.get('images_note', '')}", 10000)

    def _index_signed_study(self, _version_id: int) -> None:
        """A signed report joins the site's similar-case index (embedded in the worker)."""
        if self._study is None or self.report_editor is None:
            return
        text = self.report_editor.sections()
        self.similar_panel.index_signed(self._study.study_uid, [im.pixels for im in self._study_images],
                                        text.get("findings", ""), text.get("impression", ""))

    def _similar_case_image(self, hit: dict):
        """Pixels of a similar case: a site study from the database, a development case from its file."""
        from app.ai.ai_store import study_images_from_db
        from app.widgets.similar_panel import load_case_image

        if hit.get("origin") == "site":
            images = study_images_from_db(self.database, str(hit.get("case_id") or ""))
            return images[0].pixels if images else None
        return load_case_image(hit)

    def _report_text(self) -> str:
        return self.report_editor.current_text() if self.report_editor is not None else ""

    def _refresh_explain(self) -> None:
        """Feed the explain panel the open study and the report as it stands (cached maps show at once)."""
        images = [im.pixels for im in self._study_images][:1]
        uid = self._study.study_uid if self._study else ""
        self.explain_panel.set_study(uid, images, self._report_text(),
                                     headers=[im.header for im in self._study_images][:1])

    def _on_explain_overlay(self, values, opacity: float, colormap: str, threshold: float) -> None:
        self.workspace.set_overlay(values, opacity=opacity, colormap=colormap, threshold=threshold,
                                   caption=self.explain_panel.current_caption(), scale=("0 low", "1 high"))

    def export_explanation(self, out_dir: Path | None = None) -> list[Path]:
        """The Explain panel's shown map as SEG + Parametric Map (or derived SC for radiographs), written to a
        folder and stored in the study as derived objects (grouped apart, never evidence)."""
        from app.dicom_objects.explain_export import export_explanation
        from explain.dicom_maps import MapSource

        values = self.explain_panel.current_map()
        if values is None or not self._study_images or self._study is None:
            QMessageBox.information(self, "RadStation", "Show a map in the Explain panel first.")
            return []
        source_uid = self._study_images[0].sop_instance_uid
        from app.dicom_objects.report_objects import image_files

        source = image_files(self.database, [source_uid]).get(source_uid)
        if source is None:
            QMessageBox.warning(self, "RadStation", "The explained image is not in the study database.")
            return []
        if out_dir is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder for the explanation map objects")
            if not folder:
                return []
            out_dir = Path(folder)
        label = self.explain_panel._selection_label() if hasattr(self.explain_panel, "_selection_label") else ""
        _opacity, _cmap, threshold = self.explain_panel.overlay_params()
        made_by = MapSource(label or "explanation", "RadStation explain", str(self.model_runner.key)[-64:])
        try:
            written = export_explanation(source, values, made_by, out_dir, threshold=threshold or 0.5,
                                         database=self.database)
        except (ValueError, OSError) as exc:
            QMessageBox.warning(self, "RadStation", f"The map could not be exported: {exc}")
            return []
        self.statusBar().showMessage(f"Explanation map written: {', '.join(p.name for p in written)}", 10000)
        self.worklist.refresh()
        return written

    def show_whatif(self) -> None:
        """Counterfactual view for the image on screen, starting from the current report text."""
        from app.widgets.whatif_view import WhatIfView

        image = self.workspace.current_image()
        if image is None or image.is_color:
            QMessageBox.information(self, "RadStation", "Open a greyscale image to ask 'what if'.")
            return
        if self.whatif_view is None:
            self.whatif_view = WhatIfView(self.model_runner, database=self.database)
            self.whatif_view.stored.connect(lambda _s: self.worklist.refresh_soon())
            self.whatif_view.user_provider = lambda: self.auth
            self.tabs.addTab(self.whatif_view, "What if")
        self.whatif_view.set_case(image.frame(0), self._report_text(), image.dataset)
        self.tabs.setCurrentWidget(self.whatif_view)

    def _pre_draft_worklist(self) -> None:
        """Batch pre-draft every study in the worklist's current result (one progress bar)."""
        from app.ai.ai_store import study_images_from_db

        uids = [self.worklist.model.rows[r].study_uid for r in range(self.worklist.model.rowCount())]
        studies = [(uid, imgs) for uid in uids if (imgs := study_images_from_db(self.database, uid))]
        if not studies:
            QMessageBox.information(self, "RadStation", "No study in the worklist has an image to draft.")
            return
        self.ai_panel.pre_draft(studies)
        self.side_tabs.setCurrentWidget(self.ai_panel)
        self.side_dock.show()

    # -- priors from the PACS --------------------------------------------------------------------
    def _show_prior_reports(self) -> None:
        """Reports that came with the study (SR, PDF) in a read-only tab; they set the study's report
        status when it has no local report. Found and read off the GUI thread (every SR/PDF file is parsed);
        shown when read, if that study is still open."""
        from app.priors.documents import study_documents_synced
        from viewer.widgets.background import BackgroundRunner

        if self._study is None:
            self._set_prior_documents([])
            return
        if self._docs_runner is None:
            self._docs_runner = BackgroundRunner(self)
        ref = self._study
        self._docs_runner.submit(study_documents_synced, self.database, ref.study_uid,
                                 on_done=lambda docs: self._prior_documents_read(ref, *docs),
                                 on_error=lambda exc: self._prior_documents_read(ref, [], False))

    def _prior_documents_read(self, ref: StudyRef, docs: list, status_changed: bool) -> None:
        if status_changed:
            self.worklist.refresh_soon()
        if self._study is ref:
            self._set_prior_documents(docs)

    def _set_prior_documents(self, docs: list) -> None:
        if not docs:
            if self.prior_reports is not None and self.side_tabs.indexOf(self.prior_reports) >= 0:
                self.side_tabs.removeTab(self.side_tabs.indexOf(self.prior_reports))
            return
        if self.prior_reports is None:
            self.prior_reports = PriorReportsPanel()
        if self.side_tabs.indexOf(self.prior_reports) < 0:
            self.side_tabs.insertTab(1, self.prior_reports, "Prior reports")
        self.prior_reports.set_documents(docs)

    @property
    def open_lookups_ready(self) -> bool:
        """Nothing the last open started off the GUI thread (hanging protocol, prior reports) is on its way."""
        return all(r is None or not r.busy() for r in (self._hang_runner, self._docs_runner))

    def _studies_retrieved(self, uids: list) -> None:
        from app.priors.documents import sync_report_status

        for uid in uids or []:
            sync_report_status(self.database, uid)
        self.worklist.refresh()

    # -- outbox ----------------------------------------------------------------------------------
    def _build_outbox(self) -> None:
        """The background sender: the outbox tab sends due items every 15 s on a worker thread, and its
        state per item (queued, sending, retry, sent, failed) is always one click away; the status bar
        counts what is waiting or failed."""
        from app.reports.outbox import Outbox
        from app.reports.service import ReportService
        from app.widgets.outbox import OutboxWidget

        self.outbox = OutboxWidget(Outbox(ReportService(self.database, self.users, self.settings)))
        self.tabs.addTab(self.outbox, "Outbox")
        self._outbox_label = QLabel("")
        self.statusBar().addPermanentWidget(self._outbox_label)
        self.outbox.changed.connect(self._outbox_changed)
        self._outbox_changed()

    def _outbox_changed(self) -> None:
        self._outbox_label.setText(f"Outbox: {self.outbox.status.text()}")

    def _outbox_queued(self, _ids: list) -> None:
        self.outbox.refresh()
        self.outbox.send_due()

    # -- PACS ------------------------------------------------------------------------------------
    def _start_storage_scp(self):
        """Receive pushes when the settings enable the Storage SCP (off by default)."""
        from app.pacs.errors import PacsError
        from app.pacs.scp import start_configured_scp

        try:
            return start_configured_scp(self.database, self.settings)
        except PacsError as exc:
            self._settings_problem = self._settings_problem or f"Storage SCP not started: {exc}"
            return None

    def _make_archive_fetch(self):
        """Fetch on open from the `archive` settings' node (app/widgets/archive_fetch.py); None without one."""
        from app.pacs.errors import PacsError
        from app.widgets.archive_fetch import ArchiveFetchController

        try:
            controller = ArchiveFetchController.from_settings(self.database, self.settings, parent=self)
        except PacsError as exc:
            self._settings_problem = self._settings_problem or f"Archive not used: {exc}"
            return None
        if controller is not None:
            self._fetch_bar = QProgressBar()
            self._fetch_bar.setMaximumWidth(180)
            self._fetch_bar.setFormat("archive %v/%m")
            self._fetch_bar.hide()
            self.statusBar().addPermanentWidget(self._fetch_bar)
            controller.firstImage.connect(self.open_study)  # the study opens on its first image
            self.worklist.kept_provider = controller.pinned_uids  # the "kept here" marker
            controller.progress.connect(self._fetch_progress)
            controller.fetched.connect(self._fetch_ended)
            controller.failed.connect(self._fetch_failed)
        return controller

    def keep_on_workstation(self, study_uid: str, keep: bool) -> None:
        """Worklist "Keep on this workstation" / "Allow removal": a pin in the database, this workstation's."""
        if keep:
            self._archive.pin(study_uid, self.auth.username if self.auth is not None else "")
        else:
            self._archive.unpin(study_uid)
        self.statusBar().showMessage("Kept on this workstation: never removed from the local image cache."
                                     if keep else "May be removed from the local image cache when it is full.", 8000)
        self.worklist.refresh_soon()

    def show_image_cache(self):
        """Tools > Local image cache (needs an archive: without one the local store is not a cache)."""
        if self._archive is None:
            QMessageBox.information(self, "Local image cache", "This workstation's image store is not a cache of "
                                    "an archive: set an archive node in the settings (\"archive\") first.")
            return None
        from app.widgets.image_cache import ImageCacheDialog

        dialog = ImageCacheDialog(self._archive, lambda: self._study.study_uid if self._study is not None else "",
                                  lambda: self.auth.username if self.auth is not None else "", self)
        dialog.finished.connect(lambda _r: self.worklist.refresh_soon())
        self.image_cache_dialog = dialog
        dialog.show()
        return dialog

    def _fetch_progress(self, study_uid: str, done: int, total: int, msg: str) -> None:
        """A file of the study being fetched arrived (or was refused): progress shown, the viewer fills in."""
        self._fetch_bar.setRange(0, max(1, total))
        self._fetch_bar.setValue(done)
        self._fetch_bar.show()
        self.statusBar().showMessage(f"Fetching study from the archive: {done} of {total} image(s)"
                                     + (f" - {msg}" if msg else ""))
        if self._study is not None and self._study.study_uid == study_uid:
            self.workspace.files_arrived()

    def _fetch_ended(self, study_uid: str, msg: str) -> None:
        self._fetch_bar.hide()
        self.statusBar().showMessage(msg, 10000)
        if self._study is not None and self._study.study_uid == study_uid:
            self.workspace.set_arriving(False)  # everything is here: presentation states read now
            self._ai_study_changed()  # and the AI panels get the whole study
        else:
            self.open_study(study_uid)

    def _fetch_failed(self, study_uid: str, msg: str) -> None:
        """What arrived stays (and stays shown); the images that did not come are named as missing."""
        self._fetch_bar.hide()
        if self._study is not None and self._study.study_uid == study_uid:
            self.workspace.set_arriving(False)
            self._ai_study_changed()  # with the images that did arrive
        QMessageBox.warning(self, "RadStation", f"The study could not be fetched from the archive: {msg}")

    def _make_prefetcher(self):
        from app.widgets.prior_compare import PriorPrefetchController

        controller = PriorPrefetchController.from_settings(self.database, self.settings, scp=self.scp, parent=self)
        if controller is not None:
            controller.priorsReady.connect(self._show_priors)
            controller.failed.connect(lambda msg: self.statusBar().showMessage(f"Prior studies: {msg}", 10000))
        return controller

    def _show_priors(self, priors: list) -> None:
        """Priors arrived: compare side by side with linked scrolling, in a tab of its own."""
        from app.widgets.prior_compare import PriorCompareView

        if not priors or self._study is None:
            return
        if self.prior_view is None:
            self.prior_view = PriorCompareView()
            self.tabs.addTab(self.prior_view, "Compare with prior")
        self.prior_view.set_current(self._study)
        self.prior_view.set_priors(priors)
        self.worklist.refresh_soon()
        self.statusBar().showMessage(f"{len(priors)} prior stud{'y' if len(priors) == 1 else 'ies'} ready", 8000)

    def show_pacs_query(self) -> None:
        from app.widgets.pacs_query import PacsQueryPanel

        if self.pacs_panel is None:
            self.pacs_panel = PacsQueryPanel(self.database, self.settings, scp=self.scp)
            self.pacs_panel.studiesRetrieved.connect(self._studies_retrieved)
            self.tabs.addTab(self.pacs_panel, "PACS")
        self.tabs.setCurrentWidget(self.pacs_panel)

    def _edit_pacs_nodes(self) -> None:
        from app.widgets.pacs_nodes import PacsNodesDialog

        dialog = PacsNodesDialog(self.settings, self)
        dialog.exec()
        if self.pacs_panel is not None:
            self.pacs_panel.reload_nodes()

    # -- report and account -----------------------------------------------------------------------
    def _show_report_editor(self) -> None:
        """The open study's report: the editor is kept and switched between studies (it saves what was
        typed before it switches); a new user gets a new editor."""
        if self._study is None:
            self._close_report_editor()
            return
        if self.report_editor is not None:
            self.report_editor.switch_study(self._study.study_uid, background=True)
            self.side_tabs.setCurrentWidget(self.report_editor)
            if not self.side_dock.isVisible() and not self._reading_mode and not self.locked:
                self.side_dock.show()
            return
        size = self.size()
        spare, self._spare_editor = self._spare_editor, None
        if spare is not None:  # built at idle time: the report is read off the GUI thread, as on a switch
            self.report_editor = spare
            spare.switch_study(self._study.study_uid, background=True)
        else:
            self.report_editor = ReportEditor(self.database, self._study.study_uid, lambda: self.auth,
                                              settings=self.settings)
            self._wire_report_editor(self.report_editor)
        self.side_tabs.insertTab(0, self.report_editor, "Report")
        self.side_tabs.setCurrentIndex(0)
        if not self.side_dock.isVisible() and not self._reading_mode and not self.locked:
            self.side_dock.show()
            self.resizeDocks([self.side_dock], [max(480, self.width() * 3 // 10)], Qt.Orientation.Horizontal)
        self._keep_size(size)

    def _wire_report_editor(self, editor: ReportEditor) -> None:
        """The window follows the editor's saves, signatures and errors (for a spare editor, done while it is
        built at idle time: eight connects were ~7 ms of the first open)."""
        editor.autosaved.connect(lambda _rev: self._refresh_explain())
        editor.textChanged.connect(self._refresh_explain)  # typed, AI draft, template: all stale
        editor.versionChanged.connect(lambda _v: (self._refresh_explain(), self.worklist.refresh_soon()))
        editor.signed.connect(self._index_signed_study)
        editor.signed.connect(lambda _v: self.audit_forwarder.forward_now())
        editor.queuedForSending.connect(self._outbox_queued)
        editor.saveFailed.connect(lambda msg: self.statusBar().showMessage(msg, 10000))
        editor.reportOpened.connect(self._report_opened)

    def _prepare_report_editor(self) -> None:
        """Build the next report editor now, while nobody waits (after the window first shows, after a
        log-out): building one is 50-250 ms of GUI work that the first study opened would otherwise wait for."""
        if self._spare_editor is not None or not self.isVisible():
            return
        spare = ReportEditor(self.database, "", lambda: self.auth, parent=self, settings=self.settings)
        # shown once off-screen (a child window of ours, never on the desktop): its styles and layout are done
        # now, not when the dock first shows it (~100 ms under load); the dock's tab takes it as a child later
        spare.setWindowFlag(Qt.WindowType.Window, True)
        spare.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        spare.resize(max(480, self.width() * 3 // 10), max(600, self.height() - 100))
        spare.show()
        spare.hide()
        spare.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, False)
        spare.setWindowFlag(Qt.WindowType.Window, False)
        self._wire_report_editor(spare)
        self._spare_editor = spare

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:  # first shown: what the first study opened needs is prepared at idle time
            self._shown_once = True
            QTimer.singleShot(0, self, self._prepare_report_editor)
            from app.study_open_warmup import warm_study_open
            from viewer.widgets.background import BackgroundRunner

            database, self._warm_runner = self.database, BackgroundRunner(self)
            self._warm_runner.start(lambda _job: warm_study_open(database))

    def start_up_work_done(self) -> bool:
        """The window was shown and what it prepares while nobody waits (the spare report editor, the
        study-open warm-up thread) is done: the start-up heap may be frozen (app.gc_pauses)."""
        editor_ready = self._spare_editor is not None or self.report_editor is not None or not self.isVisible()
        return self._shown_once and editor_ready and (self._warm_runner is None or not self._warm_runner.busy())

    def _keep_size(self, size) -> None:
        """A new editor's size hint must never push the window wider than it was (Sign off-screen)."""
        if self.isMaximized() or self.isFullScreen():
            return
        QTimer.singleShot(0, lambda: self.resize(size) if self.width() > size.width() else None)

    def _close_report_editor(self) -> None:
        if self.report_editor is None:
            return
        editor, self.report_editor = self.report_editor, None
        editor.shutdown()
        editor.release_claim()  # others may edit the report once it is closed here
        self.side_tabs.removeTab(self.side_tabs.indexOf(editor))
        editor.deleteLater()

    def set_user(self, session: AuthSession | None) -> None:
        """Log a user in or out; the open report reopens under that user (read-only when nobody)."""
        if self.report_editor is not None and self.auth is not None and not self.auth.is_expired():
            self.report_editor.save_now()  # what the previous user typed is theirs: saved before they go
        self._close_report_editor()  # the next editor is opened for the new user
        self.auth = session
        access_audit.set_actor(session.username if session else None)
        who = f"{session.display_name} ({session.role})" if session else "not logged in"
        self._user_label.setText(who)
        if session is not None:
            self._remember("last_user", session.username, later=True)  # the log-in does not wait for the file
            if self.locked:
                self._unlock()
        if self._study is not None:
            self._show_report_editor()
        self._update_actions()
        if session is None and self._spare_editor is None:
            QTimer.singleShot(0, self, self._prepare_report_editor)  # the next user's editor, while logged out
        if session is None and not self.kiosk:
            self.lock()

    def lock(self, reason: str = "") -> None:
        """Cover the window: patient data hidden, the report kept as typed (saved while the session is valid)."""
        if self.report_editor is not None and self.auth is not None and not self.auth.is_expired():
            self.report_editor.save_now()
        if self.auth is not None:
            self.lock_screen.show_locked(self.auth, reason)
        else:
            self.lock_screen.show_login(str(self.settings.get("last_user", "") or ""))
        if self.locked:
            return
        self.locked = True
        self._hidden_while_locked = [w for w in self._data_windows() if w.isVisible()]
        for w in self._hidden_while_locked:
            w.hide()
        self.pages.setCurrentWidget(self.lock_screen)
        self.menuBar().setEnabled(False)
        self.setWindowTitle("RadStation - locked")
        self._update_actions()

    def _data_windows(self) -> list[QWidget]:
        """Everything besides the central page that can show patient data: docks and our own windows."""
        out: list[QWidget] = list(self.findChildren(QDockWidget))
        for w in QApplication.topLevelWidgets():
            if w is not self and w.isWindow() and w.parentWidget() is not None and self.isAncestorOf(w):
                out.append(w)
        return out

    def _unlock(self) -> None:
        self.locked = False
        self.pages.setCurrentWidget(self.tabs)
        self.menuBar().setEnabled(True)
        for w in self._hidden_while_locked:
            w.show()
        self._hidden_while_locked = []
        self._update_title()
        self._update_actions()

    def _on_gate_login(self, session: AuthSession) -> None:
        """The lock screen's log-in: the same user unlocks their session; another user takes over."""
        if self.auth is not None and session.username == self.auth.username:
            self.auth.last_activity = session.last_activity  # the editor holds this session: revive it
            self._unlock()
            if self.report_editor is not None:
                self.report_editor.user_changed()
            return
        self.set_user(session)

    def _log_in(self) -> None:
        from app.widgets.account_dialog import AccountDialog
        from app.widgets.login_dialog import LoginDialog

        if not self.kiosk:
            self.set_user(None) if self.auth is not None else self.lock()
            return
        if self.users.count() == 0:
            dialog = AccountDialog(self.users, self, first_run=True)
        else:
            dialog = LoginDialog(self.users, self, username=str(self.settings.get("last_user", "") or ""))
        if dialog.exec() and dialog.session is not None:
            self.set_user(dialog.session)

    def _create_account(self) -> None:
        from app.widgets.account_dialog import AccountDialog

        if self.users.count() > 0 and not (self.auth and self.auth.can_manage_users):
            QMessageBox.information(self, "RadStation", "Only an administrator can create accounts.")
            return
        dialog = AccountDialog(self.users, self, first_run=self.users.count() == 0, actor=self.auth)
        if dialog.exec() and dialog.session is not None and self.auth is None:
            self.set_user(dialog.session)
        elif self.locked and self.auth is None:
            self.lock_screen.show_login(str(self.settings.get("last_user", "") or ""))

    def _remember(self, key: str, value, *, later: bool = False) -> None:
        """Small facts kept between runs (last user, last study, layout); never fatal. `later`: written a
        moment afterwards (opening a study must not wait for the settings file; a burst writes it once)."""
        if self.settings.get(key) == value:
            return
        self.settings.set(key, value)
        if later:
            if self._settings_save is None:
                self._settings_save = QTimer(self)
                self._settings_save.setSingleShot(True)
                self._settings_save.setInterval(3000)
                self._settings_save.timeout.connect(self._save_settings)
            self._settings_save.start()
            return
        self._save_settings()

    def _save_settings(self) -> None:
        if self._settings_save is not None:
            self._settings_save.stop()
        if not self._settings_problem:
            try:
                self.settings.save()
            except OSError as exc:
                self.statusBar().showMessage(f"Settings not saved: {exc}", 10000)

    def _update_title(self) -> None:
        if self.locked:
            self.setWindowTitle("RadStation - locked")
            return
        ref = self._study
        if ref is None:
            self.setWindowTitle("RadStation")
            return
        who = person_name(ref.patient_name) or ref.patient_id
        self.setWindowTitle(f"RadStation - {who} - {ref.description or format_date(ref.study_date)}")

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._archive is not None:
            self._archive.cancel()  # a fetch in flight stops; the files that arrived are kept
        if getattr(self, "image_cache_dialog", None) is not None:
            self.image_cache_dialog.done(0)  # waits for its listing/removal in flight
        if self.report_editor is not None:
            self.report_editor.shutdown()
            self.report_editor.release_claim()
        if self._spare_editor is not None:
            self._spare_editor.shutdown()
        if self._warm_runner is not None:
            self._warm_runner.wait(10)  # read-only queries: done in well under a second
        self._save_window_state()
        if self._settings_save is not None and self._settings_save.isActive():
            self._save_settings()  # the last study, remembered a moment ago
        self.activity.stop()
        if (app := QApplication.instance()) is not None:
            app.removeEventFilter(self.activity)
        if self.scp is not None:
            self.scp.stop()
        self.outbox.close()  # waits for a send in flight; unsent items stay queued in the database
        self.audit_forwarder.close()  # undelivered audit entries stay queued in the audit log
        self.explain_panel.shutdown()  # the views cancel their jobs first, then the one worker stops
        self.similar_panel.shutdown()
        if self.whatif_view is not None:
            self.whatif_view.shutdown()
        self.model_runner.close()
        self.ai.shutdown()
        for runner in (self._hang_runner, self._docs_runner):
            if runner is not None:
                runner.wait_idle()  # a prior lookup or document read still on its way
        access_audit.flush()  # who saw which patient is in the database before the window goes
        super().closeEvent(event)

    # -- import ----------------------------------------------------------------------------------
    def import_paths(self, paths: list[Path]) -> None:
        """Import in the background with progress and cancel; the worklist refreshes when done."""
        from app.widgets.import_dialog import ImportDialog

        dialog = ImportDialog(self.database, [str(p) for p in paths], parent=self)
        dialog.finished.connect(lambda *_: self.worklist.refresh_soon())
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
        self.worklist.refresh_soon()
        self.open_study(demo_study_uids()[0])

    # -- menus -----------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None, name: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        if name:
            action.setObjectName(name)
            self.actions_by_name[name] = action
        return action

    def _build_menus(self) -> None:
        from app.widgets.shortcuts import apply_menu_bindings

        self.actions_by_name: dict[str, QAction] = {}
        a = self._action
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(a("Import &folder...", self._import_folder, "Ctrl+Shift+O", "import_folder"))
        file_menu.addAction(a("Import &files, DICOMDIR or zip...", self._import_files, "Ctrl+O", "import_files"))
        file_menu.addAction(a("Open &demo study", self._open_demo, None, "open_demo"))
        file_menu.addSeparator()
        file_menu.addAction(a("&Settings...", self.show_settings, "Ctrl+,", "settings"))
        file_menu.addSeparator()
        file_menu.addAction(a("&Quit", self.close, QKeySequence.StandardKey.Quit, "quit"))
        ai_menu = self.menuBar().addMenu("&AI")
        ai_menu.addAction(a("&Draft report for the open study", lambda: self.ai_panel.draft_current(), None, "draft"))
        ai_menu.addAction(a("&Pre-draft the worklist's studies", self._pre_draft_worklist, None, "predraft"))
        ai_menu.addAction(a("&What if... (counterfactual from an edited report)", self.show_whatif, None, "whatif"))
        ai_menu.addAction(a("&Export the shown explanation map as DICOM...", self.export_explanation, None,
                            "export_map"))
        pacs_menu = self.menuBar().addMenu("&PACS")
        pacs_menu.addAction(a("&Query / retrieve...", self.show_pacs_query, "Ctrl+Shift+Q", "pacs_query"))
        pacs_menu.addAction(a("&Nodes and Storage SCP...", self._edit_pacs_nodes, None, "pacs_nodes"))
        account_menu = self.menuBar().addMenu("&Account")
        account_menu.addAction(a("&Log in...", self._log_in, "Ctrl+L", "login"))
        account_menu.addAction(a("Log &out", lambda: self.set_user(None), None, "logout"))
        account_menu.addAction(a("Loc&k screen", lambda: self.lock("Locked by the user."), "Ctrl+Shift+L", "lock"))
        account_menu.addAction(a("&Create account...", self._create_account, None, "create_account"))
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(a("&Worklist", self.show_worklist, "F2", "show_worklist"))
        view_menu.addAction(a("&Viewer", lambda: self.tabs.setCurrentWidget(self.workspace), "F3", "show_viewer"))
        view_menu.addAction(a("&Outbox", lambda: self.tabs.setCurrentWidget(self.outbox), None, "show_outbox"))
        toggle = self.side_dock.toggleViewAction()
        toggle.setText("&Report and AI panel")
        toggle.setShortcut(QKeySequence("F4"))
        toggle.setObjectName("toggle_report")
        self.actions_by_name["toggle_report"] = toggle
        view_menu.addAction(toggle)
        view_menu.addAction(a("&Reading mode (viewer only)", self.toggle_reading_mode, "F10", "reading_mode"))
        self.actions_by_name["reading_mode"].setCheckable(True)
        view_menu.addAction(a("&Full screen", self.toggle_full_screen, "F11", "full_screen"))
        self.actions_by_name["full_screen"].setCheckable(True)
        view_menu.addSeparator()
        view_menu.addAction(a("&Save screen layout...", self.save_layout_as, None, "save_layout"))
        self._layouts_menu = view_menu.addMenu("Restore screen &layout")
        self._layouts_menu.aboutToShow.connect(self._fill_layouts_menu)
        view_menu.addAction(a("Reset screen layout", self.reset_layout, None, "reset_layout"))
        tools_menu = self.menuBar().addMenu("&Tools")
        tools_menu.addAction(a("Report &templates and macros...", self.show_template_editor, None, "templates"))
        tools_menu.addAction(a("&Keyboard shortcuts...", self.show_shortcuts, "Ctrl+/", "shortcuts"))
        tools_menu.addAction(a("Local image &cache...", self.show_image_cache, None, "image_cache"))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(a("&User guide", self.show_user_guide, "F1", "user_guide"))
        help_menu.addAction(a("&Keyboard shortcuts", self.show_shortcuts, None, "shortcuts_help"))
        help_menu.addAction(a("&About RadStation", self._about, None, "about"))
        for menu in self.menuBar().findChildren(QMenu):
            menu.setToolTipsVisible(True)
        apply_menu_bindings(self.actions_by_name, self.settings)
        self._restore_window_state()

    def _update_actions(self) -> None:
        """Actions that need a user are disabled while nobody is logged in, and say why."""
        logged_in = self.auth is not None and not self.auth.is_expired()
        need = "Log in first (Account > Log in, Ctrl+L)"
        names = ("draft", "predraft", "whatif", "templates")
        for name in names:
            act = self.actions_by_name.get(name)
            if act is not None:
                act.setEnabled(logged_in)
                act.setToolTip(act.text().replace("&", "") if logged_in else need)
                act.setStatusTip("" if logged_in else need)
        logout = self.actions_by_name.get("logout")
        if logout is not None:
            logout.setEnabled(self.auth is not None)
            logout.setToolTip("Log out" if self.auth is not None else "Nobody is logged in")
        lock = self.actions_by_name.get("lock")
        if lock is not None:
            lock.setEnabled(self.auth is not None and not self.locked)
        create = self.actions_by_name.get("create_account")
        if create is not None:
            allowed = self.users.count() == 0 or bool(self.auth and self.auth.can_manage_users)
            create.setEnabled(allowed)
            create.setToolTip("Create a local account" if allowed else "Only an administrator can create accounts")
        if self.report_editor is not None:
            self.report_editor.user_changed()

    # -- screen layout --------------------------------------------------------------------------------
    _reading_mode = False

    def show_worklist(self) -> None:
        self.tabs.setCurrentWidget(self.worklist)
        self.worklist.refresh_soon()

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.actions_by_name["full_screen"].setChecked(self.isFullScreen())

    def toggle_reading_mode(self) -> None:
        """Viewer only: the report panel and status bar go away until toggled back (F10)."""
        self._reading_mode = not self._reading_mode
        if self._reading_mode:
            self._dock_before_reading = self.side_dock.isVisible()
            self.side_dock.hide()
            self.statusBar().hide()
            self.tabs.setCurrentWidget(self.workspace)
        else:
            self.statusBar().show()
            if getattr(self, "_dock_before_reading", True) and self.report_editor is not None:
                self.side_dock.show()
        self.actions_by_name["reading_mode"].setChecked(self._reading_mode)

    def _layout_state(self) -> dict:
        return {"state": bytes(self.saveState().toBase64()).decode("ascii"),
                "geometry": bytes(self.saveGeometry().toBase64()).decode("ascii"),
                "viewer_grid": "x".join(map(str, self.workspace.layout_view.grid()))}

    def _apply_layout_state(self, data: dict) -> None:
        if data.get("geometry"):
            self.restoreGeometry(QByteArray.fromBase64(data["geometry"].encode("ascii")))
        if data.get("state"):
            self.restoreState(QByteArray.fromBase64(data["state"].encode("ascii")))
        grid = str(data.get("viewer_grid", ""))
        try:
            self.workspace.set_layout(grid)
        except ValueError:
            pass
        if self.locked:  # a restored dock must not show over the lock screen
            for w in self._data_windows():
                if w.isVisible():
                    w.hide()
                    if w not in self._hidden_while_locked:
                        self._hidden_while_locked.append(w)

    def save_layout_as(self, name: str | None = None) -> str:
        if name is None:
            name, ok = QInputDialog.getText(self, "Save screen layout", "Name for this layout:")
            if not ok:
                return ""
        name = name.strip()
        if not name:
            return ""
        layouts = dict(self.settings.get("screen_layouts", {}) or {})
        layouts[name] = self._layout_state()
        self.settings.set("screen_layouts", layouts)
        self._remember("screen_layouts", layouts)
        try:
            self.settings.save()
        except OSError as exc:
            self.statusBar().showMessage(f"Layout not saved: {exc}", 10000)
        self.statusBar().showMessage(f"Screen layout “{name}” saved", 5000)
        return name

    def restore_layout(self, name: str) -> bool:
        data = (self.settings.get("screen_layouts", {}) or {}).get(name)
        if not isinstance(data, dict):
            return False
        self._apply_layout_state(data)
        return True

    def _fill_layouts_menu(self) -> None:
        self._layouts_menu.clear()
        layouts = self.settings.get("screen_layouts", {}) or {}
        for name in sorted(layouts):
            self._layouts_menu.addAction(name, lambda n=name: self.restore_layout(n))
        if not layouts:
            self._layouts_menu.addAction("No saved layouts yet").setEnabled(False)

    def reset_layout(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        if self._reading_mode:
            self.toggle_reading_mode()
        self.removeDockWidget(self.side_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.side_dock)
        self.side_dock.setFloating(False)
        self.side_dock.setVisible(self.report_editor is not None)
        self.resizeDocks([self.side_dock], [max(480, self.width() * 3 // 10)], Qt.Orientation.Horizontal)
        self.workspace.set_layout("1x1")

    def _save_window_state(self) -> None:
        self._remember("window_state", self._layout_state())

    def _restore_window_state(self) -> None:
        data = self.settings.get("window_state")
        if isinstance(data, dict):
            QTimer.singleShot(0, lambda: self._apply_layout_state(data))

    # -- settings, templates, help --------------------------------------------------------------------
    def show_settings(self) -> None:
        from app.widgets.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        self.settings_dialog = dialog
        if dialog.exec():
            self.statusBar().showMessage("Settings saved. " + dialog.restart_note(), 10000)
            self.kiosk = bool(self.settings.get("kiosk_mode", False))
            self.worklist.apply_settings(self.settings)

    def show_template_editor(self) -> None:
        from app.widgets.template_editor import TemplateEditorDialog

        if self.auth is None:
            return
        dialog = TemplateEditorDialog(self.auth, self)
        self.template_dialog = dialog
        dialog.exec()
        if self.report_editor is not None and self.report_editor.version is None:
            self._show_report_editor()  # a new or changed template applies to a report not yet written

    def show_shortcuts(self) -> None:
        from app.widgets.shortcuts import ShortcutsDialog

        dialog = ShortcutsDialog(self.actions_by_name, self.settings, self)
        self.shortcuts_dialog = dialog
        dialog.exec()

    def show_user_guide(self) -> None:
        from app.widgets.help_dialog import HelpDialog

        dialog = HelpDialog(self.actions_by_name, self)
        self.help_dialog = dialog
        dialog.show()

    def _about(self) -> None:
        from app.widgets.help_dialog import about_text

        QMessageBox.about(self, "About RadStation", about_text())


def _read_for_ai(database: Database, drafts_db: Database | None, study_uid: str) -> tuple[list, list]:
    """Worker thread: the study's images as the engine reads them and its stored AI drafts (both database and
    file work the GUI thread must not wait for)."""
    from app.ai.ai_store import drafts_for, study_images_from_db

    return study_images_from_db(database, study_uid), drafts_for(drafts_db, study_uid) if drafts_db is not None else []
