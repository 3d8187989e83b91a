"""nafv-analyze: JSON + PNGs per study, batch behaviour and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from core_model import analyze as analyze_mod
from core_model.analyze_cli import main
from core_model.checkpoint import save_checkpoint
from core_model.models.registry import create_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli_weights")
    out = {}
    for key, name in (("seg", "nafv_seg_tiny"), ("cls", "nafv_cls_tiny")):
        torch.manual_seed(0)
        out[key] = tmp / f"{name}.safetensors"
        save_checkpoint(create_model(name), out[key], {"architecture": {"name": name, "config": {}},
                                                       "trained_on": "untrained (test)"})
    return out


def _w(weights) -> list[str]:
    return ["--weights-seg", str(weights["seg"]), "--weights-cls", str(weights["cls"]), "--device", "cpu", "--threads", "1"]


def test_demo_study_writes_json_and_pngs(demo_dir, weights, tmp_path, capsys):
    out = tmp_path / "x"
    assert main([str(demo_dir), "--out", str(out), *_w(weights)]) == 0
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["model"]["not_for_clinical_use"] is True
    assert set(doc["model"]["weights_sha256"]) == {"segmentation", "classifier"}
    assert doc["affected_side"] in ("L", "R") and 0 <= doc["malignancy_probability"] <= 1
    assert doc["study"]["patient_id"] == "P66"
    for key in ("L_CC", "L_MLO", "R_CC", "R_MLO"):
        v = doc["views"][key]
        assert Image.open(out / v["mask_png"]).size == (512, 512)
        assert (out / v["overlay_png"]).is_file()
    assert "P66" in capsys.readouterr().out


def test_affected_side_option(demo_dir, weights, tmp_path):
    assert main([str(demo_dir), "--out", str(tmp_path), "--affected", "R", "--no-explain", *_w(weights)]) == 0
    doc = json.loads((tmp_path / "analysis.json").read_text())
    assert doc["affected_side"] == "R" and doc["affected_side_source"] == "caller"
    assert all(v["heatmap_png"] is None for v in doc["views"].values())


@pytest.mark.parametrize(
    "argv_fn, needle",
    [
        (lambda d, w, t: [str(t / "missing"), "--out", str(t / "o"), *w], "no such file"),
        (lambda d, w, t: [str(t / "empty"), "--out", str(t / "o"), *w], "no usable mammogram"),
        (lambda d, w, t: [str(d), "--out", str(t / "o"), "--weights-seg", str(t / "nope.safetensors")], "weights file not found"),
        (lambda d, w, t: [str(d), "--out", str(t / "o"), *w, "--device", "tpu"], "device"),
        (lambda d, w, t: [str(d), "--out", str(t / "o"), *w, "--patient", "P999"], "P999"),
        (lambda d, w, t: [str(d)], "--out"),
    ],
)
def test_bad_input_exits_2_with_one_line(demo_dir, weights, tmp_path, capsys, argv_fn, needle):
    (tmp_path / "empty").mkdir()
    code = main(argv_fn(demo_dir, _w(weights), tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_missing_default_weights_exit_2(demo_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(analyze_mod, "DEFAULT_SEG_WEIGHTS", tmp_path / "none.safetensors")
    assert main([str(demo_dir), "--out", str(tmp_path / "o")]) == 2
    assert "no default weights" in capsys.readouterr().err


def test_several_studies_one_failure_does_not_stop_the_rest(demo_dir, cdd_test_dir, weights, tmp_path, capsys):
    # a folder of three patients (images only), the demo, and a broken path
    studies = tmp_path / "studies"
    shutil.copytree(cdd_test_dir / "images", studies)
    out = tmp_path / "out"
    code = main([str(studies), str(demo_dir), str(tmp_path / "gone"), "--out", str(out), "--no-explain", *_w(weights)])
    captured = capsys.readouterr()
    assert code == 1
    for pid in ("P12", "P102", "P106", "P66"):
        doc = json.loads((out / pid / "analysis.json").read_text())
        assert doc["study"]["patient_id"] == pid
    assert "gone" in captured.err and "1 of 5 studies failed" in captured.err


def test_report_option_writes_the_unreviewed_report(demo_dir, weights, tmp_path, capsys):
    out = tmp_path / "r"
    assert main([str(demo_dir), "--out", str(out), "--report", "--deidentify", "--no-explain", *_w(weights)]) == 0
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-" and (out / "report.json").is_file()
    assert "P66" not in (out / "report.json").read_text()  # de-identified
    assert "wrote" in capsys.readouterr().out
