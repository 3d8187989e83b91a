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
