"""Counterfactual images as derived objects: Secondary Capture with the synthetic warning burned in
and in the header, stored as a separate SYNTHETIC series (never mixed with acquired images)."""

from app.counterfactual.burn_in import WARNING, burn_in_warning
from app.counterfactual.secondary_capture import (
    CounterfactualInfo,
    build_secondary_capture,
    is_synthetic,
    is_synthetic_description,
)
from app.counterfactual.store import (
    CounterfactualStoreError,
    StoredSeries,
    acquired_instance_uids,
    store_counterfactuals,
    synthetic_series_uids,
)

__all__ = [
    "WARNING", "CounterfactualInfo", "CounterfactualStoreError", "StoredSeries", "acquired_instance_uids",
    "build_secondary_capture", "burn_in_warning", "is_synthetic", "is_synthetic_description",
    "store_counterfactuals", "synthetic_series_uids",
]
