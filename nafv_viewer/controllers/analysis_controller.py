"""Running the AI analysis of the open study off the GUI thread: warm-up, run, cancel, results as signals.

The weights load once (in a job's thread, or in the start-up warm-up) and
every later run reuses them. A run is tagged with the study it was started
for: ``finished(study, analysis)`` names it, so the window applies a result
only to that study. A dropped run (another study was opened) is forgotten:
whatever it still sends is ignored.

The result comes in two steps when the analyzer can give it so: ``finished``
with the contours and score, then ``heatmaps_ready(study, heatmaps)`` (a
:class:`core_model.inference.heatmaps.Heatmaps` to apply to that analysis).
``running`` stays true until the heatmaps are in; a cancel then drops only
them (``heatmaps_dropped``).
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from core_model.domain.study import Study
from nafv_viewer.worker import AnalysisJob, AnalyzerFactory, JobThreads, default_analyzer_factory


class AnalysisController(QObject):
    started = Signal()
    progress = Signal(str, float)  # stage, fraction done
    finished = Signal(object, object)  # the Study the run was for, its Analysis
    heatmaps_ready = Signal(object, object)  # the Study, its Heatmaps (after finished)
    heatmaps_dropped = Signal(str)  # why the heatmaps of a shown result will not come
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, analyzer_factory: AnalyzerFactory | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.analyzer_factory = analyzer_factory or default_analyzer_factory
        self.analyzer = None
        self._lock = threading.Lock()
        self.job: AnalysisJob | None = None
        self._shown = False  # the running job's contours and score were sent; its heatmaps are to come
        self.threads = JobThreads()
        self.warmup: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.job is not None

    def cached_analyzer(self) -> Any:
        """The analyzer, built on first use (in the calling thread: weights load there)."""
        with self._lock:
            if self.analyzer is None:
                self.analyzer = self.analyzer_factory()
            return self.analyzer

    def warm(self) -> threading.Thread:
        """Load the weights and run one small analysis in a background thread (see core_model.inference.warmup).

        A run asked for meanwhile waits for it (its progress says "loading the
        model"). Any failure is left for the real run to report.
        """
        if self.warmup is None:
            def work() -> None:
                try:
                    from core_model.inference.warmup import warm_up

                    with self._lock:
                        if self.analyzer is None:
                            self.analyzer = self.analyzer_factory()
                        warm_up(self.analyzer)
                except Exception:  # noqa: BLE001 - the real analysis reports it
                    pass

            self.warmup = threading.Thread(target=work, name="nafv-warm-analysis", daemon=True)
            self.warmup.start()
        return self.warmup

    def run(self, study: Study, affected_side: str | None = None) -> bool:
        """Start analysing ``study``; False when a run is already going."""
        if self.job is not None:
            return False
        job = AnalysisJob(study, self.cached_analyzer, affected_side=affected_side)
        self.job, self._shown = job, False
        job.progress.connect(self._on_progress)
        job.analysed.connect(self._on_analysed)
        job.finished.connect(self._on_finished)
        job.errored.connect(self._on_error)
        job.cancelled.connect(self._on_cancelled)
        self.started.emit()
        self.threads.start(job, self)
        return True

    def cancel(self) -> bool:
        """Ask the running analysis to stop at its next step (``cancelled`` follows); False if none runs."""
        if self.job is None:
            return False
        self.job.cancel()
        return True

    def drop(self) -> bool:
        """Cancel the running analysis and forget it: its result, if any still comes, is ignored."""
        if self.job is None:
            return False
        self.job.cancel()
        self.job = None
        return True

    def _current(self) -> bool:
        return self.job is not None and self.sender() is self.job

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        if self._current():
            # after the result is shown, what still runs is the heatmaps, whatever the analyzer calls its step
            self.progress.emit("heatmaps" if self._shown else stage, fraction)

    @Slot(object)
    def _on_analysed(self, analysis: Any) -> None:
        if self._current():
            self._shown = True
            self.finished.emit(self.job.study, analysis)

    @Slot(object)
    def _on_finished(self, result: Any) -> None:
        if self._current():
            study, shown = self.job.study, self._shown
            self.job = None
            if shown:
                self.heatmaps_ready.emit(study, result)
            else:
                self.finished.emit(study, result)

    @Slot(str)
    def _on_error(self, message: str) -> None:
        if self._current():
            shown, self.job = self._shown, None
            if shown:  # the contours and score stand; only the heatmaps failed
                self.heatmaps_dropped.emit(f"heatmaps failed: {message}")
            else:
                self.failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        if self._current():
            shown, self.job = self._shown, None
            if shown:
                self.heatmaps_dropped.emit("heatmaps cancelled")
            else:
                self.cancelled.emit()

    def shutdown(self, timeout_ms: int) -> None:
        """Cancel the run, let the warm-up end (torch must not be mid-call when the process ends), join."""
        self.cancel()
        if self.warmup is not None:
            self.warmup.join(timeout_ms / 1000)
        self.threads.join(timeout_ms)
