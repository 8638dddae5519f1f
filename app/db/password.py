"""The database server's password, kept in the secret store rather than in settings.json.

A department database URL such as `postgresql://radstation:PASSWORD@db-host/radstation` in
settings.json puts the one password that opens every patient's record into a plain file that backups and
support bundles copy. The URL is kept without it; the password lives in the OS keyring (or the encrypted
file, `app.credentials`) under the URL's user, host, port and database, and is added when the database is
opened. `radstation secrets set-db-password URL` stores it (asked for); a password found in
settings.json by an older version is moved there on first use. libpq's own ~/.pgpass keeps working: when
the store has nothing, the URL goes to the driver as it is.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy.engine import URL

from app.settings import Settings

log = logging.getLogger(__name__)


def secret_name(url: URL) -> str:
    """'database:<user>@<host>:<port>/<database>' - one entry per account on one server."""
    return f"database:{url.username or ''}@{(url.host or '').lower()}:{url.port or ''}/{url.database or ''}"


def _needs_password(url: URL) -> bool:
    return url.get_backend_name() != "sqlite" and bool(url.username)


def with_stored_password(url: URL) -> URL:
    """`url` with the password from the secret store when it names a user but carries none."""
    if not _needs_password(url) or url.password:
        return url
    from app.credentials import SecretStore, SecretStoreError

    try:
        password = SecretStore().get(secret_name(url))
    except SecretStoreError as exc:  # the driver may still find one (~/.pgpass); say why ours was not used
        log.warning("database password not read from the secret store: %s", exc)
        return url
    except Exception as exc:  # noqa: BLE001 - a broken keyring must not keep the database closed
        log.warning("database password not read from the secret store (%s: %s)", type(exc).__name__, exc)
        return url
    return url.set(password=password) if password else url


def store_password(url: URL, password: str) -> str:
    """Keep `password` for `url`'s account; returns the store's description."""
    from app.credentials import SecretStore

    store = SecretStore()
    store.set(secret_name(url), password)
    return store.describe()


def move_password_out_of_settings(settings: Settings) -> bool:
    """Move a password written into the `db_url` setting into the secret store; True when one was moved.

    The setting is rewritten only after the store holds the password, so nothing is lost when the store
    refuses (then the URL keeps working as it is and the failure is logged)."""
    from sqlalchemy.engine import make_url

    from app.credentials import SecretStoreError

    raw = str(settings.get("db_url") or "")
    if "@" not in raw:
        return False
    try:
        url = make_url(raw)
    except Exception:  # noqa: BLE001 - a bad URL is reported when the database is opened
        return False
    if not _needs_password(url) or not url.password:
        return False
    try:
        where = store_password(url, str(url.password))
    except SecretStoreError as exc:
        log.error("the database password in %s could not be moved to the secret store: %s", settings.path, exc)
        return False
    settings.set("db_url", url._replace(password=None).render_as_string(hide_password=False))  # set() keeps it
    settings.save()
    log.warning("moved the database password out of %s into the %s", settings.path, where)
    return True


def warn_if_password_in_environment() -> None:
    """A password in RADSTATION_DB_URL is readable by every process of this user: say how to avoid it."""
    raw = os.environ.get("RADSTATION_DB_URL", "")
    if "@" in raw and ":" in raw.split("@", 1)[0].split("//", 1)[-1]:
        log.warning("RADSTATION_DB_URL carries a password; store it with 'radstation secrets set-db-password "
                    "URL' and drop it from the URL")
