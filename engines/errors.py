"""The one cancellation family of the whole product, raised wherever a `cancel()` callback said stop.

`Cancelled` is the base every layer's cancellation derives from: an engine job (`JobCancelled`), a volume
load (viewer.volume.loader.VolumeCancelled), a PACS retrieve (app.pacs.errors.RetrieveCancelled). Code that
only needs to tell "the user stopped it" from "it failed" catches `Cancelled` by `isinstance`, never by a
class name. This module imports nothing, so the viewer may import it without pulling in any engine code
(an import-linter contract in pyproject.toml keeps it that way).
"""

from __future__ import annotations


class Cancelled(RuntimeError):
    """The user asked to stop: no result is half-made, and what was stored before stays valid."""


class JobCancelled(Cancelled):
    """An engine job's cancel callback returned True (sampling, backends, explanations, the worker)."""
