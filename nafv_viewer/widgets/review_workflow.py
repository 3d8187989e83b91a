"""The review in the reading window: open/restore it, show its panels, review keys, File-menu exports.

:class:`ReviewWorkflow` belongs to the :class:`MainWindow`. When a study is
on screen it restores the study's saved review (or starts an empty one) from
:class:`~core_model.review.store.ReviewStore`; when an analysis finishes it
adds the AI's proposals to a review that has none yet (a review with the
reader's decisions on the AI's findings is never replaced by a new run). It
builds the findings and assessment panels around one
:class:`~nafv_viewer.widgets.findings_panel.ReviewController`, hands that
controller to the contour editor on the views, and runs exports as jobs off
the GUI thread.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from core_model.domain.errors import NafvError
from core_model.export.common import export_stem, refuse_overwrite
from core_model.review.model import Review, ReviewSession, add_ai_findings, review_from_analysis
from core_model.review.signoff import Finalise, OpenAddendum, is_locked, status_text
from core_model.review.store import ReviewStore
from nafv_viewer.widgets.assessment_panel import AssessmentPanel
from nafv_viewer.widgets.findings_panel import FindingsPanel, ReviewController
from nafv_viewer.worker import Job, JobThreads

EXPORT_KINDS = ("pdf", "seg", "json", "all")


class ExportJob(Job):
    """Writes the chosen exports of a snapshot of the review; ``finished(list of message lines)``."""

    def __init__(self, kind: str, review: Review, study: Any, analysis: Any, out_dir: Path, deidentify: bool, heatmaps: bool,
                 overwrite: bool = False):
        super().__init__()
        self.kind, self.review, self.study, self.analysis = kind, review, study, analysis
        self.out_dir, self.deidentify, self.heatmaps = Path(out_dir), deidentify, heatmaps
        self.overwrite = overwrite
        self.dicom_written: list[Path] = []  # the SEG and SR files, which can go back to the PACS

    def describe(self) -> str:
        return f"exporting into {self.out_dir}"

    def work(self) -> list[str]:
        try:
            return self._export()
        except OSError as err:  # a full disk or a folder without write access: say where, in words
            raise NafvError(f"could not write to {self.out_dir}: {err.strerror or err}") from None

    def _export(self) -> list[str]:
        from core_model.export.dicom_seg import export_dicom_seg
        from core_model.export.pdf import export_pdf, heatmaps_from
        from core_model.export.review_json import export_review_json

        self.out_dir.mkdir(parents=True, exist_ok=True)
        targets = export_targets(self.review, self.out_dir, self.kind, self.deidentify)
        refuse_overwrite(list(targets.values()), self.overwrite)  # checked again here: the folder may have changed
        lines: list[str] = []
        if self.kind in ("pdf", "all"):
            heat = heatmaps_from(self.analysis) if (self.heatmaps and self.analysis is not None) else None
            if self.heatmaps and not heat:
                lines.append("PDF: no heatmaps to include (the analysis has not run in this session, or its heatmaps "
                             "were not ready)")
            p = export_pdf(self.review, self.study, targets["pdf"], deidentify=self.deidentify, heatmaps=heat or None,
                           overwrite=self.overwrite)
            lines.insert(0, f"wrote {p}")
        if self.kind in ("json", "all"):
            lines.append(f"wrote {export_review_json(self.review, targets['json'], deidentify=self.deidentify, overwrite=self.overwrite)}")
        if self.kind in ("seg", "all"):
            seg = export_dicom_seg(self.review, self.study, targets["seg"])
            self.dicom_written += [Path(p) for p in seg.written.values()]
            lines += [f"wrote {p}" for p in seg.written.values()]
            lines += [f"DICOM SEG: {m}" for m in seg.skipped]
            if not seg.written and not seg.skipped:
                lines.append("DICOM SEG: no accepted or edited finding to export")
            lines += self._export_sr(targets["sr"])
        return lines

    def _export_sr(self, path: Path) -> list[str]:
        """The DICOM SR (TID 1500) beside the SEG: the reader's findings with size, location and decision."""
        from core_model.export.dicom_sr import export_dicom_sr
        from core_model.review.model import with_study_spacing

        if self.deidentify:
            return ["DICOM SR: not written: it must carry the patient's identity to attach to the images, "
                    "and this export is de-identified"]
        sr = export_dicom_sr(with_study_spacing(self.review, self.study), self.study, path)
        if sr.written:
            self.dicom_written.append(Path(sr.written))
        return ([f"wrote {sr.written}"] if sr.written else []) + [f"DICOM SR: {m}" for m in sr.skipped]


