"""Pick the Grad-CAM method and target layer by measurement: do the maps exist, and do they sit on the lesion?

For each study with a ground-truth lesion mask, the classifier input is built
exactly as the analyzer builds it (``study_inputs`` with the ground-truth
masks, so segmentation errors do not enter), every (method, target layer) pair
explains the predicted class, and each affected view's heatmap (mapped back to
the LE image) is scored:

- ``nonempty``: the map is not all zero (Grad-CAM keeps only positive evidence);
- ``pointing``: the map's maximum falls on the lesion (dilated by 2 % of the
  image side, the usual pointing-game tolerance);
- ``energy_in``: share of the map's mass on the lesion, and ``lift`` = that
  share / the lesion's area share (1 = no better than a uniform map).

Studies: the demo (real, CDD-CESM P66) and ``--phantoms N`` synthetic studies
(core_model.synth.phantom), optionally ``--real-dir`` (a CDD-CESM layout folder with
masks/) for more real patients. Writes JSON (``--out``).

    .venv/bin/python benchmarks/cam_choice.py --cls resources/weights/classifier/nafv_cls.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_model.domain.study import view_key  # noqa: E402
from core_model.imaging.preprocess import resize_map  # noqa: E402
from core_model.inference.analyzer import DEFAULT_CLS_WEIGHTS  # noqa: E402
from core_model.inference.explain import CAM_METHODS, gradcam_views  # noqa: E402
from core_model.io import list_patients, load_study  # noqa: E402
from core_model.io.jsonsafe import dumps  # noqa: E402
from core_model.io.masks import read_mask_png  # noqa: E402
from core_model.io.naming import parse_loose_name  # noqa: E402
from core_model.models.checkpoint import load_checkpoint  # noqa: E402
from core_model.inference.heatmaps import paste  # noqa: E402
from core_model.transforms.model_inputs import crop_boxes, study_inputs  # noqa: E402

TARGETS = ("backbone.blocks[-1].norm1", "backbone.blocks[-2].norm1", "backbone.norm", "head.stage1")


def _masks_from_dir(mask_dir: Path, patient: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for p in sorted(mask_dir.iterdir()):
        info = parse_loose_name(p.name)
        if info is None or info.patient_id != patient:
            continue
        a = read_mask_png(p)
        k = view_key(info.side, info.view)
        out[k] = a | out[k] if k in out and out[k].shape == a.shape else a
    return out


def _cases(args) -> list[tuple[str, object, dict[str, np.ndarray], str]]:
    cases = []
    demo = load_study(REPO / "resources" / "demo")
    m = _masks_from_dir(REPO / "resources" / "demo_masks", "P66")
    side = max("LR", key=lambda s: sum(int(v.sum()) for k, v in m.items() if k.startswith(s)))
    cases.append(("demo P66 (real)", demo, m, side))
    if args.real_dir:
        root = Path(args.real_dir)
        for pid in list_patients(root / "images")[: args.real_n]:
            st = load_study(root / "images", patient=pid)
            m = _masks_from_dir(root / "masks", pid)
            sides = [s for s in "LR" if any(v.any() for k, v in m.items() if k.startswith(s))]
            if not sides:
                continue
            side = max(sides, key=lambda s: sum(int(v.sum()) for k, v in m.items() if k.startswith(s)))
            if all(st.get(view_key(side, v), "le") is not None for v in ("CC", "MLO")):
                cases.append((f"{pid} (real)", st, m, side))
    if args.phantoms:
        from core_model.synth.phantom import generate_case

        for i in range(args.phantoms):
            c = generate_case(1000 + i)
            cases.append((f"phantom {1000 + i} ({c.label})", c.study, c.masks, c.affected_side))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cls", type=Path, default=DEFAULT_CLS_WEIGHTS)
    ap.add_argument("--phantoms", type=int, default=8)
    ap.add_argument("--real-dir", default=None)
    ap.add_argument("--real-n", type=int, default=8)
    ap.add_argument("--methods", default=",".join(CAM_METHODS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cam_choice.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.cls)
    cls = loaded.model.eval()
    for p in cls.parameters():
        p.requires_grad_(False)
    methods = args.methods.split(",")
    targets = [t for t in args.targets.split(",") if t]
    rows: dict[str, list[dict]] = {f"{m} @ {t}": [] for m in methods for t in targets}
    timing: dict[str, list[float]] = {k: [] for k in rows}
    cases = _cases(args)
    for name, study, masks, side in cases:
        crop = float(getattr(cls, "crop", 0.0))
        a, c = study_inputs(study, masks, side, int(cls.input_size), cls.channels, float(cls.position_decay), crop)
        # where lesion-square inputs lie in their views, so the maps go back there (as the analyzer does)
        boxes = crop_boxes({v: masks[view_key(side, v)] > 0 for v in ("CC", "MLO") if view_key(side, v) in masks}, crop)
        if getattr(cls, "mode", "four-view") == "dual-view":
            c = None
        with torch.no_grad():
            prob = float(torch.softmax(cls(a, c), -1)[0, 1])
        views = torch.cat([a[0]] + ([c[0]] if c is not None else []))
        for m in methods:
            for t in targets:
                key = f"{m} @ {t}"
                t0 = time.perf_counter()
                try:
                    maps = gradcam_views(cls, views, category=int(prob >= 0.5), method=m, target=t)
                except (AttributeError, IndexError, ValueError, RuntimeError) as exc:
                    rows[key].append({"case": name, "error": str(exc)[:120]})
                    continue
                timing[key].append(time.perf_counter() - t0)
                for i, v in enumerate(("CC", "MLO")):
                    vk = view_key(side, v)
                    le = study.get(vk, "le")
                    gt = masks.get(vk)
                    if le is None or gt is None or not gt.any() or gt.shape != le.shape:
                        continue
                    box = boxes.get(v)
                    h = (resize_map(maps[i], le.shape) if box is None
                         else paste(resize_map(maps[i], (box[2], box[2])), box, le.shape))
                    tol = max(1, round(0.02 * max(le.shape)))
                    near = ndimage.binary_dilation(gt, iterations=tol)
                    total = float(h.sum())
                    energy = float((h * gt).sum() / total) if total > 0 else 0.0
                    rows[key].append({
                        "case": name, "view": vk, "prob": round(prob, 4),
                        "nonempty": bool(h.max() > 0),
                        "pointing": bool(near.flat[int(np.argmax(h))]) if total > 0 else False,
                        "energy_in": round(energy, 4),
                        "lift": round(energy / float(gt.mean()), 3),
                    })
        print(f"{name}: done", file=sys.stderr)
    summary = {}
    for key, rs in rows.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            summary[key] = {"error": rs[0]["error"] if rs else "no views"}
            continue
        summary[key] = {
            "views": len(ok),
            "nonempty": float(np.mean([r["nonempty"] for r in ok])),
            "pointing": float(np.mean([r["pointing"] for r in ok])),
            "energy_in": float(np.mean([r["energy_in"] for r in ok])),
            "lift": float(np.mean([r["lift"] for r in ok])),
            "seconds_per_study": float(np.median(timing[key])) if timing[key] else None,
        }
    ranked = sorted((k for k in summary if "error" not in summary[k]),
                    key=lambda k: (summary[k]["nonempty"], summary[k]["pointing"], summary[k]["energy_in"]), reverse=True)
    doc = {
        "classifier": loaded.identity,
        "cases": [n for n, *_ in cases],
        "ranking": ranked,
        "summary": summary,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(doc, label=str(args.out), indent=1) + "\n")
    print(f"{'method @ target':48s} nonempty pointing energy_in lift  s/study")
    for k in ranked:
        s = summary[k]
        print(f"{k:48s} {s['nonempty']:8.2f} {s['pointing']:8.2f} {s['energy_in']:9.3f} {s['lift']:5.2f} {s['seconds_per_study'] or 0:7.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
