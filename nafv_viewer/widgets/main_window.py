"""The reading window: hanging grid, side panel, menus, shortcuts, opening studies, running the analysis.

Wiring only: loading and analysis run as jobs (nafv_viewer.worker) off the GUI
thread; display choices live in ViewerState; the panels draw. Errors a reader
can act on appear as a message box and in the status bar as one line (the
files a failed open skipped go to the box's details), and the window stays
usable. Closing cancels running jobs and joins their threads.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QSettings, Qt, QThread, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLabel, QMainWindow, QMenu, QSplitter, QTabWidget, QVBoxLayout, QWidget

from core_model.domain.resources import DEMO_DIR
from core_model.domain.study import VIEW_KEYS, Study
from nafv_viewer.display import DisplayImage, build_display_image
from nafv_viewer.hanging import Flips
from nafv_viewer.state import PRESETS, ViewerState
from nafv_viewer.widgets.dialogs import ShortcutsDialog, show_error
from nafv_viewer.widgets.review_editor import ReviewEditor
from nafv_viewer.widgets.review_workflow import ReviewWorkflow
from nafv_viewer.widgets.unassigned_strip import UnassignedPlacement, UnassignedStrip
from nafv_viewer.widgets.side_panel import SidePanel
from nafv_viewer.widgets.theme import DARK_QSS
from nafv_viewer.widgets.view_grid import ViewGrid
from nafv_viewer.worker import (
    AnalysisJob,
    AnalyzerFactory,
    StudyLoader,
    StudyLoadJob,
    default_analyzer_factory,
    keep_until_finished,
    start_job,
)

MAX_RECENT = 10


def _warm_imports() -> None:
    # The DICOM stack (pydicom and its decoders) takes ~0.7 s to import; doing it
    # while the reader looks at the empty window keeps it out of the first open.
    try:
        import core_model.io  # noqa: F401
    except Exception:  # the real open reports any problem
        pass


def _no_return(fn: Callable[[], Any]) -> Callable[..., None]:
    """Slot wrapper that ignores the signal's arguments and returns None.

    PySide mishandles reference counts of values returned from Python slots
    (``close()`` returns a bool), so no slot here returns anything.
    """

    def slot(*_args) -> None:
        fn()

    return slot
APP_NAME = "NaFV Viewer"


class MainWindow(QMainWindow):
    study_opened = Signal(object)  # Study, as soon as its slots are known
    study_ready = Signal(object)  # Study, every image on screen
    study_failed = Signal(str)
    patients_offered = Signal(list)  # a folder of several patients: the reader picks one
    analysis_finished = Signal(object)
    analysis_failed = Signal(str)
    analysis_cancelled = Signal()

    def __init__(
        self,
        state: ViewerState | None = None,
        analyzer_factory: AnalyzerFactory | None = None,
        study_loader: StudyLoader | None = None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.state = state or ViewerState()
        self.settings = settings or QSettings("NaFV", APP_NAME)
        self.study_loader = study_loader
        self._analyzer_factory = analyzer_factory or default_analyzer_factory
        self._analyzer = None
        self._analyzer_lock = threading.Lock()
        self.study: Study | None = None
        self.study_path: Path | None = None
        self.analysis = None
        self.last_error: str | None = None
        self.error_box = None
        self.load_timings: dict[str, float] = {}
        self._load_job: StudyLoadJob | None = None
        self._analysis_job: AnalysisJob | None = None
        self._threads: list[QThread] = []
        self._t_open = 0.0
        self._preview: DisplayImage | None = None

        self.state.auto_analyze = self.settings.value("auto_analyze", False, type=bool)
        self.grid = ViewGrid(self.state)
        self.side = SidePanel(self.state)
        # The review (findings list, assessment) gets its own column: under the side
        # panel it would push the clinical-use notice out of sight. Views are
        # portrait, so the grid loses little by being narrower.
        self.review_tabs = QTabWidget()
        self.review_tabs.setMinimumWidth(330)
        split = QSplitter(Qt.Orientation.Horizontal)
        # Images whose view the files do not say wait under the views, to be dragged onto one.
        self.unassigned_strip = UnassignedStrip()
        views = QWidget()
        views_lay = QVBoxLayout(views)
        views_lay.setContentsMargins(0, 0, 0, 0)
        views_lay.addWidget(self.grid, 1)
        views_lay.addWidget(self.unassigned_strip)
        split.addWidget(views)
        split.addWidget(self.side)
        split.addWidget(self.review_tabs)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setStretchFactor(2, 0)
        split.setSizes([930, 310, 360])
        self.editor = ReviewEditor(self)
        for p in self.grid.all_panels():
            self.editor.attach(p)
        self.review_flow = ReviewWorkflow(self)
        self.placement = UnassignedPlacement(self, self.unassigned_strip)
        self.setCentralWidget(split)
        self.cursor_label = QLabel("")
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_NAME)
        self.resize(1600, 1000)
        self.setStyleSheet(DARK_QSS)  # children and the dialogs the window opens inherit it

        for p in self.grid.all_panels():
            p.cursor_info.connect(self.cursor_label.setText)
        self.side.run_requested.connect(self.run_analysis)
        self.side.cancel_requested.connect(self.cancel_analysis)
        self.state.subscribe(self._on_state)
        self._build_actions()
        self.warmup = threading.Thread(target=_warm_imports, name="nafv-warm-imports", daemon=True)
        self.warmup.start()
        self.analysis_warmup: threading.Thread | None = None

    def warm_analysis(self) -> threading.Thread:
        """Load the weights and run one small analysis in a background thread (see core_model.inference.warmup).

        Called at start-up by the application, so the reader's first analysis runs
        at warm speed; an analysis asked for meanwhile waits for it (its progress
        says "loading the model"). Any failure is left for the real run to report.
        """
        if self.analysis_warmup is None:
            def work() -> None:
                try:
                    from core_model.inference.warmup import warm_up

                    with self._analyzer_lock:
                        if self._analyzer is None:
                            self._analyzer = self._analyzer_factory()
                        warm_up(self._analyzer)
                except Exception:  # noqa: BLE001 - the real analysis reports it
                    pass

            self.analysis_warmup = threading.Thread(target=work, name="nafv-warm-analysis", daemon=True)
            self.analysis_warmup.start()
        return self.analysis_warmup

    # -- actions and shortcuts --------------------------------------------------------
    def _shortcut_table(self) -> list[tuple[str, str, str, Callable[[], Any]]]:
        s = self.state
        rows = [
            ("file", "Ctrl+O", "Open a study folder…", self.open_dialog),
            ("view", "E", "Switch energy LE ↔ RC (geometry kept)", s.toggle_energy),
            ("view", "L", "Next layout (4-up, 8-up, 1-up)", s.cycle_layout),
            ("view", "4", "4-up layout", lambda: setattr(s, "layout", "4up")),
            ("view", "8", "8-up layout (LE and RC side by side)", lambda: setattr(s, "layout", "8up")),
            ("view", "1", "1-up layout (active view)", lambda: setattr(s, "layout", "1up")),
            ("view", "Tab", "Next view (active view for 1-up)", self.next_view),
            ("view", "Y", "Sync zoom/pan across views on/off", lambda: s.toggle("sync")),
            ("view", "I", "Invert grey levels", lambda: s.toggle("invert")),
            ("view", "Home", "Reset zoom, pan, window/level and invert", self.reset_view),
            ("view", "M", "Magnifier on/off", lambda: s.toggle("magnifier")),
            ("view", "B", "Blink LE/RC of each view", lambda: self._toggle_compare("blink")),
            ("view", "W", "Swipe LE/RC (divider follows the cursor)", lambda: self._toggle_compare("swipe")),
            ("view", "Ctrl+H", "Mirror the active view left-right (if it is hung wrongly)", lambda: self.flip_active(True)),
            ("view", "Ctrl+V", "Flip the active view top-bottom (if it is hung wrongly)", lambda: self.flip_active(False)),
            ("view", "+", "Zoom in", lambda: self.zoom(0.8)),
            ("view", "-", "Zoom out", lambda: self.zoom(1.25)),
            ("view", "Up", "Window level up (brighter)", lambda: s.adjust_window(s.energy, -0.05, 0.0)),
            ("view", "Down", "Window level down (darker)", lambda: s.adjust_window(s.energy, 0.05, 0.0)),
            ("view", "Left", "Narrower window (more contrast)", lambda: s.adjust_window(s.energy, 0.0, -0.25)),
            ("view", "Right", "Wider window (less contrast)", lambda: s.adjust_window(s.energy, 0.0, 0.25)),
            ("view", "Shift+Left", "Pan left", lambda: self.pan(-0.1, 0.0)),
            ("view", "Shift+Right", "Pan right", lambda: self.pan(0.1, 0.0)),
            ("view", "Shift+Up", "Pan up", lambda: self.pan(0.0, -0.1)),
            ("view", "Shift+Down", "Pan down", lambda: self.pan(0.0, 0.1)),
        ]
        for i in range(4):
            rows.append(("view", f"F{i + 5}", f"Window preset {i + 1} (per energy)", lambda i=i: self.preset(i)))
        rows += [
            ("analysis", "Ctrl+Return", "Run the AI analysis", self.run_analysis),
            ("analysis", "Esc", "Cancel the contour being drawn, else the running analysis", self._key_escape),
            ("analysis", "C", "Lesion contours on/off", lambda: s.toggle("show_contours")),
            ("analysis", "H", "Heatmap on/off", lambda: s.toggle("show_heatmap")),
            ("analysis", "]", "Heatmap more opaque", lambda: self.change_opacity(0.1)),
            ("analysis", "[", "Heatmap more transparent", lambda: self.change_opacity(-0.1)),
        ]
        rows += self.review_flow.shortcut_rows()
        rows += [
            ("help", "F1", "Keyboard shortcuts", self.show_shortcuts),
            ("file", "Ctrl+Q", "Quit", self.close),
        ]
        return rows

    def _build_actions(self) -> None:
        menus = {
            "file": self.menuBar().addMenu("&File"),
            "view": self.menuBar().addMenu("&View"),
            "analysis": self.menuBar().addMenu("&Analysis"),
            "review": self.menuBar().addMenu("&Review"),
            "help": self.menuBar().addMenu("&Help"),
        }
        self.actions_by_key: dict[str, QAction] = {}
        self.shortcut_rows: list[tuple[str, str]] = []
        for menu, key, text, slot in self._shortcut_table():
            act = QAction(text, self)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(_no_return(slot))
            menus[menu].addAction(act)
            self.addAction(act)  # shortcuts work with the menu bar hidden too
            self.actions_by_key[key] = act
            self.shortcut_rows.append((key, text))
        self.shortcut_rows.append(("Right-drag / Ctrl+left-drag", "Window/level: left-right = width, up-down = level"))
        self.shortcut_rows.append(("Left-drag / wheel", "Pan / zoom at the cursor"))
        self.shortcut_rows.append(("Click a view", "Make it the active view"))
        self.shortcut_rows += self.review_flow.mouse_rows()
        self.review_flow.add_menu_options(menus["file"])
        self.recent_menu = QMenu("Open &recent", self)
        menus["file"].insertMenu(menus["file"].actions()[1], self.recent_menu)
        self._rebuild_recent()
        demo = QAction("Open the demo study", self)
        demo.triggered.connect(_no_return(lambda: self.open_study(DEMO_DIR)))
        menus["file"].insertAction(menus["file"].actions()[1], demo)
        remote = QAction("Open from server…", self)
        remote.triggered.connect(_no_return(self.open_from_server))
        menus["file"].insertAction(menus["file"].actions()[1], remote)

    def show_shortcuts(self) -> ShortcutsDialog:
        self.shortcuts_dialog = ShortcutsDialog(self.shortcut_rows, self)
        self.shortcuts_dialog.open()
        return self.shortcuts_dialog

    def _key_escape(self) -> None:
        if not self.editor.cancel_draw():
            self.cancel_analysis()

    def _toggle_compare(self, mode: str) -> None:
        self.state.compare = "off" if self.state.compare == mode else mode

    def next_view(self) -> None:
        i = VIEW_KEYS.index(self.state.active_view)
        self.state.active_view = VIEW_KEYS[(i + 1) % len(VIEW_KEYS)]

    def reset_view(self) -> None:
        self.state.reset_display()
        self.grid.reset_zoom()

    def zoom(self, factor: float) -> None:
        panel = self.grid.panel(self.state.active_view)
        if panel.has_image:
            panel.zoom_by(factor)

    def flip_active(self, horizontal: bool) -> None:
        """The reader's correction when the tags or the pixels misled the hanging (both energies)."""
        key = self.state.active_view
        if self.study is None:
            return
        for energy in ("le", "rc"):
            image = self.study.get(key, energy)
            shown = self.grid.panels8[(key, energy)].images.get(energy)
            if image is None or shown is None:
                continue
            f = shown.flips
            flips = Flips(f.horizontal != horizontal, f.vertical != (not horizontal), "reader")
            self.grid.add_image(build_display_image(image, key, flips=flips))
        for p in self.grid.all_panels():
            if p.key == key:
                p.reset_zoom()
        self.statusBar().showMessage(f"{key.replace('_', '-')} flipped by the reader")

    def pan(self, fx: float, fy: float) -> None:
        """Move the active view by a fraction of what is visible (the others follow when synced)."""
        panel = self.grid.panel(self.state.active_view)
        if panel.has_image:
            r = panel.vb.viewRect()
            panel.vb.translateBy(x=fx * r.width(), y=fy * r.height())
            panel._on_manual_range()

    def preset(self, index: int) -> None:
        names = list(PRESETS[self.state.energy])
        if index < len(names):
            self.state.apply_preset(names[index])

    def change_opacity(self, delta: float) -> None:
        self.state.heatmap_opacity = round(min(1.0, max(0.0, self.state.heatmap_opacity + delta)), 2)

    def _on_state(self, name: str, value: Any) -> None:
        if name == "auto_analyze":
            self.settings.setValue("auto_analyze", bool(value))

    # -- recent studies ---------------------------------------------------------------
    def recent_studies(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: Path) -> None:
        p = str(Path(path).resolve())
        recent = [p] + [r for r in self.recent_studies() if r != p]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_studies()
        for p in recent:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(_no_return(lambda p=p: self.open_study(p)))
        self.recent_menu.setEnabled(bool(recent))

    # -- opening a study ------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = str(self.study_path.parent) if self.study_path else ""
        path = QFileDialog.getExistingDirectory(self, "Open a study folder", start)
        if path:
            self.open_study(path)

    def open_from_server(self, url: str = ""):
        """Show the PACS search dialog; the study it retrieves opens from the local cache like any folder."""
        from nafv_viewer.widgets.server_dialog import ServerDialog

        dialog = ServerDialog(url or str(self.settings.value("server_url", "") or ""), self)

        def retrieved(path) -> None:
            self.settings.setValue("server_url", dialog.url.text().strip())  # the address only, never credentials
            self.open_study(path)

        dialog.study_retrieved.connect(retrieved)
        dialog.show()
        self.server_dialog = dialog
        return dialog

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            p = Path(urls[0])
            self.open_study(p if p.is_dir() else p.parent)
            event.acceptProposedAction()

    def open_study(self, path: str | Path, patient: str | None = None) -> None:
        """Start loading ``path``; panels fill in as images arrive. Errors go to :meth:`show_error`."""
        path = Path(path)
        self._drop_analysis()  # its result would belong to the previous study
        if self._load_job is not None:
            self._load_job.cancel()
        self._t_open = time.perf_counter()
        self.load_timings = {}
        self._preview = None
        self.statusBar().showMessage(f"Opening {path} …")
        job = StudyLoadJob(path, loader=self.study_loader, first_energy=self.state.energy, patient=patient,
                           prepare=self.review_flow.hang_saved_assignments)
        self._load_job = job
        # Bound methods of this window: queued to the GUI thread. Signals of a
        # superseded job (a newer open replaced it) are ignored there.
        job.preview_ready.connect(self._on_preview)
        job.study_loaded.connect(self._on_study_loaded)
        job.image_ready.connect(self._on_image_ready)
        job.finished.connect(self._on_study_ready)
        job.errored.connect(self._on_study_error)
        job.several_patients.connect(self._on_several_patients)
        self._track(start_job(job, self))

    def _track(self, thread: QThread) -> None:
        self._threads.append(thread)

        def forget(t=thread) -> None:
            if t in self._threads:
                self._threads.remove(t)

        thread.finished.connect(forget)

    def _current(self, job) -> bool:
        return job is not None and self.sender() is job

    @Slot(object)
    def _on_preview(self, image: DisplayImage) -> None:
        if not self._current(self._load_job):
            return
        self.grid.begin_study(None)
        self._preview = image
        self._on_image_ready(image, check=False)

    @Slot(object)
    def _on_study_loaded(self, study: Study) -> None:
        if not self._current(self._load_job):
            return
        path = self._load_job.path
        self.load_timings["study_read_s"] = time.perf_counter() - self._t_open
        self._drop_analysis()  # none may run on the study being replaced
        self.study = study
        self.study_path = path
        self.analysis = None
        self.review_flow.close()
        self.grid.begin_study(study, keep=self._preview)
        self.side.show_study(study)
        self.placement.show_study(study)
        self.setWindowTitle(f"{APP_NAME} — {study.patient_id} ({path.name})")
        self._remember(path)  # the folder; a multi-patient folder asks again on reopening
        self.study_opened.emit(study)

    @Slot(object)
    def _on_image_ready(self, image: DisplayImage, check: bool = True) -> None:
        if check and not self._current(self._load_job):
            return
        self.grid.add_image(image)
        if "first_image_s" not in self.load_timings:
            self.load_timings["first_image_s"] = time.perf_counter() - self._t_open

    @Slot(object)
    def _on_study_ready(self, study: Study) -> None:
        if not self._current(self._load_job):
            return
        self._load_job = None
        self.load_timings["all_images_s"] = time.perf_counter() - self._t_open
        msg = f"{study.summary()} — on screen in {self.load_timings['all_images_s']:.2f} s"
        if study.warnings:
            msg += f"; {len(study.warnings)} warning(s) (see side panel)"
        self.statusBar().showMessage(msg)
        review = self.review_flow.open(study, None)  # a saved review comes back without running the analysis
        if review is not None and review.ai.get("ran"):
            self.side.show_saved_ai(review)  # the side panel says what the Assessment tab shows
        if review is not None and review.ai.get("affected_side_source") == "caller":
            # the reader chose the breast last time: the next run (auto-analyse too) keeps that choice
            self.side.set_affected_side_choice(review.ai.get("affected_side"))
        self.study_ready.emit(study)
        if self.state.auto_analyze:
            self.run_analysis()

    @Slot(str)
    def _on_study_error(self, message: str) -> None:
        if not self._current(self._load_job):
            return
        self._load_job = None
        self.show_error("Cannot open the study", message)
        self.study_failed.emit(self.last_error)

    @Slot(list)
    def _on_several_patients(self, patients: list) -> None:
        if not self._current(self._load_job):
            return
        path = self._load_job.path
        self._load_job = None
        self.statusBar().showMessage(f"{path} holds {len(patients)} patients: choose one")
        box = QInputDialog(self)
        box.setWindowTitle("Choose a patient")
        box.setLabelText(f"{path.name} holds {len(patients)} patients. Open:")
        box.setComboBoxItems([str(p) for p in patients])
        box.textValueSelected.connect(_no_return(lambda: self.open_study(path, box.textValue())))
        box.open()  # non-blocking: the window stays usable
        self.patient_box = box
        self.patients_offered.emit(list(patients))

    def show_error(self, title: str, message: str) -> None:
        """One line in the status bar and the box, as the CLI prints it; further lines (skipped files) as details."""
        line, _, details = str(message).strip().partition("\n")
        self.last_error = line
        self.statusBar().showMessage(f"{title}: {line}")
        self.error_box = show_error(self, title, line, details.strip() or None)

    # -- analysis -------------------------------------------------------------------------------
    def _cached_analyzer(self):
        # Weights load once per window (in the job's thread), then every run reuses them.
        with self._analyzer_lock:
            if self._analyzer is None:
                self._analyzer = self._analyzer_factory()
            return self._analyzer

    @property
    def analysis_running(self) -> bool:
        return self._analysis_job is not None

    def run_analysis(self) -> None:
        if self.study is None:
            self.show_error("Nothing to analyse", "Open a study first.")
            return
        if self._load_job is not None:
            # self.study is still the previous patient's: analysing it now would
            # put the wrong patient's findings on the study being opened.
            self.statusBar().showMessage("A study is still opening: run the analysis when it is on screen")
            return
        if self._analysis_job is not None:
            return
        job = AnalysisJob(self.study, self._cached_analyzer, affected_side=self.side.affected_side_choice())
        self._analysis_job = job
        job.progress.connect(self._on_analysis_progress)
        job.finished.connect(self._on_analysis_done)
        job.errored.connect(self._on_analysis_error)
        job.cancelled.connect(self._on_analysis_cancelled)
        self.side.set_running(True)
        self.side.set_progress("starting", 0.0)
        self.statusBar().showMessage("Analysis running…")
        self._track(start_job(job, self))

    def _drop_analysis(self) -> None:
        """Cancel the running analysis and forget it: its result, if any still comes, is ignored."""
        if self._analysis_job is not None:
            self._analysis_job.cancel()
            self._analysis_job = None
            self.side.set_running(False)
            self.side.stage_label.setText("cancelled: another study was opened")

    def cancel_analysis(self) -> None:
        if self._analysis_job is not None:
            self._analysis_job.cancel()
            self.side.stage_label.setText("cancelling…")

    @Slot(str, float)
    def _on_analysis_progress(self, stage: str, fraction: float) -> None:
        if self._current(self._analysis_job):
            self.side.set_progress(stage, fraction)

    @Slot(object)
    def _on_analysis_done(self, analysis) -> None:
        job = self._analysis_job
        if not self._current(job):
            return
        self._analysis_job = None
        if job.study is not self.study:  # started for another patient: never show or save it here
            self.side.set_running(False)
            self.statusBar().showMessage("Analysis result dropped: it was for a study that is no longer open")
            return
        self.analysis = analysis
        self.side.set_running(False)
        self.side.set_progress("done", 1.0)
        self.side.show_analysis(analysis)
        self.grid.set_analysis(analysis)
        self.statusBar().showMessage("Analysis finished" + (" — not for clinical use" if analysis.not_for_clinical_use else ""))
        self.review_flow.open(self.study, analysis)
        self.analysis_finished.emit(analysis)

    @Slot(str)
    def _on_analysis_error(self, message: str) -> None:
        if not self._current(self._analysis_job):
            return
        self._analysis_job = None
        self.side.set_running(False)
        self.side.stage_label.setText("failed")
        self.show_error("Analysis failed", message)
        self.side.show_analysis(None, f"Analysis failed: {self.last_error}")
        self.analysis_failed.emit(self.last_error)

    @Slot()
    def _on_analysis_cancelled(self) -> None:
        if not self._current(self._analysis_job):
            return
        self._analysis_job = None
        self.side.set_running(False)
        self.side.progress.setValue(0)
        self.side.stage_label.setText("cancelled")
        self.statusBar().showMessage("Analysis cancelled")
        self.analysis_cancelled.emit()

    # -- shutdown ---------------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel running jobs and wait for their threads (called on close).

        Loading stops at the next file and the analysis at its next step, so the
        wait is short. A thread still running after ``timeout_ms`` is kept alive
        elsewhere rather than destroyed with the window, which would abort the program.
        """
        for job in (self._load_job, self._analysis_job):
            if job is not None:
                job.cancel()
        self.review_flow.wait_exports(timeout_ms)
        if self.analysis_warmup is not None:
            self.analysis_warmup.join(timeout_ms / 1000)  # torch must not be mid-call when the process ends
        for t in list(self._threads):
            t.quit()
            if not t.wait(timeout_ms):
                keep_until_finished(t)
                self._threads.remove(t)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
