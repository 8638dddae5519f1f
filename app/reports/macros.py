"""AutoText macros: a short name that expands to report text (which may hold [fields]).

Stored like templates in three places (built-in `resources/templates/macros.json`, the site template folder,
the user's personal folder), each a `macros.json` of `{"macros": [{"name", "text", "modalities"}]}`;
a personal macro overrides a site one of the same name, which overrides a built-in one. In the editor,
type the name and press Ctrl+Space (or pick from the list that Ctrl+Space opens on an unknown word).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.reports.templates import TemplateError, TemplateLibrary

MACROS_FILE = "macros.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")


@dataclass(frozen=True)
class Macro:
    name: str
    text: str
    modalities: tuple[str, ...] = ()
    scope: str = "builtin"

    def applies_to(self, modalities: tuple[str, ...]) -> bool:
        return not self.modalities or bool({m.upper() for m in modalities} & set(self.modalities))


def _read(path: Path, scope: str, problems: list[str]) -> list[Macro]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data["macros"] if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError("needs {'macros': [...]}")
        out = []
        for i, item in enumerate(items):
            name, text = str(item.get("name", "")).strip(), item.get("text")
            if not _NAME.match(name) or not isinstance(text, str):
                raise ValueError(f"macro {i + 1} needs a 'name' (letters, digits, . _ -) and a 'text'")
            mods = item.get("modalities") or []
            out.append(Macro(name, text, tuple(str(m).upper() for m in mods), scope))
        return out
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        problems.append(f"cannot read macros {path}: {exc}")
        return []


class MacroLibrary:
    def __init__(self, templates: TemplateLibrary | None = None) -> None:
        self.templates = templates or TemplateLibrary.default()
        self.problems: list[str] = []

    def macros(self, username: str = "") -> dict[str, Macro]:
        """Name (lower case) -> macro, personal over site over built-in."""
        self.problems = []
        out: dict[str, Macro] = {}
        sources = [(self.templates.builtin_dir, "builtin"), (self.templates.site_dir, "site")]
        if username:
            sources.append((self.templates.personal_dir(username), "personal"))
        for directory, scope in sources:
            for m in _read(directory / MACROS_FILE, scope, self.problems):
                out[m.name.lower()] = m
        return out

    def for_exam(self, modalities: tuple[str, ...], username: str = "") -> list[Macro]:
        return sorted((m for m in self.macros(username).values() if m.applies_to(modalities)),
                      key=lambda m: m.name.lower())

    def scope_macros(self, scope: str, username: str = "") -> list[Macro]:
        """The macros stored in one place (what the editor dialog edits)."""
        directory = self.templates.dir_for(scope, username)
        problems: list[str] = []
        items = _read(directory / MACROS_FILE, scope, problems)
        if problems:
            raise TemplateError(problems[0])
        return items

    def save_scope(self, macros: list[Macro], scope: str, username: str = "") -> None:
        if scope not in ("site", "personal"):
            raise TemplateError("built-in macros are read-only: save site or personal macros")
        seen: set[str] = set()
        for m in macros:
            if not _NAME.match(m.name):
                raise TemplateError(f"macro name {m.name!r}: use letters, digits, '.', '_' or '-' (max 40)")
            if m.name.lower() in seen:
                raise TemplateError(f"macro name {m.name!r} is used twice")
            if not m.text.strip():
                raise TemplateError(f"macro {m.name!r} has no text")
            seen.add(m.name.lower())
        directory = self.templates.dir_for(scope, username)
        directory.mkdir(parents=True, exist_ok=True)
        data = {"macros": [{"name": m.name, "text": m.text, "modalities": list(m.modalities)} for m in macros]}
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".macros-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, directory / MACROS_FILE)


def word_before(text: str, position: int) -> tuple[int, str]:
    """The macro-name-like word ending at `position`: (start index, word)."""
    m = re.search(r"[A-Za-z0-9_.\-]+$", text[:position])
    return (m.start(), m.group(0)) if m else (position, "")
