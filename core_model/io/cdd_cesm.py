"""Studies from image files named by the CDD-CESM convention or by looser names.

The public CDD-CESM collection ships as one folder per energy ("Low energy
images of CDD-CESM", "Subtracted images of CDD-CESM") holding every patient's
``P{id}_{L|R}_{DM|CM}_{CC|MLO}.jpg``; the project's subset puts them all in one
``images/`` folder beside ``masks/``. Either way the file name alone says the
patient and the slot, so :func:`load_named_study` only groups names by patient.
"""

from __future__ import annotations

import re
from pathlib import Path

from core_model.domain.errors import StudyLoadError
from core_model.domain.jobs import CancelToken
from core_model.domain.study import Study
from core_model.io.images import is_marked_synthetic, load_named_image, load_unnamed_image
from core_model.io.naming import NameInfo

COLLECTION = "CDD-CESM"
_PID_RE = re.compile(r"^\s*P?0*(\d+)\s*$", re.IGNORECASE)


def normalize_patient(pid: str) -> str:
    """'p012', '12' and 'P12' all name CDD-CESM patient P12; other ids are kept as given."""
    m = _PID_RE.match(str(pid))
    return f"P{int(m[1])}" if m else str(pid).strip()


def study_id_for(patient_id: str) -> str:
    """CDD-CESM has one examination per patient, so the patient number names the study."""
    return f"{COLLECTION}-{patient_id}"


def patient_sort_key(pid: str) -> tuple:
    m = _PID_RE.match(pid)
    return (0, int(m[1]), pid) if m else (1, 0, pid)


def describe_patients(patients: list[str], limit: int = 20) -> str:
    shown = ", ".join(patients[:limit])
    return shown + (f" and {len(patients) - limit} more" if len(patients) > limit else "")


def choose_patient(patients: list[str], patient: str | None, root: Path, normalize=normalize_patient) -> str:
    """The one patient to open, or StudyLoadError naming the patients the folder holds."""
    if patient is None:
        if len(patients) == 1:
            return patients[0]
        raise StudyLoadError(
            f"this folder holds images of {len(patients)} patients ({describe_patients(patients)}); "
            "choose one patient to open", root)
    wanted = normalize(patient)
    for p in patients:
        if normalize(p) == wanted:
            return p
    raise StudyLoadError(f"patient {patient} is not in this folder; it holds {describe_patients(patients)}", root)


def folder_patient_id(path: Path, root: Path) -> str:
    """Patient id of a loosely named image: its folder (names like L_CC_LE.png say no patient).

    Files in the opened folder itself belong to that folder's patient; files in
    subfolders belong to the subfolder (its path below the opened folder), so
    ``root/patA/R_CC_LE.png`` and ``root/patB/L_CC_LE.png`` are two patients,
    never one study.
    """
    base = root if root.is_dir() else root.parent
    try:
        rel = path.parent.relative_to(base)
    except ValueError:
        return path.parent.name
    return base.name if rel == Path(".") else rel.as_posix()


def load_named_study(
    files: list[tuple[Path, NameInfo]],
    root: Path,
    patient: str | None,
    *,
    cdd: bool,
    warnings: list[str],
    cancel: CancelToken | None = None,
    unnamed: list[Path] = (),
) -> Study:
    """One patient's study from named image files (CDD-CESM names when ``cdd``, else one patient per folder, see :func:`folder_patient_id`).

    ``unnamed`` images (names that give no view) of the chosen patient's folder (with CDD-CESM names:
    of a folder holding one patient) wait in :attr:`Study.unassigned` for the reader to place them."""
    by_patient: dict[str, list[tuple[Path, NameInfo]]] = {}
    for path, info in sorted(files, key=lambda f: str(f[0])):
        pid = normalize_patient(info.patient_id) if info.patient_id else folder_patient_id(path, root)
        by_patient.setdefault(pid, []).append((path, info))
    waiting: dict[str, list[Path]] = {}
    if cdd:  # CDD-CESM names carry the patient: an unnamed image can only be the sole patient's
        if len(by_patient) == 1:
            waiting[next(iter(by_patient))] = sorted(unnamed)
    else:
        for path in sorted(unnamed):
            waiting.setdefault(folder_patient_id(path, root), []).append(path)
    patients = sorted(set(by_patient) | set(waiting), key=patient_sort_key)
    chosen = choose_patient(patients, patient, root)
    study = Study(
        patient_id=chosen,
        study_id=study_id_for(chosen) if cdd else chosen,
        source=root,
        description=f"{COLLECTION} images" if cdd else "image folder",
    )
    for path, info in by_patient.get(chosen, []):
        if cancel is not None:
            cancel.check()
        slot = (f"{info.side}_{info.view}", info.energy)
        if slot in study.images:
            warnings.append(
                f"{path}: skipped, {slot[0]} {slot[1].upper()} is already taken by "
                f"{study.images[slot].source}; kept the first")
            continue
        try:
            study.add(load_named_image(path, info))
        except StudyLoadError as err:
            warnings.append(str(err))
            continue
        if info.energy_assumed:
            warnings.append(f"{path}: the file name gives no energy (low energy / recombined); shown as low energy")
        if not study.synthetic and is_marked_synthetic(path):
            study.synthetic = True
    for path in waiting.get(chosen, []):
        if cancel is not None:
            cancel.check()
        try:
            image = load_unnamed_image(path)
        except StudyLoadError as err:
            warnings.append(str(err))
            continue
        twin = study.unassigned_image(image.uid)
        if twin is not None:  # the same bytes twice: one place to choose, not two
            warnings.append(f"{path}: skipped, the same image as {twin.source.name}")
            continue
        warnings.append(f"{path}: {image.reason}; waits among the unassigned images for the reader to place it")
        study.unassigned.append(image)
    return study
