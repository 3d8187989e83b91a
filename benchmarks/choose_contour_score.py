"""Choose the segmentation's contour threshold and score cut on validation studies, never on the test ones.

    python benchmarks/choose_contour_score.py --seg W.safetensors --phantoms DIR [DIR ...] \
        --real-dir ../shared/data/cdd-cesm-512 [--max-normal 0.2] [--write-card]

A contour is the iso-line of the segmentation probability at the threshold around a component, and
it is shown only when its mean probability (its score) reaches the cut. The segmentation runs once
per study; then, for each (threshold, cut) pair, this counts on the phantom folders (synthetic
studies, one lesion in one breast, the other breast normal) the contours per view of the normal
breast, the share of lesion views that keep a contour on the lesion and the share of studies whose
most certain contour is on the lesion's breast (the analyzer's side decision; a study without any
contour counts as wrong), and on the real folder's validation patients (the weights' card names
them; every one has a lesion) the share of lesion views that keep one and the mean Dice of what is
kept. Among the pairs that leave ``--max-normal`` contours per normal-breast view or fewer and put
as many phantom studies on the right breast as the best of them (within ``--side-tolerance``
studies: two of 80 are noise), the one chosen has the best Dice on the real patients' lesions,
then the fewest contours on normal breasts. ``--write-card`` records it in the weights' card (``inference.threshold``,
``inference.min_contour_score``), which the analyzer honours. Phantom folders must not be the ones
the pipeline is later scored on (benchmarks/phantom_pipeline.py). Results: ``--out`` (JSON).
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
from scipy import ndimage  # noqa: E402

from core_model.imaging.contours import lesion_mask, min_area_for_scale  # noqa: E402
from core_model.imaging.preprocess import Letterbox  # noqa: E402
from core_model.inference.analyzer import Analyzer  # noqa: E402
from core_model.io import load_study  # noqa: E402
from core_model.io.jsonsafe import dumps  # noqa: E402
from core_model.models.checkpoint import card_path, read_card  # noqa: E402

THRESHOLDS = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
CUTS = [round(0.2 + 0.05 * i, 3) for i in range(13)]  # a cut at or under the threshold cuts nothing


def view_rows(analysis, masks: dict[str, np.ndarray], kind: str, pid: str, seg_input) -> list[dict]:
    """Per analysed view with a ground-truth mask: its probability map (float16), minimum area and mask."""
    rows = []
    for key, vr in analysis.views.items():
        gt = masks.get(key)
        if gt is None or gt.shape != vr.mask.shape:
            continue
        box = Letterbox.fit(gt.shape, seg_input)
        rows.append({"kind": kind, "patient": pid, "view": key, "lesion": bool(gt.any()),
                     "min_area": min_area_for_scale(float(box.scale_xy.mean())),
                     "_prob": vr.probability.astype(np.float16), "_gt": gt.astype(bool)})
    return rows


def score_view(row: dict, threshold: float, cut: float) -> dict:
    """Contours at (threshold, cut): their scores, which touch the lesion's box, and the Dice of the mask."""
    prob = row["_prob"].astype(np.float32)
    mask, labels, n = lesion_mask(prob, threshold, row["min_area"], cut)
    gt = row["_gt"]
    scores, on = [], []
    for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        scores.append(float(prob[sl][labels[sl] == idx].mean()))
        on.append(bool(gt[sl].any()))  # its box meets the lesion
    m = mask.astype(bool)
    tot = float(m.sum() + gt.sum())
    dice = 1.0 if tot == 0 else 2.0 * float((m & gt).sum()) / tot
    return {"scores": scores, "on_lesion": on, "dice": dice}


