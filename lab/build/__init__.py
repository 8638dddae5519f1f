"""Artefacts built from data and shipped beside the weights (sentence bank, development case index)."""
