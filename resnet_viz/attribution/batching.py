"""How many inputs one internal batch holds, from the input's size (so memory stays bounded at any size)."""

from __future__ import annotations

# Pixels (H x W) one internal batch may hold: 10 images at 224 x 224, everything at 32 x 32.
BATCH_PIXELS = 2**19


def batch_for(height: int, width: int, limit: int) -> int:
    """How many perturbed inputs of this size one internal batch holds (at most ``limit``)."""
    return int(max(1, min(limit, BATCH_PIXELS // max(1, height * width))))
