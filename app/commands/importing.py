"""`radstation import PATH...`: import folders, files, DICOMDIRs or zips and print the import report.
`radstation conflicts`: the instances that arrived twice with different content (both copies kept)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import DICOM folders, files, DICOMDIRs or zips into the study database")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder (recursive), file, DICOMDIR or .zip")
    p.add_argument("--db-url", help="SQLAlchemy database URL (default: settings / RADSTATION_DB_URL / SQLite)")
    p.add_argument("--show-duplicates", action="store_true", help="also list files that were already present")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)
    c = sub.add_parser("conflicts", help="list instances that arrived again with different content (both kept)")
    c.add_argument("--db-url", help="SQLAlchemy database URL (default: settings / RADSTATION_DB_URL / SQLite)")
    c.set_defaults(func=run_conflicts)


def run(args: argparse.Namespace) -> int:
    from app.db.database import Database, DatabaseError
    from app.importer import ImportService

    try:
        database = Database.open(args.db_url)
    except DatabaseError as exc:
        print(f"radstation import: {exc}", file=sys.stderr)
        return 2
    interactive = not args.quiet and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if interactive:
            text = "scanning..." if total == 0 else f"{done}/{total} files"
            print(f"\r{text}", end="", file=sys.stderr, flush=True)

    try:
        # Ctrl-C interrupts the chunk in flight: its transaction rolls back, committed chunks stay.
        report = ImportService(database).run(args.paths, progress=progress)
    finally:
        database.dispose()
    if interactive:
        print(file=sys.stderr)
    print(f"Import into {database.url}: {report.summary()} in {report.seconds:.1f} s")
    table = report.format_table(include_duplicates=args.show_duplicates)
    if table:
        print(table)
    return 1 if report.failed else 0


def run_conflicts(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from app.db.database import Database, DatabaseError
    from app.db.models import Instance, InstanceConflict

    try:
        database = Database.open(args.db_url)
    except DatabaseError as exc:
        print(f"radstation conflicts: {exc}", file=sys.stderr)
        return 2
    try:
        with database.session() as session:
            rows = session.execute(
                select(InstanceConflict, Instance.file_path)
                .join(Instance, InstanceConflict.instance_db_id == Instance.id)
                .order_by(InstanceConflict.received_at)
            ).all()
    finally:
        database.dispose()
    if not rows:
        print("no conflicting copies")
        return 0
    for conflict, first in rows:
        print(f"{conflict.sop_instance_uid}  received {conflict.received_at:%Y-%m-%d %H:%M} from {conflict.source}\n"
              f"    first copy:  {database.store_path(first)}\n"
              f"    later copy:  {database.store_path(conflict.file_path)} (study {conflict.study_uid})")
    print(f"{len(rows)} conflicting cop{'y' if len(rows) == 1 else 'ies'}")
    return 0
