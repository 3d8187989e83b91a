"""Draw the detected pectoral line on real MLO images, to look at, and count how many are accepted.

    python benchmarks/pectoral_overlays.py --out /tmp/pectoral [--sample 40] [--also-cc]

Images: the demo study (``resources/demo``), ``tests/data/cdd-cesm``,
``tests/data/nyu-ffdm-4view`` and, when present, a seeded sample of the
CDD-CESM 512 set (``/work/shared/data/cdd-cesm-512``). Each image is shown in
the canonical frame (chest wall left, superior up) with the line in red, or
"none" when the detector rejected it. ``summary.json`` lists per image whether
a line was accepted, its ends, support and contrast. CC views are run too
with ``--also-cc``: they should never get a line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from core_model.imaging.location import canonical_view
from core_model.imaging.orientation import reading_flips
from core_model.imaging.pectoral import detect_pectoral

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data/cdd-cesm-512/images")
NAME = re.compile(r"(?P<side>[LR])[-_](?:(?P<energy>DM|CM)_)?(?P<view>CC|MLO)")


def images(sample: int, views: tuple[str, ...]) -> list[Path]:
    repo = [p for d in ("resources/demo", "tests/data/cdd-cesm/images", "tests/data/nyu-ffdm-4view")
            for p in sorted((ROOT / d).glob("*")) if p.suffix in (".jpg", ".png")]
    shared = sorted(SHARED.glob("*.jpg")) if SHARED.is_dir() else []
    shared = [p for p in shared if p.name not in {q.name for q in repo}]
    picked = random.Random(0).sample(shared, min(sample, len(shared))) if sample else []
    return [p for p in repo + sorted(picked) if (m := NAME.search(p.name)) and m["view"] in views]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sample", type=int, default=40, help="images drawn from the CDD-CESM 512 set")
    ap.add_argument("--also-cc", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in images(args.sample, ("MLO", "CC") if args.also_cc else ("MLO",)):
        m = NAME.search(path.name)
        px = np.asarray(Image.open(path).convert("L"))
        key = f"{m['side']}_{m['view']}"
        canon = canonical_view(key, px, reading_flips(m["side"], m["view"], px))
        line, why = detect_pectoral(canon)
        rgb = Image.fromarray(np.ascontiguousarray(canon)).convert("RGB")
        draw = ImageDraw.Draw(rgb)
        if line is not None:
            draw.line([line.top, line.low], fill=(255, 0, 0), width=max(1, canon.shape[1] // 250))
        draw.text((canon.shape[1] // 2, 4), "line" if line else f"none: {why}", fill=(255, 255, 0))
        name = f"{path.parent.parent.name if path.parent.name == 'images' else path.parent.name}_{path.stem}.png"
        rgb.save(args.out / name)
        rows.append({"image": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "view": m["view"],
                     "energy": m["energy"] or "DM", "shape": list(px.shape), "accepted": line is not None, "rejected_because": why,
                     **({"top": [round(v, 1) for v in line.top], "low": [round(v, 1) for v in line.low],
                         "support": line.support, "contrast": line.contrast} if line else {}), "png": name})
    summary = {}
    for view in ("MLO", "CC"):
        for energy in ("DM", "CM"):
            sel = [r for r in rows if r["view"] == view and r["energy"] == energy]
            if sel:
                summary[f"{view}_{energy}"] = {"images": len(sel), "accepted": sum(r["accepted"] for r in sel)}
    (args.out / "summary.json").write_text(json.dumps({"summary": summary, "images": rows}, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
