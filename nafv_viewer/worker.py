"""Long jobs off the GUI thread: loading a study and running the analysis.

Each job is a QObject with ``started`` / ``progress`` / ``finished`` /
``errored`` (and ``cancelled``) signals whose work :func:`start_job` runs in
its own QThread; connect the signals before starting. Cancellation goes
through :class:`core_model.domain.jobs.CancelToken`, which the analysis checks between
steps and the study loader between files. Errors the user can act on
(NafvError) arrive as their plain message; anything else arrives as a short
message too, with the traceback on stderr for the developer.

A QThread destroyed while it runs aborts the whole program, so a window never
lets go of a job thread that is still running: it cancels the job and waits,
and one still blocked after that (in a read of a lost network drive, say) is
handed to :func:`keep_until_finished`.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core_model.domain.errors import Cancelled, NafvError
from core_model.domain.jobs import CancelToken
from core_model.domain.study import ENERGIES, VIEW_KEYS, Study
from nafv_viewer.display import build_display_image
from nafv_viewer.hanging import view_flips

StudyLoader = Callable[[Path], Study]
AnalyzerFactory = Callable[[], Any]  # returns an object with .analyze(study, progress=, cancel=, affected_side=)


def default_study_loader(path: Path, patient: str | None = None, cancel: CancelToken | None = None) -> Study:
    from core_model.io import load_study  # imported late: the viewer starts before the loaders are needed

    return load_study(path, patient=patient, cancel=cancel)


def patients_in(path: Path, cancel: CancelToken | None = None) -> list[str]:
    from core_model.io import list_patients

    try:
        return list_patients(path, cancel=cancel)
    except Cancelled:
        raise
    except Exception:  # the study loader gives the real error message
        return []


def preview_image(path: Path, energy: str, cancel: CancelToken | None = None):
    """The first image to show while a DICOM study loads, or None when in any doubt.

    Full-size DICOM studies take about a second to decode; showing R-CC (or
    the first view present) as soon as its own file is decoded puts a view on
    screen well before that. Only when every usable file belongs to one
    patient and one study and the slot is unambiguous, so the preview is
    always an image the complete study will show too; otherwise the study
    loader decides and reports.
    """
    try:
        from core_model.io import detect, dicom

        s = detect.scan(path)
        if s.kind != "dicom":
            return None  # JPEG/PNG studies load fast enough as a whole
        slots = dicom.classify_all(s.dicom + s.dicom_maybe, [], cancel)
        owners = {(dicom.patient_of(x.header), str(x.header.get("StudyInstanceUID", "") or "")) for x in slots}
        if len(owners) != 1:
            return None
        by_slot: dict = {}
        for x in slots:
            by_slot.setdefault(x.slot, []).append(x)
        for key in VIEW_KEYS:
            found = by_slot.get((key, energy), [])
            if len(found) == 1:
                return dicom.load_slot(found[0])
        return None
    except Cancelled:
        raise
    except Exception:  # the preview is optional; the full load reports real problems
        return None


def default_analyzer_factory() -> Any:
    from core_model.inference.analyzer import Analyzer  # torch is imported only when analysis is asked for

    return Analyzer()


def _unexpected(what: str, err: BaseException) -> str:
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{what} failed unexpectedly: {type(err).__name__}: {first}"


class Job(QObject):
    """One piece of long work: :meth:`work` runs in the job's thread, its result comes as ``finished``.

    The reporting is here once, so every job reports the same way: a cancel
    ends as ``cancelled``, a :class:`NafvError` as its message, anything else
    as a short message (traceback on stderr). :meth:`work` returning None ends
    the job having said what it had to through its own signal.
    """

    started = Signal()
    progress = Signal(str, float)
    finished = Signal(object)
    errored = Signal(str)
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.token = CancelToken()

    def cancel(self) -> None:
        self.token.cancel()

    def work(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> str:
        """What the job does, for the message of an unexpected failure ("opening /x failed unexpectedly")."""
        return "the job"

    def report_error(self, err: NafvError) -> None:
        """Say an error the user can act on; a job with its own signal for some errors overrides this."""
        self.errored.emit(str(err))

    @Slot()
    def run(self) -> None:
        self.started.emit()
        try:
            result = self.work()
            if result is None:
                return
            self.token.check()
            self.finished.emit(result)
        except Cancelled:
            self.cancelled.emit()
        except NafvError as err:
            self.report_error(err)
        except Exception as err:  # a reader should never see a traceback; log it for the developer
            self.errored.emit(_unexpected(self.describe(), err))


class StudyLoadJob(Job):
    """Reads a study, then prepares each image for display, emitting each as soon as it is ready.

    ``preview_ready(DisplayImage)`` may come first (one image of a DICOM
    study, see :func:`preview_image`), then ``study_loaded(study)`` (the panels
    can show their slots), then ``image_ready(DisplayImage)`` per image in
    hanging order, shown energy first, then ``finished(study)``.
    """

    preview_ready = Signal(object)
    study_loaded = Signal(object)
    image_ready = Signal(object)
    several_patients = Signal(list)  # the folder holds several patients and none was named: ends the job

    def __init__(self, path: Path, loader: StudyLoader | None = None, first_energy: str = "le", patient: str | None = None,
                 prepare: Callable[[Study], list[str]] | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        # Runs here, after the read and before the slots are announced: hangs the images the reader
        # placed last time (returns a sentence per one it could not place).
        self.prepare = prepare
        self.custom_loader = loader
        self.first_energy = first_energy
        self.patient = patient

    def _load(self) -> Study:
        if self.custom_loader is not None:
            return self.custom_loader(self.path)
        return default_study_loader(self.path, self.patient, self.token)

    def describe(self) -> str:
        return f"opening {self.path}"

    def work(self) -> Study | None:
        preview = None
        if self.custom_loader is None and self.patient is None:
            first = preview_image(self.path, self.first_energy, self.token)
            self.token.check()
            if first is not None:
                preview = build_display_image(first)
                self.preview_ready.emit(preview)
            elif self.path.is_dir():
                patients = patients_in(self.path, self.token)
                if len(patients) > 1:
                    self.several_patients.emit(patients)
                    return None
        study = self._load()
        self.token.check()
        if self.prepare is not None:
            study.warnings.extend(self.prepare(study))
        self.study_loaded.emit(study)
        order = [self.first_energy] + [e for e in ENERGIES if e != self.first_energy]
        slots = [(k, e) for e in order for k in VIEW_KEYS if study.has(k, e)]
        flips: dict[str, dict] = {}  # view -> energy -> Flips, decided once for both energies
        for i, (key, energy) in enumerate(slots):
            self.token.check()
            image = study.get(key, energy)
            if key not in flips:
                flips[key] = view_flips(study, key)
            f = flips[key][energy]
            if (preview is not None and preview.source == image.source
                    and (preview.key, preview.energy) == (key, energy) and preview.flips == f):
                shown = preview  # same file, hung the same way, already on screen
            else:
                shown = build_display_image(image, key, flips=f)
            self.image_ready.emit(shown)
            self.progress.emit("preparing images", (i + 1) / max(1, len(slots)))
        return study


class AnalysisJob(Job):
    """Builds the analyzer (weights load here, off the GUI thread) and analyses one study.

    An analyzer that can give its result in two steps (``analyze_first``, as the real one does)
    sends the contours and score as ``analysed(analysis)`` as soon as they exist, then computes
    the heatmaps and ends with ``finished(heatmaps)``; any other ends with ``finished(analysis)``.
    """

    analysed = Signal(object)

    def __init__(self, study: Study, analyzer_factory: AnalyzerFactory | None = None, affected_side: str | None = None):
        super().__init__()
        self.study = study
        self.analyzer_factory = analyzer_factory or default_analyzer_factory
        self.affected_side = affected_side

    def _report(self, stage: str, fraction: float) -> None:
        self.progress.emit(str(stage), float(fraction))

    def describe(self) -> str:
        return "the analysis"

    def work(self) -> Any:
        self._report("loading the model", 0.0)
        analyzer = self.analyzer_factory()
        self.token.check()
        first = getattr(analyzer, "analyze_first", None)
        if first is None:
            return analyzer.analyze(self.study, progress=self._report, cancel=self.token, affected_side=self.affected_side)
        analysis, pending = first(self.study, progress=self._report, cancel=self.token, affected_side=self.affected_side)
        self.token.check()
        if pending is None:
            return analysis
        self.analysed.emit(analysis)
        # the heatmaps are made here and applied in the GUI thread, which owns the analysis from now on
        return pending.compute(self.token, self._report)


class JobThread(QThread):
    """Runs one job's ``run`` in this thread.

    The job object itself stays in the GUI thread, so every slot connected to
    its signals (bound methods of widgets, or plain functions) is queued to
    the GUI thread; only the work runs here.
    """

    def __init__(self, job: Job, parent: QObject | None = None):
        super().__init__(parent)
        self.job = job

    def run(self) -> None:
        self.job.run()


# Job threads that outlived their window's wait: referenced here until they end,
# because destroying a running QThread aborts the program.
_UNFINISHED: set[QThread] = set()


def keep_until_finished(thread: QThread) -> None:
    """Keep a still-running job thread alive after its window is gone (its job is already cancelled)."""
    thread.setParent(None)
    _UNFINISHED.add(thread)
    thread.finished.connect(lambda t=thread: _UNFINISHED.discard(t))
    if thread.isFinished():  # ended between the wait and the connect
        _UNFINISHED.discard(thread)


def threads_still_running() -> bool:
    """True while a thread handed to :func:`keep_until_finished` runs (the app then exits without joining it)."""
    return any(t.isRunning() for t in list(_UNFINISHED))


def start_job(job: Job, parent: QObject | None = None) -> QThread:
    """Run ``job.run`` in a new thread; connect the job's signals before calling this.

    The caller keeps the returned thread referenced until its ``finished`` signal.
    """
    thread = JobThread(job, parent)
    thread.start()
    return thread


class JobThreads:
    """The running job threads of one owner (a controller): kept referenced until they end, joined on shutdown."""

    def __init__(self) -> None:
        self.running: list[QThread] = []

    def start(self, job: Job, parent: QObject | None = None) -> QThread:
        """Start ``job`` (its signals already connected) and keep its thread until it ends."""
        thread = start_job(job, parent)
        self.running.append(thread)

        def forget(t=thread) -> None:
            if t in self.running:
                self.running.remove(t)

        thread.finished.connect(forget)
        return thread

    def join(self, timeout_ms: int) -> None:
        """Wait for each thread (its job already cancelled); one still blocked is kept alive elsewhere."""
        for t in list(self.running):
            t.quit()
            if not t.wait(timeout_ms):
                keep_until_finished(t)
                self.running.remove(t)
