"""`radstation secrets ...`: where secrets are kept, and storing a TLS private-key password.

PACS passwords and tokens are stored by `radstation pacs add-node --password` (asked for, never read
from the command line); this group covers the rest.
"""

from __future__ import annotations

import argparse
import getpass
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("secrets", help="where passwords and tokens are kept; TLS key passwords")
    ps = p.add_subparsers(dest="secrets_command", required=True)
    where = ps.add_parser("where", help="say which secret store is in use (OS keyring or encrypted file)")
    where.set_defaults(func=run_where)
    key = ps.add_parser("set-tls-key-password", help="store the password of a TLS private key file (asked for)")
    key.add_argument("key_file")
    key.set_defaults(func=run_set_tls_key_password)


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
