"""Shared inputs of the explain tests (a module, not conftest, so tests can import it by name)."""

REPORT = ("FINDINGS: The heart is normal in size. Small left pleural effusion. "
          "IMPRESSION: Mild pulmonary edema.")
