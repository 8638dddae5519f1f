"""`radstation verify | audit verify | user add/list/passwd | cert create | report export`.

Passwords are read with getpass, or one line from stdin with --password-stdin (scripts, tests).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _password(args: argparse.Namespace, prompt: str, confirm: bool = False) -> str:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("no password on stdin")
        return line.rstrip("\n")
    pw = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat: ") != pw:
        raise SystemExit("passwords differ")
    return pw


def _db(args: argparse.Namespace):
    import app.reports.models  # noqa: F401  (registers the report tables)
    from app.db.database import Database

    return Database.open(getattr(args, "db", None) or None)


def _fail(msg: str, code: int = 1) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


# -- verify --------------------------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    from app.reports.verify import Verification
    from app.reports.verify_documents import verify_file, verify_version

    try:
        db = None if args.no_db else _db(args)
    except Exception as exc:  # noqa: BLE001 - an unusable database is reported, not a traceback
        return _fail(f"cannot open the database: {exc}")
    results: list[Verification] = []
    if args.report is not None or args.version is not None:
        if db is None:
            return _fail("--report/--version need the database")
        from sqlalchemy import select

        from app.reports.models import ReportVersion

        with db.session() as s:
            if args.version is not None:
                ids = [args.version]
            else:
                ids = list(s.scalars(select(ReportVersion.id).where(ReportVersion.report_id == args.report,
                                                                    ReportVersion.status == "final")))
        if not ids:
            return _fail("no signed versions found")
        results += [verify_version(db, i) for i in ids]
    for f in args.files:
        path = Path(f)
        if not path.is_file():
            results.append(Verification(str(path), problems=["no such file"]))
            continue
        results.append(verify_file(path, db))
    if not results:
        return _fail("give a FILE, --report ID or --version ID", 2)
    for r in results:
        print(r.summary())
    return 0 if all(r.ok for r in results) else 1


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from app.reports.audit import verify_chain

    db = _db(args)
    with db.session() as s:
        res = verify_chain(s)
    print(res.summary())
    return 0 if res.ok else 1


def cmd_audit_forward(args: argparse.Namespace) -> int:
    from app.reports.audit_forward import ForwardError, Repository, flush, pending

    db = _db(args)
    repo = Repository.from_settings()
    if repo is None:
        return _fail("no audit repository configured (setting audit_repository)")
    try:
        sent = flush(db, repo)
    except ForwardError as exc:
        return _fail(f"{exc}; {pending(db)} entries stay queued")
    print(f"{sent} audit entries sent to {repo.host}:{repo.port}")
    return 0


# -- users and certificates ---------------------------------------------------------------------------------
def _admin_session(args: argparse.Namespace, users):
    """The authenticated admin named by --admin (None without --admin: bootstrap / self-service only)."""
    if not getattr(args, "admin", None):
        return None
    pw = _password(args, f"Password of admin {args.admin}: ")
    return users.authenticate(args.admin, pw)


def cmd_user_add(args: argparse.Namespace) -> int:
    from app.reports.passwords import WeakPasswordError
    from app.reports.users import AuthError, RoleError, UserError, UserService

    users = UserService(_db(args))
    try:
        actor = _admin_session(args, users)
        pw = _password(args, f"Password for {args.username}: ", confirm=True)
        users.add_user(args.username, pw, args.role, args.name or "", actor=actor)
    except (UserError, WeakPasswordError, AuthError, RoleError) as exc:
        return _fail(f"{exc}" + ("" if getattr(args, "admin", None) else " (use --admin NAME)"))
    print(f"user {args.username} ({args.role}) added")
    return 0


def cmd_user_role(args: argparse.Namespace) -> int:
    from app.reports.users import AuthError, RoleError, UserError, UserService

    users = UserService(_db(args))
    try:
        actor = _admin_session(args, users)
        if actor is None:
            return _fail("changing a role needs an admin: --admin NAME")
        users.set_role(args.username, args.role, actor=actor)
    except (UserError, AuthError, RoleError) as exc:
        return _fail(str(exc))
    print(f"{args.username} is now a {args.role}")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from app.reports.users import UserService

    for u in UserService(_db(args)).list_users():
        lock = f" locked until {u['locked_until']:%H:%M}" if u["locked_until"] else ""
        print(f"{u['username']:<16} {u['role']:<12} {u['display_name']:<28} "
              f"{'certificate' if u['has_certificate'] else 'no certificate'}{lock}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from app.reports.passwords import WeakPasswordError
    from app.reports.users import AuthError, UserService

    old = _password(args, "Current password: ")
    new = _password(args, "New password: ", confirm=not args.password_stdin)
    try:
        UserService(_db(args)).change_password(args.username, old, new)
    except (AuthError, WeakPasswordError) as exc:
        return _fail(str(exc))
    print(f"password of {args.username} changed (signing key re-encrypted if present)")
    return 0


def cmd_cert_create(args: argparse.Namespace) -> int:
    from app.reports.keys import certificate_fingerprint, create_self_signed, default_p12_path
    from app.reports.passwords import WeakPasswordError, check_policy
    from app.reports.users import AuthError, RoleError, UserError, UserService

    users = UserService(_db(args))
    try:
        actor = _admin_session(args, users)
        pw = _password(args, f"Account password of {args.username}: ")
        session = users.authenticate(args.username, pw)
        key_pw = pw
        if args.key_password:
            key_pw = _password(args, "Separate password for the key file: ", confirm=not args.password_stdin)
            check_policy(key_pw)
        users.check_may_register(args.username, actor or session)
    except (AuthError, RoleError, UserError, WeakPasswordError) as exc:
        return _fail(str(exc))
    path = Path(args.out) if args.out else default_p12_path(args.username)
    if path.exists() and not args.force:
        return _fail(f"{path} exists; use --force to replace it (reports signed with the old key stay valid)")
    ident = create_self_signed(session.display_name or session.username, key_pw, path, days=args.days)
    try:
        users.pin_certificate(args.username, ident.certificate_der, actor=actor or session)
    except (RoleError, UserError) as exc:
        path.unlink(missing_ok=True)
        return _fail(str(exc))
    print(f"self-signed certificate for {session.display_name} written to {path}")
    print(f"SHA-256 fingerprint: {certificate_fingerprint(ident.certificate_der)}")
    return 0


def cmd_cert_import(args: argparse.Namespace) -> int:
    """A key and certificate issued by the hospital CA (PKCS#12 or PEM chain), checked against the
    configured trust roots and CRLs, stored as a strong-KDF PKCS#12 and registered for the user."""
    import datetime as dt

    from app.reports.keys import (
        KeyError_,
        certificate_fingerprint,
        default_p12_path,
        load_identity_file,
        write_p12,
    )
    from app.reports.passwords import WeakPasswordError, check_policy
    from app.reports.trust import check_certificate
    from app.reports.users import AuthError, RoleError, UserError, UserService

    users = UserService(_db(args))
    try:
        actor = _admin_session(args, users)
        pw = _password(args, f"Account password of {args.username}: ")
        session = users.authenticate(args.username, pw)
        file_pw = _password(args, f"Password of {args.file}: ")
        key_pw = pw
        if args.key_password:
            key_pw = _password(args, "Separate password for the stored key: ", confirm=not args.password_stdin)
            check_policy(key_pw)
        users.check_may_register(args.username, actor or session)
        identity, chain = load_identity_file(Path(args.file), file_pw)
    except (AuthError, RoleError, UserError, WeakPasswordError, KeyError_) as exc:
        return _fail(str(exc))
    from cryptography.hazmat.primitives import serialization

    problems = check_certificate(identity.certificate_der, dt.datetime.now(dt.UTC),
                                 [c.public_bytes(serialization.Encoding.DER) for c in chain])
    if problems:
        return _fail("certificate refused: " + "; ".join(problems))
    path = default_p12_path(args.username)
    if path.exists() and not args.force:
        return _fail(f"{path} exists; use --force to replace it (reports signed with the old key stay valid)")
    write_p12(identity, key_pw, path, friendly_name=session.display_name, chain=chain)
    try:
        users.pin_certificate(args.username, identity.certificate_der, actor=actor or session)
    except (RoleError, UserError) as exc:
        path.unlink(missing_ok=True)
        return _fail(str(exc))
    print(f"certificate of {identity.certificate.subject.rfc4514_string()} imported to {path}")
    print(f"SHA-256 fingerprint: {certificate_fingerprint(identity.certificate_der)}")
    return 0


def cmd_cert_register(args: argparse.Namespace) -> int:
    """Register the certificate of a key kept on a PKCS#11 token (the key itself never comes here)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from app.reports.keys import certificate_fingerprint
    from app.reports.trust import check_certificate
    from app.reports.users import AuthError, RoleError, UserError, UserService

    users = UserService(_db(args))
    try:
        actor = _admin_session(args, users)
        if actor is None:
            return _fail("registering a token certificate needs an admin: --admin NAME")
        data = Path(args.certificate).read_bytes()
        certs = x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
    except (AuthError, OSError, ValueError) as exc:
        return _fail(str(exc))
    der = certs[0].public_bytes(serialization.Encoding.DER)
    problems = check_certificate(der, dt.datetime.now(dt.UTC), [c.public_bytes(serialization.Encoding.DER)
                                                                for c in certs[1:]])
    if problems:
        return _fail("certificate refused: " + "; ".join(problems))
    try:
        users.pin_certificate(args.username, der, actor=actor)
    except (RoleError, UserError) as exc:
        return _fail(str(exc))
    print(f"certificate {certificate_fingerprint(der)} registered for {args.username}")
    return 0


# -- export -------------------------------------------------------------------------------------------
def cmd_report_export(args: argparse.Namespace) -> int:
    from app.reports.exporting import export_version
    from app.reports.service import ReportError, ReportService

    try:
        out = export_version(ReportService(_db(args)), args.version, args.format, Path(args.out))
    except (ReportError, ValueError) as exc:
        return _fail(str(exc))
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    def db_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", help="database URL (default: settings / the local SQLite file)")

    v = sub.add_parser("verify", help="check a signed report (stored, SR, PDF, encapsulated PDF) for tampering")
    v.add_argument("files", nargs="*", help="exported report files (.dcm SR / encapsulated PDF, .pdf)")
    v.add_argument("--report", type=int, help="verify every signed version of this report id")
    v.add_argument("--version", type=int, help="verify this stored report version id")
    v.add_argument("--no-db", action="store_true", help="check files without the local database")
    db_opt(v)
    v.set_defaults(func=cmd_verify)

    a = sub.add_parser("audit", help="audit log tools")
    asub = a.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser("verify", help="check the audit log's hash chain")
    db_opt(av)
    av.set_defaults(func=cmd_audit_verify)
    af = asub.add_parser("forward", help="send queued audit entries to the audit repository (IHE ATNA syslog)")
    db_opt(af)
    af.set_defaults(func=cmd_audit_forward)

    u = sub.add_parser("user", help="local user accounts")
    usub = u.add_subparsers(dest="user_command", required=True)
    ua = usub.add_parser("add", help="add a user")
    ua.add_argument("username")
    ua.add_argument("--role", required=True, choices=("radiologist", "resident", "admin"))
    ua.add_argument("--name", help="display name, e.g. 'Dr Jane Doe'")
    ua.add_argument("--admin", help="admin who authorises this (needed once any account exists)")
    ua.add_argument("--password-stdin", action="store_true",
                    help="read the passwords from stdin, one per line (admin's first)")
    db_opt(ua)
    ua.set_defaults(func=cmd_user_add)
    ur = usub.add_parser("role", help="change a user's role (admin only)")
    ur.add_argument("username")
    ur.add_argument("role", choices=("radiologist", "resident", "admin"))
    ur.add_argument("--admin", required=True)
    ur.add_argument("--password-stdin", action="store_true")
    db_opt(ur)
    ur.set_defaults(func=cmd_user_role)
    ul = usub.add_parser("list", help="list users")
    db_opt(ul)
    ul.set_defaults(func=cmd_user_list)
    up = usub.add_parser("passwd", help="change a password (old, then new)")
    up.add_argument("username")
    up.add_argument("--password-stdin", action="store_true", help="read old and new password, one per line")
    db_opt(up)
    up.set_defaults(func=cmd_user_passwd)

    c = sub.add_parser("cert", help="signing certificates")
    csub = c.add_subparsers(dest="cert_command", required=True)
    cc = csub.add_parser("create", help="create a self-signed PKCS#12 signing key for a user")
    cc.add_argument("username")
    cc.add_argument("--out", help="PKCS#12 path (default: the data dir's keys/<user>.p12)")
    cc.add_argument("--days", type=int, default=3 * 365)
    cc.add_argument("--force", action="store_true")
    cc.add_argument("--admin", help="admin who registers the certificate (needed where any admin exists)")
    cc.add_argument("--key-password", action="store_true",
                    help="protect the key file with its own password instead of the account password")
    cc.add_argument("--password-stdin", action="store_true",
                    help="read passwords from stdin, one per line: admin's, the user's, then the key's")
    db_opt(cc)
    cc.set_defaults(func=cmd_cert_create)
    ci = csub.add_parser("import", help="import a CA-issued key + certificate (PKCS#12 or PEM chain) for a user")
    ci.add_argument("username")
    ci.add_argument("file", help=".p12/.pfx, or PEM with the private key and the certificate chain")
    ci.add_argument("--force", action="store_true")
    ci.add_argument("--admin", help="admin who registers the certificate (needed where any admin exists)")
    ci.add_argument("--key-password", action="store_true",
                    help="protect the stored key with its own password instead of the account password")
    ci.add_argument("--password-stdin", action="store_true",
                    help="read passwords from stdin, one per line: admin's, the user's, the file's, the key's")
    db_opt(ci)
    ci.set_defaults(func=cmd_cert_import)
    cr = csub.add_parser("register", help="register the certificate of a user's key on a PKCS#11 token")
    cr.add_argument("username")
    cr.add_argument("certificate", help="PEM (signer first, then its CA chain) or DER certificate")
    cr.add_argument("--admin", required=True)
    cr.add_argument("--password-stdin", action="store_true")
    db_opt(cr)
    cr.set_defaults(func=cmd_cert_register)

    r = sub.add_parser("report", help="report documents")
    rsub = r.add_subparsers(dest="report_command", required=True)
    re_ = rsub.add_parser("export", help="write a report version as SR, PDF, encapsulated PDF, text or FHIR")
    re_.add_argument("--version", type=int, required=True, help="report version id")
    re_.add_argument("--format", required=True, choices=("sr", "pdf", "pdf-dicom", "text", "fhir"))
    re_.add_argument("--out", required=True)
    db_opt(re_)
    re_.set_defaults(func=cmd_report_export)
