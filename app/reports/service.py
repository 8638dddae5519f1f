"""Report lifecycle: draft -> preliminary -> final (signed) -> amendment / addendum.

The service is the only writer of report rows. It enforces the rules (a signed version never changes;
only radiologists sign; an AI draft must be edited or accepted by a person before signing), writes an
audit entry for every action in the same transaction, and keeps `Study.report_status` in step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db.models import Study
from app.reports import audit
from app.reports.authority import require_signing_authority
from app.reports.canonical import canonical_bytes, sha256_hex
from app.reports.claims import ensure_writable
from app.reports.content import SECTION_KEYS, ReportContent
from app.reports.errors import ReportConflictError, ReportError
from app.reports.keys import certificate_fingerprint, default_p12_path, load_p12
from app.reports.models import (
    AuditEntry,
    ImmutableVersionError,
    Report,
    ReportArtifact,
    ReportSignature,
    ReportVersion,
    User,
)
from app.reports.signing import sign_bytes
from app.reports.templates import ReportTemplate, TemplateLibrary, load_template
from app.reports.users import AuthSession, UserService
from app.reports.views import StudyIdentity, VersionView, study_identity

CANONICAL_FORMAT = "radstation-report/1"


@contextmanager
def _refuse_stale(version_id: int) -> Iterator[None]:
    """Turn the ORM's optimistic-check failure (UPDATE matched no row) into a clear ReportConflictError."""
    try:
        yield
    except StaleDataError as exc:
        raise ReportConflictError(f"report version {version_id} was changed on another workstation while "
                                  "this one was saving; nothing was overwritten. Reload to see the current "
                                  "text.") from exc


def study_status(versions: list[ReportVersion]) -> str:
    """The study-level status the worklist shows."""
    if not versions:
        return "none"
    finals = [v for v in versions if v.status == "final"]
    if any(v.kind in ("amendment", "addendum") for v in finals):
        return "amended"
    if finals:
        return "final"
    return max(versions, key=lambda v: v.version_no).status


def _dicom_signature_digests(artefacts) -> dict[str, list[str]]:
    """SHA-256 of each DICOM artefact's signature values, recorded at signing so that `verify` still finds a
    re-encoded copy (e.g. from a PACS) on record, and nothing re-signed is."""
    from app.reports.artefacts import KIND_SIGNED_PDF
    from app.reports.dicom_signature import signature_values

    return {kind: [sha256_hex(v) for v in signature_values(data)] for kind, data in artefacts.items()
            if kind != KIND_SIGNED_PDF}


def canonical_payload(version: ReportVersion, ident: StudyIdentity, author: str, signer: User,
                      signed_at: str, supersedes: dict[str, Any] | None) -> dict[str, Any]:
    """What a signature covers: content, patient/study identifiers, author, signer, time, version."""
    ai = version.ai_draft or {}
    return {
        "format": CANONICAL_FORMAT,
        "report_id": version.report_id,
        "version_no": version.version_no,
        "kind": version.kind,
        "supersedes": supersedes,
        "exam_type": version.report.exam_type,
        "patient": {"id": ident.patient_id, "issuer": ident.issuer, "name": ident.patient_name},
        "study": {"uid": ident.study_uid, "accession": ident.accession},
        "sections": ReportContent.from_dict(version.sections).to_dict(),
        "author": author,
        "signer": {"username": signer.username, "name": signer.display_name},
        "signed_at": signed_at,
        "ai": {
            "generated": bool(version.ai_generated),
            "human_edited": bool(version.human_edited),
            "accepted": bool(version.ai_accepted),
            "engine": str(ai.get("engine", "")),
            "weights_hash": str(ai.get("weights_hash", "")),
            "seed": str(ai.get("seed", "")),
        } if version.ai_generated or version.ai_draft else None,
    } | ({"reason": version.amend_reason} if version.amend_reason else {})


