"""Arrays as JSON: numbers rounded to 6 significant digits, NaN and infinities written as null."""

from __future__ import annotations

import math

import numpy as np


def rounded(v: float, digits: int = 6):
    """``v`` to ``digits`` significant digits, or None when it is not finite."""
    return None if not math.isfinite(v) else float(f"{v:.{digits}g}")


def to_json(a: np.ndarray):
    """A 1-D or 2-D array as (nested) lists of rounded numbers."""
    return [to_json(row) for row in a] if np.ndim(a) > 1 else [rounded(float(v)) for v in a]


def from_json(values) -> np.ndarray:
    """The float64 array of (nested) lists written by :func:`to_json` (null back to NaN)."""
    return np.array(
        [[np.nan if v is None else v for v in row] for row in values]
        if values and isinstance(values[0], list)
        else [np.nan if v is None else v for v in values],
        dtype=np.float64,
    )
