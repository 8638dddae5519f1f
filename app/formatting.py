"""One way to show a person's name and a date everywhere (worklist, report editor, Sign dialog, PDF).

Names: DICOM PN "DOE^JANE^B" is shown "DOE, JANE B" (family name first, as the worklist sorts).
Dates: "20 Nov 2026" (unambiguous in every locale); date and time: "20 Nov 2026 14:03" in local time.
"""

from __future__ import annotations

import datetime as dt

DATE_FORMAT = "%d %b %Y"
DATETIME_FORMAT = "%d %b %Y %H:%M"


def person_name(pn: str | None) -> str:
    """DICOM person name to display text; a name without '^' is returned as written."""
    if not pn:
        return ""
    text = str(pn).split("=")[0]  # the alphabetic group only
    if "^" not in text:
        return " ".join(text.split())
    family, *rest = text.split("^")
    given = " ".join(p.strip() for p in rest[:2] if p.strip())
    family = family.strip()
    if family and given:
        return f"{family}, {given}"
    return family or given


def format_date(value: dt.date | str | None) -> str:
    """A date (or DICOM DA 'YYYYMMDD', or ISO 'YYYY-MM-DD') as '20 Nov 2026'; '' when empty/unreadable
    (unreadable text is shown as it is rather than hidden)."""
    if value is None or value == "":
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime(DATE_FORMAT)
    if isinstance(value, dt.date):
        return value.strftime(DATE_FORMAT)
    text = str(value).strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).strftime(DATE_FORMAT)
        except ValueError:
            continue
    return text


def format_datetime(value: dt.datetime | str | None) -> str:
    """A moment as '20 Nov 2026 14:03' in local time (naive values are taken as UTC, as the database
    stores them); ISO text is accepted."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone().strftime(DATETIME_FORMAT)