def summarise(rows: list[dict], threshold: float, cut: float) -> dict:
    scored = [(r, score_view(r, threshold, cut)) for r in rows]
    normal = [v for r, v in scored if not r["lesion"]]
    lesion = [v for r, v in scored if r["lesion"]]
    out = {"views_normal": len(normal), "views_lesion": len(lesion)}
    if normal:
        out["contours_per_normal_view"] = float(np.mean([len(v["scores"]) for v in normal]))
    if lesion:
        out["lesion_views_hit"] = float(np.mean([any(v["on_lesion"]) for v in lesion]))
        out["lesion_dice"] = float(np.mean([v["dice"] for v in lesion]))
    studies: dict[str, dict[str, float]] = {}
    truth: dict[str, set] = {}
    for r, v in scored:  # the analyzer's side decision: the breast of the most certain contour
        best = studies.setdefault(r["patient"], {"L": 0.0, "R": 0.0})
        best[r["view"][0]] = max([best[r["view"][0]]] + v["scores"])
        if r["lesion"]:
            truth.setdefault(r["patient"], set()).add(r["view"][0])
    if normal and truth:
        right = [max("LR", key=lambda s: (c[s], s == "R")) in truth.get(p, set()) and max(c.values()) > 0
                 for p, c in studies.items()]
        out["studies"] = len(right)
        out["side_correct"] = float(np.mean(right))
        out["no_lesion_found"] = int(sum(max(c.values()) == 0 for c in studies.values()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seg", type=Path, required=True)
    ap.add_argument("--phantoms", type=Path, nargs="+", required=True)
    ap.add_argument("--real-dir", type=Path)
    ap.add_argument("--max-normal", type=float, default=0.2)
    ap.add_argument("--side-tolerance", type=int, default=2,
                    help="pairs that put at most this many fewer phantom studies on the right breast than the best "
                         "pair count as equal (2 of 80: about one standard error of the share)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-card", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "contour_score_choice.json")
    args = ap.parse_args(argv)
    an = Analyzer(seg_weights=args.seg, device="cpu", num_threads=args.threads)
    an.cls = None  # the cut is about contours; the classifier is not needed
    an.min_contour_score, an.threshold = 0.0, min(THRESHOLDS)  # every contour any pair could keep
    seg_input = an.seg.model.input_size
    seg_input = (seg_input, seg_input) if isinstance(seg_input, int) else tuple(seg_input)
    rows: list[dict] = []
    for folder in args.phantoms:
        pids = sorted({"P" + r["Patient_ID"] for r in csv.DictReader(open(folder / "labels.csv", encoding="utf-8"))})
        for pid in pids:
            study = load_study(folder / "images", patient=pid)
            rows += view_rows(an.analyze(study, explain=False), _masks_from_dir(folder / "masks", pid), "phantom",
                              f"{folder.name}/{pid}",
                              seg_input)
        print(f"{folder}: {len(pids)} studies", file=sys.stderr)
    if args.real_dir:
        for pid in read_card(args.seg).get("split", {}).get("val", []):
            if not (args.real_dir / "images").is_dir() or not any((args.real_dir / "images").glob(f"{pid}_*")):
                continue
            study = load_study(args.real_dir / "images", patient=pid)
            rows += view_rows(an.analyze(study, explain=False), _masks_from_dir(args.real_dir / "masks", pid), "real", pid,
                              seg_input)
        print(f"{args.real_dir}: validation patients done", file=sys.stderr)
    table = []
    for t in THRESHOLDS:
        for cut in [0.0] + [c for c in CUTS if c > t]:
            table.append({"threshold": t, "cut": cut,
                          "phantom": summarise([r for r in rows if r["kind"] == "phantom"], t, cut),
                          "real": summarise([r for r in rows if r["kind"] == "real"], t, cut)})
            print(json.dumps(table[-1]), file=sys.stderr)
    ok = [e for e in table if e["phantom"].get("contours_per_normal_view", 0.0) <= args.max_normal]
    best = None
    if ok:
        right = lambda e: round(e["phantom"].get("side_correct", 0.0) * e["phantom"].get("studies", 0))  # noqa: E731
        top = max(right(e) for e in ok)
        near = [e for e in ok if right(e) >= top - args.side_tolerance]
        best = max(near, key=lambda e: (round(e["real"].get("lesion_dice", 0.0), 4),
                                        -e["phantom"]["contours_per_normal_view"], e["threshold"], -e["cut"]))
    chosen = None if best is None else {"threshold": best["threshold"], "min_contour_score": best["cut"]}
    doc = {"command": "benchmarks/choose_contour_score.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "weights_sha256": an.identity["segmentation"]["weights_sha256"], "max_normal": args.max_normal,
           "chosen": chosen, "table": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(doc, label=str(args.out), indent=1) + "\n")
    print(f"chosen: {chosen}")
    if args.write_card and chosen is not None:
        cp = card_path(args.seg)
        card = json.loads(cp.read_text(encoding="utf-8"))
        inf = card.setdefault("inference", {})
        inf.update(chosen)
        inf.pop("min_contour_score_chosen_by", None)
        inf["chosen_by"] = (
            f"benchmarks/choose_contour_score.py on {', '.join(p.name for p in args.phantoms)}"
            + (f" and the validation patients of {args.real_dir.name}" if args.real_dir else "")
            + f": of the (threshold, cut) pairs leaving at most {args.max_normal} contours per normal-breast view, "
              f"and putting as many validation phantom studies on the right breast as the best (within {args.side_tolerance} "
              "studies), the one with the best real lesion Dice, then the fewest contours on normal breasts")
        cp.write_text(dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"wrote inference {chosen} into {cp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
