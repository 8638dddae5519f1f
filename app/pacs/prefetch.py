"""Prior-study prefetch: when a study is opened, fetch the same patient's earlier studies of the same
modality from a PACS, so the comparison is local before the reader asks for it.

Patients are matched by Patient ID only (never by name: two patients can share one); a study without a
Patient ID gets no priors. `PrefetchJob` is the same work with callbacks, for a Qt worker to relay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from app.db.database import Database
from app.db.models import Patient, Study
from app.pacs.cancel import CancelToken
from app.pacs.clients import client_for
from app.pacs.errors import PacsConfigError, PacsError
from app.pacs.nodes import NodeStore, PacsNode, StorageScpConfig
from app.pacs.query import QueryFilter, StudyResult
from app.pacs.retrieve import ProgressCallback, RetrieveService, StudyRetrieveResult
from app.pacs.scp import StorageScp
from app.settings import Settings, current_settings

# Objects that ride along with images but do not define what kind of study it is.
NON_IMAGING_MODALITIES = frozenset({"SR", "PR", "KO", "SEG", "REG", "RTSTRUCT", "DOC", "OT"})


@dataclass(frozen=True)
class LocalStudy:
    study_uid: str
    patient_id: str
    study_date: str  # YYYYMMDD or ""
    modalities: frozenset[str]


def local_study(database: Database, study_uid: str) -> LocalStudy:
    with database.session() as session:
        row = session.execute(
            select(Study.study_date, Study.modalities, Patient.patient_id)
            .join(Patient, Study.patient_db_id == Patient.id)
            .where(Study.study_uid == study_uid)
        ).first()
    if row is None:
        raise PacsError(f"study {study_uid} is not in the local database, so its priors cannot be looked up")
    study_date, modalities, patient_id = row
    mods = {m for m in (modalities or "").split("\\") if m}
    imaging = frozenset(mods - NON_IMAGING_MODALITIES) or frozenset(mods)
    return LocalStudy(study_uid, patient_id or "", study_date.strftime("%Y%m%d") if study_date else "", imaging)


@dataclass(frozen=True)
class PrefetchPolicy:
    max_priors: int = 3
    same_modality: bool = True
    only_earlier: bool = True


def select_priors(current: LocalStudy, candidates: list[StudyResult], policy: PrefetchPolicy) -> list[StudyResult]:
    """The most recent `max_priors` of the patient's other studies that match the policy."""
    chosen = []
    for study in candidates:
        if study.study_uid == current.study_uid or study.patient_id != current.patient_id:
            continue
        if policy.same_modality and current.modalities and not (set(study.modality_list) & current.modalities):
            continue
        if policy.only_earlier and current.study_date and study.study_date and study.study_date >= current.study_date:
            continue
        chosen.append(study)
    chosen.sort(key=lambda s: (s.study_date, s.study_time), reverse=True)
    return chosen[: policy.max_priors]


def find_priors(database: Database, node: PacsNode, study_uid: str, policy: PrefetchPolicy | None = None) -> list[StudyResult]:
    """Query `node` for the priors of a local study (no retrieval)."""
    current = local_study(database, study_uid)
    if not current.patient_id:
        return []
    found = client_for(node).find_studies(QueryFilter(patient_id=current.patient_id))
    return select_priors(current, found, policy or PrefetchPolicy())


class PrefetchJob:
    """Find and retrieve priors; callbacks make it easy to relay through Qt signals from a worker."""

    def __init__(
        self,
        database: Database,
        node: PacsNode,
        study_uid: str,
        *,
        policy: PrefetchPolicy | None = None,
        scp: StorageScp | None = None,
        scp_config: StorageScpConfig | None = None,
        on_priors_found: Callable[[list[StudyResult]], None] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.database = database
        self.node = node.validate()
        self.study_uid = study_uid
        self.policy = policy or PrefetchPolicy()
        self.scp = scp
        self.scp_config = scp_config
        self.on_priors_found = on_priors_found
        self.on_progress = on_progress
        self.results: list[StudyRetrieveResult] = []

    def run(self, cancel: CancelToken | None = None) -> list[str]:
        """Study UIDs of the priors now fully in the database (most recent first)."""
        priors = find_priors(self.database, self.node, self.study_uid, self.policy)
        if self.on_priors_found is not None:
            self.on_priors_found(priors)
        if not priors:
            return []
        service = RetrieveService(self.database, self.node, scp=self.scp, scp_config=self.scp_config)
        self.results = service.retrieve_studies([p.study_uid for p in priors], self.on_progress, cancel)
        return [r.study_uid for r in self.results if r.ok]


def prefetch_priors(
    database: Database,
    node: PacsNode,
    study_uid: str,
    *,
    max_priors: int = 3,
    same_modality: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    scp: StorageScp | None = None,
    scp_config: StorageScpConfig | None = None,
) -> list[str]:
    """Retrieve the patient's prior studies (same modality, earlier date) of a local study from `node`.

    Returns the UIDs of the priors that are now complete in the database, most recent first.
    """
    job = PrefetchJob(
        database, node, study_uid, policy=PrefetchPolicy(max_priors, same_modality), scp=scp,
        scp_config=scp_config, on_progress=progress,
    )
    return job.run(cancel)


@dataclass(frozen=True)
class PrefetchSettings:
    """The `pacs_prefetch` settings: off by default; which saved node to ask, and how many priors."""

    enabled: bool = False
    node: str = ""
    max_priors: int = 3
    same_modality: bool = True

    KEY = "pacs_prefetch"

    def problems(self) -> list[str]:
        out = []
        if self.enabled and not self.node.strip():
            out.append("prior prefetch is on but no PACS node is chosen")
        if isinstance(self.max_priors, bool) or not isinstance(self.max_priors, int) or not 0 <= self.max_priors <= 20:
            out.append(f"number of priors must be 0-20, not {self.max_priors!r}")
        return out

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PrefetchSettings:
        raw = (settings or current_settings()).get(cls.KEY, {}) or {}
        if not isinstance(raw, dict):
            raise PacsConfigError(f"settings key {cls.KEY} must hold an object")
        return cls(
            enabled=bool(raw.get("enabled", False)),
            node=str(raw.get("node", "")),
            max_priors=raw.get("max_priors", 3),
            same_modality=bool(raw.get("same_modality", True)),
        )

    def to_settings(self, settings: Settings) -> None:
        if problems := self.problems():
            raise PacsConfigError(problems)
        settings.set(self.KEY, {"enabled": self.enabled, "node": self.node, "max_priors": self.max_priors,
                                "same_modality": self.same_modality})
        settings.save()

    def policy(self) -> PrefetchPolicy:
        return PrefetchPolicy(max_priors=self.max_priors, same_modality=self.same_modality)

    def resolve_node(self, settings: Settings | None = None) -> PacsNode | None:
        """The node to prefetch from, or None when prefetch is off; PacsConfigError if misconfigured."""
        if not self.enabled:
            return None
        if problems := self.problems():
            raise PacsConfigError(problems)
        return NodeStore(settings).get(self.node)


def prefetch_on_open(
    database: Database,
    study_uid: str,
    settings: Settings | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    scp: StorageScp | None = None,
) -> list[str]:
    """What the viewer calls when a study is opened: prefetch per settings ([] when prefetch is off)."""
    config = PrefetchSettings.from_settings(settings)
    node = config.resolve_node(settings)
    if node is None:
        return []
    job = PrefetchJob(database, node, study_uid, policy=config.policy(), scp=scp, on_progress=progress)
    return job.run(cancel)
