"""Qt widgets of the viewer: the only part of `viewer` that may import Qt.

Nothing is imported here on purpose. Main entry points:
- workspace.ViewerWorkspace: thumbnails + 1x1/1x2/2x2 viewports + toolbar + MPR/3D; what the app embeds.
- viewport.Viewport: one 2D view (W/L, presets, zoom/pan/flip/rotate, scroll/cine, overlays, measurements,
  heat-map overlay hook `set_overlay`).
- layout.ViewerLayout, thumbnails.SeriesThumbnails, tag_browser.TagBrowser/TagBrowserDialog,
  mpr_view.MprView, volume_render_view.VolumeRenderView/VolumeRenderWindow (VTK; needs a display).
The models they show are Qt-free and live apart (import-linter enforces it): viewer.models (ViewState,
the measurement list, overlay text, orientation, tag tree, tools, measure_tool), viewer.io.series_stack,
viewer.volume.presets, and the overlay colour maps in explain.colormap.
"""
