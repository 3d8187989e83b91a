"""The public CDD-CESM collection as downloaded: layout, spreadsheet, drawn outlines -> masks (on a replica)."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from core_model.domain.errors import NafvError
from core_model.io.cdd_collection import (POINT_RADIUS_PX, DrawnMask, find_collection, rasterize, read_segmentations,
                                          read_table)
from core_model.train.cls_data import read_labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_finds_the_collection_and_indexes_every_image(cdd_replica, cdd_test_dir, tmp_path):
    root = cdd_replica["root"]
    coll = find_collection(root)
    assert len(coll.images) == 7 * 8  # desktop.ini beside the JPEGs is not an image
    assert coll.patients() == [f"P{n}" for n in range(1, 8)]
    assert {k[3] for k in coll.images} == {"le", "rc"}
    assert all(p.parent.name == ("Low energy images of CDD-CESM" if k[3] == "le" else "Subtracted images of CDD-CESM")
               for k, p in coll.images.items())
    assert coll.table.name == "Radiology manual annotations.xlsx"
    assert coll.segmentations.name == "Radiology_hand_drawn_segmentations_v2.csv"
    # the inner CDD-CESM folder: the spreadsheet and the outlines sit beside it
    inner = find_collection(root / "CDD-CESM")
    assert inner.images == coll.images and (inner.table, inner.segmentations) == (coll.table, coll.segmentations)
    # the images/ + masks/ subset, or an empty folder, is no collection
    assert find_collection(cdd_test_dir) is None and find_collection(tmp_path) is None


def test_other_spellings_of_the_folders_and_files(cdd_replica, tmp_path):
    src = cdd_replica["root"]
    copy = tmp_path / "cdd"
    shutil.copytree(src / "CDD-CESM" / "Low energy images of CDD-CESM", copy / "images" / "Low_energy")
    shutil.copytree(src / "CDD-CESM" / "Subtracted images of CDD-CESM", copy / "images" / "subtracted")
    shutil.copy(src / "Radiology manual annotations.xlsx", copy / "Radiology-manual-annotations.xlsx")
    (copy / "~$Radiology-manual-annotations.xlsx").write_bytes(b"lock")  # the workbook is open in Excel
    shutil.copy(src / "Radiology_hand_drawn_segmentations_v2.csv", copy / "Radiology_hand_drawn_segmentations.csv")
    shutil.copy(src / "Radiology_hand_drawn_segmentations_v2.csv", copy / "Radiology_hand_drawn_segmentations_v2.csv")
    coll = find_collection(copy)
    assert len(coll.images) == 56
    assert coll.table.name == "Radiology-manual-annotations.xlsx"
    assert coll.segmentations.name == "Radiology_hand_drawn_segmentations_v2.csv"  # the later version


def test_outlines_rasterise_onto_the_true_lesions(cdd_replica):
    coll = find_collection(cdd_replica["root"])
    masks = coll.segmentation_masks()
    truth = cdd_replica["truth"]
    assert set(masks) == set(truth)  # every view has a target: an outline, or empty because it is normal
    for key, m in masks.items():
        drawn = m()
        assert drawn.shape == (256, 208) and drawn.dtype == bool
        if not truth[key].any():
            assert m.empty and not drawn.any()  # normal view: lesion-free
            continue
        pid = key[0]
        how = {"P2": "ellipse", "P6": "circle"}.get(pid, "polygon")
        assert dice(drawn, truth[key]) > (0.9 if how == "polygon" else 0.75), (key, how)
        # the recombined outline is the target; P3 has only low-energy outlines, which stand in
        assert m.image.name.split("_")[2] == ("DM" if pid == "P3" else "CM")


def test_normal_views_come_from_the_spreadsheet(cdd_replica):
    coll = find_collection(cdd_replica["root"])
    normal = {(p, s, v) for (p, s, v), m in cdd_replica["truth"].items() if not m.any()}
    assert coll.normal_views == normal
    header, rows = read_table(coll.table)
    assert header[:3] == ["Image_name", "Patient_ID", "Side"] and len(rows) == 56
    assert {r["Patient_ID"] for r in rows} == {str(n) for n in range(1, 8)}
    raw = {row[0] for row in openpyxl.load_workbook(coll.table)["all"].iter_rows(values_only=True)}
    assert "P3_L_CM_CC " in raw and "P3_L_CM_CC" in {r["Image_name"] for r in rows}  # stray spaces dropped


def test_labels_from_the_spreadsheet(cdd_replica):
    table = find_collection(cdd_replica["root"]).table
    want = {}
    for (pid, side, _), m in cdd_replica["truth"].items():
        if m.any():
            want[(pid, side)] = int(cdd_replica["labels"][pid] == "malignant")
        else:
            want.setdefault((pid, side), 0)
    assert read_labels(table, "pathology") == want
    birads = read_labels(table, "birads")  # benign phantoms are BI-RADS 2-3; P5's "4$2" counts as 4
    assert birads == want


@pytest.mark.parametrize("shape, area", [
    ({"name": "polygon", "all_points_x": [10, 50, 50, 10], "all_points_y": [20, 20, 60, 60]}, 41 * 41),
    ({"name": "polyline", "all_points_x": [10, 50, 50, 10], "all_points_y": [20, 20, 60, 60]}, 41 * 41),
    ({"name": "rect", "x": 10, "y": 20, "width": 40, "height": 40}, 41 * 41),
    ({"name": "circle", "cx": 60, "cy": 60, "r": 20}, math.pi * 20 ** 2),
    ({"name": "ellipse", "cx": 60, "cy": 60, "rx": 30, "ry": 10}, math.pi * 300),
    ({"name": "ellipse", "cx": 60, "cy": 60, "rx": 30, "ry": 10, "theta": math.pi / 2}, math.pi * 300),
    ({"name": "point", "cx": 60, "cy": 60}, math.pi * POINT_RADIUS_PX ** 2),
    ({"name": "polygon", "all_points_x": [10, 50], "all_points_y": [20]}, None),  # malformed: a line at most
    ({"name": "ellipse", "cx": 60}, 0),
    ({"name": "hexagon", "cx": 60, "cy": 60}, 0),
])
def test_each_shape_kind(shape, area):
    m = rasterize([shape], (120, 110))
    if area is None:
        assert m.sum() < 50
    else:
        assert abs(int(m.sum()) - area) <= 0.12 * area
    if shape.get("name") == "ellipse" and "rx" in shape:
        rows, cols = np.nonzero(m)
        wide = np.ptp(cols) > np.ptp(rows)
        assert wide == ("theta" not in shape)  # theta = 90 degrees turns the ellipse upright


def test_segmentation_export_variants(tmp_path):
    csv = tmp_path / "seg.csv"
    csv.write_text(
        "filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes\n"
        "P9_L_CM_CC.jpg,1,{},2,0,\"{'name': 'circle', 'cx': 5, 'cy': 5, 'r': 2}\",{}\n"  # single quotes
        "P9_L_CM_CC.jpg,1,{},2,1,\"{\"\"name\"\":\"\"point\"\",\"\"cx\"\":1,\"\"cy\"\":1}\",{}\n"
        "P9_L_DM_CC.jpg,1,{},1,0,{},{}\n"
        "scan_0001.jpg,1,{},1,0,\"{\"\"name\"\":\"\"point\"\",\"\"cx\"\":1,\"\"cy\"\":1}\",{}\n"
        "P9_R_CM_CC.jpg,1,{},1,0,not a shape,{}\n")
    notes = []
    shapes = read_segmentations(csv, notes)
    assert list(shapes) == [("P9", "L", "CC", "rc")] and [s["name"] for s in shapes[("P9", "L", "CC", "rc")]] == [
        "circle", "point"]
    assert any("scan_0001.jpg" in n for n in notes) and any("could not be read" in n for n in notes)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(NafvError, match="region_shape_attributes"):
        read_segmentations(bad)


def test_spreadsheet_sheet_all_is_preferred(tmp_path):
    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "readme"
    notes.append(["This sheet explains the columns"])
    ws = wb.create_sheet("all")
    ws.append(["title row without the columns"])
    ws.append(["Image_name", "Patient_ID", "Side", "BIRADS", "Pathology Classification/ Follow up"])
    ws.append(["P4_R_DM_CC", 4.0, "R", 5, "Malignant"])
    ws.append([None, None, None, None, None])
    ws.append(["P4_L_DM_CC", 4, "L", "2$3", "Benign"])
    path = tmp_path / "a.xlsx"
    wb.save(path)
    header, rows = read_table(path)
    assert header == ["Image_name", "Patient_ID", "Side", "BIRADS", "Pathology Classification/ Follow up"]
    assert rows == [
        {"Image_name": "P4_R_DM_CC", "Patient_ID": "4", "Side": "R", "BIRADS": "5",
         "Pathology Classification/ Follow up": "Malignant"},
        {"Image_name": "P4_L_DM_CC", "Patient_ID": "4", "Side": "L", "BIRADS": "2$3",
         "Pathology Classification/ Follow up": "Benign"}]
    assert read_labels(path, "birads") == {("P4", "R"): 1, ("P4", "L"): 0}


def test_spreadsheet_without_openpyxl_says_how_to_get_it(tmp_path, monkeypatch):
    path = tmp_path / "a.xlsx"
    openpyxl.Workbook().save(path)
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl -> ImportError
    with pytest.raises(NafvError, match=r"nafv-viewer\[train\]"):
        read_table(path)


def test_drawn_mask_stands_for_a_mask_file(tmp_path):
    image = tmp_path / "P1_L_CM_CC.jpg"
    m = DrawnMask(({"name": "circle", "cx": 5, "cy": 5, "r": 3},), (12, 10), image)
    assert os.fspath(m) == str(image) and Path(m) == image  # where a file path is expected: the image
    assert m().shape == (12, 10) and m()[5, 5] and not m.empty
    assert not DrawnMask((), (12, 10), image)().any()
