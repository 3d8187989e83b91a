"""The 'jet' colour map of the analysis quick-look images, without importing matplotlib.

matplotlib builds all of its colour tables on import (0.7 s of a command that
takes a few); the quick look needs one. The table is matplotlib's 'jet'
segment data interpolated to 256 entries, indexed as matplotlib indexes it, so
the pictures stay as they were (``tests/core_model/test_colormap.py`` compares).
"""

from __future__ import annotations

import numpy as np

# matplotlib's _jet_data: (x, y) knots per channel, linear in between.
_JET = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}
N = 256
_LUT = np.stack([np.interp(np.linspace(0.0, 1.0, N), *zip(*_JET[c])) for c in ("red", "green", "blue")], axis=1)


def jet(values: np.ndarray) -> np.ndarray:
    """RGB floats in [0, 1] (shape ``values.shape + (3,)``) for values in [0, 1]."""
    idx = np.asarray(values, dtype=np.float64) * N
    idx = np.clip(np.nan_to_num(idx, nan=0.0), 0, N - 1).astype(np.intp)
    return _LUT[idx]
