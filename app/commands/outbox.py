"""`radstation outbox list | add | send | retry`: the queue of signed report objects bound for a PACS.

The same queue the workstation's background sender works on (rows in the study database): an item is
'sent' only after the PACS confirmed storing it; failures are retried with back-off and shown with their
last error. Exit status: 0 when everything tried was confirmed, 1 when an attempt failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("outbox", help="report objects queued for a PACS: list, add, send, retry")
    p.add_argument("--db-url", help="SQLAlchemy database URL (default: settings / RADSTATION_DB_URL / SQLite)")
    ps = p.add_subparsers(dest="outbox_command", required=True)

    ls = ps.add_parser("list", help="show the queue with each item's state")
    ls.add_argument("--pending", action="store_true", help="leave out items already sent")
    ls.add_argument("--json", action="store_true", help="one JSON object per item")
    ls.set_defaults(func=run_list)

    add = ps.add_parser("add", help="queue a signed report version's objects for a PACS node")
    add.add_argument("version_id", type=int, help="report version id (see `radstation report list`)")
    add.add_argument("--to", required=True, metavar="NODE", help="a saved PACS node's name")
    add.add_argument("--documents", default="auto",
                     help="comma-separated: sr,pdf,kos,ai-sr,gsps,measurements; 'auto' = all the version has")
    add.add_argument("--max-attempts", type=int, default=5)
    add.set_defaults(func=run_add)

    send = ps.add_parser("send", help="send what is due now (waits for the PACS to confirm each item)")
    send.add_argument("--now", action="store_true", help="also items waiting for their retry time")
    send.set_defaults(func=run_send)

    retry = ps.add_parser("retry", help="queue failed/waiting items for another attempt")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--failed", action="store_true", help="every failed item")
    retry.add_argument("--send", action="store_true", help="send them right away")
    retry.set_defaults(func=run_retry)


def _fail(msg: object, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def _outbox(args: argparse.Namespace):
    import app.reports.models  # noqa: F401  (registers the report tables)
    from app.db.database import Database
    from app.reports.outbox import Outbox
    from app.reports.service import ReportService

    database = Database.open(getattr(args, "db_url", None))
    return database, Outbox(ReportService(database))


def _when(t) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else ""


def print_rows(rows, as_json: bool = False) -> None:
    if as_json:
        for r in rows:
            print(json.dumps({"id": r.id, "version_id": r.version_id, "document": r.document,
                              "destination": r.destination, "protocol": r.protocol, "state": r.state,
                              "attempts": r.attempts, "max_attempts": r.max_attempts, "last_error": r.last_error,
                              "sop_instance_uid": r.sop_instance_uid, "sent_at": _when(r.sent_at),
                              "next_attempt_at": _when(r.next_attempt_at)}))
        return
    if not rows:
        print("The outbox is empty.")
        return
    print(f"{'ID':>5}  {'DOCUMENT':<12}  {'DESTINATION':<20}  {'STATE':<8}  {'TRIES':<5}  {'SENT / NEXT TRY':<19}  LAST ERROR")
    for r in rows:
        when = _when(r.sent_at) if r.state == "sent" else _when(r.next_attempt_at)
        dest = f"{r.destination} ({r.protocol})"
        print(f"{r.id:>5}  {r.document:<12}  {dest[:20]:<20}  {r.state:<8}  {r.attempts}/{r.max_attempts:<3}  "
              f"{when:<19}  {r.last_error[:200]}")


def run_list(args: argparse.Namespace) -> int:
    database, box = _outbox(args)
    try:
        print_rows(box.items(include_sent=not args.pending), args.json)
    finally:
        database.dispose()
    return 0


def run_add(args: argparse.Namespace) -> int:
    from app.pacs.errors import PacsError
    from app.reports.outbox import DOCUMENTS, available_documents
    from app.reports.service import ReportError

    database, box = _outbox(args)
    try:
        if args.documents == "auto":
            documents = available_documents(box.service, args.version_id)
        else:
            documents = tuple(d.strip() for d in args.documents.split(",") if d.strip())
            unknown = [d for d in documents if d not in DOCUMENTS]
            if unknown:
                return _fail(f"unknown document(s) {', '.join(unknown)}; choose from {', '.join(DOCUMENTS)}")
        ids = box.enqueue(args.version_id, args.to, None, documents=documents, max_attempts=args.max_attempts)
    except (ReportError, PacsError, OSError, ValueError) as exc:
        return _fail(exc)
    finally:
        database.dispose()
    print(f"queued {len(ids)} item(s) for {args.to}: {', '.join(f'{i} ({d})' for i, d in zip(ids, documents, strict=True))}")
    return 0


def _send(box, force: bool) -> int:
    import datetime as dt

    before = {r.id: r.attempts for r in box.items(include_sent=False)}
    when = dt.datetime.now(dt.UTC) + (dt.timedelta(days=3650) if force else dt.timedelta())
    sent = box.process_due(now=when)
    tried = [r for r in box.items() if r.id in before and r.attempts > before[r.id]]
    print_rows(sorted(tried, key=lambda r: r.id))
    failed = [r for r in tried if r.state != "sent"]
    print(f"{sent} sent, {len(failed)} not sent")
    return 1 if failed else 0


def run_send(args: argparse.Namespace) -> int:
    database, box = _outbox(args)
    try:
        return _send(box, args.now)
    finally:
        database.dispose()


def run_retry(args: argparse.Namespace) -> int:
    from app.reports.service import ReportError

    database, box = _outbox(args)
    try:
        ids = list(args.ids)
        if args.failed:
            ids += [r.id for r in box.items(include_sent=False) if r.state == "failed"]
        if not ids:
            return _fail("name item ids or use --failed")
        for item_id in ids:
            box.retry_now(item_id)
        print(f"{len(ids)} item(s) queued for another attempt")
        return _send(box, False) if args.send else 0
    except ReportError as exc:
        return _fail(exc)
    finally:
        database.dispose()
