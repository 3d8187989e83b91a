"""``nafv-analyze``: analyse one or more CEM studies and write analysis.json + PNGs.

    nafv-analyze STUDY_PATH [STUDY_PATH ...] --out DIR [--weights-seg W] [--weights-cls W]
                 [--device cpu|cuda] [--affected L|R] [--patient ID] [--threads N] [--no-explain]
                 [--report [--deidentify] [--overwrite]]
    nafv-analyze --server URL --study STUDY_UID [--study UID ...] --out DIR [--report] [--store] [...]

One study -> ``DIR/analysis.json``; several (several paths, or a folder that
holds several patients) -> ``DIR/<patient>/analysis.json``, processed in turn
with a progress bar; one failure does not stop the rest. ``--report`` adds
the unreviewed report of :func:`core_model.export.bundle.export_ai_report`
(PDF, review JSON, DICOM SEG and DICOM SR; every contour marked as an AI proposal).

Each study's outputs are written whole or not at all
(:func:`core_model.io.result_dir.staged_result_dir`): a failed rerun leaves the
previous result as it was. A study given twice (the same path, or the same
study found under another path) is said once on stderr and analysed once.
Per-study folder names are cut to ``core_model.domain.study.FILE_ID_MAX`` characters, with a hash
of the full patient id keeping cut ids apart.

With ``--server`` the studies come from a PACS over DICOMweb
(:mod:`core_model.io.dicomweb`: retrieved into the local cache, so a second
run reads them from disk); ``--store`` sends the report's DICOM SEG back with
STOW-RS. Credentials come from the environment only (``NAFV_DICOMWEB_TOKEN``,
or ``NAFV_DICOMWEB_USER`` / ``NAFV_DICOMWEB_PASSWORD``).

Exit codes: 0 all analysed; 1 some of several studies failed (named on
stderr); 2 bad input or options (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from core_model.domain.analysis import side_source_words
from core_model.domain.errors import NafvError
from core_model.domain.notice import NO_LESION_FOUND_SHORT, score_words
from core_model.domain.study import SIDE_NAMES, file_safe_id


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(2, f"nafv-analyze: {message} (see nafv-analyze --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nafv-analyze", description="Analyse CEM studies: lesion contours, affected side, malignancy probability, "
                "Grad-CAM heatmaps; writes analysis.json + PNGs.",
                epilog="Research software: not for clinical use.")
    p.add_argument("studies", nargs="*", metavar="STUDY_PATH", help="a study folder (or a folder of studies, or a file)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument("--weights-seg", type=Path, default=None, metavar="W", help="segmentation weights (.safetensors); default: shipped")
    p.add_argument("--weights-cls", type=Path, default=None, metavar="W", help="classifier weights (.safetensors); default: shipped")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all this process may use)")
    p.add_argument("--affected", choices=["L", "R", "l", "r"], default=None,
                   help="affected breast, if known (default: decided from the segmentation)")
    p.add_argument("--patient", default=None, help="patient id, when a folder holds several")
    p.add_argument("--no-explain", action="store_true", help="skip the Grad-CAM heatmaps")
    p.add_argument("--no-overlays", action="store_true", help="do not write the *_overlay.png quick-look images")
    p.add_argument("--report", action="store_true",
                   help="also write the unreviewed report: PDF, review JSON, DICOM SEG and SR (AI proposals, marked as such)")
    p.add_argument("--deidentify", action="store_true", help="with --report: no patient identity in the PDF and JSON")
    pacs = p.add_argument_group("PACS (DICOMweb)", "credentials only from the environment: NAFV_DICOMWEB_TOKEN, or "
                                "NAFV_DICOMWEB_USER and NAFV_DICOMWEB_PASSWORD")
    pacs.add_argument("--server", metavar="URL", help="DICOMweb address of the PACS, e.g. http://pacs:8042/dicom-web")
    pacs.add_argument("--study", action="append", default=[], metavar="STUDY_UID",
                      help="with --server: the StudyInstanceUID to retrieve and analyse (may be given several times)")
    pacs.add_argument("--store", action="store_true",
                      help="with --server: send the DICOM SEG of the report back to the PACS (implies --report)")
    p.add_argument("--overwrite", action="store_true", help="with --report: replace a report already in the output folder")
    return p


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__



# A DICOM StudyInstanceUID: unique worldwide, so equal UIDs are the same study.
_UID = re.compile(r"\d+(?:\.\d+)+")


def _study_key(study) -> tuple:
    """What makes two inputs the same study.

    Study ids that are not DICOM UIDs are made from file or folder names, which
    two different patients' folders can share, so there the pixels must match too.
    """
    if _UID.fullmatch(study.study_id or ""):
        return ("uid", study.patient_id, study.study_id)
    from core_model.review.store import study_identity

    return ("pixels", study.patient_id, study.study_id, study_identity(study)["digest"])


def _drop_repeats(jobs: list[tuple[str, str | None, str | None]]) -> tuple[list, list[str]]:
    """Jobs with each (folder, patient) once, and one line per input given more than once."""
    seen: dict[tuple[str, str | None], int] = {}
    kept = []
    for job in jobs:
        key = (os.path.realpath(job[0]), job[1])
        if key not in seen:
            kept.append(job)
        seen[key] = seen.get(key, 0) + 1
    said = []
    for (path, pid), n in seen.items():
        if n > 1:
            label = path + (f" [{pid}]" if pid else "")
            said.append(f"nafv-analyze: {label} is given {'twice' if n == 2 else f'{n} times'}; analysed once")
    return kept, said


def _jobs(paths: list[str], patient: str | None) -> list[tuple[str, str | None, str | None]]:
    """(path, patient, error) per study to run; an error names a path that cannot be listed."""
    from core_model.io import list_patients

    jobs: list[tuple[str, str | None, str | None]] = []
    for p in paths:
        if patient is not None:
            jobs.append((p, patient, None))
            continue
        try:
            pats = list_patients(p)
        except NafvError as exc:
            jobs.append((p, None, _one_line(exc)))
            continue
        if len(pats) > 1:
            jobs += [(p, pid, None) for pid in pats]
        else:
            jobs.append((p, None, None))
    return jobs


def _summary(name: str, analysis, json_path: Path) -> str:
    n = sum(len(v.lesions) for v in analysis.views.values())
    prob = analysis.malignancy_probability
    if analysis.lesion_found is False and analysis.affected_side is None:
        return f"{name}: {NO_LESION_FOUND_SHORT}, no classifier score; {json_path}"
    score = (f"classifier score {prob:.2f} ({analysis.classifier_mode}; {score_words(analysis.models)})"
             if prob is not None else "no classifier score")
    side = SIDE_NAMES.get(analysis.affected_side or "", "undetermined")
    source = "given with --affected" if analysis.affected_side_source == "caller" else side_source_words(
        analysis.affected_side_source)
    return f"{name}: affected breast {side} ({source}), {n} lesion(s), {score}; {json_path}"


def _relocated(bundle, stage: Path, out: Path):
    """The report's paths as they are once the staged folder is in place."""
    def move(p: Path) -> Path:
        return out / Path(p).relative_to(stage)

    bundle.pdf, bundle.json = move(bundle.pdf), move(bundle.json)
    bundle.seg.written = {k: move(p) for k, p in bundle.seg.written.items()}
    if bundle.sr.written is not None:
        bundle.sr.written = move(bundle.sr.written)
    return bundle


