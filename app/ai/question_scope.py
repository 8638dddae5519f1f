"""Is a question about what the image shows? The rules live in the engine runtime (engines.qa.scope), where
the worker and `radstation engine ask` apply them with the engine's own finding list; this is the general
rule the app applies before a question is sent (identity, treatment, prognosis, nothing in the image)."""

from __future__ import annotations

from engines.qa.scope import CANNOT_ANSWER, QuestionScope, question_scope

Scope = QuestionScope

__all__ = ["CANNOT_ANSWER", "Scope", "question_scope"]
