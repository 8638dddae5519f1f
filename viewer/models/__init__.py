"""The viewer's Qt-free models: what a view shows, apart from how it is drawn (napari's split).

`viewer.widgets` renders these and forwards input to them; nothing here imports Qt or the widgets
(an import-linter contract in pyproject.toml), so each model is used and tested without a window.
- view_state.ViewState: zoom, pan, rotation, flips, window and position of one viewport.
- overlay_text, orientation: the corner texts and edge orientation letters of a view.
- tools: the mouse tools and the keyboard map; measure_tool: the tools' points <-> viewer.measure shapes.
- measurements.ImageMeasurements: the measurements, arrows and notes of the image on screen (undo, store).
- tag_tree: a DICOM dataset as searchable rows for the tag browser.
"""
