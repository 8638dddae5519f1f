"""Counterfactual "what-if" images from an edited report (no Qt): edit diffing, region selection,
resampling orchestration and preservation metrics. The app stores results as derived objects
(app.counterfactual) and shows them in app.widgets.whatif_view."""

from engines.counterfactual.edits import EditError, FindingChange, ReportEdit, apply_instruction, diff_reports
from engines.counterfactual.metrics import Preservation, difference_map, preservation
from engines.counterfactual.region import pixel_mask_to_tokens, select_tokens, tokens_to_pixels, widen
from engines.counterfactual.whatif import Variant, WhatIfRequest, WhatIfResult, run_variants, run_whatif

__all__ = [
    "EditError", "FindingChange", "Preservation", "ReportEdit", "Variant", "WhatIfRequest", "WhatIfResult",
    "apply_instruction", "diff_reports", "difference_map", "pixel_mask_to_tokens", "preservation",
    "run_variants", "run_whatif", "select_tokens", "tokens_to_pixels", "widen",
]
