"""``nafv-viewer``: open the reading window, or render it headless to a PNG (--screenshot).

    nafv-viewer [PATH [--patient ID] | --demo | --server URL] [--analyze] [--layout 4up|8up|1up] [--energy le|rc]
                [--screenshot OUT.png [--review-demo]] [--seg-weights F] [--cls-weights F]

With --screenshot the window is rendered offscreen (when there is no display),
saved, and the program exits 0; a study or analysis that cannot be done prints
one line on stderr and exits 2. A screenshot run keeps its review (and the AI's
proposals) in a temporary folder removed at exit: it never reads or writes the
reader's saved reviews, nor their settings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from core_model.domain.study import ENERGIES
from nafv_viewer.qt_compat import pin_bools_if_needed
from nafv_viewer.state import LAYOUTS

SCREENSHOT_TIMEOUT_S = 300.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nafv-viewer", description="Contrast-enhanced mammography viewer (research use, not for clinical use).")
    p.add_argument("path", nargs="?", help="study folder (DICOM, CDD-CESM names, or named PNG/JPEG/TIFF)")
    p.add_argument("--demo", action="store_true", help="open the bundled demo study")
    p.add_argument("--patient", help="patient to open when the folder holds several (e.g. P12)")
    p.add_argument("--analyze", action="store_true", help="run the AI analysis once the study is open")
    p.add_argument("--layout", choices=LAYOUTS, default=None)
    p.add_argument("--energy", choices=ENERGIES, default=None)
    p.add_argument("--screenshot", metavar="OUT.png", help="render the window offscreen, save it, exit")
    p.add_argument("--review-demo", action="store_true",
                   help="with --screenshot --analyze: show a review in progress (first finding edited, one rejected, "
                        "one selected); like every screenshot run, kept in a temporary folder, never in your saved reviews")
    p.add_argument("--size", default="1600x1000", help="window size for --screenshot, WxH (default 1600x1000)")
    p.add_argument("--server", metavar="URL",
                   help="search a PACS over DICOMweb (e.g. http://pacs:8042/dicom-web); credentials from "
                        "NAFV_DICOMWEB_TOKEN or NAFV_DICOMWEB_USER/NAFV_DICOMWEB_PASSWORD, or asked for")
    p.add_argument("--seg-weights", help="segmentation weights (.safetensors with its .json card)")
    p.add_argument("--cls-weights", help="classifier weights (.safetensors with its .json card)")
    return p


def _analyzer_factory(args):
    if not (args.seg_weights or args.cls_weights):
        return None  # the window's default: shipped weights

    def factory():
        from core_model.inference.analyzer import Analyzer

        return Analyzer(seg_weights=args.seg_weights, cls_weights=args.cls_weights)

    return factory


def _wait_for(signals: dict, timeout_s: float):
    """Run the event loop until one of ``signals`` (name -> Signal) fires; return (name, args)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    result: list = []

    def make(name):
        def fire(*a):
            if not result:
                result.append((name, a))
            loop.quit()

        return fire

    for name, sig in signals.items():
        sig.connect(make(name))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    return result[0] if result else ("timeout", ())


def _review_in_progress(window) -> None:
    """Edit the review the way a reader would, for a documentation screenshot (see --review-demo)."""
    from core_model.review.model import MoveVertex

    ctl = window.review_flow.controller
    if ctl is None or not ctl.review.findings:
        return
    findings = list(ctl.review.findings.values())
    first = findings[0]
    x, y = first.polygon[0]
    ctl.push(MoveVertex(first.id, 0, (x - 12.0, y - 12.0)))  # a vertex moved: the finding is "edited"
    if len(findings) > 2:
        ctl.select(findings[-1].id)
        ctl.reject_selected()
    ctl.select(findings[1].id if len(findings) > 1 else first.id)
    ctl.accept_selected()
    window.review_tabs.setCurrentWidget(window.review_flow.findings_panel)


