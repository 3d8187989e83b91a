"""Pick the loader from what a folder holds and open one patient's study.

A folder is scanned (and its subfolders, a few levels deep, skipping mask and
hidden folders) and every file sorted into: DICOM, CDD-CESM-named image,
otherwise-named image with side/view/energy in its name, a known non-image
file (README.md, .csv, ...) that is ignored quietly, or something else, which
is skipped with a warning. DICOM wins when present, then CDD-CESM names, then
loose names. A folder or file the system will not let us read is named with
the reason (permission denied, ...), never passed over in silence.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core_model.domain.errors import StudyLoadError, os_error_words
from core_model.domain.jobs import CancelToken
from core_model.domain.study import ENERGIES, VIEW_KEYS, Study
from core_model.io import dicom
from core_model.io.cdd_cesm import folder_patient_id, load_named_study, normalize_patient, patient_sort_key
from core_model.io.images import IMAGE_SUFFIXES
from core_model.io.naming import NameInfo, parse_cdd_cesm_name, parse_loose_name

log = logging.getLogger(__name__)

MAX_DEPTH = 4  # DICOM exports nest patient/study/series/files
MAX_FILES = 100_000
IGNORED_SUFFIXES = frozenset({
    ".md", ".txt", ".rst", ".csv", ".tsv", ".json", ".xml", ".html", ".htm", ".pdf", ".xls", ".xlsx",
    ".doc", ".docx", ".yaml", ".yml", ".ini", ".cfg", ".log", ".py", ".zip", ".gz", ".tar", ".sha256",
    ".safetensors", ".pt", ".pth", ".npz", ".npy",
})
IGNORED_NAMES = frozenset({"dicomdir", "thumbs.db", "desktop.ini", "license", "readme"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".ima"})
# Folders beside the images that hold masks or annotations, not mammograms.
SKIPPED_DIR_RE = re.compile(r"mask|segmentation|annotation|label|overlay|__pycache__", re.IGNORECASE)
LOOKED_FOR = ("DICOM files, CDD-CESM images named like P12_L_DM_CC.jpg, or PNG/JPEG/TIFF files whose "
              "names give side, view and energy (like L_CC_LE.png)")


@dataclass
class Scan:
    root: Path
    dicom: list[Path] = field(default_factory=list)
    dicom_maybe: list[Path] = field(default_factory=list)  # .dcm without preamble, no-suffix files
    cdd: list[tuple[Path, NameInfo]] = field(default_factory=list)
    loose: list[tuple[Path, NameInfo]] = field(default_factory=list)
    unnamed: list[Path] = field(default_factory=list)  # images whose names give no view
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        if self.dicom or (self.dicom_maybe and not self.cdd and not self.loose):
            return "dicom"
        if self.cdd:
            return "cdd"
        if self.loose or self.unnamed:
            return "loose"
        return None


def _walk(root: Path, warnings: list[str]) -> list[Path]:
    if root.is_file():
        return [root]
    files: list[Path] = []
    base_depth = len(root.parts)

    def unreadable_folder(err: OSError) -> None:
        where = err.filename if err.filename is not None else root
        warnings.append(str(StudyLoadError(f"skipped, the folder cannot be read ({os_error_words(err)})", where)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_folder):
        here = Path(dirpath)
        depth = len(here.parts) - base_depth
        dirnames[:] = sorted(
            d for d in dirnames
            if depth < MAX_DEPTH and not d.startswith(".") and not SKIPPED_DIR_RE.search(d)
        )
        files.extend(here / f for f in sorted(filenames))
        if len(files) > MAX_FILES:
            break
    return files[:MAX_FILES]


def scan(path: str | Path) -> Scan:
    """Sort the files under ``path`` by kind; StudyLoadError if the path does not exist."""
    root = Path(path).expanduser()
    if not root.exists():
        raise StudyLoadError("no such file or folder", root)
    out = Scan(root=root)
    files = _walk(root, out.warnings)
    if len(files) >= MAX_FILES:
        out.warnings.append(f"{root}: only the first {MAX_FILES} files were looked at")
    for f in files:
        name, suffix = f.name.lower(), f.suffix.lower()
        if name.startswith(".") or name in IGNORED_NAMES or suffix in IGNORED_SUFFIXES:
            continue
        if suffix in IMAGE_SUFFIXES:
            info = parse_cdd_cesm_name(f)
            if info is not None:
                out.cdd.append((f, info))
                continue
            info = parse_loose_name(f, assume_le=True)
            if info is not None:
                out.loose.append((f, info))
            else:
                out.unnamed.append(f)
            continue
        try:
            is_dicom = dicom.has_preamble(f)
        except OSError as err:
            out.warnings.append(str(dicom.unreadable(f, err)))
            continue
        if is_dicom:
            out.dicom.append(f)
        elif suffix in DICOM_SUFFIXES or suffix == "":
            out.dicom_maybe.append(f)
        else:
            out.warnings.append(f"{f}: skipped, not a DICOM file or an image this viewer reads")
    return out


def _finish(study: Study | None, s: Scan, warnings: list[str], patient: str | None) -> Study:
    if study is None or (len(study) == 0 and not study.unassigned):
        detail = ""
        if warnings:
            shown = "\n".join(f"- {w}" for w in warnings[:10])
            more = f"\n- ... and {len(warnings) - 10} more" if len(warnings) > 10 else ""
            detail = f"\nFiles skipped:\n{shown}{more}"
        who = f" for patient {patient}" if patient else ""
        raise StudyLoadError(f"no usable mammogram{who}; looked for {LOOKED_FOR}.{detail}", s.root)
    # Hanging order (R_CC, L_CC, R_MLO, L_MLO; le before rc), whatever the file order was.
    order = {(k, e): i for i, (k, e) in enumerate((k, e) for k in VIEW_KEYS for e in ENERGIES)}
    study.images = dict(sorted(study.images.items(), key=lambda item: order[item[0]]))
    study.warnings.extend(warnings)
    for w in warnings:
        log.warning("%s", w)
    return study


def load_study(path: str | Path, patient: str | None = None, cancel: CancelToken | None = None) -> Study:
    """Open one patient's CEM study from a folder (or one file), choosing the loader from its contents.

    Raises StudyLoadError (a message for the user) when nothing usable is there,
    when the folder holds several patients and ``patient`` does not pick one, or
    when ``path`` does not exist. Files that cannot be used are skipped and
    listed in ``Study.warnings``. ``cancel`` (checked between files) raises
    :class:`core_model.domain.errors.Cancelled` when the caller gives up.
    """
    s = scan(path)
    warnings = list(s.warnings)
    kind = s.kind
    study: Study | None = None
    if kind == "dicom":
        ignored = len(s.cdd) + len(s.loose) + len(s.unnamed)
        if ignored:
            warnings.append(f"{s.root}: ignored {ignored} PNG/JPEG/TIFF file(s) beside the DICOM files")
        study = dicom.load_dicom_study(s.dicom + s.dicom_maybe, s.root, patient, warnings, cancel)
    elif kind == "cdd":
        one_patient = len({normalize_patient(i.patient_id) for _, i in s.cdd}) == 1
        others = [f for f, _ in s.loose] + ([] if one_patient else s.unnamed)
        if others:
            warnings.append(f"{s.root}: ignored {len(others)} image(s) not named like the CDD-CESM files, "
                            f"e.g. {others[0].name}")
        study = load_named_study(s.cdd, s.root, patient, cdd=True, warnings=warnings, cancel=cancel,
                                 unnamed=s.unnamed if one_patient else [])
    elif kind == "loose":
        study = load_named_study(s.loose, s.root, patient, cdd=False, warnings=warnings, cancel=cancel,
                                 unnamed=s.unnamed)
    return _finish(study, s, warnings, patient)


def list_patients(path: str | Path, cancel: CancelToken | None = None) -> list[str]:
    """Patient ids the folder holds, in a stable order (for batch processing).

    Reads DICOM headers only (remembered for the loads that follow); a file
    that cannot be used costs itself, never the listing.
    """
    s = scan(path)
    kind = s.kind
    if kind == "dicom":
        return dicom.list_dicom_patients(s.dicom + s.dicom_maybe, s.root, cancel)
    if kind == "cdd":
        return sorted({normalize_patient(i.patient_id) for _, i in s.cdd}, key=patient_sort_key)
    if kind == "loose":
        return sorted({folder_patient_id(f, s.root) for f in [f for f, _ in s.loose] + s.unnamed}, key=patient_sort_key)
    return []
