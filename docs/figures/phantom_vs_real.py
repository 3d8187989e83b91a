"""Draw docs/figures/phantom_vs_real.png: real CDD-CESM four-view studies beside synthetic ones.

    .venv/bin/python docs/figures/phantom_vs_real.py [--data ../shared/data/cdd-cesm-512/images]

Real images are the two complete studies of the CDD-CESM 512 subset (P66 is
also bundled as resources/demo); synthetic studies are drawn at 512 x 512 so
they are squashed the same way. Hanging order R-CC, L-CC, R-MLO, L-MLO.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from core_model.synth.phantom import MAX_VALUE, generate_case  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ORDER = ("R_CC", "L_CC", "R_MLO", "L_MLO")


def real_rows(folder: Path, pid: str) -> list[tuple[str, list[np.ndarray]]]:
    rows = []
    for energy, kind in (("LE", "DM"), ("RC", "CM")):
        tiles = [np.asarray(Image.open(folder / f"{pid}_{k[0]}_{kind}_{k[2:]}.jpg").convert("L"), np.float32) / 255
                 for k in ORDER]
        rows.append((f"real {pid} {energy}", tiles, ""))
    return rows


def synthetic_rows(seed: int, label: str) -> list[tuple[str, list[np.ndarray]]]:
    case = generate_case(seed, size=(512, 512), label=label)
    rows = []
    for energy in ("le", "rc"):
        tiles = [case.study.get(k, energy).pixels.astype(np.float32) / MAX_VALUE for k in ORDER]
        desc = f"{case.lesions[0].margin}, {case.lesions[0].enhancement}, ACR {case.density}"
        rows.append((f"synthetic {label} {energy.upper()}", tiles, f"lesion {case.affected_side}: {desc}"))
    return rows


def grey_levels(data: Path, n_real: int = 120, n_synthetic: int = 10) -> dict[str, list[float]]:
    """Median over images of the breast-pixel 10th / 50th / 90th percentiles (0..255; breast = pixel > 15)."""
    out: dict[str, list[list[float]]] = {}
    files = sorted(data.glob("*.jpg"))[:n_real]
    for f in files:
        px = np.asarray(Image.open(f).convert("L"), np.float32)
        out.setdefault("real " + ("LE" if "_DM_" in f.name else "RC"), []).append(list(np.percentile(px[px > 15], [10, 50, 90])))
    for seed in range(n_synthetic):
        case = generate_case(seed, size=(256, 256))
        for (key, energy), img in case.study.images.items():
            px = img.pixels.astype(np.float32) / MAX_VALUE * 255
            out.setdefault("synthetic " + energy.upper(), []).append(list(np.percentile(px[px > 15], [10, 50, 90])))
    return {k: [round(float(v), 1) for v in np.median(np.array(rows), axis=0)] for k, rows in sorted(out.items())}


def spectral_slope(px: np.ndarray) -> float | None:
    """Power-law exponent beta (power ~ f^-beta) of a 96 x 96 window at the breast's centre of mass, or None."""
    rr, cc = np.nonzero(px > 0.06)
    if rr.size < 5000:
        return None
    r0, c0 = int(rr.mean()), int(cc.mean())
    roi = px[r0 - 48:r0 + 48, c0 - 48:c0 + 48]
    if roi.shape != (96, 96) or (roi < 0.06).mean() > 0.02:  # window must lie inside the breast
        return None
    win = np.hanning(96)[:, None] * np.hanning(96)[None, :]
    power = np.abs(np.fft.fftshift(np.fft.fft2((roi - roi.mean()) * win))) ** 2
    fy, fx = np.meshgrid(np.arange(-48, 48), np.arange(-48, 48), indexing="ij")
    f = np.hypot(fy, fx) / 96
    band = (f > 0.02) & (f < 0.15)  # cycles per pixel; above that, JPEG and noise dominate
    return float(-np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0])


def spectral_slopes(data: Path, n_real: int = 160, n_synthetic: int = 8) -> dict[str, list[float]]:
    """Quartiles of beta per kind of image: real LE/RC JPEGs of the subset vs phantoms at 512 x 512."""
    out: dict[str, list[float]] = {}
    for f in sorted(data.glob("*.jpg"))[:n_real]:
        b = spectral_slope(np.asarray(Image.open(f).convert("L"), np.float32) / 255)
        if b is not None:
            out.setdefault("real " + ("LE" if "_DM_" in f.name else "RC"), []).append(b)
    for seed in range(n_synthetic):
        case = generate_case(seed, size=(512, 512))
        for (key, energy), img in case.study.images.items():
            b = spectral_slope(img.pixels.astype(np.float32) / MAX_VALUE)
            if b is not None:
                out.setdefault("synthetic " + energy.upper(), []).append(b)
    return {k: [round(float(q), 2) for q in np.percentile(v, [25, 50, 75])] + [len(v)] for k, v in sorted(out.items())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cdd-cesm-512" / "images")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "phantom_vs_real.png")
    ap.add_argument("--seeds", type=int, nargs=2, default=(7, 3), help="seeds of the benign and malignant case")
    args = ap.parse_args()
    left = real_rows(args.data, "P66") + real_rows(args.data, "P313")
    right = synthetic_rows(args.seeds[0], "benign") + synthetic_rows(args.seeds[1], "malignant")
    fig, axes = plt.subplots(4, 8, figsize=(16, 8.8), facecolor="black")
    for r in range(4):
        for half, rows in ((0, left), (1, right)):
            title, tiles, note = rows[r]
            for c, tile in enumerate(tiles):
                ax = axes[r, half * 4 + c]
                ax.imshow(tile, cmap="gray", vmin=0, vmax=1, interpolation="lanczos")
                ax.set_xticks([]), ax.set_yticks([])
                for s in ax.spines.values():
                    s.set_visible(False)
                if c == 0:
                    ax.set_ylabel(title, color="white", fontsize=7)
                    if note:
                        t = ax.text(0.02, 0.01, note, color="white", fontsize=5.5, transform=ax.transAxes,
                                    va="bottom")
                        t.set_in_layout(False)
                if r == 0:
                    ax.set_title(ORDER[c].replace("_", "-"), color="white", fontsize=8)
    fig.suptitle("Real CDD-CESM (left, 512x512 as distributed) vs synthetic phantom (right, drawn at 512x512)",
                 color="white", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=0.2, w_pad=0.1)
    fig.savefig(args.out, dpi=110, facecolor="black")
    print(args.out)
    for name, levels in grey_levels(args.data).items():
        print(f"{name}: breast-pixel p10/p50/p90 = {levels}")
    for name, q in spectral_slopes(args.data).items():
        print(f"{name}: spectral slope beta quartiles = {q[:3]} over {q[3]} images")


if __name__ == "__main__":
    main()
