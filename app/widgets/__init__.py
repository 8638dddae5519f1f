"""Qt widgets of the workstation shell (worklist, import dialog, ...)."""
