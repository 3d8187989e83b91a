"""Writing a benchmark's figures: the summary as JSON (to a file and to stdout) and one CSV row per case.

Imported by the benchmark scripts beside it (run as ``python benchmarks/NAME.py``, so this folder is on
``sys.path``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core_model.io.jsonsafe import dumps as json_dumps  # noqa: E402


def write_summary_and_rows(summary: dict, summary_path: Path, rows: list[dict], rows_path: Path) -> None:
    """``summary`` to ``summary_path`` (and printed); ``rows`` to ``rows_path`` with the union of their keys as columns."""
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json_dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(rows_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    print(json.dumps(summary, indent=2))
