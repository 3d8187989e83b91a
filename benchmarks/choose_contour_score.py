"""Choose the segmentation's contour score cut on validation studies, never on the test ones.

    python benchmarks/choose_contour_score.py --seg W.safetensors --phantoms DIR [DIR ...] \
        --real-dir ../shared/data/cdd-cesm-512 [--max-normal 0.2] [--write-card]

A contour is shown only when its mean segmentation probability reaches the cut. The segmentation
runs once per study (cut 0); then, for each candidate cut, this counts on the phantom folders
(synthetic studies, one lesion in one breast, the other breast normal) the contours per view of the
normal breast and the share of lesion views that keep a contour on the lesion, and on the real
folder's validation patients (the weights' card names them; every one has a lesion) the share of
lesion views that keep one and the mean Dice of what is kept. The cut chosen is the lowest that
brings the phantom normal views to ``--max-normal`` contours per view or fewer; ``--write-card``
records it in the weights' card (``inference.min_contour_score``), which the analyzer honours.
Phantom folders must not be the ones the pipeline is later scored on (benchmarks/phantom_pipeline.py).
Results: ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cam_choice import _masks_from_dir  # noqa: E402
from core_model.inference.analyzer import Analyzer  # noqa: E402
from core_model.io import load_study  # noqa: E402
from core_model.io.jsonsafe import dumps  # noqa: E402
from core_model.models.checkpoint import card_path, read_card  # noqa: E402

CUTS = [round(0.5 + 0.025 * i, 3) for i in range(13)]  # 0.5 (no cut) .. 0.8


def view_rows(analysis, masks: dict[str, np.ndarray], kind: str, pid: str) -> list[dict]:
    rows = []
    for key, vr in analysis.views.items():
        gt = masks.get(key)
        if gt is None or gt.shape != vr.mask.shape:
            continue
        lesion = bool(gt.any())
        contours = []
        for les in vr.lesions:
            x0, y0, x1, y1 = (int(round(v)) for v in les.bbox)
            on = bool(gt[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1].any()) if lesion else False  # its box meets the lesion
            contours.append({"score": les.score, "on_lesion": on, "area_px": les.area_px})
        # the probability inside the shown mask (specks already dropped) is kept, so the Dice at each
        # cut can be recomputed
        rows.append({"kind": kind, "patient": pid, "view": key, "lesion": lesion, "contours": contours,
                     "gt_px": int(gt.sum()), "_prob": np.where(vr.mask > 0, vr.probability, 0.0), "_gt": gt})
    return rows


def dice_at(prob: np.ndarray, gt: np.ndarray, cut: float) -> float:
    from core_model.imaging.contours import lesion_mask

    mask = lesion_mask(prob, 0.5, 0.0, cut)[0].astype(bool)
    s = float(mask.sum() + gt.sum())
    return 1.0 if s == 0 else 2.0 * float((mask & gt).sum()) / s


def summarise(rows: list[dict], cut: float) -> dict:
    normal = [r for r in rows if not r["lesion"]]
    lesion = [r for r in rows if r["lesion"]]
    kept = lambda r: [c for c in r["contours"] if c["score"] >= cut]  # noqa: E731
    out = {"views_normal": len(normal), "views_lesion": len(lesion)}
    if normal:
        out["contours_per_normal_view"] = float(np.mean([len(kept(r)) for r in normal]))
    if lesion:
        out["lesion_views_hit"] = float(np.mean([any(c["on_lesion"] for c in kept(r)) for r in lesion]))
        out["lesion_dice"] = float(np.mean([dice_at(r["_prob"], r["_gt"], cut) for r in lesion]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seg", type=Path, required=True)
    ap.add_argument("--phantoms", type=Path, nargs="+", required=True)
    ap.add_argument("--real-dir", type=Path)
    ap.add_argument("--max-normal", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-card", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "contour_score_choice.json")
    args = ap.parse_args(argv)
    an = Analyzer(seg_weights=args.seg, device="cpu", num_threads=args.threads)
    an.cls = None  # the cut is about contours; the classifier is not needed
    an.min_contour_score = 0.0
    rows: list[dict] = []
    for folder in args.phantoms:
        pids = sorted({"P" + r["Patient_ID"] for r in csv.DictReader(open(folder / "labels.csv", encoding="utf-8"))})
        for pid in pids:
            study = load_study(folder / "images", patient=pid)
            rows += view_rows(an.analyze(study, explain=False), _masks_from_dir(folder / "masks", pid), "phantom", pid)
        print(f"{folder}: {len(pids)} studies", file=sys.stderr)
    if args.real_dir:
        for pid in read_card(args.seg).get("split", {}).get("val", []):
            if not (args.real_dir / "images").is_dir() or not any((args.real_dir / "images").glob(f"{pid}_*")):
                continue
            study = load_study(args.real_dir / "images", patient=pid)
            rows += view_rows(an.analyze(study, explain=False), _masks_from_dir(args.real_dir / "masks", pid), "real", pid)
        print(f"{args.real_dir}: validation patients done", file=sys.stderr)
    table = []
    for cut in CUTS:
        table.append({"cut": cut, "phantom": summarise([r for r in rows if r["kind"] == "phantom"], cut),
                      "real": summarise([r for r in rows if r["kind"] == "real"], cut)})
    ok = [t for t in table if t["phantom"].get("contours_per_normal_view", 0.0) <= args.max_normal]
    chosen = ok[0]["cut"] if ok else None
    doc = {"command": "benchmarks/choose_contour_score.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "weights_sha256": an.identity["segmentation"]["weights_sha256"], "max_normal": args.max_normal,
           "chosen": chosen, "table": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(doc, label=str(args.out), indent=1) + "\n")
    for t in table:
        print(json.dumps(t))
    print(f"chosen cut: {chosen}")
    if args.write_card and chosen is not None:
        cp = card_path(args.seg)
        card = json.loads(cp.read_text(encoding="utf-8"))
        card.setdefault("inference", {})["min_contour_score"] = chosen
        card["inference"]["min_contour_score_chosen_by"] = (
            f"benchmarks/choose_contour_score.py on {', '.join(p.name for p in args.phantoms)}"
            + (f" and the validation patients of {args.real_dir.name}" if args.real_dir else "")
            + f": the lowest cut leaving at most {args.max_normal} contours per normal-breast view")
        cp.write_text(dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"wrote inference.min_contour_score = {chosen} into {cp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
