"""Readings handed to the sentence decoder in tests, in place of the finding reader's."""

from __future__ import annotations

from engines.pipeline import MedimPipeline


def clear_reading(pipe: MedimPipeline, present=()) -> dict[str, float]:
    """A reading in which `present` findings are clearly present and the rest clearly absent."""
    return {f: (0.95 if f in present else (0.01 if f != "No Finding" else (0.05 if present else 0.95)))
            for f in pipe.model_config.findings}
