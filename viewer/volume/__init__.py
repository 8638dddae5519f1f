"""CT/MR series as SimpleITK volumes and multiplanar reformats (no Qt)."""
