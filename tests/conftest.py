"""Shared fixtures: paths to the real files bundled in the repository."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]

# pytest puts tests/ on sys.path, where tests/core_model/ (no __init__.py) would be
# imported as an empty namespace package shadowing the real one, and then
# tests/core_model/io/ would shadow core_model.io. Import the real packages first.
sys.path.insert(0, str(REPO))
import core_model  # noqa: E402,F401
import core_model.io  # noqa: E402,F401
from orthanc_server import (Orthanc, StoredStudy, orthanc_files, running_orthanc, write_demo_study,  # noqa: E402
                            write_non_mg_study)

DEMO_DIR = REPO / "resources" / "demo"
DEMO_MASKS = REPO / "resources" / "demo_masks"
CDD_TEST_DIR = REPO / "tests" / "data" / "cdd-cesm"
FFDM_DIR = REPO / "tests" / "data" / "nyu-ffdm-4view"


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO_DIR


@pytest.fixture(scope="session")
def cdd_test_dir() -> Path:
    """images/ + masks/ of three real CDD-CESM patients (P12, P102, P106)."""
    return CDD_TEST_DIR


@pytest.fixture(scope="session")
def ffdm_dir() -> Path:
    """A real single-energy four-view exam (digital mammography, no recombined image), reduced 8x."""
    return FFDM_DIR


# ----------------------------------------------------------------------------- the public collection, replicated

CDD_COLUMNS = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS", "Findings",
               "View", "Tags", "Machine", "Pathology Classification/ Follow up"]
VIA_COLUMNS = ["#filename", "file_size", "file_attributes", "region_count", "region_id", "region_shape_attributes",
               "region_attributes"]
REPLICA_SIZE = (256, 208)
# patient number -> (label, how the outline is drawn on the recombined / low-energy image)
REPLICA_PATIENTS = {
    1: ("malignant", "polygon", "polygon"),
    2: ("benign", "ellipse", None),
    3: ("malignant", None, "polygon"),  # drawn on low energy only; names with stray spaces
    4: ("benign", "polygon", "point"),
    5: ("malignant", "polygon", None),  # BIRADS "4$2"
    6: ("benign", "circle", None),
    7: ("normal", None, None),
}


def _outline(mask, how: str) -> dict:
    """A VIA region drawn from a true lesion mask: its contour, or the ellipse / circle of its moments."""
    import numpy as np

    if how == "polygon":
        from contourpy import contour_generator

        lines = contour_generator(z=mask.astype(float)).lines(0.5)
        ring = max(lines, key=len)
        return {"name": "polygon", "all_points_x": [round(float(x), 1) for x in ring[:, 0]],
                "all_points_y": [round(float(y), 1) for y in ring[:, 1]]}
    rows, cols = np.nonzero(mask)
    cx, cy = float(cols.mean()), float(rows.mean())
    if how == "point":
        return {"name": "point", "cx": round(cx), "cy": round(cy)}
    if how == "circle":
        r = float(np.sqrt(mask.sum() / np.pi))  # the disc of the lesion's area
        return {"name": "circle", "cx": round(cx, 1), "cy": round(cy, 1), "r": round(r, 1)}
    evals, evecs = np.linalg.eigh(np.cov(np.stack([cols, rows])))
    major = evecs[:, 1]
    return {"name": "ellipse", "cx": round(cx, 1), "cy": round(cy, 1), "rx": round(2 * float(np.sqrt(evals[1])), 1),
            "ry": round(2 * float(np.sqrt(evals[0])), 1), "theta": float(np.arctan2(major[1], major[0]))}


def write_cdd_replica(pkg: Path) -> dict:
    """Synthetic studies in the layout of the TCIA download (see core_model/io/cdd_collection.py).

    Returns the ground truth: {"root": pkg, "truth": {(pid, side, view): true lesion mask},
    "labels": {pid: label}, "drawn": {(pid, side, view, energy): region}}.
    """
    import csv
    import json

    import numpy as np
    import openpyxl
    from PIL import Image

    from core_model.synth.phantom import case_seed, generate_case
    from core_model.domain.study import VIEW_KEYS

    low, sub = pkg / "CDD-CESM" / "Low energy images of CDD-CESM", pkg / "CDD-CESM" / "Subtracted images of CDD-CESM"
    low.mkdir(parents=True)
    sub.mkdir(parents=True)
    (low / "desktop.ini").write_text("[.ShellClassInfo]\n")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "all"
    ws.append(CDD_COLUMNS)
    regions, truth, labels, drawn = [], {}, {}, {}
    for n, (label, rc_how, le_how) in REPLICA_PATIENTS.items():
        pid = f"P{n}"
        case = generate_case(case_seed(11, n), size=REPLICA_SIZE, label=label if label != "normal" else "benign",
                             patient_number=n)
        labels[pid] = label
        for key in VIEW_KEYS:
            side, view = key.split("_")
            source = key
            if label == "normal":  # both breasts lesion-free: the phantom's normal breast and its mirror image
                source = f"{'R' if case.affected_side == 'L' else 'L'}_{view}"
            mask = case.masks[source].astype(bool)
            affected = mask.any()
            truth[(pid, side, view)] = mask
            for energy, kind, how, folder in (("le", "DM", le_how, low), ("rc", "CM", rc_how, sub)):
                px = (case.study.get(source, energy).pixels >> 4).astype(np.uint8)
                if source != key:
                    px = px[:, ::-1]
                stem = f"{pid}_{side}_{kind}_{view}"
                Image.fromarray(px).save(folder / f"{stem}.jpg", quality=95)
                pathology = label.capitalize() if affected else "Normal"
                birads = 1 if not affected else ("4$2" if n == 5 else case.birads)
                name = stem + (" " if n == 3 and energy == "rc" else "")  # "P3_L_CM_CC " as in the real sheet
                ws.append([name, n, side, "DM" if energy == "le" else "CESM", case.age,
                           case.density if energy == "le" else "_", birads, "synthetic", view, "synthetic", 1,
                           pathology])
                if affected and how:
                    region = _outline(mask, how)
                    drawn[(pid, side, view, energy)] = region
                    regions.append((stem + (" .jpg" if n == 3 else ".jpg"), region))
                elif not affected and n == 7 and key == "R_CC" and energy == "rc":
                    regions.append((stem + ".jpg", {}))  # VIA lists an image opened without a region as "{}"
    wb.save(pkg / "Radiology manual annotations.xlsx")
    with open(pkg / "Radiology_hand_drawn_segmentations_v2.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(VIA_COLUMNS)
        for i, (filename, region) in enumerate(regions):
            w.writerow([filename, 1000 + i, "{}", 1, 0, json.dumps(region), "{}"])
    return {"root": pkg, "truth": truth, "labels": labels, "drawn": drawn}


@pytest.fixture(scope="session")
def cdd_replica(tmp_path_factory) -> dict:
    """Seven synthetic patients (3 malignant, 3 benign, 1 normal) laid out like the public collection."""
    return write_cdd_replica(tmp_path_factory.mktemp("tcia") / "PKG - CDD-CESM")


# ---- a real Orthanc PACS for tests/pacs (one per test session, started on first use)


def _orthanc_files() -> tuple[str, str]:
    exe, plugin = orthanc_files()
    if exe is None or plugin is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed (Debian: apt-get install orthanc "
                    "orthanc-dicomweb; scripts/dev.sh test installs them when it can)")
    return exe, plugin


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    """Orthanc asking for a user name and password (USER; VISITOR is known but not authorised: 403)."""
    try:
        with running_orthanc(*_orthanc_files(), tmp_path_factory.mktemp("orthanc")) as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def orthanc_bearer(tmp_path_factory) -> Orthanc:
    """A second Orthanc that lets in only requests carrying ``Authorization: Bearer TOKEN`` (others: 403)."""
    try:
        with running_orthanc(*_orthanc_files(), tmp_path_factory.mktemp("orthanc-bearer"), bearer=True) as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def pacs_study(orthanc, tmp_path_factory) -> StoredStudy:
    """The demo CEM study (8 MG images), stored in Orthanc with STOW-RS."""
    import pydicom

    files = write_demo_study(tmp_path_factory.mktemp("stow") / "study", "PACS-0066", "Pacs^Demo")
    assert orthanc.server().store(files) == 8
    return StoredStudy(str(pydicom.dcmread(files[0]).StudyInstanceUID), "PACS-0066", "Pacs^Demo", files)


@pytest.fixture(scope="session")
def non_mg_study(orthanc, tmp_path_factory) -> str:
    """The StudyInstanceUID of a study in Orthanc that holds one OT image and no mammogram."""
    import pydicom

    path = write_non_mg_study(tmp_path_factory.mktemp("stow-ot"), "PACS-OT-1")
    assert orthanc.server().store([path]) == 1
    return str(pydicom.dcmread(path).StudyInstanceUID)
