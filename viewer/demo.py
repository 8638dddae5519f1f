"""Builds and locates the bundled demo studies (filled in by the viewer work)."""
