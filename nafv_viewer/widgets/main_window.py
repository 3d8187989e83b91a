"""The reading window: lays out the hanging grid, side panel and review tabs, and wires them to the controllers.

Opening studies (:class:`StudyController`) and running the analysis
(:class:`AnalysisController`) happen off the GUI thread in the controllers;
display choices live in ViewerState; the keys and menus come from
:mod:`nafv_viewer.shortcuts`; the look from :mod:`nafv_viewer.widgets.theme`.
This window only passes what they report to the panels. Errors a reader can
act on appear as a message box and in the status bar as one line (the files a
failed open skipped go to the box's details), and the window stays usable.
Closing cancels running jobs and joins their threads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QSettings, Qt, QThread, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLabel, QMainWindow, QMenu, QSplitter, QTabWidget, QVBoxLayout, QWidget

from core_model.domain.resources import DEMO_DIR
from core_model.domain.study import VIEW_KEYS, Study
from nafv_viewer.controllers.analysis_controller import AnalysisController
from nafv_viewer.controllers.study_controller import StudyController
from nafv_viewer.display import DisplayImage, build_display_image
from nafv_viewer.hanging import Flips
from nafv_viewer.shortcuts import MENUS, SHORTCUTS, help_rows
from nafv_viewer.state import PRESETS, ViewerState
from nafv_viewer.widgets.dialogs import ShortcutsDialog, show_error
from nafv_viewer.widgets.caliper import Caliper
from nafv_viewer.widgets.review_editor import ReviewEditor
from nafv_viewer.widgets.review_workflow import ReviewWorkflow
from nafv_viewer.widgets.side_panel import SidePanel
from nafv_viewer.widgets.theme import DARK_QSS
from nafv_viewer.widgets.unassigned_strip import UnassignedPlacement, UnassignedStrip
from nafv_viewer.widgets.view_grid import ViewGrid
from nafv_viewer.worker import AnalyzerFactory, StudyLoader

APP_NAME = "NaFV Viewer"


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


class MainWindow(QMainWindow):
    study_opened = Signal(object)  # Study, as soon as its slots are known
    study_ready = Signal(object)  # Study, every image on screen
    study_failed = Signal(str)
    patients_offered = Signal(list)  # a folder of several patients: the reader picks one
    analysis_finished = Signal(object)
    heatmaps_shown = Signal(object)  # the analysis, now with its heatmaps
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
        self.analysis = None
        self.last_error: str | None = None
        self.error_box = None

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
        self.caliper = Caliper(self)
        for p in self.grid.all_panels():
            self.editor.attach(p)
            self.caliper.attach(p)
        self.caliper.measured.connect(lambda key, text: self.statusBar().showMessage(
            f"{key.replace('_', '-')}: {text}", 10000))
        self.caliper.enabled_changed.connect(lambda on: self.statusBar().showMessage(
            "Caliper on: drag on a view to measure; Shift+M or Esc to stop" if on else "Caliper off", 5000))
        self.review_flow = ReviewWorkflow(self)
        self.placement = UnassignedPlacement(self, self.unassigned_strip)
        self.setCentralWidget(split)
        self.cursor_label = QLabel("")
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.setAcceptDrops(True)
        self.setWindowTitle(APP_NAME)
        self.resize(1600, 1000)
        self.setStyleSheet(DARK_QSS)  # children and the dialogs the window opens inherit it

        self.studies = StudyController(self.settings, study_loader, prepare=self.review_flow.hang_saved_assignments, parent=self)
        self.analyses = AnalysisController(analyzer_factory, parent=self)
        self._connect()
        self._build_actions()
        self.warmup = threading.Thread(target=_warm_imports, name="nafv-warm-imports", daemon=True)
        self.warmup.start()

    def _connect(self) -> None:
        for p in self.grid.all_panels():
            p.cursor_info.connect(self.cursor_label.setText)
        self.side.run_requested.connect(self.run_analysis)
        self.side.cancel_requested.connect(self.cancel_analysis)
        self.state.subscribe(self._on_state)
        st = self.studies
        st.opening.connect(lambda path: self.statusBar().showMessage(f"Opening {path} …"))
        st.preview_ready.connect(self._on_preview)
        st.study_loaded.connect(self._on_study_loaded)
        st.image_ready.connect(self.grid.add_image)
        st.study_ready.connect(self._on_study_ready)
        st.failed.connect(self._on_study_error)
        st.several_patients.connect(self._on_several_patients)
        st.recent_changed.connect(self._rebuild_recent)
        an = self.analyses
        an.progress.connect(self.side.set_progress)
        an.finished.connect(self._on_analysis_done)
        an.heatmaps_ready.connect(self._on_heatmaps)
        an.heatmaps_dropped.connect(self._on_heatmaps_dropped)
        an.failed.connect(self._on_analysis_error)
        an.cancelled.connect(self._on_analysis_cancelled)

    # -- what the controllers hold, as the review workflow, the app and the tests read it ----------
    @property
    def study(self) -> Study | None:
        return self.studies.study

    @study.setter
    def study(self, study: Study | None) -> None:
        self.studies.study = study

    @property
    def study_path(self) -> Path | None:
        return self.studies.path

    def origin_server(self):
        """The PACS the open study was retrieved from (a DicomWebServer), None for a local folder."""
        origin = getattr(self, "study_server", None)
        if origin is None or self.study_path is None or Path(self.study_path) != origin[0]:
            return None
        return origin[1]

    @property
    def load_timings(self) -> dict[str, float]:
        return self.studies.load_timings

    @property
    def analysis_running(self) -> bool:
        return self.analyses.running

    @property
    def analysis_warmup(self) -> threading.Thread | None:
        return self.analyses.warmup

    def job_threads(self) -> list[QThread]:
        """The threads of the jobs still running (loading, analysis)."""
        return self.studies.threads.running + self.analyses.threads.running

    def warm_analysis(self) -> threading.Thread:
        """Load the weights and run one small analysis in the background (called at start-up by the
        application), so the reader's first analysis runs at warm speed."""
        return self.analyses.warm()

    # -- actions and shortcuts --------------------------------------------------------
    def _build_actions(self) -> None:
        menus = {name: self.menuBar().addMenu(title) for name, title in MENUS.items()}
        self.actions_by_key: dict[str, QAction] = {}
        for sc in SHORTCUTS:
            act = QAction(sc.description, self)
            act.setShortcut(QKeySequence(sc.key))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(_no_return(lambda c=sc.command: c(self)))
            menus[sc.menu].addAction(act)
            self.addAction(act)  # shortcuts work with the menu bar hidden too
            self.actions_by_key[sc.key] = act
        self.shortcut_rows: list[tuple[str, str]] = help_rows()
        self.review_flow.add_menu_options(menus["file"])
        self.recent_menu = QMenu("Open &recent", self)
        menus["file"].insertMenu(menus["file"].actions()[1], self.recent_menu)
        self._rebuild_recent(self.studies.recent_studies())
        for text, slot in (("Open the demo study", lambda: self.open_study(DEMO_DIR)),
                           ("Open from server…", self.open_from_server)):
            act = QAction(text, self)
            act.triggered.connect(_no_return(slot))
            menus["file"].insertAction(menus["file"].actions()[1], act)

    def show_shortcuts(self) -> ShortcutsDialog:
        self.shortcuts_dialog = ShortcutsDialog(self.shortcut_rows, self)
        self.shortcuts_dialog.open()
        return self.shortcuts_dialog

    def escape(self) -> None:
        """Esc: cancel the contour being drawn, else put the caliper away (and its lines), else the running analysis."""
        if self.editor.cancel_draw():
            return
        if self.caliper.enabled or self.caliper.lines:
            self.caliper.set_enabled(False)
            self.caliper.clear()
            return
        self.cancel_analysis()

    def toggle_compare(self, mode: str) -> None:
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

    def pan(self, fx: float, fy: float) -> None:
        """Move the active view by a fraction of what is visible (the others follow when synced)."""
        panel = self.grid.panel(self.state.active_view)
        if panel.has_image:
            panel.pan_by(fx, fy)

    def flip_active(self, horizontal: bool) -> None:
        """The reader's correction when the tags or the pixels misled the hanging (both energies)."""
        key = self.state.active_view
        if self.study is None:
            return
        for energy in ("le", "rc"):
            image = self.study.get(key, energy)
            shown = self.grid.shown_image(key, energy)
            if image is None or shown is None:
                continue
            f = shown.flips
            flips = Flips(f.horizontal != horizontal, f.vertical != (not horizontal), "reader")
            self.grid.add_image(build_display_image(image, key, flips=flips))
        self.grid.reset_zoom(key)
        self.statusBar().showMessage(f"{key.replace('_', '-')} flipped by the reader")

    def preset(self, index: int) -> None:
        names = list(PRESETS[self.state.energy])
        if index < len(names):
            self.state.apply_preset(names[index])

    def change_opacity(self, delta: float) -> None:
        self.state.heatmap_opacity = round(min(1.0, max(0.0, self.state.heatmap_opacity + delta)), 2)

    def _on_state(self, name: str, value: Any) -> None:
        if name == "auto_analyze":
            self.settings.setValue("auto_analyze", bool(value))

    # -- opening a study ------------------------------------------------------------------
    def recent_studies(self) -> list[str]:
        return self.studies.recent_studies()

    def _rebuild_recent(self, recent: list[str]) -> None:
        self.recent_menu.clear()
        for p in recent:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(_no_return(lambda p=p: self.open_study(p)))
        self.recent_menu.setEnabled(bool(recent))

    def open_dialog(self) -> None:
        start = str(self.study_path.parent) if self.study_path else ""
        path = QFileDialog.getExistingDirectory(self, "Open a study folder", start)
        if path:
            self.open_study(path)

    def open_from_server(self, url: str = ""):
        """Show the PACS search dialog; the study it retrieves opens from the local cache like any folder."""
        from nafv_viewer.widgets.server_dialog import ServerDialog

        dialog = ServerDialog(url or self.studies.server_url(), self)

        def retrieved(path) -> None:
            self.studies.remember_server(dialog.url.text())
            # in memory only (with any typed sign-in), for sending the reader's results back
            self.study_server = (Path(path), dialog.server())
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
        self._drop_analysis()  # its result would belong to the previous study
        self.studies.open(path, patient=patient, first_energy=self.state.energy)

    def _on_preview(self, image: DisplayImage) -> None:
        self.grid.begin_study(None)
        self.grid.add_image(image)

    def _on_study_loaded(self, study: Study) -> None:
        self._drop_analysis()  # none may run on the study being replaced
        self.analysis = None
        self.caliper.set_enabled(False)  # a measurement belongs to the images it was made on
        self.caliper.clear()
        self.review_flow.close()
        self.grid.begin_study(study, keep=self.studies.preview)
        self.side.show_study(study)
        self.placement.show_study(study)
        self.setWindowTitle(f"{APP_NAME} — {study.patient_id} ({self.study_path.name})")
        self.study_opened.emit(study)

    def _on_study_ready(self, study: Study) -> None:
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

    def _on_study_error(self, message: str) -> None:
        self.show_error("Cannot open the study", message)
        self.study_failed.emit(self.last_error)

    def _on_several_patients(self, path: Path, patients: list) -> None:
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
    def run_analysis(self) -> None:
        if self.study is None:
            self.show_error("Nothing to analyse", "Open a study first.")
            return
        if self.studies.loading:
            # self.study is still the previous patient's: analysing it now would
            # put the wrong patient's findings on the study being opened.
            self.statusBar().showMessage("A study is still opening: run the analysis when it is on screen")
            return
        if self.analyses.run(self.study, affected_side=self.side.affected_side_choice()):
            self.side.set_running(True)
            self.side.set_progress("starting", 0.0)
            self.statusBar().showMessage("Analysis running…")
        elif self.analyses.running:
            self.statusBar().showMessage("The analysis is still running (or its heatmaps are): wait for it, or cancel it", 8000)

    def _drop_analysis(self) -> None:
        if self.analyses.drop():
            self.side.show_stopped("cancelled: another study was opened")

    def cancel_analysis(self) -> None:
        if self.analyses.cancel():
            self.side.set_stage("cancelling…")

    def _on_analysis_done(self, study: Study, analysis) -> None:
        if study is not self.study:  # started for another patient: never show or save it here
            self.side.set_running(False)
            self.statusBar().showMessage("Analysis result dropped: it was for a study that is no longer open")
            return
        self.analysis = analysis
        heat_to_come = self.analyses.running  # the same run goes on with the heatmaps
        self.side.set_running(heat_to_come)  # cancel stays offered while the heatmaps are made
        self.side.set_progress("done", 1.0)
        if heat_to_come:
            self.side.set_stage("done; heatmaps follow…")
        self.side.show_analysis(analysis)
        self.grid.set_analysis(analysis)
        self.statusBar().showMessage("Analysis finished" + (" — not for clinical use" if analysis.not_for_clinical_use else "")
                                     + ("; heatmaps follow" if heat_to_come else ""))
        self.review_flow.open(self.study, analysis)
        self.analysis_finished.emit(analysis)

    def _on_heatmaps(self, study: Study, heatmaps) -> None:
        if study is not self.study or self.analysis is None:
            return
        heatmaps.apply(self.analysis)
        self.grid.set_analysis(self.analysis)
        self.side.set_running(False)
        self.side.set_stage("done, with heatmaps")
        self.side.show_analysis(self.analysis)
        if heatmaps.warnings:  # e.g. an empty Grad-CAM: the review's AI summary says it too
            self.review_flow.open(self.study, self.analysis)
        self.statusBar().showMessage("Heatmaps shown (H: on/off)" + (" — not for clinical use" if self.analysis.not_for_clinical_use else ""), 8000)
        self.heatmaps_shown.emit(self.analysis)

    def _on_heatmaps_dropped(self, why: str) -> None:
        self.side.set_running(False)
        self.side.set_stage(f"done; {why}")
        self.statusBar().showMessage(f"Analysis shown without heatmaps: {why}", 12000)

    def _on_analysis_error(self, message: str) -> None:
        self.side.show_stopped("failed")
        self.show_error("Analysis failed", message)
        self.side.show_analysis(None, f"Analysis failed: {self.last_error}")
        self.analysis_failed.emit(self.last_error)

    def _on_analysis_cancelled(self) -> None:
        self.side.show_stopped("cancelled")
        self.statusBar().showMessage("Analysis cancelled")
        self.analysis_cancelled.emit()

    # -- shutdown ---------------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel running jobs and wait for their threads (called on close).

        Loading stops at the next file and the analysis at its next step, so the
        wait is short. A thread still running after ``timeout_ms`` is kept alive
        elsewhere rather than destroyed with the window, which would abort the program.
        """
        self.studies.cancel()
        self.analyses.cancel()
        self.review_flow.wait_exports(timeout_ms)
        self.analyses.shutdown(timeout_ms)
        self.studies.shutdown(timeout_ms)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
