"""Pixel pipeline: modality LUT, VOI LUT / window-level, presets, photometric handling (no Qt)."""
