"""The shipped segmentation read at other input sizes than it was trained at: does a finer read find
the small lesions it misses, and at what cost on the normal breast?

    python benchmarks/seg_input_size.py --data val_med_s11 --sizes 256 320 384 --out runs/seg_input_size_s11.json

Runs the analyzer (default weights, classifier included) on every study of a phantom folder
(``nafv-train phantom``) with the segmentation's input side set to each of ``--sizes``, and counts
per size: studies with a lesion found, studies whose affected breast is the lesion's, contours on
the lesion-free breast's views, and the malignancy score's ROC AUC over all studies (a study without
a score at 0.5, as in phantom_pipeline.py) with its 95 % interval. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from phantom_bench import auc_ci95, study_truth  # noqa: E402
from core_model.inference.analyzer import Analyzer  # noqa: E402
from core_model.train.cls import auc_score  # noqa: E402
from core_model.io import list_patients, load_study  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="phantom folder (images/, labels.csv)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 384])
    ap.add_argument("--out", type=Path, required=True, help="JSON to write")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if any(n < 32 or n % 32 for n in args.sizes):
        ap.error("--sizes: sides of at least 32 px, multiples of 32 (the encoder halves the image five times)")
    truth = study_truth(args.data)
    patients = list_patients(str(args.data / "images"))
    analyzer = Analyzer(None, None, num_threads=args.threads)
    trained = analyzer.seg.model.input_size
    analyzer.analyze(load_study(str(args.data / "images"), patient=patients[0]))  # warm-up, untimed
    rows = []
    for size in args.sizes:
        analyzer.seg.model.input_size = size
        found = right = normal_contours = 0
        y, p = [], []
        t0 = time.time()
        for pid in patients:
            a = analyzer.analyze(load_study(str(args.data / "images"), patient=pid))
            normal = "L" if truth[pid]["side"] == "R" else "R"
            found += bool(a.lesion_found)
            right += a.affected_side == truth[pid]["side"]
            normal_contours += sum(len(v.lesions) for k, v in a.views.items() if k.startswith(normal + "_"))
            y.append(truth[pid]["label"])
            p.append(0.5 if a.malignancy_probability is None else a.malignancy_probability)
        rows.append(dict(input_size=size, studies=len(patients), lesion_found=found, side_right=right,
                         contours_per_normal_view=normal_contours / (2 * len(patients)),
                         auc=auc_score(np.array(y), np.array(p)), auc_ci95=auc_ci95(np.array(y), np.array(p)),
                         seconds_per_study=round((time.time() - t0) / len(patients), 2)))
        print(json.dumps(rows[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(data=str(args.data), trained_input_size=trained, sizes=rows), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
