"""`nafv-train seg` and `nafv-train cls` on the public collection's own layout (a synthetic replica)."""

from __future__ import annotations

import csv
import json

import pytest

from core_model.cli.train import main as nafv_train
from core_model.io.cdd_collection import DrawnMask
from core_model.train.cls_data import load_cases, shrink_case
from core_model.train.seg_data import SegDataset, scan_folder, select_breasts

TINY_CLS = ["--backbone", "vit_small_patch14_dinov2", "--input-size", "56", "--backbone-depth", "1", "--backbone-dim", "48", "--backbone-heads", "2",
            "--head-dims", "16,24,32", "--head-depths", "1,1,1", "--head-heads", "2,2,2", "--threads", "1",
            "--batch-size", "4", "--adversarial-variants", "1"]


def test_segmentation_breasts_with_drawn_and_empty_masks(cdd_replica):
    breasts = scan_folder(cdd_replica["root"])
    truth = cdd_replica["truth"]
    assert sorted(breasts) == sorted({(p, s) for p, s, _ in truth})
    for (pid, side), b in breasts.items():
        assert set(b.images) == {"CC", "MLO"} and all(set(e) == {"le", "rc"} for e in b.images.values())
        assert set(b.masks) == {"CC", "MLO"} and all(isinstance(m, DrawnMask) for m in b.masks.values())
    ds = SegDataset(select_breasts(breasts, None, ("le", "rc")), breasts, ("le", "rc"), (64, 64))
    assert len(ds) == 14  # every breast, the normal ones included
    for b, s in zip(ds.breasts, ds.samples):
        assert s["has_mask"].all() and s["contra_present"].all()
        for i, v in enumerate(("CC", "MLO")):
            lesion = truth[(b.patient, b.side, v)].any()
            assert bool(s["masks"][i].any()) == lesion  # normal views enter with an empty mask


@pytest.mark.slow
def test_seg_cli_one_epoch_on_the_collection(cdd_replica, tmp_path):
    out = tmp_path / "seg"
    rc = nafv_train(["seg", "--data", str(cdd_replica["root"]), "--out", str(out), "--arch", "nafv_seg_tiny",
                     "--epochs", "1", "--threads", "1", "--no-progress", "--batch-size", "4", "--channels", "le+rc"])
    assert rc == 0
    split = json.loads((out / "split.json").read_text())
    assert sorted(split["train"] + split["val"]) == [f"P{n}" for n in range(1, 8)]
    breasts = split["train_breasts"] + split["val_breasts"]
    assert len(breasts) == 14 and {"P7_L", "P7_R"} <= set(breasts)  # the normal patient trains too
    row = list(csv.DictReader(open(out / "metrics.csv")))[-1]
    assert row["epoch"] == "1" and 0.0 <= float(row["val_dice"]) <= 1.0


def test_classifier_cases_from_the_collection(cdd_replica):
    table = cdd_replica["root"] / "Radiology manual annotations.xlsx"
    cases, notes = load_cases(cdd_replica["root"], table, "pathology")
    labels = cdd_replica["labels"]
    assert sorted(c.patient_id for c in cases) == [f"P{n}" for n in range(1, 7)]  # P7 is normal: no case
    assert {c.patient_id: c.label for c in cases} == {p: int(y == "malignant") for p, y in labels.items() if p != "P7"}
    assert any(n.startswith("P7:") for n in notes)
    for c in cases:
        assert c.contralateral is not None and set(c.affected) == {(v, e) for v in ("CC", "MLO") for e in ("le", "rc")}
        for v in ("CC", "MLO"):
            truth = cdd_replica["truth"][(c.patient_id, c.side, v)]
            assert c.masks[v].shape == truth.shape and (c.masks[v] & truth).sum() > 0.8 * truth.sum()
    small = shrink_case(cases[0], 100)
    assert small.affected[("CC", "le")].shape == (100, 81) and small.masks["CC"].shape == (100, 81)
    assert small.contralateral[("MLO", "rc")].shape == (100, 81) and small.masks["CC"].dtype == bool


@pytest.mark.slow
def test_cls_cli_one_epoch_on_the_collection(cdd_replica, tmp_path):
    out = tmp_path / "cls"
    rc = nafv_train(["cls", "--data", str(cdd_replica["root"]), "--label-from", "pathology", "--folds", "3",
                     "--epochs", "1", "--patience", "1", "--out", str(out)] + TINY_CLS)
    assert rc == 0  # labels from the collection's own spreadsheet, without --labels
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] is None
    rows = list(csv.DictReader(open(out / "four-view" / "metrics.csv")))
    assert len(rows) == 3 and sum(int(r["n_test"]) for r in rows) == 6  # the six patients with a lesion
    assert all(r["epochs_run"] == "1" for r in rows)
