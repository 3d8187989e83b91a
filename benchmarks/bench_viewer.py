"""Viewer speed on full-size mammograms: time to first view / all views, frame times, peak memory.

Writes eight 3328x4096 16-bit DICOM MG files made from the demo study (each
image upscaled, values spread over 16 bits, a little noise so nothing is
artificially flat), opens them in the real window offscreen and measures:

- first_view_s / all_views_s: from ``open_study`` to the first / every panel
  painted with its image;
- frame times (ms) of window/level changes and of pan/zoom steps, whole grid
  repainted each frame, at the fitted zoom and zoomed in to full resolution;
- peak resident memory of the process (MB).

Prints figures as JSON and writes them to benchmarks/results/viewer.json.
Figures, not assertions: run it alone on a quiet machine.

    .venv/bin/python benchmarks/bench_viewer.py [--keep DIR] [--frames 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_model.jsonsafe import dumps  # noqa: E402
ROWS, COLS = 4096, 3328


def write_study(out: Path) -> list[Path]:
    from core_model.io import write_mg_dicom
    from core_model.io.naming import parse_cdd_cesm_name

    rng = np.random.default_rng(0)
    paths = []
    for f in sorted((REPO / "resources" / "demo").glob("*.jpg")):
        info = parse_cdd_cesm_name(f)
        small = Image.open(f).convert("F")
        big = np.asarray(small.resize((COLS, ROWS), Image.BILINEAR), dtype=np.float32)
        px = big * 257.0 + rng.normal(0, 60, size=big.shape).astype(np.float32)
        px = np.clip(px, 0, 65535).astype(np.uint16)
        p = out / f"{f.stem}.dcm"
        write_mg_dicom(p, px, side=info.side, view=info.view, energy=info.energy, patient_id="BENCH66", pixel_spacing_mm=0.07)
        paths.append(p)
    return paths


def _stats(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
        "max_ms": round(ms[-1], 2),
        "frames": len(ms),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, help="write the DICOM study here (kept) instead of a temp folder")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "viewer.json")
    args = ap.parse_args(argv)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="nafv-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if not list(folder.glob("*.dcm")):
        write_study(folder)
    write_s = time.perf_counter() - t

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["bench"])
    from PySide6.QtCore import QSettings

    from nafv_viewer.widgets.main_window import MainWindow

    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    t_window = time.perf_counter()
    w = MainWindow(settings=settings)
    w.resize(1600, 1000)
    w.show()
    for _ in range(5):
        app.processEvents()
    w.warmup.join(10)  # a reader does not open a study within the first second either
    warm_s = time.perf_counter() - t_window
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    panels = w.grid.visible_panels()
    painted: dict[str, float] = {}
    ready = []
    w.study_ready.connect(lambda s: ready.append(s))
    t0 = time.perf_counter()
    w.open_study(folder)
    deadline = t0 + 120
    while (len(painted) < len(panels) or not ready) and time.perf_counter() < deadline:
        app.processEvents()
        for p in panels:
            if p.key not in painted and p.has_image:
                p.graphics.viewport().repaint()  # synchronous paint: the view is on screen now
                painted[p.key] = time.perf_counter() - t0
        time.sleep(0.001)
    if w.last_error:
        print(f"bench: {w.last_error}", file=sys.stderr)
        return 2
    first_view_s = min(painted.values())
    all_views_s = max(painted.values())

    def frame(action) -> float:
        s = time.perf_counter()
        action()
        for p in w.grid.visible_panels():
            p.graphics.viewport().repaint()
        return (time.perf_counter() - s) * 1000

    st = w.state
    n = args.frames
    res = {}
    res["window_level_fitted"] = _stats([frame(lambda i=i: st.adjust_window(st.energy, 0.01 * (-1) ** i, 0.02 * (-1) ** i)) for i in range(n)])
    src = w.grid.panels4["R_CC"]

    def pan(dx):
        src.vb.translateBy(x=dx, y=0)
        src._on_manual_range()

    res["pan_fitted"] = _stats([frame(lambda i=i: pan(20 * (-1) ** (i // 5))) for i in range(n)])
    res["zoom_steps"] = _stats([frame(lambda i=i: src.zoom_by(0.93 if i < n // 2 else 1 / 0.93)) for i in range(n)])
    # Zoom in to about one image pixel per screen pixel: full resolution drawn from level 0.
    box = src.normalized_range()
    src.set_normalized_range((0.55, 0.4, 0.55 + src.vb.width() / COLS, 0.4 + src.vb.height() / ROWS))
    src._on_manual_range()
    app.processEvents()
    levels_used = {p.key: p._lod_key[1] for p in w.grid.visible_panels() if p._lod_key}
    res["window_level_full_resolution"] = _stats([frame(lambda i=i: st.adjust_window(st.energy, 0.01 * (-1) ** i, 0.0)) for i in range(n)])
    res["pan_full_resolution"] = _stats([frame(lambda i=i: pan(15 * (-1) ** (i // 5))) for i in range(n)])
    res["energy_switch"] = _stats([frame(st.toggle_energy) for _ in range(10)])
    src.set_normalized_range(box)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "study": f"8 DICOM MG, {COLS}x{ROWS}, 16-bit, uncompressed (demo P66 upscaled)",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, offscreen Qt {__import__('PySide6').__version__}",
        "window": "1600x1000, 4-up",
        "load_average_1min": round(os.getloadavg()[0], 2),  # other jobs on the machine skew frame times
        "write_dicoms_s": round(write_s, 2),
        "study_read_s": round(w.load_timings.get("study_read_s", float("nan")), 3),
        "window_ready_s": round(warm_s, 3),
        "first_view_s": round(first_view_s, 3),
        "all_views_s": round(all_views_s, 3),
        "all_images_prepared_s": round(w.load_timings.get("all_images_s", float("nan")), 3),
        "pyramid_level_when_zoomed_in": levels_used,
        "frames": res,
        "rss_before_open_mb": round(rss_before_mb),
        "peak_rss_mb": round(peak_mb),
        "targets": {"first_view_s": 1.0, "all_views_s": 3.0, "frame_ms": 16, "peak_rss_mb": 2048},
    }
    w.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(out, label=str(args.out), indent=2)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
