"""Measurement geometry and statistics in physical and modality units (no Qt)."""
