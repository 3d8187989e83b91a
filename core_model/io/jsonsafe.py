"""JSON as every reader accepts it: never ``NaN`` / ``Infinity`` tokens.

Python's ``json`` writes them by default, but they are not JSON: strict readers
(JavaScript, most other languages, ``jq``) refuse the whole file. A number that
is not finite is a value nobody could compute (an AUC over one class, a CI of
one sample), so it is written as ``null`` and, where it is a result, said so.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np


def finite(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every non-finite number replaced by None, and where they were (``metrics.val_auc``)."""
    bad: list[str] = []

    def walk(o: Any, at: str) -> Any:
        if isinstance(o, bool) or o is None or isinstance(o, (str, int)):
            return o
        if isinstance(o, (float, np.floating)):
            if math.isfinite(o):
                return float(o)
            bad.append(at or "value")
            return None
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.ndarray):
            return walk(o.tolist(), at)
        if isinstance(o, dict):
            return {k: walk(v, f"{at}.{k}" if at else str(k)) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(o)]
        return o  # other types are the caller's ``default=``

    return walk(obj, where), bad


def dumps(obj: Any, *, label: str | None = None, **kwargs: Any) -> str:
    """``json.dumps`` with non-finite numbers as null; with ``label``, one warning line on stderr naming them."""
    clean, bad = finite(obj)
    if bad and label:
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        print(f"warning: {label}: not a finite number, written as null: {', '.join(bad[:6])}{more}", file=sys.stderr)
    return json.dumps(clean, allow_nan=False, **kwargs)
