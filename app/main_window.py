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
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from app import access_audit
from app.db.database import Database
from app.db.measurement_store import DbMeasurementStore
from app.db.queries import StudyNotFound, study_ref
from app.reports.users import AuthSession, UserService
from app.settings import Settings
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
        self.setWindowTitle("RadStation")
        self.resize(1600, 1000)
        self._study: StudyRef | None = None
        self._measurements = DbMeasurementStore(database)
        self.users = UserService.from_settings(database)
        self.auth: AuthSession | None = None
        self.report_editor: ReportEditor | None = None
        self._study_images: list = []  # the open study's images as the engine reads them

        self.worklist = WorklistWidget(database)
        self.workspace = ViewerWorkspace(measurement_store=self._measurements)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.worklist, "Worklist")
        self.tabs.addTab(self.workspace, "Viewer")
        self.setCentralWidget(self.tabs)
        self.worklist.studyOpenRequested.connect(self.open_study)
        access_audit.set_actor(None)  # the workstation: nobody logged in yet
        self._audited_series: set[str] = set()
        self.workspace.imageChanged.connect(self._audit_image)

        self.side_tabs = QTabWidget()
        self.side_dock = QDockWidget("Report and AI", self)
        self.side_dock.setObjectName("side_dock")
        self.side_dock.setWidget(self.side_tabs)
        self.side_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.side_dock)
        self.side_dock.hide()

        self._user_label = QLabel("not logged in")
        self.statusBar().addPermanentWidget(self._user_label)
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
        self.statusBar().showMessage(self._settings_problem or f"Database: {database.url}", 10000)

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
        if self._archive is not None and self._archive.needs_fetch(study_uid):
            self._archive.start(study_uid)  # its files are on the archive only: opened when they are here
            self.statusBar().showMessage(f"Fetching study {study_uid} from {self._archive.node.describe()}...")
            return False
        if not ref.series:
            QMessageBox.warning(self, "RadStation", "This study has no images that can be shown.")
            return False
        self._study = ref
        if self._archive is not None:
            self._archive.opened(study_uid)
        access_audit.study_opened(self.database, study_uid)
        self._audited_series = set()
        self.workspace.open_study(ref, self._measurements)
        self.tabs.setCurrentWidget(self.workspace)
        who = ref.patient_name.replace("^", " ").strip() or ref.patient_id
        self.setWindowTitle(f"RadStation - {who} - {ref.description or ref.study_date}")
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
                                   str(getattr(image, "modality", "")))

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

        from app.model_runner import WorkerRunner
        from app.widgets.explain_panel import ExplainPanel

        self.model_runner = WorkerRunner.from_settings(self.settings)  # explanations, what-if: a worker process
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
        from app.ai.ai_store import study_images_from_db

        uid = self._study.study_uid if self._study else ""
        images = study_images_from_db(self.database, uid) if uid else []
        self.ai_panel.set_study(uid, images)
        self.qa_panel.set_study(uid, images)
        self._study_images = images
        self._refresh_explain()
        self.similar_panel.set_study(uid, [im.pixels for im in images])
        pending = self._pending_drafts.pop(uid, None)
        if pending is not None:
            self._on_draft_ready(uid, pending)

    def _on_draft_ready(self, study_uid: str, draft: dict) -> None:
        """Put a finished draft into the open report; keep it for later when it cannot go there yet."""
        from app.reports.service import ReportError

        self.worklist.refresh()  # the AI-draft column

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
            self.whatif_view.stored.connect(lambda _s: self.worklist.refresh())
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
        status when it has no local report."""
        from app.priors.documents import status_of, study_documents, sync_report_status
        from app.widgets.prior_reports import PriorReportsPanel

        docs = study_documents(self.database, self._study.study_uid) if self._study else []
        if docs and status_of(docs) != "none":
            sync_report_status(self.database, self._study.study_uid)
            self.worklist.refresh()
        if not docs:
            if self.prior_reports is not None:
                self.side_tabs.removeTab(self.side_tabs.indexOf(self.prior_reports))
            return
        if self.prior_reports is None:
            self.prior_reports = PriorReportsPanel()
        if self.side_tabs.indexOf(self.prior_reports) < 0:
            self.side_tabs.insertTab(1, self.prior_reports, "Prior reports")
        self.prior_reports.set_documents(docs)

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

        self.outbox = OutboxWidget(Outbox(ReportService(self.database, self.users)))
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
            controller.progress.connect(lambda uid, done, total, msg: self.statusBar().showMessage(
                f"Fetching study from the archive: {done} of {total} image(s)" + (f" - {msg}" if msg else "")))
            controller.fetched.connect(lambda uid, msg: (self.statusBar().showMessage(msg, 10000),
                                                         self.open_study(uid)))
            controller.failed.connect(lambda uid, msg: QMessageBox.warning(
                self, "RadStation", f"The study could not be fetched from the archive: {msg}"))
        return controller

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
        self.worklist.refresh()
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
        """One editor per open study; the previous one saves what was typed before it goes."""
        self._close_report_editor()
        if self._study is None:
            return
        self.report_editor = ReportEditor(self.database, self._study.study_uid, lambda: self.auth)
        self.report_editor.autosaved.connect(lambda _rev: self._refresh_explain())
        self.report_editor.textChanged.connect(self._refresh_explain)  # typed, AI draft, template: all stale
        self.report_editor.versionChanged.connect(lambda _v: (self._refresh_explain(), self.worklist.refresh()))
        self.report_editor.signed.connect(self._index_signed_study)
        self.report_editor.signed.connect(lambda _v: self.audit_forwarder.forward_now())
        self.report_editor.queuedForSending.connect(self._outbox_queued)
        self.side_tabs.insertTab(0, self.report_editor, "Report")
        self.side_tabs.setCurrentIndex(0)
        if not self.side_dock.isVisible():
            self.side_dock.show()
            self.resizeDocks([self.side_dock], [max(560, self.width() * 2 // 5)], Qt.Orientation.Horizontal)

    def _close_report_editor(self) -> None:
        if self.report_editor is None:
            return
        self.report_editor.save_now()
        self.report_editor.release_claim()  # others may edit the report once it is closed here
        self.side_tabs.removeTab(self.side_tabs.indexOf(self.report_editor))
        self.report_editor.deleteLater()
        self.report_editor = None

    def set_user(self, session: AuthSession | None) -> None:
        """Log a user in or out; the open report reopens under that user (read-only when nobody)."""
        self.auth = session
        access_audit.set_actor(session.username if session else None)
        who = f"{session.display_name} ({session.role})" if session else "not logged in"
        self._user_label.setText(who)
        if self._study is not None:
            self._show_report_editor()

    def _log_in(self) -> None:
        from app.widgets.account_dialog import AccountDialog
        from app.widgets.login_dialog import LoginDialog

        if self.users.count() == 0:
            dialog = AccountDialog(self.users, self, first_run=True)
        else:
            dialog = LoginDialog(self.users, self)
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

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.report_editor is not None:
            self.report_editor.save_now()
            self.report_editor.release_claim()
        if self.scp is not None:
            self.scp.stop()
        self.outbox.close()  # waits for a send in flight; unsent items stay queued in the database
        self.audit_forwarder.close()  # undelivered audit entries stay queued in the audit log
        self.ai.shutdown()
        self.explain_panel.shutdown()
        self.similar_panel.shutdown()
        if self.whatif_view is not None:
            self.whatif_view.shutdown()
        self.model_runner.close()
        super().closeEvent(event)

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
        ai_menu = self.menuBar().addMenu("&AI")
        ai_menu.addAction(self._action("&Draft report for the open study", lambda: self.ai_panel.draft_current()))
        ai_menu.addAction(self._action("&Pre-draft the worklist's studies", self._pre_draft_worklist))
        ai_menu.addAction(self._action("&What if... (counterfactual from an edited report)", self.show_whatif))
        ai_menu.addAction(self._action("&Export the shown explanation map as DICOM...", self.export_explanation))
        pacs_menu = self.menuBar().addMenu("&PACS")
        pacs_menu.addAction(self._action("&Query / retrieve...", self.show_pacs_query, "Ctrl+Shift+Q"))
        pacs_menu.addAction(self._action("&Nodes and Storage SCP...", self._edit_pacs_nodes))
        account_menu = self.menuBar().addMenu("&Account")
        account_menu.addAction(self._action("&Log in...", self._log_in, "Ctrl+L"))
        account_menu.addAction(self._action("Log &out", lambda: self.set_user(None)))
        account_menu.addAction(self._action("&Create account...", self._create_account))
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self._action("&Worklist", lambda: self.tabs.setCurrentWidget(self.worklist), "F2"))
        view_menu.addAction(self._action("&Viewer", lambda: self.tabs.setCurrentWidget(self.workspace), "F3"))
        view_menu.addAction(self._action("&Outbox", lambda: self.tabs.setCurrentWidget(self.outbox)))
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