def _screenshot(window, app, path: Path | None, out: Path, analyze: bool, patient: str | None = None,
                review_demo: bool = False) -> int:
    w, h = window._screenshot_size
    window.resize(w, h)
    window.show()
    app.processEvents()
    if path is not None:
        window.open_study(path, patient)
        name, a = _wait_for(
            {"ready": window.study_ready, "failed": window.study_failed, "patients": window.patients_offered},
            SCREENSHOT_TIMEOUT_S,
        )
        if name == "patients":
            shown = ", ".join(a[0][:10]) + (" …" if len(a[0]) > 10 else "")
            print(f"nafv-viewer: {path} holds {len(a[0])} patients ({shown}); choose one with --patient", file=sys.stderr)
            return 2
        if name != "ready":
            print(f"nafv-viewer: {a[0] if a else 'timed out opening the study'}", file=sys.stderr)
            return 2
        if analyze:
            window.run_analysis()
            name, a = _wait_for(
                {"done": window.analysis_finished, "failed": window.analysis_failed, "cancelled": window.analysis_cancelled},
                SCREENSHOT_TIMEOUT_S,
            )
            if name != "done":
                print(f"nafv-viewer: analysis failed: {a[0] if a else name}", file=sys.stderr)
                return 2
            if window.analyses.running:  # the heatmaps follow the contours and score: the picture shows them
                name, a = _wait_for({"shown": window.heatmaps_shown, "dropped": window.analyses.heatmaps_dropped},
                                    SCREENSHOT_TIMEOUT_S)
                if name != "shown":
                    print(f"nafv-viewer: no heatmaps in the picture: {a[0] if a else 'timed out'}", file=sys.stderr)
            if review_demo:
                _review_in_progress(window)
    for _ in range(3):
        app.processEvents()
    window.grid.reset_zoom()
    app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(out)):
        print(f"nafv-viewer: could not write {out}", file=sys.stderr)
        return 2
    print(f"saved {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    pin_bools_if_needed()  # already done by importing nafv_viewer; idempotent, kept visible at the entry point
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage line
        return int(exc.code or 0)
    if sum(bool(x) for x in (args.demo, args.path, args.server)) > 1:
        print("nafv-viewer: give one of PATH, --demo or --server", file=sys.stderr)
        return 2
    if args.server and args.screenshot:
        print("nafv-viewer: --server opens a search dialog; it cannot be used with --screenshot", file=sys.stderr)
        return 2
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2 and min(size) > 100
    except (ValueError, AssertionError):
        print(f"nafv-viewer: --size must look like 1600x1000, not {args.size!r}", file=sys.stderr)
        return 2
    if args.path and not Path(args.path).exists():
        # Answer before Qt starts: a typo should not cost the start-up time.
        print(f"nafv-viewer: {args.path}: no such file or folder", file=sys.stderr)
        return 2
    headless = args.screenshot is not None
    if args.review_demo:
        if not (headless and args.analyze):
            print("nafv-viewer: --review-demo needs --screenshot and --analyze", file=sys.stderr)
            return 2
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and not has_display:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif sys.platform.startswith("linux") and not has_display and not os.environ.get("QT_QPA_PLATFORM"):
        # Qt would abort with a plugin message a reader cannot act on.
        print("nafv-viewer: no display found (DISPLAY / WAYLAND_DISPLAY unset): run it in a desktop session or "
              "under xvfb-run, or render to a file with --screenshot OUT.png", file=sys.stderr)
        return 2

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from core_model.domain.resources import DEMO_DIR
    from nafv_viewer.widgets.main_window import MainWindow

    app = QApplication.instance() or QApplication(["nafv-viewer"])
    settings = None
    if headless:  # a headless render must not touch the reader's recent list or settings
        settings = QSettings(str(Path(tempfile.mkdtemp(prefix="nafv-viewer-")) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(analyzer_factory=_analyzer_factory(args), settings=settings)
    window._screenshot_size = size
    if args.layout:
        window.state.layout = args.layout
    if args.energy:
        window.state.energy = args.energy
    path = DEMO_DIR if args.demo else (Path(args.path) if args.path else None)
    if headless:
        if args.analyze:
            window.state.auto_analyze = False  # run exactly once, below
        # The window saves the review of the study it shows (and adds the AI's proposals to it):
        # a render is not a reading, so that goes to a folder of its own.
        reviews = Path(tempfile.mkdtemp(prefix="nafv-screenshot-reviews-"))
        window.review_flow.review_root = reviews
        try:
            code = _screenshot(window, app, path, Path(args.screenshot), args.analyze, args.patient, args.review_demo)
        finally:
            window.shutdown()
            window.close()
            shutil.rmtree(reviews, ignore_errors=True)
        _exit_past_stuck_threads(code)
        return code
    window.show()
    window.warm_analysis()  # weights and first passes while the reader looks at the images
    if args.server:
        window.open_from_server(args.server)
    if path is not None:
        if args.analyze:  # the study named on the command line only, not later opens

            def analyze_once(_study) -> None:
                window.study_ready.disconnect(analyze_once)
                window.run_analysis()

            window.study_ready.connect(analyze_once)
        window.open_study(path, args.patient)
    code = app.exec()  # closing the window cancelled and waited for its jobs
    _exit_past_stuck_threads(code)
    return code


def _exit_past_stuck_threads(code: int) -> None:
    """Leave at once when a job thread is still blocked after the window's wait.

    Python would destroy that QThread on the way out, which aborts with a Qt
    message instead of the program's exit code.
    """
    from nafv_viewer.worker import threads_still_running

    if threads_still_running():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
