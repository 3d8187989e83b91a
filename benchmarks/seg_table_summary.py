"""The segmentation table from a runs folder of `scripts/seg_table_gpu.sh` or
`scripts/seg_encoder_ablation.sh`: one row per variant and stage.

    .venv/bin/python benchmarks/seg_table_summary.py RUNS_DIR [--device "NVIDIA H100 ..."] [--json OUT.json]
        [--stages adamw] [--what "the recipe"]

Reads each variant's ``eval_{sgd,adamw}.json`` (``nafv-train evaluate-seg`` on the
validation patients, source resolution) and its run cards (epochs really run,
seconds per epoch), prints a TSV and, with ``--json``, writes the rows plus the
mean over seeds of each variant. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_model.io.jsonsafe import dumps  # noqa: E402

STAGES = ("sgd", "adamw")


def rows_of(runs: Path, stages: tuple[str, ...] = STAGES) -> list[dict]:
    rows = []
    for vdir in sorted(p for p in runs.iterdir() if p.is_dir()):
        for stage in stages:
            ev, card = vdir / f"eval_{stage}.json", vdir / stage / "last.json"
            row = {"variant": vdir.name, "stage": stage}
            if not ev.is_file() or not card.is_file():
                rows.append({**row, "error": f"no evaluation; see {vdir.name}/{stage}.log"})
                continue
            e, c = json.loads(ev.read_text()), json.loads(card.read_text())
            cfg = c["architecture"]["config"]
            rows.append({**row,
                         "arch": c["architecture"]["name"],
                         "channels": "+".join(cfg.get("channels", ["rc"])),
                         "size": cfg.get("input_size"),
                         "encoder": cfg.get("encoder", "conv"),
                         "encoder_init": (c.get("encoder") or {}).get("init", "scratch"),
                         "asym_fusion": cfg.get("asym_fusion"), "cross_attention": cfg.get("cross_attention"),
                         "seed": c["seed"],
                         "dice": round(e["dice"], 4), "dice_ci95": [round(x, 3) for x in e["dice_ci95_patient_bootstrap"]],
                         "miou": round(e["miou"], 4), "n_images": e["n_images"], "n_patients": e["n_patients"],
                         "epochs_run": c["epochs"], "epochs_requested": c.get("epochs_requested"),
                         "best_epoch": c["metrics"]["best_epoch"],
                         "seconds_per_epoch": c["training"]["seconds_per_epoch"],
                         "weights_sha256": e["weights_sha256"]})
    return rows


def seed_means(rows: list[dict]) -> list[dict]:
    """Mean Dice over the seeds of a variant (variant names end in _s<seed>)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "dice" in r:
            groups.setdefault((re.sub(r"_s\d+$", "", r["variant"]), r["stage"]), []).append(r)
    return [{"variant": v, "stage": s, "seeds": [r["seed"] for r in rs],
             "dice_mean": round(statistics.mean(r["dice"] for r in rs), 4),
             "dice_per_seed": [r["dice"] for r in rs],
             "epochs_run": [r["epochs_run"] for r in rs]} for (v, s), rs in sorted(groups.items())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--device", default=None, help="what trained the runs, for the record")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                    help="stages each variant ran (scripts/seg_encoder_ablation.sh runs adamw only)")
    ap.add_argument("--what", default=None, help="the recipe, for the record (default: seg_table_gpu.sh's)")
    args = ap.parse_args(argv)
    if not args.runs.is_dir():
        print(f"seg_table_summary: no such folder: {args.runs}", file=sys.stderr)
        return 2
    rows = rows_of(args.runs, tuple(args.stages))
    print("variant\tstage\tdice\tdice_ci95\tmiou\tepochs_run\tepochs_requested\tbest_epoch\ts_per_epoch")
    for r in rows:
        if "error" in r:
            print(f"{r['variant']}\t{r['stage']}\t{r['error']}")
            continue
        ci = "-".join(f"{x:.3f}" for x in r["dice_ci95"])
        print(f"{r['variant']}\t{r['stage']}\t{r['dice']:.4f}\t{ci}\t{r['miou']:.4f}\t{r['epochs_run']}\t"
              f"{r['epochs_requested']}\t{r['best_epoch']}\t{r['seconds_per_epoch']}")
    if args.json:
        doc = {"what": args.what or "validation lesion Dice/mIoU at source resolution (nafv-train evaluate-seg --split val) of "
                       "every variant trained with scripts/seg_table_gpu.sh (SGD poly stage, then AdamW 3e-4 poly "
                       "from its best weights; each stage time-budgeted, so epochs_run varies)",
               "device": args.device, "rows": rows, "seed_means": seed_means(rows)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(dumps(doc, label=str(args.json), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
