"""Do the analyzer's outputs sit on the lesion? End to end, on studies with ground-truth masks.

Runs :class:`core_model.inference.analyzer.Analyzer` (default weights unless given) on
the demo study (CDD-CESM P66, never trained on) and, with ``--real-dir``, on
the held-out validation patients named in the segmentation weights' card, and
scores every view that has a ground-truth lesion against what a reader sees:

- ``dice``: the analysis mask (all contours) against the lesion mask;
- ``area_ratio``: predicted area / lesion area (1 = right size);
- ``hit``: at least one contour overlaps the lesion;
- ``side_correct`` per study: the analyzer's affected side is the breast with
  the lesion (studies with lesions in both breasts count either side);
- heatmaps (on the side the analyzer chose, where it draws them): ``pointing``
  (the map's maximum within 2 % of the image side of the lesion), ``energy_in``
  (share of the map's mass on the lesion) and ``lift`` (that share / the
  lesion's share of the image; 1 = no better than a uniform map).

    .venv/bin/python benchmarks/lesion_overlap.py --real-dir ../shared/data/cdd-cesm-512
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cam_choice import _masks_from_dir  # noqa: E402

from core_model.domain.resources import DEFAULT_SEG_WEIGHTS, DEMO_DIR, DEMO_MASKS  # noqa: E402
from core_model.inference.analyzer import Analyzer  # noqa: E402
from core_model.io import load_study  # noqa: E402
from core_model.io.jsonsafe import dumps  # noqa: E402
from core_model.models.checkpoint import read_card  # noqa: E402


def score_view(vr, gt: np.ndarray, affected: bool) -> dict:
    pred = vr.mask.astype(bool)
    inter = float((pred & gt).sum())
    row = {
        "view": vr.key,
        "lesion_px": int(gt.sum()),
        "pred_px": int(pred.sum()),
        "dice": round(2 * inter / max(float(pred.sum() + gt.sum()), 1.0), 4),
        "area_ratio": round(float(pred.sum()) / float(gt.sum()), 3),
        "hit": inter > 0,
        "contours": len(vr.lesions),
    }
    h = vr.heatmap
    if affected and h is not None and h.shape == gt.shape and float(h.sum()) > 0:
        tol = max(1, round(0.02 * max(gt.shape)))
        near = ndimage.binary_dilation(gt, iterations=tol)
        energy = float((h * gt).sum() / h.sum())
        row.update(pointing=bool(near.flat[int(np.argmax(h))]), energy_in=round(energy, 4),
                   lift=round(energy / float(gt.mean()), 3))
    return row


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if key in r]
    return round(float(np.mean(vals)), 4) if vals else None


def summarise(rows: list[dict]) -> dict:
    return {"views": len(rows), "dice": _mean(rows, "dice"), "median_area_ratio":
            round(float(np.median([r["area_ratio"] for r in rows])), 3) if rows else None,
            "hit": _mean(rows, "hit"), "heatmap_views": sum("pointing" in r for r in rows),
            "pointing": _mean(rows, "pointing"), "energy_in": _mean(rows, "energy_in"), "lift": _mean(rows, "lift")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seg", type=Path, default=DEFAULT_SEG_WEIGHTS)
    ap.add_argument("--cls", type=Path, default=None)
    ap.add_argument("--real-dir", type=Path, default=None, help="CDD-CESM layout folder: adds the card's validation patients")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lesion_overlap.json")
    args = ap.parse_args(argv)
    analyzer = Analyzer(seg_weights=args.seg, cls_weights=args.cls, device="cpu", num_threads=args.threads)
    cases = [("P66", DEMO_DIR, DEMO_MASKS)]
    if args.real_dir:
        val = read_card(args.seg).get("split", {}).get("val", [])
        cases += [(pid, args.real_dir / "images", args.real_dir / "masks") for pid in val if pid != "P66"]
    rows, sides, t0 = [], [], time.time()
    for pid, img_dir, mask_dir in cases:
        study = load_study(img_dir, patient=pid)
        masks = _masks_from_dir(mask_dir, pid)
        analysis = analyzer.analyze(study)
        lesion_sides = {k[0] for k, m in masks.items() if m.any()}
        sides.append({"patient": pid, "affected_side": analysis.affected_side, "lesion_sides": sorted(lesion_sides),
                      "side_correct": analysis.affected_side in lesion_sides})
        for key, vr in analysis.views.items():
            gt = masks.get(key)
            if gt is None or not gt.any() or gt.shape != vr.mask.shape:
                continue
            rows.append({"patient": pid, **score_view(vr, gt, key[0] == analysis.affected_side)})
        print(f"{pid}: " + ", ".join(f"{r['view']} dice {r['dice']:.2f} x{r['area_ratio']:.1f}"
                                     for r in rows if r["patient"] == pid), file=sys.stderr)
    doc = {
        "command": "benchmarks/lesion_overlap.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "segmentation": {"weights": str(args.seg), "sha256": analyzer.identity["segmentation"]["weights_sha256"]},
        "classifier": analyzer.identity.get("classifier", {}).get("weights_sha256"),
        "demo": summarise([r for r in rows if r["patient"] == "P66"]),
        "all": {**summarise(rows), "studies": len(sides),
                "side_correct": round(float(np.mean([s["side_correct"] for s in sides])), 4) if sides else None},
        "sides": sides,
        "seconds": round(time.time() - t0, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(doc, label=str(args.out), indent=1) + "\n")
    print(dumps({k: doc[k] for k in ("demo", "all")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
