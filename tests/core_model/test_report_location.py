"""`nafv-analyze STUDY --report` on a synthetic DICOM study with pixel spacing: the PDF gives sizes in mm,
clock face and distance from the nipple, and the DICOM SR reads back with the same measurements."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw

from core_model.cli.analyze import main
from core_model.export.dicom_sr import read_sr_findings
from core_model.io.masks import read_mask_png
from core_model.synth.phantom import PhantomConfig, write_dataset


def _overlaps(poly, mask) -> bool:
    img = Image.new("L", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in poly], fill=1)
    return bool((np.asarray(img, bool) & mask).any())


@pytest.mark.slow
def test_report_on_phantom_dicom_locates_the_lesion_where_the_generator_put_it(tmp_path, capsys):
    data = write_dataset(tmp_path / "ph", n=1, seed=7, dicom=True, config=PhantomConfig.preset("easy"))
    out = tmp_path / "out"
    assert main([str(data / "dicom" / "P900000"), "--out", str(out), "--report", "--no-explain", "--device", "cpu"]) == 0
    doc = json.loads((out / "analysis.json").read_text())
    with open(data / "labels.csv", newline="", encoding="utf-8") as fh:
        truth = {f"{r['Side']}_{r['View']}": r for r in csv.DictReader(fh) if r["Clock"] and "_CM_" in r["Image_name"]}
    assert len(truth) == 2
    found = {}
    for key, row in truth.items():
        mask = read_mask_png(data / "masks" / f"{row['Image_name']}.png")
        hits = [les for les in doc["views"][key]["lesions"] if _overlaps(les["polygon"], mask)]
        assert hits, f"the shipped segmentation found no contour on the lesion of {key}"
        les = max(hits, key=lambda x: x["score"])
        loc = les["location"]
        assert set(loc) >= {"clock", "quadrant", "depth", "nipple_distance_mm"}
        gap = abs(loc["clock"] - float(row["Clock"])) % 12
        assert min(gap, 12 - gap) <= 1.0
        assert abs(loc["nipple_distance_mm"] - float(row["Nipple distance (mm)"])) <= 10.0
        assert les["size"]["unit"] == "mm" and les["size"]["max_diameter_mm"] > 0
        found[key] = les

    # the SR beside the SEG: the same sizes and distances, on the source images
    sr_path = next(out.glob("*_sr.dcm"))
    assert f"wrote {sr_path}" in capsys.readouterr().out
    groups = read_sr_findings(sr_path)
    for key, les in found.items():
        src = pydicom.dcmread(next((data / "dicom" / "P900000").glob(f"*_{key[0]}_CM_{key[2:]}.dcm")), stop_before_pixels=True)
        mine = [g for g in groups if g["source_sop_instance_uid"] == src.SOPInstanceUID
                and np.allclose(g["polygon"], les["polygon"], atol=0.01)]
        assert len(mine) == 1
        m = mine[0]["measurements"]
        assert m["Diameter"][0] == pytest.approx(les["size"]["max_diameter_mm"], abs=0.01)
        assert m["Distance from nipple"][0] == pytest.approx(les["location"]["nipple_distance_mm"], abs=0.05)
        assert mine[0]["evaluations"]["Reader decision"] == "Not reviewed"

    if shutil.which("pdftotext"):
        text = " ".join(subprocess.run(["pdftotext", str(next(out.glob("*_report.pdf"))), "-"], capture_output=True,
                                       text=True, check=True).stdout.split())
        for les in found.values():
            assert f"{les['size']['max_diameter_mm']:.1f} mm" in text
            assert f"{les['location']['nipple_distance_mm']:.0f} mm from nipple" in text
        assert "o'clock" in text or ":30" in text
        assert "no spacing" not in text
