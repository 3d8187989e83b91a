"""The classifier alone on synthetic studies: its score with the generator's own lesion masks placing
the squares, so that the whole pipeline's AUC (phantom_pipeline.py, squares from the segmentation)
can be split into what the classifier loses and what the outlines cost.

    python benchmarks/cls_true_masks.py --data val_med_s11 --out benchmarks/results/cls_true_masks_s11

``--weights`` (repeatable; default the shipped classifier) are scored on the same studies, each with
the inputs the trainer gives it (``cls_data.case_inputs``: affected breast in reading orientation,
lesion squares from the true masks, the contralateral breast). OUT/summary.json holds the AUC with a
95 % interval over resampled studies, and when several weights are given the AUC of their mean logit
margin (an ensemble's figure, not any one model's); with ``--pipeline`` (a phantom_pipeline.py output
folder on the same studies) also both AUCs over the studies whose breast the pipeline found, which
separates the lesions it missed from the squares its outlines place. OUT/per_study.csv holds the
margins. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phantom_bench import auc_ci95, write_summary_and_rows  # noqa: E402
from core_model.models.checkpoint import load_checkpoint, sha256_file  # noqa: E402
from core_model.train.cls import auc_score  # noqa: E402
from core_model.train.cls_data import case_inputs, load_cases, shrink_case  # noqa: E402

SHIPPED = ROOT / "resources" / "weights" / "classifier" / "nafv_cls.safetensors"


@torch.no_grad()
def margins(weights: Path, cases) -> np.ndarray:
    """Logit margin (malignant - benign) of each case, squares placed from its true masks, the views
    shrunk to the resolution the weights were trained at, as the analysis does."""
    model = load_checkpoint(weights).model.eval()
    dual_view = getattr(model, "mode", "four-view") == "dual-view"
    source_side = int(getattr(model, "source_side", 0))
    out = []
    for c in cases:
        if source_side:
            c = shrink_case(c, source_side)
        x = case_inputs(c, model.input_size, model.channels, model.position_decay, crop=model.crop)
        con = torch.from_numpy(x["contralateral"])[None] if "contralateral" in x and not dual_view else None
        z = model(torch.from_numpy(x["affected"])[None], con)
        z = z[0] if isinstance(z, tuple) else z
        out.append(float(z[0, 1] - z[0, 0]))
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="phantom folder (nafv-train phantom)")
    ap.add_argument("--weights", type=Path, action="append", help="classifier .safetensors (repeatable)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pipeline", type=Path, help="phantom_pipeline.py output folder (per_study.csv) on the same studies")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = list(dict.fromkeys(w.resolve() for w in (args.weights or [SHIPPED])))  # one file is one classifier
    t0 = time.time()
    cases = load_cases(args.data, args.data / "labels.csv", "pathology")[0]
    y = np.array([c.label for c in cases])
    per = {w: margins(w, cases) for w in weights}
    summary = dict(data=str(args.data), studies=len(cases), malignant=int(y.sum()), masks="generator's (true)",
                   weights=[dict(file=str(w), sha256=sha256_file(w), auc=auc_score(y, m), auc_ci95=auc_ci95(y, m))
                            for w, m in per.items()])
    if len(weights) > 1:
        mean = np.mean(list(per.values()), axis=0)
        summary["mean_margin_auc"] = auc_score(y, mean)
    if args.pipeline is not None:
        with open(args.pipeline / "per_study.csv", newline="", encoding="utf-8") as f:
            piped = {r["patient"]: r for r in csv.DictReader(f)}
        right = [k for k, c in enumerate(cases)
                 if c.patient_id in piped and piped[c.patient_id].get("side") == piped[c.patient_id]["true_side"]]
        yr = y[right]
        summary["side_right"] = dict(
            studies=len(right),
            pipeline_auc=auc_score(yr, np.array([float(piped[cases[k].patient_id]["score"]) for k in right])),
            true_masks_auc=[auc_score(yr, m[right]) for m in per.values()])
    summary["seconds"] = round(time.time() - t0, 1)
    rows = [dict(patient=c.patient_id, label=int(c.label), **{f"margin_{i}": round(float(per[w][k]), 4)
                                                            for i, w in enumerate(weights)})
            for k, c in enumerate(cases)]
    write_summary_and_rows(summary, args.out / "summary.json", rows, args.out / "per_study.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