def _from_server(args: argparse.Namespace):
    """With ``--server``: retrieve each ``--study`` into the cache and analyse those folders; None without."""
    if args.server is None:
        if args.study or args.store:
            raise NafvError("--study and --store need --server URL")
        if not args.studies:
            raise NafvError("give a STUDY_PATH, or --server URL --study STUDY_UID")
        return None
    if args.studies:
        raise NafvError("give either STUDY_PATH or --server with --study, not both")
    if not args.study:
        raise NafvError("--server needs --study STUDY_UID (search for studies in the viewer: nafv-viewer --server URL)")
    if args.store:
        if args.deidentify:
            raise NafvError("--store sends a DICOM SEG, which carries the patient's identity: not with --deidentify")
        args.report = True
    from tqdm import tqdm

    from core_model.io.dicomweb import DicomWebServer

    server = DicomWebServer(args.server)
    for uid in args.study:
        with tqdm(total=100, desc=f"retrieving {uid[-12:]}", unit="%", file=sys.stderr, leave=False,
                  disable=None) as bar:
            def progress(stage: str, fraction: float, bar=bar) -> None:
                bar.n = round(100 * fraction)
                bar.set_postfix_str(stage, refresh=True)

            # a batch's earlier studies stay in the cache until analysed, whatever the cache limit
            kept = [Path(s) for s in args.studies]
            args.studies.append(str(server.retrieve_study(uid, progress=progress, keep=kept)))
    return server


