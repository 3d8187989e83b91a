"""Phantom datasets on disk: CDD-CESM layout, labels.csv, DICOM, read back through the project's loaders."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest
from PIL import Image

from core_model.cli.phantom import main as phantom_main
from core_model.cli.train import main as train_main
from core_model.domain.study import VIEW_KEYS
from core_model.io import load_study
from core_model.io.masks import read_mask_png
from core_model.io.naming import parse_cdd_cesm_name
from core_model.synth.phantom import case_seed, generate_case, write_dataset

SIZE = (192, 160)
CDD_COLUMNS = ["Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS", "Findings",
               "View", "Tags", "Machine", "Pathology Classification/ Follow up"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    write_dataset(out, n=4, seed=5, size=SIZE, dicom=True, benign_fraction=0.5)
    return out


def test_layout_names_and_labels(dataset):
    images = sorted((dataset / "images").glob("*.png"))
    masks = sorted((dataset / "masks").glob("*.png"))
    assert len(images) == len(masks) == 32
    assert [p.name for p in images] == [p.name for p in masks]
    infos = [parse_cdd_cesm_name(p) for p in images]
    assert all(i is not None for i in infos)
    assert {i.patient_id for i in infos} == {"P900000", "P900001", "P900002", "P900003"}
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == CDD_COLUMNS + ["Clock", "Nipple distance (mm)"]
        rows = list(reader)
    assert len(rows) == 32 and {r["Image_name"] + ".png" for r in rows} == {p.name for p in images}
    assert all("synthetic" in r["Tags"] and "synthetic" in r["Findings"] for r in rows)
    by_patient: dict[str, set[str]] = {}
    for r in rows:
        mask = read_mask_png(dataset / "masks" / f"{r['Image_name']}.png")
        if r["Pathology Classification/ Follow up"] == "Normal":
            assert r["BIRADS"] == "1" and not mask.any()
        else:
            by_patient.setdefault(r["Patient_ID"], set()).add(r["Pathology Classification/ Follow up"])
            assert mask.any()
            assert (r["BIRADS"] in ("2", "3")) == (r["Pathology Classification/ Follow up"] == "Benign")
    # each patient has one affected side and one label; exactly half of 4 are benign
    assert all(len(v) == 1 for v in by_patient.values())
    assert sorted(v.pop() for v in by_patient.values()) == ["Benign", "Benign", "Malignant", "Malignant"]


def test_labels_give_each_lesion_clock_and_nipple_distance_from_the_geometry(dataset):
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(dataset / "lesions.csv", newline="", encoding="utf-8") as fh:
        lesions = {r["Image_name"]: r for r in csv.DictReader(fh)}
    spacing = 240.0 / SIZE[0], 195.0 / SIZE[1]
    for r in rows:
        if r["Pathology Classification/ Follow up"] == "Normal":
            assert r["Clock"] == "" and r["Nipple distance (mm)"] == ""
            continue
        clock, dist = float(r["Clock"]), float(r["Nipple distance (mm)"])
        assert 0 < clock <= 12
        les = lesions[r["Image_name"].replace("_DM_", "_CM_")]
        assert float(les["clock"]) == pytest.approx(clock)
        # the lesion centre lies about that far from the nipple; the nipple tip drawn in profile
        # reaches up to 4.5 mm beyond the skin-line point of lesions.csv
        skin = np.hypot((float(les["center_row"]) - float(les["nipple_row"])) * spacing[0],
                        (float(les["center_col"]) - float(les["nipple_col"])) * spacing[1])
        assert skin - 1.0 <= dist <= skin + 5.0


def test_png_files_load_losslessly_through_load_study(dataset):
    # write_dataset fixed the label of case 2; its pixels follow from the case seed and that label
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as fh:
        label = {r["Pathology Classification/ Follow up"] for r in csv.DictReader(fh)
                 if r["Patient_ID"] == "900002"} - {"Normal"}
    case = generate_case(case_seed(5, 2), size=SIZE, label=label.pop().lower(), patient_number=2)
    study = load_study(dataset / "images", patient="P900002")
    assert study.complete
    for key in VIEW_KEYS:
        for e in ("le", "rc"):
            img = study.get(key, e)
            assert img.pixels.dtype == np.uint16
            np.testing.assert_array_equal(img.pixels, case.study.get(key, e).pixels)
        saved = read_mask_png(dataset / "masks" / f"P900002_{key[0]}_CM_{key[2:]}.png")
        np.testing.assert_array_equal(saved, case.masks[key].astype(bool))


def test_dicom_files_load_and_say_synthetic(dataset):
    study = load_study(dataset / "dicom" / "P900001")
    assert study.complete and study.synthetic
    png = load_study(dataset / "images", patient="P900001")
    for key in VIEW_KEYS:
        for e in ("le", "rc"):
            img = study.get(key, e)
            np.testing.assert_array_equal(img.pixels, png.get(key, e).pixels)
            assert img.pixel_spacing_mm == pytest.approx((240 / SIZE[0], 195 / SIZE[1]), rel=1e-4)
    ds = pydicom.dcmread(next((dataset / "dicom" / "P900001").glob("*_L_CM_CC.dcm")))
    assert ds.Modality == "MG" and ds.ImageLaterality == "L" and ds.ViewPosition == "CC"
    assert "RECOMBINED" in ds.ImageType and "SYNTHETIC" in ds.SeriesDescription
    assert list(ds.PatientOrientation) == ["A", "R"]  # left CC: nipple to the right, lateral at the top


def test_png_phantoms_say_synthetic_even_when_copied_out_of_their_folder(dataset, tmp_path, demo_dir):
    assert load_study(dataset / "images", patient="P900003").synthetic
    # one study's PNGs alone in a new folder, no README beside them: the mark is in each file
    loose = tmp_path / "loose"
    loose.mkdir()
    for f in (dataset / "images").glob("P900003_*.png"):
        (loose / f.name).write_bytes(f.read_bytes())
    copied = load_study(loose)
    assert copied.complete and copied.synthetic
    assert not load_study(demo_dir).synthetic  # real CDD-CESM images stay a patient's
    # a real folder whose notes mention a real image type called "SYNTHETIC 2D" is still a patient's
    real = tmp_path / "real"
    real.mkdir()
    for f in demo_dir.glob("*.jpg"):
        (real / f.name).write_bytes(f.read_bytes())
    (real / "README.txt").write_text("SYNTHETIC 2D views are not included; these are the FFDM views.\n")
    assert not load_study(real).synthetic


def test_same_seed_writes_the_same_files(dataset, tmp_path):
    write_dataset(tmp_path, n=2, seed=5, size=SIZE)
    for name in ("P900000_L_DM_CC.png", "P900001_R_CM_MLO.png"):
        np.testing.assert_array_equal(np.array(Image.open(tmp_path / "images" / name)),
                                      np.array(Image.open(dataset / "images" / name)))


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "ph"
    args = ["--out", str(out), "--n", "2", "--seed", "1", "--size", "128", "104", "--benign-fraction", "1",
            "--difficulty", "hard"]
    assert phantom_main(args) == 0
    assert len(list((out / "images").glob("*.png"))) == 16
    with open(out / "labels.csv", newline="", encoding="utf-8") as fh:
        assert {r["Pathology Classification/ Follow up"] for r in csv.DictReader(fh)} == {"Benign", "Normal"}
    assert np.array(Image.open(out / "images" / "P900000_L_DM_CC.png")).shape == (128, 104)
    capsys.readouterr()
    assert train_main(["phantom"] + args) == 2  # folder already holds images: message, no traceback
    assert "already holds images" in capsys.readouterr().err
    assert train_main(["phantom", "--out", str(tmp_path / "x"), "--n", "0"]) == 2


def test_lesions_csv_matches_the_masks(dataset):
    with open(dataset / "lesions.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8  # CC and MLO of the affected breast of 4 patients
    for r in rows:
        mask = read_mask_png(dataset / "masks" / f"{r['Image_name']}.png")
        rr, cc = np.nonzero(mask)
        assert (int(r["box_row0"]), int(r["box_col0"]), int(r["box_row1"]), int(r["box_col1"])) == (
            rr.min(), cc.min(), rr.max() + 1, cc.max() + 1)
        assert r["view_key"][0] == r["Image_name"].split("_")[1]
    for pid in {r["Patient_ID"] for r in rows}:
        depths = {r["depth_mm"] for r in rows if r["Patient_ID"] == pid}
        assert len(depths) == 1  # CC and MLO at the same depth from the nipple


def test_trainers_data_readers_see_four_view_cases(dataset):
    """The classification reader finds one labelled case per patient, each with its contralateral breast;
    the segmentation reader finds both breasts of every patient with CC and MLO masks."""
    from core_model.train.cls_data import load_cases
    from core_model.train.seg_data import scan_folder

    with open(dataset / "labels.csv", newline="", encoding="utf-8") as fh:
        truth = {(f"P{r['Patient_ID']}", r["Side"]): int(r["Pathology Classification/ Follow up"] == "Malignant")
                 for r in csv.DictReader(fh) if r["Pathology Classification/ Follow up"] != "Normal"}
    cases, notes = load_cases(dataset, dataset / "labels.csv")
    assert not notes and len(cases) == 4
    assert {(c.patient_id, c.side): c.label for c in cases} == truth
    assert all(c.contralateral is not None and all(m.any() for m in c.masks.values()) for c in cases)
    breasts = scan_folder(dataset)
    assert len(breasts) == 8 and all(set(b.masks) == {"CC", "MLO"} for b in breasts.values())
