"""What the phantom benchmarks (phantom_location.py, phantom_pipeline.py, seg_input_size.py,
cls_true_masks.py) share: which synthetic studies to write or score, their ground truth per study,
the AUC's interval, and writing the figures (summary JSON, one CSV row per case).

Imported by the scripts beside it (run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from core_model.io.jsonsafe import dumps as json_dumps  # noqa: E402


def phantom_arguments(description: str, n: int, data_help: str) -> argparse.ArgumentParser:
    """A parser with the phantom folder's arguments (difficulty, count, seed; or an existing ``--data``)
    and the working folder ``--out``; each benchmark adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--difficulty", default="easy", choices=("easy", "medium", "hard"))
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, required=True, help="working folder (studies and analyses)")
    ap.add_argument("--data", type=Path, help=data_help)
    return ap


def write_summary_and_rows(summary: dict, summary_path: Path, rows: list[dict], rows_path: Path) -> None:
    """``summary`` to ``summary_path`` (and printed); ``rows`` to ``rows_path`` with the union of their keys as columns."""
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json_dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(rows_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    print(json.dumps(summary, indent=2))


def auc_ci95(y: np.ndarray, p: np.ndarray, n: int = 2000, seed: int = 0) -> list[float] | None:
    """95 % percentile interval of the ROC AUC over ``n`` resamples of the studies (one lesion per
    study, so studies are the independent unit); None when a class is missing."""
    from core_model.train.cls import auc_score  # torch: only the benchmarks that score need it

    y, p = np.asarray(y), np.asarray(p, float)
    if len(set(y.tolist())) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if len(set(y[i].tolist())) == 2:
            values.append(auc_score(y[i], p[i]))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def study_truth(data: Path) -> dict[str, dict]:
    """patient id -> {'side': affected side, 'label': 0/1, 'radius_mm': the lesion's radius, mean of its
    views (None without lesions.csv)} of a phantom folder, from the generator's labels.csv and lesions.csv."""
    out: dict[str, dict] = {}
    with open(data / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pid = "P" + row["Patient_ID"].strip()
            path = row["Pathology Classification/ Follow up"].strip().lower()
            if path != "normal":
                out[pid] = {"side": row["Side"].strip().upper(), "label": int(path == "malignant")}
    radii: dict[str, list[float]] = {}
    if (data / "lesions.csv").is_file():  # the lesion's radius on each view, for what the misses look like
        with open(data / "lesions.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                radii.setdefault("P" + row["Patient_ID"].strip(), []).append(float(row["radius_mm"]))
    for pid, t in out.items():
        t["radius_mm"] = round(float(np.mean(radii[pid])), 2) if pid in radii else None
    return out
