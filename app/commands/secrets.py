"""`radstation secrets ...`: where secrets are kept; TLS private-key and database passwords.

PACS passwords and tokens are stored by `radstation pacs add-node --password` (asked for, never read
from the command line); this group covers the rest.
"""

from __future__ import annotations

import argparse
import getpass
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("secrets", help="where passwords and tokens are kept; TLS key and database passwords")
    ps = p.add_subparsers(dest="secrets_command", required=True)
    where = ps.add_parser("where", help="say which secret store is in use (OS keyring or encrypted file)")
    where.set_defaults(func=run_where)
    key = ps.add_parser("set-tls-key-password", help="store the password of a TLS private key file (asked for)")
    key.add_argument("key_file")
    key.set_defaults(func=run_set_tls_key_password)
    db = ps.add_parser("set-db-password", help="store the password of a database server account (asked for)")
    db.add_argument("url", help="the database URL without its password, e.g. postgresql://radstation@db-host/radstation")
    db.set_defaults(func=run_set_db_password)


def run_where(_args: argparse.Namespace) -> int:
    from app.credentials import SecretStore, SecretStoreError

    try:
        print(SecretStore().describe())
    except SecretStoreError as exc:
        print(f"radstation secrets: {exc}", file=sys.stderr)
        return 2
    return 0


def run_set_tls_key_password(args: argparse.Namespace) -> int:
    from app.credentials import SecretStore, SecretStoreError, tls_key_secret_name

    password = getpass.getpass(f"Password of {args.key_file}: ")
    try:
        store = SecretStore()
        store.set(tls_key_secret_name(args.key_file), password)
    except SecretStoreError as exc:
        print(f"radstation secrets: {exc}", file=sys.stderr)
        return 2
    print(f"stored in the {store.describe()}")
    return 0


def run_set_db_password(args: argparse.Namespace) -> int:
    """Ask for the password of URL's account and keep it in the secret store (never on the command line)."""
    from app.credentials import SecretStoreError
    from app.db.database import DatabaseError, normalise_url
    from app.db.password import store_password

    try:
        url = normalise_url(args.url)
    except DatabaseError as exc:
        print(f"radstation secrets: {exc}", file=sys.stderr)
        return 2
    if url.password:
        print("radstation secrets: give the URL without its password; it is asked for", file=sys.stderr)
        return 2
    if not url.username:
        print("radstation secrets: the URL names no user (postgresql://USER@HOST/DATABASE)", file=sys.stderr)
        return 2
    password = getpass.getpass(f"Password of {url.username} on {url.host or 'localhost'}: ")
    try:
        where = store_password(url, password)
    except SecretStoreError as exc:
        print(f"radstation secrets: {exc}", file=sys.stderr)
        return 2
    print(f"stored in the {where}")
    return 0
