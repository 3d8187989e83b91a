"""``nafv-train evaluate-seg``: lesion Dice / IoU of segmentation weights on a folder.

    nafv-train evaluate-seg --data DIR --weights W.safetensors --json OUT.json [--split val|train|all]

Measured at the SOURCE resolution, the way the viewer shows it: each view is
prepared exactly as in training (normalize_image, Letterbox), the predicted
probability map is mapped back with ``Letterbox.invert_map``, thresholded at
0.5 and compared with the mask (thresholded at 127). Dice and IoU of the
lesion class per image (one image = one annotated view of one breast; its RC
mask when it has one), then the mean over images. An image whose mask and
prediction are both empty counts as Dice 1 and IoU 1 (nothing to find,
nothing found); every mask in CDD-CESM-512 has a lesion, so there this case
does not occur. ``--split val`` restricts to the validation patients recorded
in the weights' model card.

``--export-to W2.safetensors`` writes the evaluated weights again with their
model card extended by these figures (``metrics.*_source_resolution``), the
evaluation command and the data's known limitations: this is how the shipped
default weights are made from a training run's ``best.safetensors``.

Output JSON: {"dice", "miou", "n_images", "n_patients", ...} plus a 95 % interval
of the mean Dice from a patient-level bootstrap and the per-image rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from core_model.domain.errors import NafvError
from core_model.imaging.orientation import flip_array
from core_model.models.checkpoint import load_checkpoint
from core_model.models.segmentation import lesion_probability
from core_model.train.common import write_json
from core_model.train.masks import read_mask
from core_model.train.seg_data import VIEWS, patients_of, prepare_view, scan_folder, select_breasts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nafv-train evaluate-seg", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True,
                   help="CDD-CESM folder: images/ + masks/, or the public collection as downloaded "
                        "(its two image folders, annotation spreadsheet and segmentation CSV)")
    p.add_argument("--weights", required=True, help="segmentation .safetensors (model card beside it)")
    p.add_argument("--json", required=True, help="where to write the metrics")
    p.add_argument("--split", default="all", choices=("all", "val", "train"),
                   help="patients to evaluate: all in DIR, or the card's validation / training patients")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--input-size", type=int, default=0,
                   help="read the images at this square side instead of the card's (a measurement: cannot be "
                        "combined with --export-to)")
    p.add_argument("--flip-tta", action="store_true",
                   help="average with the mirrored breast (test-time augmentation); with --export-to the "
                        "analyzer then does the same with those weights")
    p.add_argument("--export-to", type=Path, default=None,
                   help="write the weights again here with the card extended by these figures")
    return p


LIMITATIONS = [
    "validation on the patients of one public collection (CDD-CESM subset, all breasts with a malignant finding); "
    "not a clinical validation; never trained on normal breasts, so it outlines something in most images",
    "trained on images resized to 512x512 without keeping the aspect ratio; full-size images are letterboxed "
    "(aspect kept), so breasts look less squashed than in training",
    "only 2 patients have the contralateral breast: the asymmetric fusion was trained almost only through its "
    "'no contralateral' stand-in",
]


def export_evaluated(weights: str | Path, result: dict, out: Path, command: str) -> Path:
    """Re-save ``weights`` at ``out`` with the evaluation figures in its model card."""
    from core_model.models.checkpoint import save_checkpoint

    loaded = load_checkpoint(weights)
    card = {k: v for k, v in loaded.card.items() if k not in ("weights_file", "weights_sha256", "date")}
    # The evaluated figures first (what the viewer and report show); the trainer's own validation
    # figures (model input size, every training folder, synthetic ones included) kept apart.
    old = card.get("metrics") or {}
    trainer = old.get("training_validation") or {k: v for k, v in old.items() if k != "training_validation"}
    card["metrics"] = {
        "val_dice_source_resolution": result["dice"],
        "val_miou_source_resolution": result["miou"],
        "val_dice_ci95_patient_bootstrap": result["dice_ci95_patient_bootstrap"],
        "val_images": result["n_images"],
        "val_patients": result["n_patients"],
        "evaluated_on": f"{Path(result['data']).name} ({result['split']} patients)",
        "source_resolution_definition": result["definition"],
        "evaluated_split": result["split"],
        "training_validation": trainer,
    }
    # How the analyzer must run these weights to reproduce the figures above.
    card["inference"] = {**(card.get("inference") or {}), "flip_tta": bool(result.get("flip_tta", False))}
    card["status"] = (f"research weights: validation Dice {result['dice']:.2f} on {result['n_patients']} patients of "
                      f"{Path(result['data']).name}; not validated clinically")
    card["reproduce"] = {"train": (card.get("reproduce") or {}).get("train", "see the run's config.json"),
                         "evaluate_and_export": command}
    epochs, planned = card.get("epochs"), card.get("epochs_planned")
    card["limitations"] = LIMITATIONS + [
        f"best validation epoch {epochs} of {planned} planned (the paper trains 200); validation Dice may still rise"]
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(loaded.model, out, card)


def dice_iou(pred: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Lesion-class Dice and IoU of two boolean maps; both empty -> (1, 1)."""
    inter = float(np.logical_and(pred, mask).sum())
    ps, ms = float(pred.sum()), float(mask.sum())
    if ps + ms == 0:
        return 1.0, 1.0
    return 2 * inter / (ps + ms), inter / (ps + ms - inter)


