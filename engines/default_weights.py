"""Where the shipped default engine weights live: one definition for the backends, app and evaluation.

A plain path, so importing it costs nothing (no torch at start-up).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "resources" / "weights" / "medim-small"
