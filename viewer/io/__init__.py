"""DICOM reading and decoding (no Qt)."""
