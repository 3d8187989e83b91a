"""nafv-analyze: JSON + PNGs per study, batch behaviour and exit codes."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core_model.cli.analyze import main
from core_model.inference import analyzer as analyze_mod
from core_model.models.checkpoint import save_checkpoint
from core_model.models.registry import create_model


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
    # a second run into the same folder keeps the report there unless told to replace it
    before = (out / "report.pdf").read_bytes()
    assert main([str(demo_dir), "--out", str(out), "--report", "--deidentify", "--no-explain", *_w(weights)]) == 2
    assert "report.pdf already exists" in capsys.readouterr().err and (out / "report.pdf").read_bytes() == before
    assert main([str(demo_dir), "--out", str(out), "--report", "--deidentify", "--overwrite", "--no-explain",
                 *_w(weights)]) == 0


# -- a bad model card: one line, exit 2 -------------------------------------------------------------------------------

def _card_edited(weights, tmp_path, edit) -> list[str]:
    d = tmp_path / "w"
    d.mkdir()
    shutil.copy(weights["seg"], d / weights["seg"].name)
    card = weights["seg"].with_suffix(".json")
    (d / card.name).write_bytes(edit(card.read_bytes()))
    return ["--weights-seg", str(d / weights["seg"].name), "--weights-cls", str(weights["cls"]), "--device", "cpu",
            "--threads", "1"]


@pytest.mark.parametrize("edit, needle", [
    (lambda b: b.replace(b'"untrained (test)"', b'"untrained (t\xe9st)"'), "UTF-8"),  # Latin-1 e-acute
    (lambda b: json.dumps({k: v for k, v in json.loads(b).items() if k != "weights_sha256"}).encode(), "weights_sha256"),
], ids=["not-utf8", "no-sha256"])
def test_bad_model_card_exits_2_with_one_line(demo_dir, weights, tmp_path, capsys, edit, needle):
    code = main([str(demo_dir), "--out", str(tmp_path / "o"), *_card_edited(weights, tmp_path, edit)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# -- a failed write leaves the previous result or nothing -------------------------------------------------------------

def _disk_full(monkeypatch, after: int, patient: str | None = None) -> None:
    """The disk fills up after ``after`` PNGs of the study of ``patient`` (any study when None)."""
    import core_model.io.analysis_json as aio

    real_png, real_write = aio._png, aio.write_analysis
    state = {"armed": False, "n": 0}

    def png(arr, path):
        if state["armed"]:
            state["n"] += 1
            if state["n"] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_png(arr, path)

    def write(analysis, out_dir, study=None, **kw):
        state["armed"] = patient is None or (study is not None and study.patient_id == patient)
        return real_write(analysis, out_dir, study=study, **kw)

    monkeypatch.setattr(aio, "_png", png)
    monkeypatch.setattr(aio, "write_analysis", write)


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` with its inode: a file rewritten with equal bytes still counts as touched."""
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_rerun_leaves_the_previous_result_intact(demo_dir, weights, tmp_path, monkeypatch, capsys):
    out = tmp_path / "x"
    assert main([str(demo_dir), "--out", str(out), "--no-explain", *_w(weights)]) == 0
    before, beside = _snapshot(out), sorted(os.listdir(tmp_path))
    _disk_full(monkeypatch, after=3)
    assert main([str(demo_dir), "--out", str(out), "--no-explain", "--affected", "R", *_w(weights)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == beside  # no partial folder left beside it


def test_failed_first_run_leaves_nothing(demo_dir, weights, tmp_path, monkeypatch):
    _disk_full(monkeypatch, after=2)
    assert main([str(demo_dir), "--out", str(tmp_path / "x"), "--no-explain", *_w(weights)]) == 2
    assert os.listdir(tmp_path) == []


def test_failed_batch_rerun_keeps_each_study_whole(demo_dir, cdd_test_dir, weights, tmp_path, monkeypatch, capsys):
    studies = tmp_path / "studies"
    studies.mkdir()
    for p in (cdd_test_dir / "images").glob("P12_*"):
        shutil.copy(p, studies)
    out = tmp_path / "out"
    argv = [str(studies), str(demo_dir), "--out", str(out), "--no-explain", *_w(weights)]
    assert main(argv) == 0
    before = _snapshot(out / "P66")
    _disk_full(monkeypatch, after=2, patient="P66")
    assert main(argv + ["--affected", "L"]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert _snapshot(out / "P66") == before
    assert json.loads((out / "P12" / "analysis.json").read_text())["affected_side_source"] == "caller"  # the rerun's
    assert sorted(os.listdir(out)) == ["P12", "P66"]


def test_rerun_into_a_folder_with_other_files_keeps_them_and_drops_stale_results(demo_dir, weights, tmp_path):
    out = tmp_path / "x"
    (out / "mine").mkdir(parents=True)
    (out / "notes.txt").write_text("the reader's notes")
    (out / "mine" / "a.txt").write_text("1")
    assert main([str(demo_dir), "--out", str(out), *_w(weights)]) == 0
    assert list(out.glob("*_heatmap.png"))
    assert main([str(demo_dir), "--out", str(out), "--no-explain", *_w(weights)]) == 0
    assert not list(out.glob("*_heatmap.png"))  # none left over from the run before
    assert (out / "notes.txt").read_text() == "the reader's notes" and (out / "mine" / "a.txt").is_file()
    assert json.loads((out / "analysis.json").read_text())["views"]["L_CC"]["heatmap_png"] is None
    assert sorted(os.listdir(tmp_path)) == ["x"]


# -- odd batches: very long patient ids, the same study twice ---------------------------------------------------------

def _dicom_p12(folder: Path, cdd_test_dir: Path, patient_id: str) -> Path:
    from core_model.io import write_mg_dicom
    from core_model.io.naming import parse_cdd_cesm_name

    for p in sorted((cdd_test_dir / "images").glob("P12_*.jpg")):
        info = parse_cdd_cesm_name(p)
        write_mg_dicom(folder / (p.stem + ".dcm"), np.array(Image.open(p).convert("L")), side=info.side, view=info.view,
                       energy=info.energy, patient_id=patient_id)
    return folder


@pytest.mark.filterwarnings("ignore:The (value length|PN component length)")  # pydicom: longer than DICOM allows
def test_very_long_patient_ids_get_short_unique_folders(cdd_test_dir, weights, tmp_path, capsys):
    ids = ["Q" * 300, "Q" * 299 + "R"]  # alike up to the last character
    dirs = [_dicom_p12(tmp_path / f"s{i}", cdd_test_dir, pid) for i, pid in enumerate(ids)]
    out = tmp_path / "out"
    assert main([*map(str, dirs), "--out", str(out), "--no-explain", "--report", *_w(weights)]) == 0, capsys.readouterr().err
    names = sorted(os.listdir(out))
    assert len(names) == 2 and all(len(n) <= 64 and n.startswith("QQQQQQQQ") for n in names)
    got = {json.loads((out / n / "analysis.json").read_text())["study"]["patient_id"] for n in names}
    assert got == set(ids)
    assert all(list((out / n).glob("*.pdf")) for n in names)


def test_the_same_study_twice_is_analysed_once(demo_dir, weights, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(demo_dir, copy)
    out = tmp_path / "out"
    assert main([str(demo_dir), str(demo_dir), str(copy), "--out", str(out), "--no-explain", *_w(weights)]) == 0
    captured = capsys.readouterr()
    assert os.listdir(out) == ["P66"]
    assert captured.out.count("P66:") == 1  # one summary line: analysed once
    said = [line for line in captured.err.splitlines() if "twice" in line or "same study" in line]
    assert len(said) == 2 and any(str(copy) in line for line in said)
