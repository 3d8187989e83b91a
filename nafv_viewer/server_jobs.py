"""PACS work off the GUI thread: searching a DICOMweb server and retrieving a study into the cache.

Both are :class:`nafv_viewer.worker.Job` s (started / progress / finished /
errored / cancelled signals, cancel through the job's token); the network
work itself is :class:`core_model.io.dicomweb.DicomWebServer`. A server that
asks for credentials ends the job with ``auth_needed(message)`` instead of
``errored``, so the dialog can ask for them.

Their threads are never parented to a widget: a dialog closed while a
request hangs must not destroy a running QThread, which aborts the program.
"""

from __future__ import annotations

from PySide6.QtCore import Signal

from core_model.domain.errors import NafvError
from core_model.io.dicomweb import AuthRequired, DicomWebServer
from nafv_viewer.worker import Job, keep_until_finished, start_job


class _ServerJob(Job):
    auth_needed = Signal(str)

    def __init__(self, server: DicomWebServer):
        super().__init__()
        self.server = server

    def describe(self) -> str:
        return f"talking to {self.server.url}"

    def report_error(self, err: NafvError) -> None:
        if isinstance(err, AuthRequired):
            self.auth_needed.emit(str(err))
        else:
            super().report_error(err)


class SearchJob(_ServerJob):
    """``finished(list[StudyHit])``: the MG studies matching the filters."""

    def __init__(self, server: DicomWebServer, patient_id: str = "", patient_name: str = "", study_date: str = ""):
        super().__init__(server)
        self.filters = dict(patient_id=patient_id, patient_name=patient_name, study_date=study_date)

    def work(self):
        return self.server.search_studies(**self.filters)


class RetrieveJob(_ServerJob):
    """``finished(Path)``: the study's folder in the cache, complete (retrieved now or before)."""

    def __init__(self, server: DicomWebServer, study_uid: str):
        super().__init__(server)
        self.study_uid = study_uid

    def work(self):
        return self.server.retrieve_study(self.study_uid, progress=lambda s, f: self.progress.emit(str(s), float(f)),
                                          cancel=self.token)


def start_server_job(job: _ServerJob) -> None:
    """Run ``job`` in a thread kept alive until it ends, whatever happens to the widget that asked."""
    keep_until_finished(start_job(job, None))
