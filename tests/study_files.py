"""Study files the tests make: hostile DICOM values and a study beside a huge file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

GIB = 1024**3


def set_raw_ds(path: Path, keyword: str, value: bytes) -> None:
    """Store a DS value as raw bytes, as a modality would have written it (pydicom refuses to write it otherwise)."""
    from pydicom.datadict import tag_for_keyword
    from pydicom.dataelem import RawDataElement

    ds = pydicom.dcmread(path)
    tag = pydicom.tag.Tag(tag_for_keyword(keyword))
    ds._dict[tag] = RawDataElement(tag, "DS", len(value), value, 0, False, True)
    ds.save_as(path)


def seven_images_and_a_huge_file(folder: Path, demo_dir: Path) -> Path:
    """Seven small DICOM images of the demo patient (no L-MLO RC) and a 2 GB sparse file of zeros after a preamble."""
    from core_model.io import write_mg_dicom
    from core_model.io.naming import parse_cdd_cesm_name

    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(demo_dir.glob("P66_*.jpg")):
        info = parse_cdd_cesm_name(f)
        if (info.side, info.view, info.energy) == ("L", "MLO", "rc"):
            continue
        px = np.asarray(Image.open(f).convert("L").resize((200, 256), Image.BILINEAR))
        write_mg_dicom(folder / f"{f.stem}.dcm", px, side=info.side, view=info.view, energy=info.energy,
                       patient_id="P66")
    big = folder / "big.dcm"
    with open(big, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        fh.truncate(2 * GIB)
    return big


CBIS_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))


def cbis_ddsm_study(folder: Path, demo_dir: Path, views=CBIS_VIEWS, unplaced: int = 0) -> dict[str, np.ndarray]:
    """A single-energy exam as CBIS-DDSM publishes it, made from the demo's low-energy images.

    16-bit MG DICOMs, RLE for the CC views and uncompressed for the MLO views;
    the side only in Laterality (0020,0060) (no ImageLaterality, no
    PatientOrientation), the view only in PatientID
    (``Mass-Test_P_00173_LEFT_CC``: no ViewPosition, ViewCodeSequence or
    SeriesDescription, file names ``1-1.dcm``), no energy marker, and each image
    with its own StudyInstanceUID, as in the archive. ``unplaced`` more images
    (of the L-MLO low-energy pixels, flipped) carry no side or view anywhere.
    Returns SOP Instance UID -> pixels written.
    """
    from pydicom.uid import RLELossless, generate_uid

    from core_model.io import write_mg_dicom
    from core_model.io.naming import parse_cdd_cesm_name

    folder.mkdir(parents=True, exist_ok=True)
    le = {}
    for f in sorted(Path(demo_dir).glob("P66_*_DM_*.jpg")):
        info = parse_cdd_cesm_name(f)
        le[(info.side, info.view)] = np.asarray(Image.open(f).convert("L").resize((200, 256), Image.BILINEAR))
    no_view = dict(ViewPosition=None, ViewCodeSequence=None, SeriesDescription=None, ImageType=["DERIVED", "SECONDARY"],
                   PatientOrientation=None, StudyDate="20160720")
    written: dict[str, np.ndarray] = {}
    for side, view in views:
        px = le[(side, view)].astype(np.uint16) * 257  # 16 bits used
        word = {"L": "LEFT", "R": "RIGHT"}[side]
        path = folder / f"Mass-Test_P_00173_{word}_{view}" / "1-1.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mg_dicom(path, px, side=side, view=view, energy="le", patient_id=f"Mass-Test_P_00173_{word}_{view}",
                       study_uid=generate_uid(), transfer_syntax=RLELossless if view == "CC" else None,
                       ImageLaterality=None, Laterality=side, **no_view)
        written[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = px
    for i in range(unplaced):
        px = np.ascontiguousarray(le[("L", "MLO")][:, ::-1]).astype(np.uint16) * 257
        path = folder / "extra" / f"{i + 1}-1.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mg_dicom(path, px, side="L", view="MLO", energy="le", patient_id="Mass-Test_P_00173",
                       study_uid=generate_uid(), ImageLaterality=None, Laterality=None, **no_view)
        written[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = px
    return written
