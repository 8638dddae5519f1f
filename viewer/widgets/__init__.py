"""Qt widgets of the viewer: the only part of `viewer` that may import Qt."""