class ReportService:
    def __init__(self, database, users: UserService | None = None, settings=None) -> None:
        """`settings`: the app's Settings (letterhead, time-stamp authority, trust roots, export options);
        default: the settings in use (app.settings.current_settings)."""
        self.db = database
        self.users = users or UserService(database)
        self._settings = settings

    @property
    def settings(self):  # noqa: ANN201 - app.settings.Settings (imported late: settings import the reports package)
        """The Settings given, else the settings in use now (read when needed, so a change saved meanwhile - a
        time-stamp authority, a signing token - applies to the next signature, as it did before)."""
        from app.settings import current_settings

        return self._settings if self._settings is not None else current_settings()

    # -- reading --------------------------------------------------------------------------------------
    def _view(self, s: Session, v: ReportVersion) -> VersionView:
        author = s.get(User, v.author_id).username if v.author_id else ""
        sig: dict[str, Any] = {}
        signer = ""
        if v.signature is not None:
            signer_user = s.get(User, v.signature.signer_id)
            signer = signer_user.username if signer_user else ""
            sig = {"algorithm": v.signature.algorithm, "signed_at": v.signature.signed_at,
                   "canonical": v.signature.canonical, "signature": v.signature.signature,
                   "certificate_der": v.signature.certificate_der,
                   "signer_name": signer_user.display_name if signer_user else ""}
        return VersionView(
            id=v.id, report_id=v.report_id, study_uid=v.report.study_uid, exam_type=v.report.exam_type,
            version_no=v.version_no, kind=v.kind, status=v.status, content=ReportContent.from_dict(v.sections),
            ai_draft=dict(v.ai_draft) if v.ai_draft else None, ai_generated=v.ai_generated,
            human_edited=v.human_edited, ai_accepted=v.ai_accepted, revision=v.revision, author=author,
            signer=signer, signed_at=v.signed_at, supersedes_id=v.supersedes_id, updated_at=v.updated_at,
            signature=sig, amend_reason=v.amend_reason or "", created_at=v.created_at,
            carried_addendum=self._carried_addendum(s, v),
        )

    def version(self, version_id: int) -> VersionView:
        with self.db.session() as s:
            return self._view(s, self._get_version(s, version_id))

    def history(self, study_uid: str) -> list[VersionView]:
        with self.db.session() as s:
            report = self._report_for(s, study_uid)
            return [self._view(s, v) for v in report.versions] if report else []

    def working_version(self, study_uid: str) -> VersionView | None:
        """The newest version: an editable draft if one exists, otherwise the newest signed one."""
        hist = self.history(study_uid)
        return hist[-1] if hist else None

    def identity(self, study_uid: str) -> StudyIdentity:
        with self.db.session() as s:
            return study_identity(s, study_uid)

    def record_view(self, version_id: int, user: AuthSession) -> None:
        def work(s: Session) -> None:
            v = self._get_version(s, version_id)
            audit.append(s, "view", user.username, "report_version", v.id, {"study_uid": v.report.study_uid})

        self.db.run_write(work)

    # -- writing --------------------------------------------------------------------------------------
    def open_or_create(self, study_uid: str, user: AuthSession, exam_type: str | None = None,
                       template: ReportTemplate | None = None) -> VersionView:
        """The version to show for a study; creates the first draft from the exam type's template. A write
        transaction from its start (`run_write`): audit entries written meanwhile by another thread (access
        audit, autosave) make it wait and retry, never fail with "database is locked"."""
        user.ensure_active()

        def work(s: Session) -> VersionView:
            study_identity(s, study_uid)  # refuses a study that is not in the database
            report = self._report_for(s, study_uid)
            if report is None:
                tpl = template or self._template_for(study_uid, user, exam_type)
                report = Report(study_uid=study_uid, exam_type=tpl.exam_type, created_by_id=user.user_id)
                s.add(report)
                s.flush()
                v = ReportVersion(report_id=report.id, version_no=1, kind="original", status="draft",
                                  sections=tpl.content.to_dict(), author_id=user.user_id)
                s.add(v)
                s.flush()
                s.refresh(report)
                audit.append(s, "draft", user.username, "report_version", v.id,
                             {"study_uid": study_uid, "template": tpl.exam_type})
                self._sync_study(s, report)
            v = report.versions[-1]
            audit.append(s, "view", user.username, "report_version", v.id, {"study_uid": study_uid})
            return self._view(s, v)

        return self.db.run_write(work)

    def save_draft(self, version_id: int, sections: dict[str, str], user: AuthSession,
                   *, human_edit: bool = True, expected_revision: int | None = None) -> int:
        """Autosave: store the sections of an unsigned version; returns the new revision number.

        `expected_revision` is the revision the editor's text is based on: if the stored one moved on
        (another workstation saved), the save is refused with ReportConflictError naming who changed it.
        """
        user.ensure_active()
        content = ReportContent.from_dict(sections)

        def write(s: Session) -> int:  # run again from the start while the database is busy (never lost)
            v = self._editable(s, version_id, user)
            if expected_revision is not None and v.revision != expected_revision:
                raise ReportConflictError(self._conflict_message(s, v, expected_revision))
            if v.kind == "addendum":
                original = ReportContent.from_dict(v.sections)
                if any(content.get(k) != original.get(k) for k in SECTION_KEYS):
                    raise ImmutableVersionError("an addendum may only change the addendum text; "
                                                "use an amendment to change the signed sections")
                carried = self._carried_addendum(s, v)
                if carried and not content.get("addendum").startswith(carried):
                    raise ImmutableVersionError("an addendum keeps the earlier signed addenda word for word; "
                                                "add the new text after them")
            old = ReportContent.from_dict(v.sections)
            changed = [k for k in (*SECTION_KEYS, "addendum") if old.get(k) != content.get(k)]
            if not changed:
                return v.revision
            v.sections = content.to_dict() | ({"addendum": content.get("addendum")} if v.kind == "addendum" else {})
            if v.ai_generated and human_edit and self._differs_from_ai(v, content):
                v.human_edited = True
            v.revision += 1
            v.updated_at = dt.datetime.now(dt.UTC)
            if v.author_id is None:
                v.author_id = user.user_id
            audit.append(s, "edit", user.username, "report_version", v.id,
                         {"revision": v.revision, "sections": changed,
                          "sha256": sha256_hex(canonical_bytes(content.to_dict()))})
            return v.revision

        with _refuse_stale(version_id):
            return self.db.run_write(write)

    def load_ai_draft(self, version_id: int, findings: str, impression: str, provenance: dict[str, Any],
                      user: AuthSession, token_uncertainty: list | None = None) -> VersionView:
        """Put an AI draft into an unsigned version, recording where it came from."""
        user.ensure_active()
        with _refuse_stale(version_id), self.db.write_session() as s:
            v = self._editable(s, version_id, user)
            if v.kind == "addendum":
                raise ReportError("an AI draft cannot be loaded into an addendum")
            ai = {"engine": str(provenance.get("engine", "")),
                  "weights_hash": str(provenance.get("weights_hash", provenance.get("weights_sha256", ""))),
                  "seed": provenance.get("seed"), "findings": findings, "impression": impression,
                  "token_uncertainty": token_uncertainty,
                  "extra": {k: str(val) for k, val in provenance.items()
                            if k not in ("engine", "weights_hash", "weights_sha256", "seed")}}
            v.ai_draft = ai
            v.sections = ReportContent.from_dict(v.sections).replace(findings=findings, impression=impression).to_dict()
            v.ai_generated, v.human_edited, v.ai_accepted = True, False, False
            v.revision += 1
            v.updated_at = dt.datetime.now(dt.UTC)
            audit.append(s, "draft", user.username, "report_version", v.id,
                         {"source": "ai", "engine": ai["engine"], "weights_hash": ai["weights_hash"],
                          "seed": str(ai["seed"])})
            return self._view(s, v)

    def set_template(self, version_id: int, template: ReportTemplate, user: AuthSession) -> None:
        """Record that the radiologist switched the report to another template (its title and procedure
        code go into the exports); only while the version is unsigned."""
        user.ensure_active()
        with self.db.write_session() as s:
            v = self._editable(s, version_id, user)
            if v.report.exam_type != template.exam_type:
                old, v.report.exam_type = v.report.exam_type, template.exam_type
                audit.append(s, "edit", user.username, "report_version", v.id,
                             {"template": {"from": old, "to": template.exam_type}})

    def accept_ai(self, version_id: int, user: AuthSession) -> None:
        """A person confirms they reviewed the AI text as it stands."""
        user.ensure_active()
        with _refuse_stale(version_id), self.db.write_session() as s:
            v = self._editable(s, version_id, user)
            v.ai_accepted = True
            audit.append(s, "accept_ai", user.username, "report_version", v.id, {"revision": v.revision})

    def mark_preliminary(self, version_id: int, user: AuthSession) -> None:
        user.ensure_active()
        with _refuse_stale(version_id), self.db.write_session() as s:
            v = self._editable(s, version_id, user)
            if ReportContent.from_dict(v.sections).is_empty():
                raise ReportError("an empty report cannot be made preliminary")
            v.status = "preliminary"
            audit.append(s, "preliminary", user.username, "report_version", v.id, {"revision": v.revision})
            self._sync_study(s, v.report)

    def sign(self, version_id: int, user: AuthSession, password: str, p12_path: Path | None = None,
             key_images: list[tuple[str, bytes]] | None = None, key_password: str | None = None) -> VersionView:
        """Re-check the password, sign the canonical form with the user's key and make every signed document
        (PAdES PDF, DICOM-signed SR and encapsulated PDF; `key_images`: caption + PNG for the PDF) while the
        key is unlocked; then store signature, documents, status and audit entry in ONE transaction.

        Authority is read from the database, not from the session: the signer's current role must be a
        signing role when the key is unlocked and again inside the committing transaction. A crash or kill at
        any moment leaves either the unsigned draft or the complete signed version, never a half."""
        user.ensure_active()
        with self.db.session() as s:
            require_signing_authority(s, user.user_id)
        self.users.reauthenticate(user, password)
        identity = self._unlock_key(user, key_password or password, p12_path)
        try:
            return self._sign_with(version_id, user, identity, key_images)
        finally:
            close = getattr(identity, "close", None)
            if close is not None:
                close()

    def _unlock_key(self, user: AuthSession, secret: str, p12_path: Path | None):
        """The user's key: a PKCS#11 token when the `signing_token` setting names one, else the PKCS#12 file."""
        from app.reports.token_key import open_token_key, token_settings

        cfg = token_settings(self.settings)
        if cfg is None or p12_path is not None:
            return load_p12(p12_path or default_p12_path(user.username), secret)
        with self.db.session() as s:
            cert = s.get(User, user.user_id).cert_der
        if not cert:
            raise ReportError("no certificate is registered for the token key; an admin registers it first")
        return open_token_key(str(cfg["module"]), str(cfg.get("token_label", "")),
                              str(cfg.get("key_label", "{username}")).format(username=user.username), secret, cert)

    def _sign_with(self, version_id: int, user: AuthSession, identity,
                   key_images: list[tuple[str, bytes]] | None) -> VersionView:
        cert_fp = certificate_fingerprint(identity.certificate_der)
        from app.reports.trust import check_certificate

        cert_problems = check_certificate(identity.certificate_der, dt.datetime.now(dt.UTC), settings=self.settings)
        if cert_problems:
            raise ReportError("this signing key cannot sign: " + "; ".join(cert_problems))
        # 1. read and sign (no write lock held while rendering and signing)
        with self.db.session() as s:
            v = self._editable(s, version_id, user)
            content = ReportContent.from_dict(v.sections)
            new_addendum = content.get("addendum")[len(self._carried_addendum(s, v)):]
            if content.is_empty() or (v.kind == "addendum" and not new_addendum.strip()):
                raise ReportError("an empty report cannot be signed")
            if v.kind == "amendment" and not (v.amend_reason or "").strip():
                raise ReportError("an amendment needs a reason before it can be signed")
            if v.ai_generated and not (v.human_edited or v.ai_accepted):
                raise ReportError("the AI draft has not been reviewed: edit it or accept it before signing")
            signer = require_signing_authority(s, user.user_id)
            self._check_certificate(s, signer, cert_fp)
            supersedes = None
            if v.supersedes_id:
                orig = s.get(ReportVersion, v.supersedes_id)
                supersedes = {"version_no": orig.version_no,
                              "signature_sha256": sha256_hex(orig.signature.signature) if orig.signature else ""}
            author = s.get(User, v.author_id).username if v.author_id else user.username
            signed_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            payload = canonical_bytes(canonical_payload(v, study_identity(s, v.report.study_uid), author, signer,
                                                        signed_at, supersedes))
            signature, algorithm = sign_bytes(identity, payload)
            revision = v.revision
            view = replace(self._view(s, v), status="final", signed_at=signed_at, signer=signer.username,
                           signature={"algorithm": algorithm, "signed_at": signed_at, "canonical": payload,
                                      "signature": signature, "certificate_der": identity.certificate_der,
                                      "signer_name": signer.display_name})
        # 2. the documents, from the version exactly as it will be stored
        artefacts = self._make_artefacts(view, identity, key_images)
        # 3. one transaction: signature + documents + status + audit, after re-checking nothing moved
        with _refuse_stale(version_id), self.db.write_session() as s:
            v = self._editable(s, version_id, user)
            if v.revision != revision:
                raise ReportConflictError("the report was changed while it was being signed; review it and sign "
                                          "again")
            signer = require_signing_authority(s, user.user_id)
            self._check_certificate(s, signer, cert_fp)
            if not signer.cert_sha256:  # single-user workstation without an admin: first use registers it
                signer.cert_der, signer.cert_sha256 = identity.certificate_der, cert_fp
                audit.append(s, "cert_create", user.username, "user", user.username,
                             {"cert_sha256": cert_fp, "registered_at_first_signature": True})
            s.add(ReportSignature(version_id=v.id, signer_id=signer.id, signed_at=signed_at, canonical=payload,
                                  signature=signature, algorithm=algorithm,
                                  certificate_der=identity.certificate_der))
            for kind, data in artefacts.items():
                s.add(ReportArtifact(version_id=v.id, kind=kind, data=data, sha256=sha256_hex(data)))
            v.signed_at = signed_at
            v.status = "final"
            v.updated_at = dt.datetime.now(dt.UTC)
            s.flush()
            audit.append(s, "sign", user.username, "report_version", v.id,
                         {"study_uid": v.report.study_uid, "sha256": sha256_hex(payload), "kind": v.kind,
                          "cert_sha256": cert_fp,
                          "artefacts": {k: sha256_hex(d) for k, d in artefacts.items()},
                          "dicom_signatures": _dicom_signature_digests(artefacts)})
            s.refresh(v.report)
            self._sync_study(s, v.report)
        return self.version(version_id)

    @staticmethod
    def _check_certificate(s: Session, signer: User, cert_fp: str) -> None:
        """Only the registered key signs; without one, only a workstation with no admin may register it
        by signing (an admin must register keys where admins exist)."""
        if signer.cert_sha256:
            if signer.cert_sha256 != cert_fp:
                raise ReportError("the key file's certificate is not the one registered for this user")
            return
        admins = s.scalar(select(func.count(User.id)).where(User.role == "admin", User.active.is_(True)))
        if admins:
            raise ReportError(f"{signer.username} has no registered signing certificate; an admin must "
                              "register it (radstation cert create / cert import)")

    def _make_artefacts(self, view: VersionView, identity, key_images: list[tuple[str, bytes]] | None):
        from app.reports.artefacts import make_artefacts
        from app.reports.document import build_document
        doc = build_document(self, view.id, version=view)
        lh_path = self.settings.get("report_letterhead") or None
        from app.reports.timestamps import tsa_timestamper

        return make_artefacts(doc, identity, view.signature.get("signer_name") or view.signer, key_images,
                              Path(lh_path) if lh_path else None, stamper=tsa_timestamper(self.settings))

    def artefact(self, version_id: int, kind: str) -> bytes | None:
        """A document stored at sign time (see app.reports.artefacts), or None."""
        with self.db.session() as s:
            art = s.scalar(select(ReportArtifact).where(ReportArtifact.version_id == version_id,
                                                        ReportArtifact.kind == kind))
            return art.data if art else None

    def signed_pdf(self, version_id: int) -> bytes | None:
        return self.artefact(version_id, "signed_pdf")

    def record_export(self, version_id: int, user: AuthSession | None, fmt: str, target: str) -> None:
        """Audit an export with who (the logged-in user, else the OS user of a command-line tool), the
        patient and the study, like every other access to patient data (app/access_audit.py)."""
        from app import access_audit

        def work(s: Session) -> None:
            study_uid = self._get_version(s, version_id).report.study_uid
            details = {"format": fmt, "target": target, "study_uid": study_uid,
                       **access_audit.patient_of(s, study_uid)}
            audit.append(s, "export", user.username if user else access_audit.actor(), "report_version",
                         version_id, details)

        self.db.run_write(work)

    def amend(self, version_id: int, user: AuthSession, kind: str = "amendment", reason: str = "") -> VersionView:
        """Start a new version after signing: an amendment (changed text, with the reason why) or an
        addendum (added text). Everything signed before is carried forward: every section, the earlier
        addenda and the AI provenance (so exports keep saying the report was drafted with AI assistance)."""
        user.ensure_active()
        if kind not in ("amendment", "addendum"):
            raise ReportError("kind must be 'amendment' or 'addendum'")
        reason = (reason or "").strip()
        if kind == "amendment" and not reason:
            raise ReportError("an amendment needs a reason (what was wrong or missing in the signed report)")
        with self.db.write_session() as s:
            orig = self._get_version(s, version_id)
            if orig.status != "final":
                raise ReportError("only a signed report can be amended; edit the draft instead")
            report = orig.report
            ensure_writable(s, report, user)
            if any(v.status != "final" for v in report.versions):
                raise ReportError("this report already has an unsigned version; finish or edit that one")
            sections = ReportContent.from_dict(orig.sections).to_dict()
            earlier = sections.pop("addendum", "").rstrip()
            if kind == "addendum":
                sections["addendum"] = f"{earlier}\n\n" if earlier else ""
            elif earlier:
                sections["addendum"] = earlier
            new = ReportVersion(report_id=report.id, version_no=max(v.version_no for v in report.versions) + 1,
                                kind=kind, status="draft", supersedes_id=orig.id, sections=sections,
                                author_id=user.user_id, amend_reason=reason,
                                ai_draft=dict(orig.ai_draft) if orig.ai_draft else None,
                                ai_generated=orig.ai_generated, human_edited=orig.human_edited,
                                ai_accepted=orig.ai_accepted)
            s.add(new)
            s.flush()
            audit.append(s, "amend", user.username, "report_version", new.id,
                         {"kind": kind, "supersedes": orig.id} | ({"reason": reason} if reason else {}))
            s.refresh(report)
            return self._view(s, new)

    # -- helpers ----------------------------------------------------------------------------------------
    def _template_for(self, study_uid: str, user: AuthSession, exam_type: str | None) -> ReportTemplate:
        """The named template, or the one that fits the exam best (the user's personal ones first)."""
        from app.reports.exam import exam_info

        if exam_type:
            return load_template(exam_type)
        best = TemplateLibrary.default().choose(exam_info(self.db, study_uid), user.username)
        return best if best is not None else load_template("generic")

    @staticmethod
    def _carried_addendum(s: Session, v: ReportVersion) -> str:
        """For an addendum: the signed addendum text it started from (kept as a prefix); else ''."""
        if v.kind != "addendum" or not v.supersedes_id:
            return ""
        orig = s.get(ReportVersion, v.supersedes_id)
        earlier = ReportContent.from_dict(orig.sections).get("addendum").rstrip() if orig else ""
        return f"{earlier}\n\n" if earlier else ""

    @staticmethod
    def _differs_from_ai(v: ReportVersion, content: ReportContent) -> bool:
        ai = v.ai_draft or {}
        return content.get("findings") != ai.get("findings", "") or content.get("impression") != ai.get(
            "impression", "")

    @staticmethod
    def _report_for(s: Session, study_uid: str) -> Report | None:
        return s.scalar(select(Report).where(Report.study_uid == study_uid).order_by(Report.id))

    @staticmethod
    def _get_version(s: Session, version_id: int) -> ReportVersion:
        v = s.get(ReportVersion, version_id)
        if v is None:
            raise ReportError(f"no report version {version_id}")
        return v

    def _editable(self, s: Session, version_id: int, user: AuthSession | None = None) -> ReportVersion:
        v = self._get_version(s, version_id)
        if v.status == "final":
            raise ImmutableVersionError(
                f"report version {v.version_no} is signed and cannot be changed; create an amendment or addendum")
        if user is not None:
            ensure_writable(s, v.report, user)
        return v

    @staticmethod
    def _conflict_message(s: Session, v: ReportVersion, expected: int) -> str:
        last = s.scalar(select(AuditEntry).where(AuditEntry.object_type == "report_version",
                                                 AuditEntry.object_id == str(v.id),
                                                 AuditEntry.action.in_(("edit", "draft")))
                        .order_by(AuditEntry.seq.desc()).limit(1))
        who = f" by {last.username}" if last is not None and last.username else ""
        when = ""
        if last is not None:
            when = " at " + dt.datetime.fromisoformat(last.at).astimezone().strftime("%H:%M:%S")
        return (f"Not saved: this report was changed{who}{when} (now revision {v.revision}) after your text was "
                f"loaded (revision {expected}). Nothing was overwritten; your text is still here — reload to "
                "see the stored version and merge by hand.")

    @staticmethod
    def _sync_study(s: Session, report: Report) -> None:
        study = s.scalar(select(Study).where(Study.study_uid == report.study_uid))
        if study is not None:
            study.report_status = study_status(list(report.versions))