@torch.no_grad()
def predict_breast(model, breast, contra, channels, flip_tta: bool = False) -> dict[str, tuple[np.ndarray, object]]:
    """view -> (probability map at source resolution, letterbox) for the views that exist."""
    size = tuple(model.input_size)
    C = len(channels)
    views = torch.zeros(1, 2, C, *size)
    present = torch.zeros(1, 2, dtype=torch.bool)
    cviews = torch.zeros(1, 2, C, *size)
    cpresent = torch.zeros(1, 2, dtype=torch.bool)
    lbs, flips = {}, {}
    for i, v in enumerate(VIEWS):
        img, lb, f = prepare_view(breast, v, channels, size)
        if img is not None:
            views[0, i], present[0, i], lbs[v], flips[v] = torch.from_numpy(img), True, lb, f
        if contra is not None:
            cimg, _, _ = prepare_view(contra, v, channels, size)
            if cimg is not None:
                cviews[0, i], cpresent[0, i] = torch.from_numpy(cimg), True
    has_contra = bool(cpresent.any())
    prob = lesion_probability(model, views, cviews if has_contra else None, present,
                              cpresent if has_contra else None, flip_tta=flip_tta)[0].numpy()
    # back to the images as stored, where the masks are
    return {v: (flip_array(lbs[v].invert_map(prob[i]), flips[v]), lbs[v]) for i, v in enumerate(VIEWS) if v in lbs}


def patient_bootstrap_ci(rows: list[dict], key: str = "dice", n: int = 2000, seed: int = 0) -> list[float]:
    """95 % interval of the mean over images, resampling patients (images of one patient are not independent)."""
    by_patient: dict[str, list[float]] = {}
    for r in rows:
        by_patient.setdefault(r["patient"], []).append(r[key])
    groups = list(by_patient.values())
    if len(groups) < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n):
        pick = rng.integers(0, len(groups), len(groups))
        vals = [v for i in pick for v in groups[i]]
        means.append(np.mean(vals))
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def evaluate(data_dir: str | Path, weights: str | Path, split: str = "all", flip_tta: bool = False,
             input_size: int = 0) -> dict:
    """Lesion Dice / IoU per image (and their means, a patient-bootstrap interval); ``input_size``
    reads the images at that square side instead of the card's (a measurement only: the analyzer
    reads the card's)."""
    loaded = load_checkpoint(weights)
    model, card = loaded.model, loaded.card
    if input_size:
        model.input_size = (input_size, input_size)
    channels = tuple(getattr(model, "channels", ("rc",)))
    breasts = scan_folder(data_dir)
    patients = set(patients_of(breasts))
    if split != "all":
        listed = set((card.get("split") or {}).get(split) or [])
        if not listed:
            raise NafvError(f"the model card records no '{split}' patients; use --split all", weights)
        patients &= listed
    sel = select_breasts(breasts, patients, channels)
    if not sel:
        raise NafvError(f"no annotated {'+'.join(channels)} images to evaluate", data_dir)
    other = {"L": "R", "R": "L"}
    rows = []
    for b in sel:
        preds = predict_breast(model, b, breasts.get((b.patient, other[b.side])), channels, flip_tta)
        for v, (prob, lb) in preds.items():
            if v not in b.masks:
                continue
            mask = read_mask(b.masks[v])
            if mask.shape != prob.shape:
                raise NafvError(f"mask size {mask.shape} differs from its image {prob.shape}", b.masks[v])
            d, u = dice_iou(prob > 0.5, mask)
            rows.append({"image": f"{b.key}_{v}", "patient": b.patient, "dice": d, "iou": u,
                         "mask_pixels": int(mask.sum()), "pred_pixels": int((prob > 0.5).sum())})
    return {
        "dice": float(np.mean([r["dice"] for r in rows])),
        "miou": float(np.mean([r["iou"] for r in rows])),
        "n_images": len(rows),
        "n_patients": len({r["patient"] for r in rows}),
        "dice_ci95_patient_bootstrap": patient_bootstrap_ci(rows),
        "split": split,
        "data": str(data_dir),
        "flip_tta": flip_tta,
        "input_size": list(model.input_size),
        "weights": str(weights),
        "weights_sha256": loaded.sha256,
        "model": loaded.identity,
        "definition": "lesion class, source resolution, threshold 0.5, per image then mean; "
                      "empty mask and empty prediction = 1",
        "images": rows,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.input_size < 0 or args.input_size % 32:
        raise NafvError("--input-size: a side in pixels, a multiple of 32 (the encoder halves the image five times)")
    if args.input_size and args.export_to is not None:
        raise NafvError("--input-size is a measurement: the exported card would describe another reading than "
                        "the analyzer's; leave out --export-to")
    res = evaluate(args.data, args.weights, args.split, flip_tta=args.flip_tta, input_size=args.input_size)
    write_json(args.json, res)
    lo, hi = res["dice_ci95_patient_bootstrap"]
    print(f"evaluate-seg: Dice {res['dice']:.4f} (95% CI {lo:.3f}-{hi:.3f})  mIoU {res['miou']:.4f}  on {res['n_images']} images of "
          f"{res['n_patients']} patients ({args.split}) -> {args.json}", file=sys.stdout)
    if args.export_to is not None:
        command = "nafv-train evaluate-seg " + " ".join(argv if argv is not None else sys.argv[2:])
        card = export_evaluated(args.weights, res, args.export_to, command)
        print(f"evaluate-seg: weights with the evaluated card -> {args.export_to} ({card.name})")
    return 0