def export_targets(review: Review, out_dir: Path, kind: str, deidentify: bool) -> dict[str, Path]:
    """What an export of ``kind`` writes into ``out_dir``: names carry the patient and the study."""
    stem = export_stem(review, deidentify)
    every = {"pdf": out_dir / f"{stem}_report.pdf", "json": out_dir / f"{stem}_review.json", "seg": out_dir / f"{stem}_seg",
             "sr": out_dir / f"{stem}_sr.dcm"}
    if kind == "seg":  # the DICOM objects: segmentation and the structured report beside it
        return {"seg": every["seg"], "sr": every["sr"]}
    return every if kind == "all" else {kind: every[kind]}


def program_folder() -> Path:
    """The folder the program runs from (a checkout or an installed package): no place for a patient's report."""
    return Path(__file__).resolve().parents[2]


class ReviewWorkflow(QObject):
    review_opened = Signal(object)  # Review
    export_finished = Signal(list)  # message lines: what was written where, what was not and why
    export_failed = Signal(str)
    sent = Signal(int)  # objects the PACS accepted
    send_failed = Signal(str)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.store: ReviewStore | None = None
        # Where reviews are kept; None: the reader's folder (see ReviewStore). A headless render
        # points it at a temporary folder so it never touches the reader's reviews.
        self.review_root: Path | None = None
        self.controller: ReviewController | None = None
        self.findings_panel = None
        self.assessment_panel = None
        self.study = None
        self.last_export_dir: Path | None = None
        self.export_messages: list[str] = []
        self.sendable: list[Path] = []  # the last export's DICOM SEG and SR files
        self._send_job = None
        self._export_job: ExportJob | None = None
        self._threads = JobThreads()  # export and send threads, kept until they end, joined on close
        self.deidentify_action = QAction("De-identify exports (PDF and JSON)", self)
        self.deidentify_action.setCheckable(True)
        self.heatmaps_action = QAction("Include heatmaps in the PDF", self)
        self.heatmaps_action.setCheckable(True)
        window.editor.message.connect(lambda m: window.statusBar().showMessage(m, 8000))

    # -- menus and keys -----------------------------------------------------------
    def add_menu_options(self, file_menu) -> None:
        file_menu.addSeparator()
        file_menu.addAction(self.deidentify_action)
        file_menu.addAction(self.heatmaps_action)

    # -- the review of the open study ------------------------------------------------
    def close(self) -> None:
        """Drop the panels of the previous study (its review is already on disk)."""
        self.window.editor.set_controller(None)
        tabs = self.window.review_tabs
        while tabs.count():
            w = tabs.widget(0)
            tabs.removeTab(0)
            w.deleteLater()
        if self.controller is not None:
            self.controller.deleteLater()
        self.controller = self.findings_panel = self.assessment_panel = None
        self.study = None
        self.sendable = []  # the last export belonged to that study: never sent from another one

    def open(self, study, analysis=None) -> Review | None:
        """Restore (or start) ``study``'s review; add ``analysis``'s proposals if it has none yet."""
        if study is None:
            return None
        try:
            if self.controller is None or self.study is not study:
                self.close()
                self.store = ReviewStore(self.review_root)
                review = self.store.open(study, analysis)
                self._install(study, review)
                said = [w for w in self.store.warnings if w not in review.restore_warnings]
                if said:  # e.g. a damaged file was moved aside: the study is usable, one line says why
                    self.window.statusBar().showMessage(" ".join(w[:1].upper() + w[1:] for w in said), 30000)
                if review.restore_warnings:
                    # The reader must look before trusting old contours on new images: a dialog, not a status line.
                    self.window.show_error("Saved review restored: check it", "\n\n".join(
                        w[:1].upper() + w[1:] for w in review.restore_warnings))
                elif review.revision > 0 and (review.findings or review.reader):
                    self.window.statusBar().showMessage(f"Saved review restored ({len(review.findings)} finding(s))", 8000)
            elif analysis is not None and is_locked(self.controller.review):
                # what was signed stays as signed: a new run changes neither the findings nor the AI summary
                self.window.statusBar().showMessage(
                    "The review is finalised: the new analysis is shown on the images, the signed review is unchanged "
                    "(open an addendum to change it)", 12000)
            elif analysis is not None and not self.controller.review.ai.get("ran"):
                self._add_ai(study, analysis)
            elif analysis is not None:
                self._refresh_ai_summary(study, analysis)
        except NafvError as err:
            self.window.show_error("Review not available", str(err))
            return None
        return self.controller.review

    def hang_saved_assignments(self, study) -> list[str]:
        """Hang the images the reader placed in this study's saved review (runs in the loading thread)."""
        return ReviewStore(self.review_root).hang_saved_assignments(study)

    def _add_ai(self, study, analysis) -> None:
        # Not an undoable edit: the AI's proposals arrive once, beside whatever the reader drew.
        review = self.controller.review
        fresh = review_from_analysis(analysis, study, review.identity)
        add_ai_findings(review, fresh)
        review.ai = fresh.ai
        review.touch()
        self.store.save(review)
        self.controller.changed.emit("analysis")

    def _refresh_ai_summary(self, study, analysis) -> None:
        """A later run (e.g. the reader chose the other breast): its side, score and warnings replace the
        earlier run's, so the report states what the screen shows. The findings stay as the reader left
        them, which is right only if the same segmentation outlined them: otherwise the summary is kept."""
        review = self.controller.review
        fresh = review_from_analysis(analysis, study, review.identity)
        if fresh.ai == review.ai:
            return
        old_seg = (review.ai.get("models") or {}).get("segmentation")
        if old_seg != (fresh.ai.get("models") or {}).get("segmentation") or review.restore_warnings:
            self.window.statusBar().showMessage(
                "The saved findings came from another segmentation run: the review keeps that run's AI summary; "
                "start a new review to take this run's", 12000)
            return
        before = (review.ai, review.revision, review.modified)
        review.ai = fresh.ai
        review.touch()
        try:
            self.store.save(review)
        except Exception:
            review.ai, review.revision, review.modified = before  # memory stays what the disk holds
            raise
        self.controller.changed.emit("analysis")

    def _install(self, study, review: Review) -> None:
        self.study = study
        self.controller = ReviewController(ReviewSession(review, self.store), self)
        self.findings_panel = FindingsPanel(self.controller)
        self.assessment_panel = AssessmentPanel(self.controller)
        self.assessment_panel.finalise_requested.connect(self.finalise)
        tabs = self.window.review_tabs
        tabs.addTab(self.findings_panel, "Findings")
        tabs.addTab(self.assessment_panel, "Assessment")
        self.controller.error.connect(lambda m: self.window.statusBar().showMessage(m, 10000))
        self.controller.notice.connect(lambda m: self.window.statusBar().showMessage(m, 10000))
        self.controller.selection_changed.connect(self._follow_selection)
        self.window.editor.set_controller(self.controller)
        self.review_opened.emit(review)

    def _follow_selection(self, fid: str) -> None:
        f = self.controller.review.findings.get(fid) if self.controller else None
        if f is not None and self.window.state.active_view != f.key:
            self.window.state.active_view = f.key

    @property
    def path(self) -> Path | None:
        return None if self.controller is None else self.store.path_for(self.controller.review.identity)

    # -- actions ----------------------------------------------------------------------
    def _has_selection(self) -> bool:
        if self.controller is not None and self.controller.selected:
            return True
        self.window.statusBar().showMessage("Select a finding first: click its contour, or N / P to step through them", 8000)
        return False

    def accept_selected(self) -> bool:
        return self._has_selection() and self.controller.accept_selected()

    def reject_selected(self) -> bool:
        return self._has_selection() and self.controller.reject_selected()

    def step_finding(self, step: int) -> str:
        """Select the next (``step`` 1) or previous (-1) finding in list order and zoom every view
        that shows it onto it; hidden rejected findings are skipped. Returns the id, "" for none."""
        if self.controller is None:
            return ""
        review = self.controller.review
        shown = self.window.editor.show_rejected
        ids = [f.id for f in review.findings.values() if shown or f.state != "rejected"]
        if not ids:
            self.window.statusBar().showMessage("No finding to step to", 5000)
            return ""
        cur = self.controller.selected
        i = ids.index(cur) + step if cur in ids else (0 if step > 0 else len(ids) - 1)
        fid = ids[i % len(ids)]
        self.controller.select(fid)
        self.zoom_to_finding(fid)
        return fid

    def zoom_to_finding(self, fid: str) -> None:
        f = self.controller.review.findings.get(fid)
        if f is None:
            return
        for p in self.window.grid.visible_panels():  # hidden panels of the same view follow through the grid's sync
            img = p.current
            if p.key != f.key or img is None:
                continue
            pts = img.flips.to_display(np.asarray(f.polygon, dtype=float), img.shape)
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
            # the lesion at a third of the view, so its margin and the tissue around it are both seen
            half = max(x1 - x0, y1 - y0, 0.05 * max(img.shape)) * 1.5
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            p.vb.setRange(xRange=(cx - half, cx + half), yRange=(cy - half, cy + half), padding=0)
            p._on_manual_range()

    def finalise(self) -> bool:
        """Sign the review (or its open addendum) with the reader name of the Assessment tab."""
        if self.controller is None:
            return False
        if self.controller.push(Finalise(self.controller.review.reader)):
            self.window.statusBar().showMessage(status_text(self.controller.review), 15000)
            return True
        self.window.show_error("Not finalised", self.controller.last_error)
        return False

    def start_addendum(self, reason: str | None = None) -> bool:
        """Unlock a finalised review for an addendum; asks for the reason when ``reason`` is None."""
        if self.controller is None:
            return False
        if reason is None:
            reason, ok = QInputDialog.getText(self.window, "Addendum", "Reason for the addendum (printed in the report):")
            if not ok:
                return False
        if self.controller.push(OpenAddendum(self.controller.review.reader, reason)):
            self.window.statusBar().showMessage(status_text(self.controller.review), 15000)
            return True
        self.window.show_error("No addendum opened", self.controller.last_error)
        return False

    def undo(self) -> None:
        if self.controller is not None:
            self.controller.undo()

    def redo(self) -> None:
        if self.controller is not None:
            self.controller.redo()

    # -- exports -------------------------------------------------------------------------
    def export_start_dir(self) -> Path:
        """Where the folder dialog opens: the last export folder, else beside the study, never inside the program."""
        if self.last_export_dir is not None:
            return self.last_export_dir
        study_path = self.window.study_path
        if study_path is not None:
            try:
                Path(study_path).resolve().relative_to(program_folder())
            except ValueError:
                return Path(study_path).parent
        return Path.home()

    def export(self, kind: str, out_dir: str | Path | None = None, overwrite: bool | None = None) -> ExportJob | None:
        """Export into ``out_dir`` (asked for when None), off the GUI thread; see ``export_finished``.

        Files already there are replaced only when the reader says so (``overwrite`` None: asked)."""
        if kind not in EXPORT_KINDS:
            raise ValueError(kind)
        if self.controller is None or self.study is None:
            self.window.show_error("Nothing to export", "Open a study first.")
            return None
        if self._export_job is not None:
            self.window.statusBar().showMessage("An export is still running…")
            return None
        if out_dir is None:
            chosen = QFileDialog.getExistingDirectory(self.window, "Export into folder", str(self.export_start_dir()))
            if not chosen:
                return None
            out_dir = chosen
        deidentify = self.deidentify_action.isChecked()
        there = [p for p in export_targets(self.controller.review, Path(out_dir), kind, deidentify).values() if p.exists()]
        if there and overwrite is None:
            answer = QMessageBox.question(
                self.window, "Replace existing files?",
                f"{', '.join(p.name for p in there)} already exist{'s' if len(there) == 1 else ''} in {out_dir}. Replace?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            overwrite = answer == QMessageBox.StandardButton.Yes
        if there and not overwrite:
            self.window.statusBar().showMessage(f"Export cancelled: {there[0].name} already exists in {out_dir}", 15000)
            return None
        self.last_export_dir = Path(out_dir)
        job = ExportJob(kind, copy.deepcopy(self.controller.review), self.study, self.window.analysis, Path(out_dir),
                        deidentify, self.heatmaps_action.isChecked(), overwrite=bool(overwrite))
        self._export_job = job
        job.finished.connect(self._on_export_done)
        job.errored.connect(self._on_export_error)
        self.window.statusBar().showMessage(f"Exporting into {out_dir} …")
        self._threads.start(job, self)
        return job

    @Slot(object)
    def _on_export_done(self, lines: list) -> None:
        job, self._export_job = self._export_job, None
        # only while the same study's review is open: an export finishing after the reader moved on is not sendable
        same = job is not None and self.controller is not None and job.review.identity == self.controller.review.identity
        if job is not None and job.kind in ("seg", "all"):  # a PDF or JSON export leaves the last SEG and SR as they are
            self.sendable = list(job.dicom_written) if same else []
        server = self.window.origin_server()
        if self.sendable and server is not None:
            lines = list(lines) + [f"Send the DICOM SEG and SR to {server.url} with File > Send to the PACS (Ctrl+Shift+U)"]
        self.export_messages = list(lines)
        self.window.statusBar().showMessage(f"Exported into {self.last_export_dir}", 15000)
        box = QMessageBox(QMessageBox.Icon.Information, "Export finished",
                          f"Exported into {self.last_export_dir}", QMessageBox.StandardButton.Ok, self.window)
        box.setInformativeText("\n".join(lines))
        box.open()  # non-blocking
        self.export_box = box
        self.export_finished.emit(list(lines))

    def send_to_server(self):
        """Send the last export's DICOM SEG and SR to the PACS the study came from (STOW-RS), off the GUI
        thread; ``sent(int)`` or ``send_failed(message)``. None when there is nothing to send or nowhere."""
        from nafv_viewer.server_jobs import StoreJob

        server = self.window.origin_server()
        if server is None:
            self.window.show_error("Nothing to send to", "This study was opened from a folder, not retrieved from a "
                                   "PACS: there is no server to send the results back to.")
            return None
        if self._send_job is not None:
            self.window.statusBar().showMessage(f"Still sending to {self._send_job.server.url} …", 8000)
            return None
        if not self.sendable:
            self.window.show_error("Nothing to send", "Export the DICOM SEG first (File > Export DICOM SEG…, "
                                   "Ctrl+Shift+S): its files, and the structured report beside it, are what is sent.")
            return None
        job = StoreJob(server, self.sendable)
        job.finished.connect(self._on_sent)
        job.errored.connect(self._on_send_failed)
        job.auth_needed.connect(self._on_send_failed)
        self.window.statusBar().showMessage(f"Sending {len(self.sendable)} object(s) to {server.url} …")
        self._send_job = job  # kept: its signals must outlive this call; one send at a time
        for end in (job.finished, job.errored, job.cancelled, job.auth_needed):  # every way a send ends
            end.connect(self._send_ended)
        self._threads.start(job, None)  # not parented: closing the window must not destroy a running send
        return job

    @Slot()
    def _send_ended(self, *_) -> None:
        self._send_job = None

    @Slot(object)
    def _on_sent(self, n: int) -> None:
        job = self.sender()
        url = job.server.url if job is not None and hasattr(job, "server") else "the PACS"
        self.window.statusBar().showMessage(f"Sent {n} object(s) to {url}", 15000)
        self.sent.emit(int(n))

    @Slot(str)
    def _on_send_failed(self, message: str) -> None:
        self.window.show_error("Sending to the PACS failed", message)
        self.send_failed.emit(message)

    @Slot(str)
    def _on_export_error(self, message: str) -> None:
        self._export_job = None
        self.window.show_error("Export failed", message)
        self.export_failed.emit(message)

    def wait_exports(self, timeout_ms: int) -> None:
        """On closing: wait for exports and sends; one still blocked (a network share) is kept alive elsewhere."""
        self._threads.join(timeout_ms)