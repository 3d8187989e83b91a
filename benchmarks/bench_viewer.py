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

With ``--j2k`` it instead writes the demo as eight 3328x4096 12-bit MG DICOMs
twice, JPEG 2000 lossless and uncompressed, and measures in the same run, as
medians of ``--repeats`` cold processes: first view on screen, all eight
images ready at screen resolution and peak memory in the viewer, the whole
``nafv-analyze`` process (wall, CPU, peak memory) on each study and on the
demo, and the first analysis after the viewer opens (the demo; A pressed once the
start-up warm-up is done, whose time from the window opening is reported too):
``first_analysis_after_open_s`` until the contours and score are on screen,
``first_heatmaps_after_open_s`` until the Grad-CAM heatmaps that follow them are.
Written to benchmarks/results/viewer_j2k.json.

    .venv/bin/python benchmarks/bench_viewer.py [--keep DIR] [--frames 40]
    .venv/bin/python benchmarks/bench_viewer.py --j2k [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
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

from core_model.io.jsonsafe import dumps  # noqa: E402
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


J2K = "1.2.840.10008.1.2.4.90"


def write_study_12bit(out: Path, transfer_syntax: str | None = None) -> list[Path]:
    """The demo as eight 3328x4096 12-bit MG DICOMs (``transfer_syntax``: e.g. JPEG 2000 lossless)."""
    from core_model.io import write_mg_dicom
    from core_model.io.naming import parse_cdd_cesm_name

    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in sorted((REPO / "resources" / "demo").glob("*.jpg")):
        info = parse_cdd_cesm_name(f)
        small = Image.open(f).convert("F")
        big = np.asarray(small.resize((COLS, ROWS), Image.BILINEAR), dtype=np.float32)
        px = np.clip(big * 16.0 + rng.normal(0, 4, size=big.shape).astype(np.float32), 0, 4095).astype(np.uint16)
        p = out / f"{f.stem}.dcm"
        write_mg_dicom(p, px, side=info.side, view=info.view, energy=info.energy, patient_id="BENCH66",
                       pixel_spacing_mm=0.07, transfer_syntax=transfer_syntax)
        paths.append(p)
    return paths


def _open_and_paint(app, w, study: Path, timeout_s: float) -> tuple[dict[str, float], float | None]:
    """Open ``study`` in window ``w`` and paint each visible panel as soon as it has its image.

    Returns the seconds from ``open_study`` to each panel painted (by view key) and to ``study_ready``
    (None if it did not come within ``timeout_s``)."""
    panels = w.grid.visible_panels()
    painted: dict[str, float] = {}
    ready = []
    w.study_ready.connect(lambda s: ready.append(time.perf_counter()))
    t0 = time.perf_counter()
    w.open_study(study)
    deadline = t0 + timeout_s
    while (len(painted) < len(panels) or not ready) and time.perf_counter() < deadline:
        app.processEvents()
        for p in panels:
            if p.key not in painted and p.has_image:
                p.graphics.viewport().repaint()  # synchronous paint: the view is on screen now
                painted[p.key] = time.perf_counter() - t0
        time.sleep(0.001)
    return painted, (ready[0] - t0 if ready else None)


def _child_view(study: Path, analyze: bool) -> dict:
    """In a fresh process: open the window, open ``study``, time the views; with ``analyze``, then
    press A as a reader would once the study is on screen and time the first analysis."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    t_start = time.perf_counter()
    app = QApplication.instance() or QApplication(["bench"])
    from nafv_viewer.widgets.main_window import MainWindow

    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    w.review_flow.review_root = Path(tempfile.mkdtemp(prefix="nafv-bench-reviews-"))
    w.resize(1600, 1000)
    w.show()
    if analyze:
        w.warm_analysis()  # as nafv-viewer does at start-up
    for _ in range(5):
        app.processEvents()
    window_s = time.perf_counter() - t_start
    panels = w.grid.visible_panels()
    painted, ready_s = _open_and_paint(app, w, study, timeout_s=300)
    out = {"window_s": round(window_s, 3), "first_view_s": round(min(painted.values()), 3),
           "four_panels_on_screen_s": round(max(painted.values()), 3),
           "all_eight_at_screen_resolution_s": round(ready_s, 3) if ready_s is not None else None,
           "levels_shown": sorted({p.drawn.level for p in panels if p.drawn})}
    if analyze:
        done, heat = [], []
        w.analysis_finished.connect(lambda a: done.append(time.perf_counter()))
        w.analysis_failed.connect(lambda m: done.append(m))
        w.heatmaps_shown.connect(lambda a: heat.append(time.perf_counter()))
        # the reader looks at the images while the warm-up runs; A is pressed once it is done
        w.analysis_warmup.join(600)
        out["warm_up_done_after_window_s"] = round(time.perf_counter() - t_start, 3)
        t1 = time.perf_counter()
        w.run_analysis()
        while not done and time.perf_counter() < t1 + 300:
            app.processEvents()
            time.sleep(0.001)
        out["first_analysis_after_open_s"] = round(done[0] - t1, 3) if done and not isinstance(done[0], str) else done
        # the contours and score are on screen at "done"; the heatmaps follow in the same run
        while w.analyses.running and time.perf_counter() < t1 + 300:
            app.processEvents()
            time.sleep(0.001)
        out["first_heatmaps_after_open_s"] = round(heat[0] - t1, 3) if heat else None
        t2 = time.perf_counter()
        done.clear()
        w.run_analysis()
        while not done and time.perf_counter() < t2 + 300:
            app.processEvents()
            time.sleep(0.001)
        out["second_analysis_s"] = round(done[0] - t2, 3) if done and not isinstance(done[0], str) else done
        while w.analyses.running and time.perf_counter() < t2 + 300:
            app.processEvents()
            time.sleep(0.001)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    w.shutdown()
    return out


def _run_child(cmd: list[str]) -> tuple[dict | None, dict]:
    """Run ``cmd``; (its last stdout line as JSON or None, wall / CPU / peak memory of the process)."""
    import json
    import subprocess

    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    out, err = p.communicate()
    wall = time.perf_counter() - t
    # resource of this one child: wait4 already happened in communicate(), so take the delta of RUSAGE_CHILDREN
    return (json.loads(out.strip().splitlines()[-1]) if p.returncode == 0 and out.strip() and out.strip().splitlines()[-1].startswith("{") else None,
            {"wall_s": wall, "rc": p.returncode, "stderr_tail": err.strip().splitlines()[-1:] if p.returncode else []})


def _process_run(cmd: list[str]) -> dict:
    """Wall, CPU (user + system) and peak RSS of one child process."""
    import subprocess

    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    return {"wall_s": round(wall, 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3), "peak_rss_mb": round(ru.ru_maxrss / 1024),
            "ok": os.waitstatus_to_exitcode(status) == 0, "error": err.strip().splitlines()[-1:] if status else []}


def _median(runs: list[dict], key: str):
    vals = [r[key] for r in runs if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    return round(statistics.median(vals), 3) if vals else None


def compare_j2k(args) -> int:
    """The issue-14 benchmark: JPEG 2000 lossless vs uncompressed full-size study vs the demo, cold runs."""
    import json

    root = args.keep or Path(tempfile.mkdtemp(prefix="nafv-bench-j2k-"))
    studies = {"j2k": root / "j2k", "uncompressed": root / "uncompressed"}
    write_s = {}
    for name, syntax in (("j2k", J2K), ("uncompressed", None)):
        t = time.perf_counter()
        if not list(studies[name].glob("*.dcm")):
            write_study_12bit(studies[name], syntax)
        write_s[name] = round(time.perf_counter() - t, 1)
    sizes = {k: round(sum(f.stat().st_size for f in v.glob("*.dcm")) / 2**20, 1) for k, v in studies.items()}
    py = sys.executable
    viewer: dict[str, list] = {"j2k": [], "uncompressed": [], "demo_analysis_after_open": []}
    analyze: dict[str, list] = {"j2k": [], "uncompressed": [], "demo": []}
    loads = []
    for i in range(args.repeats):
        for name in ("uncompressed", "j2k"):
            res, info = _run_child([py, __file__, "--child-view", str(studies[name])])
            viewer[name].append(res or info)
        res, info = _run_child([py, __file__, "--child-view", str(REPO / "resources" / "demo"), "--child-analyze"])
        viewer["demo_analysis_after_open"].append(res or info)
        for name, path in (("demo", REPO / "resources" / "demo"), ("uncompressed", studies["uncompressed"]), ("j2k", studies["j2k"])):
            out = Path(tempfile.mkdtemp(prefix="nafv-bench-out-"))
            analyze[name].append(_process_run([py, "-m", "core_model.cli.analyze", str(path), "--out", str(out)]))
            shutil.rmtree(out, ignore_errors=True)
        loads.append(round(os.getloadavg()[0], 2))
        print(f"repeat {i + 1}/{args.repeats} done (load {loads[-1]})", file=sys.stderr)

    med = {f"viewer_{k}": {key: _median(v, key) for key in ("first_view_s", "four_panels_on_screen_s", "all_eight_at_screen_resolution_s", "peak_rss_mb", "first_analysis_after_open_s", "first_heatmaps_after_open_s", "second_analysis_s", "warm_up_done_after_window_s")}
           for k, v in viewer.items()}
    med.update({f"nafv_analyze_{k}": {key: _median(v, key) for key in ("wall_s", "cpu_s", "peak_rss_mb")} for k, v in analyze.items()})
    vu, vj = med["viewer_uncompressed"], med["viewer_j2k"]
    an = {k: med[f"nafv_analyze_{k}"] for k in ("demo", "j2k")}

    def ratio(a, b):
        return round(a / b, 2) if a and b else None

    doc = {
        "benchmark": "issue 14: full-size JPEG 2000 lossless vs uncompressed study, and the demo; medians of cold processes",
        "studies": f"demo P66 as 8 DICOM MG {COLS}x{ROWS} 12-bit: JPEG 2000 lossless ({sizes['j2k']} MB) and uncompressed ({sizes['uncompressed']} MB)",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs: see load)",
        "load_average_1min_per_repeat": loads,
        "repeats": args.repeats,
        "write_study_s": write_s,
        "medians": med,
        "ratios": {
            "first_view_j2k_over_uncompressed": ratio(vj["first_view_s"], vu["first_view_s"]),
            "all_eight_j2k_over_uncompressed": ratio(vj["all_eight_at_screen_resolution_s"], vu["all_eight_at_screen_resolution_s"]),
            "nafv_analyze_j2k_over_demo_wall": ratio(an["j2k"]["wall_s"], an["demo"]["wall_s"]),
            "nafv_analyze_j2k_over_demo_cpu": ratio(an["j2k"]["cpu_s"], an["demo"]["cpu_s"]),
        },
        "targets": {"first_view_ratio": 1.5, "all_eight_ratio": 2.0, "peak_rss_mb": 1536, "nafv_analyze_j2k_over_demo": 1.5,
                    "nafv_analyze_demo_wall_s": 5.0, "first_analysis_after_open_s": 1.5},
        "runs": {"viewer": viewer, "nafv_analyze": analyze},
    }
    out = args.out if args.out != REPO / "benchmarks" / "results" / "viewer.json" else REPO / "benchmarks" / "results" / "viewer_j2k.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(doc, label=str(out), indent=1)
    out.write_text(text + "\n")
    print(json.dumps({"medians": med, "ratios": doc["ratios"], "load": loads}, indent=1))
    if args.keep is None:  # two full-size studies: 250 MB
        shutil.rmtree(root, ignore_errors=True)
    return 0


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
    ap.add_argument("--j2k", action="store_true", help="the JPEG 2000 vs uncompressed vs demo comparison (cold processes), "
                    "written to benchmarks/results/viewer_j2k.json")
    ap.add_argument("--repeats", type=int, default=3, help="with --j2k: cold runs of each measurement")
    ap.add_argument("--child-view", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-analyze", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_view is not None:
        import json

        print(json.dumps(_child_view(args.child_view, args.child_analyze)))
        return 0
    if args.j2k:
        return compare_j2k(args)

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

    painted, _ = _open_and_paint(app, w, folder, timeout_s=120)
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
        src.pan_by(dx / src.vb.viewRect().width(), 0.0)

    res["pan_fitted"] = _stats([frame(lambda i=i: pan(20 * (-1) ** (i // 5))) for i in range(n)])
    res["zoom_steps"] = _stats([frame(lambda i=i: src.zoom_by(0.93 if i < n // 2 else 1 / 0.93)) for i in range(n)])
    # Zoom in to about one image pixel per screen pixel: full resolution drawn from level 0.
    box = src.normalized_range()
    src.set_manual_range((0.55, 0.4, 0.55 + src.vb.width() / COLS, 0.4 + src.vb.height() / ROWS))
    app.processEvents()
    levels_used = {p.key: p.drawn.level for p in w.grid.visible_panels() if p.drawn}
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
