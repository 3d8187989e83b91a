"""Opening a study (a folder, DICOM files, or what a server retrieved into the cache); recent folders and server.

Loading runs as a :class:`nafv_viewer.worker.StudyLoadJob` off the GUI
thread; a newer open supersedes an older one, whose signals are then ignored.
The controller keeps the open study, how long it took to show, and the
recently opened folders (in the settings); what it learns comes out as
signals, and every failure as one message.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSettings, Signal, Slot

from core_model.domain.study import Study
from nafv_viewer.display import DisplayImage
from nafv_viewer.worker import JobThreads, StudyLoader, StudyLoadJob

MAX_RECENT = 10


class StudyController(QObject):
    opening = Signal(object)  # Path, as the open starts
    preview_ready = Signal(object)  # DisplayImage shown before the whole study is read
    study_loaded = Signal(object)  # Study, as soon as its slots are known
    image_ready = Signal(object)  # DisplayImage, one per image
    study_ready = Signal(object)  # Study, every image prepared
    failed = Signal(str)  # the message (first line for the reader, further lines: the files skipped)
    several_patients = Signal(object, list)  # folder, patient IDs: the reader picks one
    recent_changed = Signal(list)  # the recent folders, newest first

    def __init__(self, settings: QSettings, loader: StudyLoader | None = None,
                 prepare: Callable[[Study], list[str]] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.loader = loader
        self.prepare = prepare  # hangs the images the reader placed last time (see StudyLoadJob)
        self.study: Study | None = None
        self.path: Path | None = None
        self.preview: DisplayImage | None = None
        self.load_timings: dict[str, float] = {}
        self.threads = JobThreads()
        self._job: StudyLoadJob | None = None
        self._t_open = 0.0

    @property
    def loading(self) -> bool:
        return self._job is not None

    def open(self, path: str | Path, patient: str | None = None, first_energy: str = "le") -> None:
        """Start loading ``path`` (``patient``: the one to open in a folder of several)."""
        path = Path(path)
        if self._job is not None:
            self._job.cancel()
        self._t_open = time.perf_counter()
        self.load_timings = {}
        self.preview = None
        self.opening.emit(path)
        job = StudyLoadJob(path, loader=self.loader, first_energy=first_energy, patient=patient, prepare=self.prepare)
        self._job = job
        # Bound methods of this object: queued to the GUI thread, where sender() tells a superseded job.
        for signal, slot in ((job.preview_ready, self._on_preview), (job.study_loaded, self._on_study_loaded),
                             (job.image_ready, self._on_image_ready), (job.finished, self._on_finished),
                             (job.errored, self._on_error), (job.several_patients, self._on_several_patients)):
            signal.connect(slot)
        self.threads.start(job, self)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def _current(self) -> bool:
        return self._job is not None and self.sender() is self._job

    @Slot(object)
    def _on_preview(self, image: DisplayImage) -> None:
        if self._current():
            self.preview = image
            self._note("first_image_s")
            self.preview_ready.emit(image)

    @Slot(object)
    def _on_study_loaded(self, study: Study) -> None:
        if not self._current():
            return
        self.load_timings["study_read_s"] = time.perf_counter() - self._t_open
        self.study = study
        self.path = self._job.path
        self.remember(self.path)  # the folder; a multi-patient folder asks again on reopening
        self.study_loaded.emit(study)

    @Slot(object)
    def _on_image_ready(self, image: DisplayImage) -> None:
        if self._current():
            self._note("first_image_s")
            self.image_ready.emit(image)

    @Slot(object)
    def _on_finished(self, study: Study) -> None:
        if self._current():
            self._job = None
            self.load_timings["all_images_s"] = time.perf_counter() - self._t_open
            self.study_ready.emit(study)

    @Slot(str)
    def _on_error(self, message: str) -> None:
        if self._current():
            self._job = None
            self.failed.emit(message)

    @Slot(list)
    def _on_several_patients(self, patients: list) -> None:
        if self._current():
            path = self._job.path
            self._job = None
            self.several_patients.emit(path, list(patients))

    def _note(self, name: str) -> None:
        self.load_timings.setdefault(name, time.perf_counter() - self._t_open)

    # -- recent studies ---------------------------------------------------------------
    def recent_studies(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def remember(self, path: Path) -> None:
        p = str(Path(path).resolve())
        recent = [p] + [r for r in self.recent_studies() if r != p]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.recent_changed.emit(self.recent_studies())

    # -- the PACS last searched ----------------------------------------------------------
    def server_url(self) -> str:
        return str(self.settings.value("server_url", "") or "")

    def remember_server(self, url: str) -> None:
        """Keep the address of the server a study came from (the address only, never credentials)."""
        self.settings.setValue("server_url", url.strip())

    def shutdown(self, timeout_ms: int) -> None:
        self.cancel()
        self.threads.join(timeout_ms)
