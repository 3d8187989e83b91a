"""Are the locations the analysis gives (clock face, distance from the nipple) where the generator put the lesion?

    python benchmarks/phantom_location.py --n 30 --seed 7 --difficulty easy --out benchmarks/results/phantom_location

Writes ``--n`` synthetic DICOM studies (``nafv-train phantom --dicom``; a seed the shipped weights were
not trained on, their cards list 101, 102 and 103), runs ``nafv-analyze --report`` on them as a user would
(shipped weights), and compares every lesion the segmentation found with the generator's labels.csv:

- a lesion is *found* on a view when a contour of that view overlaps its ground-truth mask (the
  contour with the highest score is taken);
- ``clock_within_1h``: share of found lesions whose clock face is within one hour of the generator's
  (circular); a found lesion with no clock (no partner on the other view) counts as wrong;
- ``nipple_within_10mm``: share of found lesions whose distance from the nipple on that view is
  within 10 mm of the generator's;
- ``both``: share with both. The goal of issue 15 is >= 90 % of the lesions found.

Figures, not assertions: benchmarks/results/phantom_location.json (and ..._per_lesion.csv beside it).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core_model.io.masks import read_mask_png  # noqa: E402
from phantom_bench import phantom_arguments, write_summary_and_rows  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "phantom_location.json"


def _truth(data: Path) -> dict[tuple[str, str], dict]:
    """(patient, view key) -> clock, nipple distance and mask file of the lesion on that view (RC image row)."""
    out = {}
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Clock"] and "_CM_" in row["Image_name"]:
                key = f"{row['Side']}_{row['View']}"
                out[("P" + row["Patient_ID"], key)] = {"clock": float(row["Clock"]),
                                                       "nipple_mm": float(row["Nipple distance (mm)"]),
                                                       "mask": data / "masks" / f"{row['Image_name']}.png"}
    return out


def _overlap(poly: list, mask: np.ndarray) -> int:
    img = Image.new("L", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in poly], fill=1)
    return int((np.asarray(img, bool) & mask).sum())


def clock_gap(a: float, b: float) -> float:
    d = abs(a - b) % 12.0
    return min(d, 12.0 - d)


def score(data: Path, analyses: Path) -> tuple[dict, list[dict]]:
    rows = []
    for (pid, key), t in sorted(_truth(data).items()):
        doc_path = analyses / pid / "analysis.json"
        row = dict(patient=pid, view=key, true_clock=t["clock"], true_nipple_mm=t["nipple_mm"], found=False)
        if doc_path.is_file():
            view = json.loads(doc_path.read_text(encoding="utf-8"))["views"].get(key, {})
            mask = read_mask_png(t["mask"])
            hits = [les for les in view.get("lesions", []) if _overlap(les["polygon"], mask) > 0]
            if hits:
                les = max(hits, key=lambda x: x["score"] or 0.0)
                loc = les.get("location") or {}
                row.update(found=True, clock=loc.get("clock"), quadrant=loc.get("quadrant"), depth=loc.get("depth"),
                           nipple_mm=loc.get("nipple_distance_mm"), size_mm=(les.get("size") or {}).get("max_diameter_mm"))
                row["clock_gap_h"] = None if row["clock"] is None else round(clock_gap(row["clock"], t["clock"]), 2)
                row["nipple_gap_mm"] = None if row["nipple_mm"] is None else round(abs(row["nipple_mm"] - t["nipple_mm"]), 1)
        rows.append(row)
    found = [r for r in rows if r["found"]]
    ok_clock = [r["clock_gap_h"] is not None and r["clock_gap_h"] <= 1.0 for r in found]
    ok_dist = [r["nipple_gap_mm"] is not None and r["nipple_gap_mm"] <= 10.0 for r in found]
    # a clock face needs the lesion on both views: the share over lesions the segmentation found on both
    views_found: dict[str, int] = {}
    for r in found:
        views_found[r["patient"]] = views_found.get(r["patient"], 0) + 1
    both_views = [r for r in found if views_found[r["patient"]] == 2]
    ok_both_views = [r["clock_gap_h"] is not None and r["clock_gap_h"] <= 1.0 and r["nipple_gap_mm"] <= 10.0
                     for r in both_views]
    gaps_c = [r["clock_gap_h"] for r in found if r["clock_gap_h"] is not None]
    gaps_d = [r["nipple_gap_mm"] for r in found if r["nipple_gap_mm"] is not None]
    summary = dict(
        lesion_views=len(rows), found=len(found),
        clock_within_1h=float(np.mean(ok_clock)) if found else None,
        nipple_within_10mm=float(np.mean(ok_dist)) if found else None,
        both=float(np.mean([a and b for a, b in zip(ok_clock, ok_dist)])) if found else None,
        found_without_clock=sum(r["clock_gap_h"] is None for r in found),
        found_on_both_views=len(both_views),
        both_over_lesions_found_on_both_views=float(np.mean(ok_both_views)) if both_views else None,
        clock_gap_h_median=float(np.median(gaps_c)) if gaps_c else None,
        clock_gap_h_max=float(np.max(gaps_c)) if gaps_c else None,
        nipple_gap_mm_median=float(np.median(gaps_d)) if gaps_d else None,
        nipple_gap_mm_max=float(np.max(gaps_d)) if gaps_d else None,
        goal="clock within 1 h and nipple distance within 10 mm for >= 90 % of the lesions found",
    )
    return summary, rows


def main(argv: list[str] | None = None) -> int:
    ap = phantom_arguments(__doc__.split("\n\n")[0], n=30,
                           data_help="score an existing phantom folder (written with --dicom) instead")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", type=Path, default=RESULT)
    ap.add_argument("--score-only", action="store_true", help="score OUT/analyses as they are (no new analysis)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    data = args.data or args.out / "studies"
    if not (data / "labels.csv").is_file():
        subprocess.run([sys.executable, "-m", "core_model.cli.train", "phantom", "--out", str(data), "--n", str(args.n),
                        "--seed", str(args.seed), "--difficulty", args.difficulty, "--dicom"], check=True, env=env)
    analyses = args.out / "analyses"
    cmd = [sys.executable, "-m", "core_model.cli.analyze", str(data / "dicom"), "--out", str(analyses), "--no-overlays",
           "--no-explain", "--report", "--threads", str(args.threads)]
    t0 = time.time()
    rc = None if args.score_only else subprocess.run(cmd, env=env).returncode
    summary, rows = score(data, analyses)
    summary.update(difficulty=args.difficulty if args.data is None else None, seed=args.seed if args.data is None else None,
                   studies=args.n if args.data is None else None, data=str(data),
                   command="nafv-analyze " + " ".join(cmd[3:]))
    if not args.score_only:
        summary.update(nafv_analyze_exit=rc, seconds=round(time.time() - t0, 1))
    elif args.result.is_file():  # keep the figures of the run that made the analyses
        before = json.loads(args.result.read_text(encoding="utf-8"))
        summary.update({k: before[k] for k in ("nafv_analyze_exit", "seconds") if k in before})
    write_summary_and_rows(summary, args.result, rows, args.result.with_name(args.result.stem + "_per_lesion.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
