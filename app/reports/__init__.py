"""Radiology reports: content model, states, signing, audit trail, exports and sending.

Nothing here imports Qt; the editor and dialogs in app/widgets/ sit on top of these services.
"""
