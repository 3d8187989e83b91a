"""How far a lesion-square classifier's score moves when its square moves, on real studies.

    python benchmarks/square_stability.py --data ../shared/data/cdd-cesm-512/images \\
        --weights-cls W.safetensors --out benchmarks/results/square_stability.json

The square a lesion-square classifier reads is placed from the segmentation's outline, and the
outline of the same lesion differs by a few pixels between two reads of one study (another decoded
level of a JPEG 2000 file, another threshold). For every patient under ``--data``, the shipped
segmentation (or ``--weights-seg``) finds the affected breast and its main lesion per view, as
``nafv-analyze`` does; the score is then computed again with that outline moved by ``--shift`` of
the view's longer side up, down, left and right, and grown and shrunk by ``--grow`` pixels. The
score is read two ways: from the one square placed from the outline (the analyzer's default) and
as the mean over the five ``SCORE_SHIFTS`` squares (the analyzer's ``score_shifts`` option).

Reports per perturbation and per reading: the mean and the largest change of the score, and the
share of patients whose score moved by more than 0.1. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core_model.domain.study import view_key  # noqa: E402
from core_model.imaging.orientation import flip_array  # noqa: E402
from core_model.inference.analyzer import Analyzer, main_lesion  # noqa: E402
from core_model.io import list_patients, load_study  # noqa: E402
from core_model.transforms.model_inputs import SCORE_SHIFTS, in_reading_orientation, study_inputs  # noqa: E402


def moved(mask: np.ndarray, dy: int, dx: int, grow: int) -> np.ndarray:
    out = ndimage.shift(mask.astype(np.uint8), (dy, dx), order=0, mode="constant") > 0
    if grow > 0:
        out = ndimage.binary_dilation(out, iterations=grow)
    elif grow < 0:
        eroded = ndimage.binary_erosion(out, iterations=-grow)
        out = eroded if eroded.any() else out  # a lesion thinner than the erosion keeps its outline
    return out


def perturbations(long_side: int, shift: float, grow: int) -> dict[str, tuple[int, int, int]]:
    d = max(1, int(round(shift * long_side)))
    return {f"up {d} px": (-d, 0, 0), f"down {d} px": (d, 0, 0), f"left {d} px": (0, -d, 0),
            f"right {d} px": (0, d, 0), f"grown {grow} px": (0, 0, grow), f"shrunk {grow} px": (0, 0, -grow)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder of studies (CDD-CESM names, DICOM, ...)")
    ap.add_argument("--weights-cls", type=Path, help="a lesion-square classifier (default: the shipped one)")
    ap.add_argument("--weights-seg", type=Path)
    ap.add_argument("--shift", type=float, default=0.01, help="outline shift, fraction of the view's longer side")
    ap.add_argument("--grow", type=int, default=3, help="outline growth / shrinkage in pixels")
    ap.add_argument("--limit", type=int, default=0, help="first N patients only (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args(argv)

    analyzer = Analyzer(seg_weights=args.weights_seg, cls_weights=args.weights_cls, device="cpu",
                        num_threads=args.threads)
    cls = analyzer.cls.model
    if float(getattr(cls, "crop", 0.0)) <= 0:
        print("this classifier reads whole views: its input does not depend on where a square lies", file=sys.stderr)
        return 2
    readings = {"one square": ((0.0, 0.0),), "mean of SCORE_SHIFTS squares": SCORE_SHIFTS}
    analyzer_reading = next(name for name, shifts in readings.items() if tuple(shifts) == tuple(analyzer.score_shifts))

    @torch.inference_mode()
    def score(study_r, masks, side, shifts) -> float:
        a, c = study_inputs(study_r, masks, side, int(cls.input_size), cls.channels, float(cls.position_decay),
                            float(cls.crop), int(cls.source_side), shifts)
        return float(torch.softmax(cls(a, c).float() / analyzer.temperature, -1)[:, 1].mean())

    patients = list_patients(args.data)[: args.limit or None]
    rows, t0 = [], time.time()
    for i, pid in enumerate(patients):
        study = load_study(args.data, patient=pid)
        result = analyzer.analyze(study, explain=False)
        side = result.affected_side
        if side is None or result.malignancy_probability is None:
            continue
        study_r, flips = in_reading_orientation(study)
        masks = {key: flip_array(main_lesion(vr), flips.get(key, (False, False)))
                 for key, vr in result.views.items() if key.startswith(side + "_")}
        long_side = max(max(m.shape) for m in masks.values())
        row = {"patient": pid, "side": side, "analyzer_score": result.malignancy_probability}
        for name, shifts in readings.items():
            base = score(study_r, masks, side, shifts)
            row[name] = {"score": base}
            for pname, (dy, dx, grow) in perturbations(long_side, args.shift, args.grow).items():
                m2 = {k: moved(m, dy, dx, grow) for k, m in masks.items()}
                row[name][pname] = score(study_r, m2, side, shifts) - base
        rows.append(row)
        print(f"{i + 1}/{len(patients)} {pid}: {row['analyzer_score']:.3f}", file=sys.stderr)

    summary = {}
    for name in readings:
        per = {}
        names = [k for k in rows[0][name] if k != "score"] if rows else []
        for pname in names:
            d = np.abs([r[name][pname] for r in rows])
            per[pname] = {"mean_abs_change": float(d.mean()), "max_abs_change": float(d.max()),
                          "share_over_0.1": float((d > 0.1).mean())}
        allchg = np.abs([r[name][p] for r in rows for p in names]) if names else np.zeros(0)
        per["all"] = {"mean_abs_change": float(allchg.mean()) if allchg.size else None,
                      "share_over_0.1": float((allchg > 0.1).mean()) if allchg.size else None}
        summary[name] = per
    # the analyzer's own score must be its reading's base score: the benchmark measures what it ships
    agree = max((abs(r["analyzer_score"] - r[analyzer_reading]["score"]) for r in rows), default=0.0)
    out = {"patients": len(patients), "scored": len(rows), "weights_cls": str(analyzer.cls.weights_path),
           "classifier_sha256": analyzer.cls.sha256, "shift_fraction": args.shift,
           "grow_px": args.grow, "analyzer_reading": analyzer_reading,
           "analyzer_vs_benchmark_max_difference": agree, "summary": summary,
           "per_patient": rows, "seconds": round(time.time() - t0, 1),
           "command": "python benchmarks/square_stability.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
