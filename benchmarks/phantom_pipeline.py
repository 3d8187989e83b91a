"""The shipped pipeline on whole synthetic studies: does it find the right breast, leave normal breasts
alone, and separate benign from malignant?

    python benchmarks/phantom_pipeline.py --difficulty easy --n 60 --seed 7 --out benchmarks/results/phantom_pipeline_easy

Writes ``--n`` phantom studies (``nafv-train phantom``; pick a seed the shipped weights were not
trained on: their cards list the phantom folders and seeds they saw), runs ``nafv-analyze`` on
them exactly as a user would (default weights unless ``--weights-seg`` / ``--weights-cls``), and
scores every study's analysis.json against the generator's labels:

- ``side_correct``: share of studies whose affected breast is the one with the lesion (a study where
  no lesion was found counts as wrong);
- ``contours_per_normal_view``: mean number of contours on the views of the lesion-free breast, and
  the share of those views with at least one;
- ``auc``: ROC AUC of the malignancy score over all studies, a study without a score (no lesion
  found, no classifier) entered at 0.5, i.e. uninformative, with its 95 % interval over resampled
  studies (``auc_ci95``); ``auc_unscored_lowest``, the same with
  every study without a score ranked below the scored ones (the case-level reading of a detection
  system: no mark is the least suspicious rating); also the AUC over the studies whose breast was
  right, and the generator's ceiling for this difficulty (``ceiling.json``);
- ``median_radius_mm_found`` / ``_not_found``: the lesions' radius (mean of the views, ``lesions.csv``)
  over the studies with and without a lesion found.

Results go to OUT/summary.json (and OUT/per_study.csv). Figures, not assertions.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phantom_bench import auc_ci95, phantom_arguments, study_truth, write_summary_and_rows  # noqa: E402
from core_model.train.cls import auc_score  # noqa: E402


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def score(data: Path, analyses: Path) -> tuple[dict, list[dict]]:
    gt = study_truth(data)
    rows = []
    for pid, t in sorted(gt.items()):
        doc_path = analyses / pid / "analysis.json"
        if not doc_path.is_file():
            rows.append(dict(patient=pid, true_side=t["side"], label=t["label"], radius_mm=t["radius_mm"], analysed=False))
            continue
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
        normal = "L" if t["side"] == "R" else "R"
        normal_views = [v for k, v in doc["views"].items() if k.startswith(normal + "_")]
        lesion_views = [v for k, v in doc["views"].items() if k.startswith(t["side"] + "_")]
        rows.append(dict(
            patient=pid, true_side=t["side"], label=t["label"], radius_mm=t["radius_mm"], analysed=True,
            side=doc.get("affected_side"), lesion_found=doc.get("lesion_found"),
            score=doc.get("malignancy_probability"),
            normal_view_contours=[len(v.get("lesions", [])) for v in normal_views],
            lesion_view_contours=[len(v.get("lesions", [])) for v in lesion_views],
        ))
    done = [r for r in rows if r["analysed"]]
    y = np.array([r["label"] for r in done])
    p = np.array([0.5 if r["score"] is None else r["score"] for r in done], float)
    right = [r for r in done if r["side"] == r["true_side"]]
    nv = [c for r in done for c in r["normal_view_contours"]]
    lv = [c for r in done for c in r["lesion_view_contours"]]
    ceiling = None
    if (data / "ceiling.json").is_file():
        ceiling = json.loads((data / "ceiling.json").read_text())["ceiling_roc_auc"]
    summary = dict(
        studies=len(rows), analysed=len(done),
        side_correct=len(right) / len(done) if done else None,
        no_lesion_found=sum(r["lesion_found"] is False for r in done),
        contours_per_normal_view=float(np.mean(nv)) if nv else None,
        normal_views_with_a_contour=float(np.mean([c > 0 for c in nv])) if nv else None,
        lesion_views_with_a_contour=float(np.mean([c > 0 for c in lv])) if lv else None,
        scored=int(sum(r["score"] is not None for r in done)),
        auc=auc_score(y, p) if len(set(y.tolist())) == 2 else None,
        auc_ci95=auc_ci95(y, p),
        auc_unscored_lowest=(auc_score(y, np.array([-1.0 if r["score"] is None else r["score"] for r in done], float))
                               if len(set(y.tolist())) == 2 else None),
        auc_side_correct=(auc_score(np.array([r["label"] for r in right]),
                                    np.array([0.5 if r["score"] is None else r["score"] for r in right], float))
                          if len({r["label"] for r in right}) == 2 else None),
        ceiling_auc=ceiling,
        median_radius_mm_found=_median([r["radius_mm"] for r in done if r["lesion_found"]]),
        median_radius_mm_not_found=_median([r["radius_mm"] for r in done if r["lesion_found"] is False]),
    )
    return summary, rows


def main(argv: list[str] | None = None) -> int:
    ap = phantom_arguments(__doc__.split("\n\n")[0], n=60,
                           data_help="score an existing phantom folder instead of writing one")
    ap.add_argument("--weights-seg", type=Path)
    ap.add_argument("--weights-cls", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    data = args.data
    if data is None:
        data = args.out / "studies"
        if not (data / "labels.csv").is_file():
            subprocess.run([str(bin_dir / "nafv-train"), "phantom", "--out", str(data), "--n", str(args.n),
                            "--seed", str(args.seed), "--difficulty", args.difficulty], check=True)
    analyses = args.out / "analyses"
    cmd = [str(bin_dir / "nafv-analyze"), str(data / "images"), "--out", str(analyses), "--no-overlays",
           "--threads", str(args.threads)]
    for flag, w in (("--weights-seg", args.weights_seg), ("--weights-cls", args.weights_cls)):
        if w is not None:
            cmd += [flag, str(w)]
    t0 = time.time()
    rc = subprocess.run(cmd).returncode
    summary, rows = score(data, analyses)
    difficulty, seed = args.difficulty, args.seed
    if args.data is not None:  # what the folder says it was written with
        if (data / "ceiling.json").is_file():
            difficulty = json.loads((data / "ceiling.json").read_text())["difficulty"]
        else:
            difficulty = None  # not recorded by that folder
        readme = data / "README.txt"
        found = re.search(r"\(seed (\d+)", readme.read_text(encoding="utf-8")) if readme.is_file() else None
        seed = int(found.group(1)) if found else None
    summary.update(difficulty=difficulty, seed=seed, data=str(data), command="nafv-analyze " + " ".join(cmd[1:]),
                   nafv_analyze_exit=rc, seconds=round(time.time() - t0, 1))
    write_summary_and_rows(summary, args.out / "summary.json", rows, args.out / "per_study.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
