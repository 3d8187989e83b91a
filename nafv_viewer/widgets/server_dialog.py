"""File > Open from server…: search a PACS (DICOMweb) for mammography studies and retrieve one.

Search fields (patient ID, name, study date), a results table, Open. Search
and retrieval run as jobs (nafv_viewer.server_jobs) with progress and Cancel;
when a study is in the local cache, ``study_retrieved(path)`` hands its
folder to the window, which opens it as any local folder. Messages appear in
the dialog's status line, one line, as the CLI prints them.

Credentials: from the environment (NAFV_DICOMWEB_TOKEN, or
NAFV_DICOMWEB_USER / NAFV_DICOMWEB_PASSWORD); when the server asks and none
are set, a sign-in box appears. What is typed there stays in this dialog's
memory only, never in settings or logs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core_model.domain.errors import NafvError
from core_model.io.dicomweb import Credentials, DicomWebServer, StudyHit
from nafv_viewer.server_jobs import RetrieveJob, SearchJob, start_server_job

COLUMNS = ["Patient ID", "Name", "Study date", "Description", "Images"]


def _date(d: str) -> str:
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


class ServerDialog(QDialog):
    study_retrieved = Signal(object)  # Path of the complete study folder in the cache
    searched = Signal(list)  # the StudyHits shown
    failed = Signal(str)  # the one-line message shown

    def __init__(self, url: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Open from server")
        self.hits: list[StudyHit] = []
        self._job = None
        self._typed: Credentials | None = None

        self.url = QLineEdit(url)
        self.url.setPlaceholderText("http://pacs:8042/dicom-web")
        self.patient_id = QLineEdit()
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("part of the name")
        self.study_date = QLineEdit()
        self.study_date.setPlaceholderText("YYYYMMDD or 20240101-20240331")
        form = QFormLayout()
        form.addRow("Server (DICOMweb)", self.url)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Study date", self.study_date)

        self.sign_in = QGroupBox("Sign in (the server asks for it)")
        self.user = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        login = QFormLayout(self.sign_in)
        login.addRow("User", self.user)
        login.addRow("Password", self.password)
        self.sign_in.hide()

        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.results = QTableWidget(0, len(COLUMNS))
        self.results.setHorizontalHeaderLabels(COLUMNS)
        self.results.verticalHeader().hide()
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.horizontalHeader().setStretchLastSection(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("Search for mammography studies; nothing is contacted until you do.")
        self.status.setWordWrap(True)
        self.open_button = QPushButton("Open")
        self.open_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.open_button, self.cancel_button, close):
            buttons.addWidget(b)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.sign_in)
        lay.addWidget(self.search_button, alignment=Qt.AlignmentFlag.AlignRight)
        lay.addWidget(self.results, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.resize(760, 520)

        self.search_button.clicked.connect(self.search)
        self.open_button.clicked.connect(self.open_selected)
        self.cancel_button.clicked.connect(self.cancel)
        close.clicked.connect(self.reject)
        self.results.itemSelectionChanged.connect(self._on_selection)
        self.results.cellDoubleClicked.connect(lambda *_: self.open_selected())

    # -- the server ------------------------------------------------------------------------------
    def server(self) -> DicomWebServer:
        """The server named in the dialog, with the typed sign-in if any, else the environment's."""
        user = self.user.text().strip()
        creds = Credentials(user=user, password=self.password.text()) if user else None
        return DicomWebServer(self.url.text(), credentials=creds)

    def _start(self, job) -> None:
        if self._job is not None:
            self._job.cancel()
        self._job = job
        job.progress.connect(self._on_progress)
        job.errored.connect(self._on_error)
        job.auth_needed.connect(self._on_auth_needed)
        job.cancelled.connect(self._on_cancelled)
        self.cancel_button.setEnabled(True)
        self.search_button.setEnabled(False)
        self.open_button.setEnabled(False)
        start_server_job(job)

    def _done(self) -> None:
        """The job ended (or was let go): the buttons are free again and the bar is empty."""
        self._job = None
        self.cancel_button.setEnabled(False)
        self.search_button.setEnabled(True)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self._on_selection()

    def _current(self) -> bool:
        return self._job is not None and self.sender() is self._job

    # -- search ---------------------------------------------------------------------------------------
    @Slot()
    def search(self) -> None:
        try:
            server = self.server()
        except NafvError as err:
            self._show(str(err))
            return
        self.status.setText(f"Searching {server.url} …")
        self.progress.setRange(0, 0)  # busy: a search has no fraction to show
        job = SearchJob(server, self.patient_id.text(), self.patient_name.text(), self.study_date.text())
        job.finished.connect(self._on_found)
        self._start(job)

    @Slot(object)
    def _on_found(self, hits: list) -> None:
        if not self._current():
            return
        self.hits = list(hits)
        self.results.setRowCount(len(self.hits))
        for r, h in enumerate(self.hits):
            cells = [h.patient_id, h.patient_name.replace("^", " ").strip(), _date(h.study_date), h.description,
                     "" if h.n_instances is None else str(h.n_instances)]
            for c, text in enumerate(cells):
                self.results.setItem(r, c, QTableWidgetItem(text))
        self.results.resizeColumnsToContents()
        self.status.setText(f"{len(self.hits)} mammography stud{'y' if len(self.hits) == 1 else 'ies'} found"
                            + ("; choose one and press Open" if self.hits else ""))
        if len(self.hits) == 1:
            self.results.selectRow(0)
        self._done()
        self.searched.emit(self.hits)

    # -- retrieve ---------------------------------------------------------------------------------------
    def selected(self) -> StudyHit | None:
        rows = self.results.selectionModel().selectedRows()
        return self.hits[rows[0].row()] if rows and rows[0].row() < len(self.hits) else None

    def _on_selection(self) -> None:
        self.open_button.setEnabled(self._job is None and self.selected() is not None)

    @Slot()
    def open_selected(self) -> None:
        hit = self.selected()
        if hit is not None and self._job is None:
            self.retrieve(hit.study_uid)

    def retrieve(self, study_uid: str) -> None:
        """Fetch ``study_uid`` into the cache (or find it there), then emit ``study_retrieved``."""
        try:
            server = self.server()
        except NafvError as err:
            self._show(str(err))
            return
        self.status.setText("Retrieving the study …")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        job = RetrieveJob(server, study_uid)
        job.finished.connect(self._on_retrieved)
        self._start(job)

    @Slot(object)
    def _on_retrieved(self, path) -> None:
        if not self._current():
            return
        self._done()
        self.progress.setValue(100)
        self.status.setText(f"Retrieved; opening {Path(path).name}")
        self.study_retrieved.emit(Path(path))
        self.accept()

    # -- progress, errors, cancel -----------------------------------------------------------------------
    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        if self._current():
            self.progress.setValue(round(100 * fraction))
            self.status.setText(stage)

    def _show(self, message: str) -> None:
        line = (str(message).strip().splitlines() or [""])[0]
        self.status.setText(line)
        self.failed.emit(line)

    @Slot(str)
    def _on_error(self, message: str) -> None:
        if self._current():
            self._done()
            self._show(message)

    @Slot(str)
    def _on_auth_needed(self, message: str) -> None:
        if not self._current():
            return
        self._done()
        self.sign_in.show()
        self.user.setFocus()
        self._show(message)

    @Slot()
    def cancel(self) -> None:
        """Stop now: the dialog is free at once; the job stops at its next image (or when a stalled
        request times out) and removes what it fetched, and its result, if any, is ignored."""
        if self._job is not None:
            self._job.cancel()
            self._on_cancelled(current=True)

    @Slot()
    def _on_cancelled(self, current: bool = False) -> None:
        if not (current or self._current()):
            return
        self._done()
        self.status.setText("Cancelled; nothing from this transfer is kept")

    def done(self, result: int) -> None:  # closing cancels what runs: its result would go nowhere
        if self._job is not None:
            self._job.cancel()
            self._job = None
        super().done(result)
