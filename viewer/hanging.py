"""Hanging protocols: which layout and which series go where when a study opens.

Rules match on the study's modalities, body part / description words and the number of prior studies
available; the first protocol that matches wins (site protocols from settings come before the built-in
ones). Each slot names where its series comes from (the current study or the Nth prior) and which series
(a word in the series description or the view position such as PA / LAT, else the next series not shown).
Qt-free: the workspace applies the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from viewer.io.refs import SeriesRef, StudyRef

NON_IMAGE = ("SR", "KO", "PR", "DOC", "SEG")


class HangingProtocolError(ValueError):
    """A protocol definition that cannot be used (the message names the protocol and the field)."""


@dataclass(frozen=True)
class Slot:
    source: str = "current"  # "current" or "prior" (the most recent prior) / "prior2"...
    series: str = ""  # words to look for in the series description ("PA", "LAT|LATERAL"); '' = next

    def prior_index(self) -> int | None:
        if self.source == "current":
            return None
        m = re.fullmatch(r"prior(\d*)", self.source)
        if not m:
            raise HangingProtocolError(f"slot source {self.source!r}: use 'current', 'prior', 'prior2'...")
        return int(m.group(1) or 1) - 1


@dataclass(frozen=True)
class HangingProtocol:
    name: str
    layout: str  # "1x2", "2x2"...
    modalities: tuple[str, ...] = ()
    words: tuple[str, ...] = ()  # any of these in the study description or body part
    min_priors: int = 0
    min_series: int = 0
    slots: tuple[Slot, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HangingProtocol:
        try:
            name = str(data["name"])
            layout = str(data["layout"])
        except (KeyError, TypeError) as exc:
            raise HangingProtocolError("a hanging protocol needs 'name' and 'layout'") from exc
        if not re.fullmatch(r"[1-4]x[1-4]", layout):
            raise HangingProtocolError(f"protocol {name!r}: layout {layout!r} must be RxC with 1-4 each")
        slots = tuple(Slot(str(s.get("source", "current")), str(s.get("series", ""))) for s in data.get("slots", []))
        for s in slots:
            s.prior_index()
        return cls(name, layout, tuple(m.upper() for m in data.get("modalities", [])),
                   tuple(w.lower() for w in data.get("words", [])), int(data.get("min_priors", 0)),
                   int(data.get("min_series", 0)), slots)

    def matches(self, study: StudyRef, body_part: str, n_priors: int) -> bool:
        mods = {s.modality.upper() for s in study.series if s.modality}
        if self.modalities and not mods & set(self.modalities):
            return False
        text = f"{study.description} {body_part}".lower()
        if self.words and not any(re.search(rf"\b{re.escape(w)}\b", text) for w in self.words):
            return False
        images = [s for s in study.series if s.modality.upper() not in NON_IMAGE and s.paths and not s.synthetic]
        return n_priors >= self.min_priors and len(images) >= self.min_series


BUILTIN_PROTOCOLS: tuple[dict[str, Any], ...] = (
    {"name": "Chest radiograph with prior", "layout": "1x2", "modalities": ["CR", "DX"], "min_priors": 1,
     "slots": [{"source": "current", "series": "PA|AP"}, {"source": "prior", "series": "PA|AP"}]},
    {"name": "Chest radiograph PA + lateral", "layout": "1x2", "modalities": ["CR", "DX"], "min_series": 2,
     "slots": [{"source": "current", "series": "PA|AP|FRONTAL"}, {"source": "current", "series": "LAT|LATERAL"}]},
    {"name": "CT/MR with prior", "layout": "1x2", "modalities": ["CT", "MR"], "min_priors": 1,
     "slots": [{"source": "current"}, {"source": "prior"}]},
    {"name": "Multi-series CT/MR", "layout": "2x2", "modalities": ["CT", "MR"], "min_series": 4,
     "slots": [{"source": "current"}] * 4},
    {"name": "One series", "layout": "1x1", "slots": [{"source": "current"}]},
)


def load_protocols(site: list[dict[str, Any]] | None = None) -> tuple[list[HangingProtocol], list[str]]:
    """Site protocols (from settings) first, then the built-in ones; unusable entries are reported."""
    out, problems = [], []
    for data in [*(site or []), *BUILTIN_PROTOCOLS]:
        try:
            out.append(HangingProtocol.from_json(data))
        except HangingProtocolError as exc:
            problems.append(str(exc))
    return out, problems


def choose(protocols: list[HangingProtocol], study: StudyRef, body_part: str = "",
           n_priors: int = 0) -> HangingProtocol | None:
    return next((p for p in protocols if p.matches(study, body_part, n_priors)), None)


def _view_words(series: SeriesRef) -> str:
    return f"{series.description}".lower()


def assign(protocol: HangingProtocol, study: StudyRef, priors: list[StudyRef]) -> list[SeriesRef | None]:
    """The series for each slot of `protocol` (None where nothing fits), current series not repeated."""
    used: set[str] = set()
    out: list[SeriesRef | None] = []
    for slot in protocol.slots:
        idx = slot.prior_index()
        source = study if idx is None else (priors[idx] if idx < len(priors) else None)
        if source is None:
            out.append(None)
            continue
        candidates = [s for s in source.series if s.paths and s.modality.upper() not in NON_IMAGE
                      and not s.synthetic and s.series_uid not in used]
        pick = None
        if slot.series:
            words = [w.lower() for w in slot.series.split("|") if w]
            pick = next((s for s in candidates
                         if any(re.search(rf"\b{re.escape(w)}\b", _view_words(s)) for w in words)), None)
        if pick is None and candidates:
            pick = candidates[0]
        if pick is not None:
            used.add(pick.series_uid)
        out.append(pick)
    return out
