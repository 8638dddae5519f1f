"""What other systems say about a study's images: presentation states (GSPS) and key image selections (KOS).

Qt-free models read from any vendor's objects; `viewer.widgets.presentation_overlay` paints them.
"""