def _store(server, bundle) -> str:
    """Send the report's DICOM SEG files to the PACS; one line saying what went."""
    files = list(bundle.seg.written.values()) if bundle is not None else []
    if not files:
        return "sent nothing to the PACS: no DICOM SEG was written (see above)"
    n = server.store(files)
    return f"sent {n} DICOM SEG object(s) to {server.url}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: return the code instead of exiting
        return int(exc.code or 0)
    try:
        return _run(args)
    except NafvError as exc:
        print(f"nafv-analyze: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nafv-analyze: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    server = _from_server(args)  # before the model imports: a PACS that cannot give the study says so at once
    from tqdm import tqdm

    from core_model.domain.notice import NOT_FOR_CLINICAL_USE
    from core_model.domain.resources import DEFAULT_SEG_WEIGHTS
    from core_model.inference.inputs_check import card_channels, check_inputs
    from core_model.io import load_study
    from core_model.io.result_dir import staged_result_dir

    if args.threads is not None and args.threads < 1:
        raise NafvError("--threads must be at least 1")
    jobs, repeats = _drop_repeats(_jobs(args.studies, args.patient))
    single = len(jobs) == 1
    if single and jobs[0][2] is not None:
        raise NafvError(jobs[0][2])
    # Each study is read and checked before the models are built: a study the models cannot read (a
    # single-energy exam) is refused at once, not after torch and the weights have loaded.
    channels = card_channels(args.weights_seg if args.weights_seg is not None else DEFAULT_SEG_WEIGHTS)
    analyzer = None
    affected = args.affected.upper() if args.affected else None

    failed: list[str] = []
    used: set[str] = set()
    first_of: dict[tuple, str] = {}  # study key -> the label it was first seen under
    for line in repeats:
        print(line, file=sys.stderr)
    bar = tqdm(jobs, desc="studies", unit="study", disable=single, file=sys.stderr)
    for path, pid, err in bar:
        label = f"{path}" + (f" [{pid}]" if pid else "")
        building = False  # weights that cannot be loaded stop the whole run, not one study
        try:
            if err is not None:
                raise NafvError(err)
            study = load_study(path, patient=pid)
            if study.unassigned:  # images without a view: hang them where the reader placed them in the viewer
                from core_model.review.store import ReviewStore

                study.warnings.extend(ReviewStore().hang_saved_assignments(study))
            key = _study_key(study)
            if key in first_of:
                pid_shown = study.patient_id if len(study.patient_id) <= 40 else study.patient_id[:39] + "…"
                tqdm.write(f"nafv-analyze: skipped {label}: the same study as {first_of[key]} (patient "
                           f"{pid_shown}); analysed once", file=sys.stderr)
                continue
            first_of[key] = label
            name = file_safe_id(study.patient_id or Path(path).name)
            if not single:
                base, k = name, 2
                while name in used:
                    name, k = f"{base}_{k}", k + 1
                used.add(name)
            out = args.out if single else args.out / name
            if args.report and not args.overwrite and out.is_dir():
                # a report already there (perhaps another patient's, or a reader's copy) is never replaced unasked
                there = sorted(p.name for p in out.glob("*report.pdf"))
                if there:
                    raise NafvError(f"{out / there[0]} already exists: nothing was written; give --overwrite to "
                                    "replace it, or another --out")
            if channels is not None:
                check_inputs(study, channels)
            if analyzer is None:
                from core_model.inference.analyzer import Analyzer

                building = True
                analyzer = Analyzer(args.weights_seg, args.weights_cls, device=args.device, num_threads=args.threads)
                building = False
            analysis = analyzer.analyze(study, affected_side=affected, explain=not args.no_explain)
            bundle = None
            from core_model.io.analysis_json import write_analysis

            with staged_result_dir(out) as stage:
                json_path = out / write_analysis(analysis, stage, study=study, overlays=not args.no_overlays).name
                if args.report:
                    from core_model.export.bundle import export_ai_report

                    bundle = _relocated(export_ai_report(analysis, study, stage, deidentify=args.deidentify), stage, out)
            tqdm.write(_summary(study.patient_id or name, analysis, json_path), file=sys.stdout)
            for line in bundle.messages() if bundle is not None else []:
                tqdm.write(f"  {line}", file=sys.stdout)
            if server is not None and args.store:
                tqdm.write(f"  {_store(server, bundle)}", file=sys.stdout)
        except NafvError as exc:
            if single or building:
                raise
            failed.append(f"{label}: {_one_line(exc)}")
            tqdm.write(f"nafv-analyze: failed: {label}: {_one_line(exc)}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - one broken study must not stop a batch
            if single or building:
                raise
            failed.append(f"{label}: internal error ({type(exc).__name__}: {_one_line(exc)})")
            tqdm.write(f"nafv-analyze: failed: {failed[-1]}", file=sys.stderr)
    print(NOT_FOR_CLINICAL_USE, file=sys.stderr)
    if failed:
        print(f"nafv-analyze: {len(failed)} of {len(jobs)} studies failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def console_main() -> None:
    """The ``nafv-analyze`` command: :func:`main`, then the process ends without tearing the
    interpreter down. Every output is written, renamed into place and closed before ``main``
    returns; the teardown would only free torch's thousands of modules one by one, which takes
    about 0.7 s of a 5 s run on a 2-core machine."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
