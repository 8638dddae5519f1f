"""Qt widgets of the viewer: the only part of `viewer` that may import Qt.

Nothing is imported here on purpose (the model modules below stay usable without Qt). Main entry points:
- workspace.ViewerWorkspace: thumbnails + 1x1/1x2/2x2 viewports + toolbar + MPR/3D; what the app embeds.
- viewport.Viewport: one 2D view (W/L, presets, zoom/pan/flip/rotate, scroll/cine, overlays, measurements,
  heat-map overlay hook `set_overlay`).
- layout.ViewerLayout, thumbnails.SeriesThumbnails, tag_browser.TagBrowser/TagBrowserDialog,
  mpr_view.MprView, volume_render_view.VolumeRenderView/VolumeRenderWindow (VTK; needs a display).
Qt-free models: view_state.ViewState, overlay_text, orientation, tag_tree, tools, measure_tool,
series_stack, volume_presets (the overlay colour maps are explain.colormap).
"""
