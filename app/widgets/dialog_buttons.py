"""Dialog buttons that behave: Enter presses the action button (Log in, Sign, Create), Escape cancels.

Qt makes every push button in a dialog an "auto default" one, and QDialogButtonBox can end up making
Cancel the default, so Enter in a password field silently cancelled. Only the action button may be default.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox, QPushButton


def action_buttons(box: QDialogButtonBox, label: str) -> QPushButton:
    """Add the accept button `label` to `box` (which holds Cancel) and make it the only default button."""
    button = box.addButton(label, QDialogButtonBox.ButtonRole.AcceptRole)
    for b in box.buttons():
        b.setAutoDefault(b is button)
        b.setDefault(b is button)
    return button
