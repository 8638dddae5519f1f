"""Current study beside a prior, with linked scrolling; and the controller that prefetches the priors.

`ScrollLink` (Qt-free) maps a slice of the current series to the prior's: proportional to the two
series' lengths, around an anchor pair. Linking (or moving the prior by hand while linked) sets the
anchor to the pair on screen, so a reader who lines up the same anatomy once keeps it lined up.
`PriorPrefetchController` runs `PrefetchJob` in the background (app.widgets.pacs_worker) and loads the priors as StudyRefs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from app.db.database import Database
from app.db.queries import StudyNotFound, study_ref
from app.pacs.nodes import PacsNode, StorageScpConfig
from app.pacs.prefetch import PrefetchJob, PrefetchPolicy, PrefetchSettings
from app.pacs.retrieve import StudyProgress
from app.pacs.scp import StorageScp
from app.settings import Settings
from app.widgets.pacs_worker import start_worker
from viewer.io.refs import SeriesRef, StudyRef
from viewer.widgets.background import BackgroundRunner, Job
from viewer.widgets.viewport import Viewport


@dataclass
class ScrollLink:
    """Slice correspondence between two stacks of `source_count` and `target_count` slices."""

    source_count: int
    target_count: int
    anchor_source: int = 0
    anchor_target: int = 0

    def target_for(self, source_index: int) -> int:
        if self.target_count <= 1:
            return 0
        scale = (self.target_count - 1) / max(1, self.source_count - 1)
        index = round(self.anchor_target + (source_index - self.anchor_source) * scale)
        return min(max(0, index), self.target_count - 1)

    def anchor(self, source_index: int, target_index: int) -> None:
        self.anchor_source, self.anchor_target = source_index, target_index


def comparison_series(study: StudyRef, modality: str = "") -> SeriesRef | None:
    """The series to compare: the longest image series of `modality` (any modality if none match)."""
    candidates = [s for s in study.series if s.paths]
    matching = [s for s in candidates if modality and s.modality == modality] or candidates
    return max(matching, key=lambda s: len(s.paths), default=None)


def load_study_refs(database: Database, study_uids: Sequence[str]) -> list[StudyRef]:
    """StudyRefs of the local studies among `study_uids` (in order; missing ones skipped)."""
    refs = []
    with database.session() as session:
        session.info["store_dir"] = str(database.store_dir)
        for uid in study_uids:
            try:
                refs.append(study_ref(session, uid))
            except StudyNotFound:
                continue
    return refs


def _caption(study: StudyRef | None) -> str:
    if study is None:
        return "No prior study"
    d = study.study_date
    date = f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 else d
    return f"{date}  {study.description}".strip()


class PriorCompareView(QWidget):
    """Two viewports: the current study (left) and a chosen prior (right), scrolling together."""

    priorChanged = Signal(object)  # noqa: N815 - the StudyRef now shown on the right (or None)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.current_view = Viewport()
        self.prior_view = Viewport()
        self.current_label = QLabel("Current")
        self.prior_combo = QComboBox()
        self.prior_combo.currentIndexChanged.connect(self._prior_chosen)
        self.link_box = QCheckBox("Link scrolling")
        self.link_box.setChecked(True)
        self.link_box.toggled.connect(self._link_toggled)
        self._current: StudyRef | None = None
        self._priors: list[StudyRef] = []
        self._link: ScrollLink | None = None
        self._syncing = False
        self._last_prior_index = 0

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.current_label)
        lv.addWidget(self.current_view, 1)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Prior"))
        top.addWidget(self.prior_combo, 1)
        top.addWidget(self.link_box)
        rv.addLayout(top)
        rv.addWidget(self.prior_view, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        layout = QVBoxLayout(self)
        layout.addWidget(split)

        self.current_view.stateChanged.connect(self._current_moved)
        self.prior_view.stateChanged.connect(self._prior_moved)

    # ------------------------------------------------------------------ content
    def set_current(self, study: StudyRef) -> None:
        self._current = study
        self.current_label.setText(f"Current: {_caption(study)}")
        self.current_view.set_series(comparison_series(study))
        self._relink()

    def set_priors(self, priors: Sequence[StudyRef]) -> None:
        """Offer `priors` (most recent first) and show the first."""
        self._priors = list(priors)
        self.prior_combo.blockSignals(True)
        self.prior_combo.clear()
        for study in self._priors:
            self.prior_combo.addItem(_caption(study), study.study_uid)
        self.prior_combo.blockSignals(False)
        self._prior_chosen(0 if self._priors else -1)

    def prior(self) -> StudyRef | None:
        index = self.prior_combo.currentIndex()
        return self._priors[index] if 0 <= index < len(self._priors) else None

    def _prior_chosen(self, index: int) -> None:
        study = self._priors[index] if 0 <= index < len(self._priors) else None
        current_series = self.current_view.series()
        modality = current_series.modality if current_series is not None else ""
        self.prior_view.set_series(comparison_series(study, modality) if study is not None else None)
        self._relink()
        self.priorChanged.emit(study)

    # ------------------------------------------------------------------ linking
    def is_linked(self) -> bool:
        return self._link is not None

    def _relink(self) -> None:
        self._link = None
        if not self.link_box.isChecked():
            return
        a, b = self.current_view.state, self.prior_view.state
        if self.current_view.series() is None or self.prior_view.series() is None:
            return
        self._link = ScrollLink(a.slice_count, b.slice_count, a.slice_index, b.slice_index)
        self._last_prior_index = b.slice_index

    def _link_toggled(self, _on: bool) -> None:
        self._relink()

    def _current_moved(self) -> None:
        if self._link is None or self._syncing:
            return
        target = self._link.target_for(self.current_view.state.slice_index)
        if target != self.prior_view.state.slice_index:
            self._syncing = True
            try:
                self.prior_view.go_to(target)
            finally:
                self._syncing = False
        self._last_prior_index = self.prior_view.state.slice_index

    def _prior_moved(self) -> None:
        if self._link is None or self._syncing:
            return
        index = self.prior_view.state.slice_index
        if index != self._last_prior_index:  # the reader moved the prior: line it up here from now on
            self._link.anchor(self.current_view.state.slice_index, index)
            self._last_prior_index = index


class PriorPrefetchController(QObject):
    """Prefetch a study's priors from a PACS in the background and hand them over as StudyRefs."""

    priorsFound = Signal(list)  # noqa: N815 - list[StudyResult] the PACS has (before retrieval)
    progress = Signal(object)  # StudyProgress per prior
    priorsReady = Signal(list)  # noqa: N815 - list[StudyRef], local and complete, most recent first
    failed = Signal(str)

    def __init__(
        self,
        database: Database,
        node: PacsNode,
        *,
        policy: PrefetchPolicy | None = None,
        scp: StorageScp | None = None,
        scp_config: StorageScpConfig | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.database = database
        self.node = node
        self.policy = policy or PrefetchPolicy()
        self.scp = scp
        self.scp_config = scp_config
        self._runner = BackgroundRunner(self)
        self._worker: Job | None = None

    @classmethod
    def from_settings(
        cls, database: Database, settings: Settings | None = None, *, scp: StorageScp | None = None,
        parent: QObject | None = None,
    ) -> PriorPrefetchController | None:
        """A controller per the `pacs_prefetch` settings, or None when prefetch is off."""
        config = PrefetchSettings.from_settings(settings)
        node = config.resolve_node(settings)
        if node is None:
            return None
        return cls(database, node, policy=config.policy(), scp=scp, parent=parent)

    def is_running(self) -> bool:
        return self._worker is not None

    def start(self, study_uid: str) -> None:
        old = self._worker
        if old is not None:  # a newer study was opened: only its priors matter now
            old.cancel()
            for signal in (old.progressed, old.completed, old.failed):
                signal.disconnect()
        database, node, policy, scp, scp_config = self.database, self.node, self.policy, self.scp, self.scp_config

        def task(emit, cancel):  # type: ignore[no-untyped-def]
            job = PrefetchJob(database, node, study_uid, policy=policy, scp=scp, scp_config=scp_config,
                              on_priors_found=lambda found: emit(("found", found)), on_progress=emit)
            return job.run(cancel)

        self._worker = start_worker(self._runner, task, on_progress=self._relay, on_done=self._done,
                                    on_error=self._failed)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def _relay(self, item: object) -> None:
        if isinstance(item, tuple) and item and item[0] == "found":
            self.priorsFound.emit(list(item[1]))
        elif isinstance(item, StudyProgress):
            self.progress.emit(item)

    def _done(self, uids: object) -> None:
        self._worker = None
        self.priorsReady.emit(load_study_refs(self.database, list(uids)))  # type: ignore[call-overload]

    def _failed(self, message: str) -> None:
        self._worker = None
        self.failed.emit(message)
