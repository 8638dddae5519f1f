"""`radstation import PATH...`: import folders, files, DICOMDIRs or zips and print the import report."""

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
