"""``nafv-train phantom``: write synthetic four-view CEM studies with ground truth.

    nafv-train phantom --out runs/phantom --n 200 --seed 1 [--size 512 416]
        [--benign-fraction 0.5] [--dicom] [--difficulty easy|medium|hard]

The folder gets the CDD-CESM layout (images/, masks/, labels.csv) so every
loader and trainer that reads CDD-CESM reads it; see docs/phantom.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core_model.domain.errors import NafvError
from core_model.synth.phantom import DEFAULT_SIZE, DIFFICULTIES, PhantomConfig, ceiling_auc, write_dataset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nafv-train phantom", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (created; must not already hold images)")
    p.add_argument("--n", required=True, type=int, help="number of synthetic studies (patients)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=list(DEFAULT_SIZE),
                   help="image rows and columns (default 512 416; 512 512 gives the squashed CDD-CESM-512 look)")
    p.add_argument("--benign-fraction", type=float, default=0.5, help="share of benign cases (default 0.5)")
    p.add_argument("--dicom", action="store_true", help="also write DICOM MG files under OUT/dicom/P{id}/")
    p.add_argument("--difficulty", choices=DIFFICULTIES, default="medium",
                   help="lesion size / contrast / breast density / benign-malignant overlap preset")
    p.add_argument("--force", action="store_true", help="write into OUT even if it already holds images")
    p.add_argument("--first-id", type=int, default=0,
                   help="number of the first study (ids P{900000 + n}); give folders that are trained on together "
                        "disjoint ranges")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    images = args.out / "images"
    if images.is_dir() and any(images.iterdir()) and not args.force:
        raise NafvError("the folder already holds images; choose another --out or pass --force", args.out)
    h, w = args.size
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"  {done}/{total} studies", file=sys.stderr)

    write_dataset(args.out, n=args.n, seed=args.seed, size=(h, w), dicom=args.dicom,
                  benign_fraction=args.benign_fraction, config=PhantomConfig.preset(args.difficulty),
                  progress=progress, first_id=args.first_id)
    dt = time.perf_counter() - t0
    ceiling = ceiling_auc(PhantomConfig.preset(args.difficulty))
    (args.out / "ceiling.json").write_text(json.dumps(
        {"difficulty": args.difficulty, "ceiling_roc_auc": round(ceiling, 4),
         "meaning": "benign-vs-malignant ROC AUC of the Bayes-optimal score of an oracle that sees every lesion "
                    "feature the generator draws; no classifier of the images can do better"}, indent=2) + "\n")
    print(f"wrote {args.n} synthetic studies ({8 * args.n} images, {h}x{w}, difficulty {args.difficulty}) "
          f"to {args.out} in {dt:.1f} s; labels in {args.out / 'labels.csv'}")
    print(f"ground-truth ceiling of the benign-vs-malignant ROC AUC at this difficulty: {ceiling:.3f} "
          f"(an oracle that sees every lesion feature drawn; in {args.out / 'ceiling.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
