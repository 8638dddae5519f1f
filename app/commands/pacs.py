"""`radstation pacs ...`: manage PACS nodes, test them, search, retrieve, and run the Storage SCP.

NODE is a saved node's name, or given inline as AET@HOST:PORT (DIMSE) or an http(s) DICOMweb URL.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pacs", help="PACS nodes: echo, find, get, and the Storage SCP")
    ps = p.add_subparsers(dest="pacs_command", required=True)

    nodes = ps.add_parser("nodes", help="list the saved PACS nodes")
    nodes.set_defaults(func=run_nodes)

    add = ps.add_parser("add-node", help="save (or replace) a PACS node")
    add.add_argument("name")
    add.add_argument("--ae", default="", help="called AE title (DIMSE)")
    add.add_argument("--host", default="")
    add.add_argument("--port", type=int, default=104)
    add.add_argument("--calling-ae", default="RADSTATION", help="RadStation's AE title towards this PACS")
    add.add_argument("--retrieve", choices=("c-get", "c-move"), default="c-get")
    add.add_argument("--url", default="", help="DICOMweb base URL (makes it a DICOMweb node)")
    add.add_argument("--auth", choices=("none", "basic", "bearer"), default="none")
    add.add_argument("--user", default="")
    add.add_argument("--password", nargs="?", const=_PROMPT, default="",
                     help="ask for the password (never give it here: command lines are visible to other users); "
                          "or set RADSTATION_PACS_PASSWORD")
    add.add_argument("--token", nargs="?", const=_PROMPT, default="",
                     help="ask for the bearer token; or set RADSTATION_PACS_TOKEN")
    add.add_argument("--allow-insecure-http", action="store_true",
                     help="confirm sending the password/token over plain http (readable on the network)")
    add.add_argument("--tls", action="store_true", help="DIMSE over DICOM TLS")
    add.add_argument("--tls-ca", default="", help="PEM file of the CAs that sign the PACS's certificate")
    add.add_argument("--tls-cert", default="", help="our client certificate (PEM) for mutual TLS")
    add.add_argument("--tls-key", default="", help="its private key (PEM)")
    add.add_argument("--timeout", type=float, default=30.0)
    add.set_defaults(func=run_add_node)

    rm = ps.add_parser("remove-node", help="delete a saved PACS node")
    rm.add_argument("name")
    rm.set_defaults(func=run_remove_node)

    echo = ps.add_parser("echo", help="C-ECHO (DIMSE) or QIDO ping (DICOMweb)")
    echo.add_argument("node")
    echo.set_defaults(func=run_echo)

    find = ps.add_parser("find", help="search studies (or list a study's series with --series)")
    find.add_argument("node")
    find.add_argument("--name", default="", help="patient name; a plain word matches as a prefix")
    find.add_argument("--patient-id", default="")
    find.add_argument("--accession", default="")
    find.add_argument("--from", dest="date_from", default="", help="YYYY-MM-DD")
    find.add_argument("--to", dest="date_to", default="", help="YYYY-MM-DD")
    find.add_argument("--modality", default="")
    find.add_argument("--description", default="")
    find.add_argument("--series", metavar="STUDY_UID", help="list this study's series instead")
    find.add_argument("--db-url", help="database whose audit log records the search (default: settings)")
    find.set_defaults(func=run_find)

    get = ps.add_parser("get", help="retrieve studies into the local database (resumes what is missing)")
    get.add_argument("node")
    get.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    get.add_argument("--db-url", help="SQLAlchemy database URL (default: settings / RADSTATION_DB_URL / SQLite)")
    get.set_defaults(func=run_get)

    scp = ps.add_parser("scp", help="run the Storage SCP in the foreground (Ctrl-C stops it)")
    scp.add_argument("--ae", help="AE title (default: settings)")
    scp.add_argument("--port", type=int, help="port (default: settings)")
    scp.add_argument("--bind", default=None, help="address to listen on (default: settings, 127.0.0.1)")
    scp.add_argument("--accept", action="append", default=None, metavar="AE",
                     help="accepted calling AE (repeat); nobody else gets in")
    scp.add_argument("--db-url")
    scp.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    scp.add_argument("--max-instances", type=int, default=0, help="stop after receiving this many (0: no limit)")
    scp.set_defaults(func=run_scp)


_PROMPT = "\0prompt"


def _secret(value: str, what: str, env: str) -> str:
    """The secret to store: prompted (flag without value) or from `env`; a value typed on the command
    line is refused, since `ps` and the shell history show it to others."""
    import getpass
    import os

    if value == _PROMPT:
        return getpass.getpass(f"{what}: ")
    if value:
        raise ValueError(f"do not put the {what.lower()} on the command line (other users can see it): "
                         f"give --{what.lower().split()[0]} without a value to be asked, or set {env}")
    return os.environ.get(env, "")


def resolve_node(spec: str):  # -> PacsNode
    """A saved node by name, or an inline AET@HOST:PORT / http(s) URL."""
    from app.pacs.nodes import NodeStore, PacsNode

    if spec.startswith(("http://", "https://")):
        return PacsNode(name=spec, protocol="dicomweb", url=spec).validate()
    if "@" in spec and ":" in spec.rsplit("@", 1)[1]:
        ae, rest = spec.rsplit("@", 1)
        host, _, port = rest.rpartition(":")
        return PacsNode(name=spec, ae_title=ae, host=host, port=int(port) if port.isdigit() else -1).validate()
    return NodeStore().get(spec).validate()


def _fail(exc: Exception) -> int:
    print(f"radstation pacs: {exc}", file=sys.stderr)
    return 2


def run_nodes(_args: argparse.Namespace) -> int:
    from app.pacs.errors import PacsError
    from app.pacs.nodes import NodeStore

    try:
        nodes = NodeStore().load()
    except PacsError as exc:
        return _fail(exc)
    if not nodes:
        print("no PACS nodes configured (radstation pacs add-node ...)")
    for node in nodes:
        print(f"{node.describe()}  retrieve={node.retrieve_method}")
    return 0


def run_add_node(args: argparse.Namespace) -> int:
    from app.pacs.errors import PacsError
    from app.pacs.nodes import NodeStore, PacsNode

    try:
        password = _secret(args.password, "Password", "RADSTATION_PACS_PASSWORD")
        token = _secret(args.token, "Token", "RADSTATION_PACS_TOKEN")
    except ValueError as exc:
        return _fail(exc)
    node = PacsNode(
        name=args.name, protocol="dicomweb" if args.url else "dimse", ae_title=args.ae, host=args.host,
        port=args.port, calling_ae=args.calling_ae, retrieve=args.retrieve, url=args.url, auth=args.auth,
        username=args.user, password=password, token=token, timeout=args.timeout,
        allow_insecure_credentials=args.allow_insecure_http, tls=args.tls, tls_ca_certificates=args.tls_ca,
        tls_certificate=args.tls_cert, tls_private_key=args.tls_key,
    )
    if node.sends_credentials_in_clear and args.allow_insecure_http:
        print("warning: the credentials of this node travel unencrypted over http; use https where the server "
              "offers it", file=sys.stderr)
    try:
        store = NodeStore()
        store.upsert(node)
    except PacsError as exc:
        return _fail(exc)
    where = f"; credentials in the {store.secrets.describe()}" if (password or token) else ""
    print(f"saved {node.describe()}{where}")
    return 0


def run_remove_node(args: argparse.Namespace) -> int:
    from app.pacs.errors import PacsError
    from app.pacs.nodes import NodeStore

    try:
        store = NodeStore()
        store.get(args.name)
        store.remove(args.name)
    except PacsError as exc:
        return _fail(exc)
    print(f"removed {args.name}")
    return 0


def run_echo(args: argparse.Namespace) -> int:
    from app.pacs.clients import check_node
    from app.pacs.errors import PacsError

    try:
        print(check_node(resolve_node(args.node)))
    except PacsError as exc:
        return _fail(exc)
    return 0


def run_find(args: argparse.Namespace) -> int:
    from app.db.database import Database, DatabaseError
    from app.pacs.clients import client_for, find_studies_recorded
    from app.pacs.errors import PacsError
    from app.pacs.query import QueryFilter

    try:
        client = client_for(resolve_node(args.node))
        database = Database.open(args.db_url)  # the search is recorded in its audit log
    except (PacsError, DatabaseError) as exc:
        return _fail(exc)
    try:
        if args.series:
            for s in client.find_series(args.series):
                print(f"{s.number if s.number is not None else '-':>4}  {s.modality:<4} "
                      f"{s.instance_count if s.instance_count is not None else '?':>5}  {s.description:<30} {s.series_uid}")
            return 0
        query = QueryFilter(args.name, args.patient_id, args.accession, args.date_from, args.date_to,
                            args.modality, args.description)
        results = find_studies_recorded(client, database, query)
    except PacsError as exc:
        return _fail(exc)
    finally:
        database.dispose()
    for r in results:
        print(f"{r.study_date:<8}  {r.patient_name:<24} {r.patient_id:<12} {r.modalities:<8} "
              f"{r.accession:<12} {r.description:<30} {r.study_uid}")
    print(f"{len(results)} stud{'y' if len(results) == 1 else 'ies'}")
    return 0


def run_get(args: argparse.Namespace) -> int:
    from app.db.database import Database, DatabaseError
    from app.pacs.cancel import CancelToken
    from app.pacs.errors import PacsError
    from app.pacs.retrieve import RetrieveService, StudyProgress

    try:
        node = resolve_node(args.node)
        database = Database.open(args.db_url)
    except (PacsError, DatabaseError) as exc:
        return _fail(exc)
    interactive = sys.stderr.isatty()

    def progress(p: StudyProgress) -> None:
        if interactive and p.state == "running":
            print(f"\r{p.study_uid[-24:]}: {p.done}/{p.total or '?'}", end="", file=sys.stderr, flush=True)

    cancel = CancelToken()
    try:
        results = RetrieveService(database, node).retrieve_studies(args.study_uids, progress, cancel)
    except KeyboardInterrupt:
        cancel.cancel()
        return 130
    except PacsError as exc:
        return _fail(exc)
    finally:
        database.dispose()
    if interactive:
        print(file=sys.stderr)
    for r in results:
        print(f"{r.study_uid}: {r.state}: {r.message}")
    return 0 if all(r.ok for r in results) else 1


def run_scp(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from app.db.database import Database, DatabaseError
    from app.pacs.errors import PacsError
    from app.pacs.nodes import StorageScpConfig
    from app.pacs.scp import StorageScp, scp_key_password
    from app.pacs.sink import ImportSink

    try:
        config = StorageScpConfig.from_settings()
        changes = {k: v for k, v in (("ae_title", args.ae), ("port", args.port), ("bind_address", args.bind)) if v}
        if args.accept is not None:
            changes["accepted_calling_aes"] = tuple(args.accept)
        config = replace(config, enabled=True, **changes).validate()
        database = Database.open(args.db_url)
        scp = StorageScp(config, ImportSink(database), key_password=scp_key_password(config)).start()
    except (PacsError, DatabaseError) as exc:
        return _fail(exc)
    if config.accept_any_calling_ae:
        accepted = "any (accept_any_calling_ae is set)"
    else:
        accepted = ", ".join(p.ae_title for p in config.all_peers) or "none configured: every association is refused"
    tls = ", TLS" if config.tls else ""
    print(f"Storage SCP {config.ae_title} on {config.bind_address}:{scp.port}{tls} (calling AEs: {accepted})",
          flush=True)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() > deadline:
                break
            if args.max_instances and scp.received + scp.failed >= args.max_instances:
                break
    except KeyboardInterrupt:
        pass
    finally:
        scp.stop()
        database.dispose()
    print(f"received {scp.received}, refused {scp.failed}")
    return 0
