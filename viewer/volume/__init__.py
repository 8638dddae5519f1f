"""CT/MR series as SimpleITK volumes and multiplanar reformats (no Qt)."""

from viewer.volume.loader import VolumeCancelled, VolumeError, VolumeResult, load_volume
from viewer.volume.mpr import PLANES, MPRGeometry, Plane, mpr_slice

__all__ = [
    "PLANES",
    "MPRGeometry",
    "Plane",
    "VolumeCancelled",
    "VolumeError",
    "VolumeResult",
    "load_volume",
    "mpr_slice",
]
