"""A single-energy study (digital mammography, no recombined image): one sentence saying what is missing, no crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core_model.cli.analyze import main
from core_model.domain.study import Study, StudyImage
from core_model.inference.analyzer import AnalysisError, Analyzer, missing_inputs_message
from core_model.io import load_study
from core_model.models.checkpoint import save_checkpoint
from core_model.models.registry import create_model
from tests.study_files import cbis_ddsm_study

SENTENCE = ("the analysis needs the recombined (RC) images of a contrast-enhanced study and found none; this is a "
            "single-energy study (digital mammography without contrast), so it can be read but not analysed.")


def test_core_api_says_what_a_single_energy_study_lacks(ffdm_dir, weights):
    analyzer = Analyzer(weights["seg"], weights["cls"], device="cpu", num_threads=1)
    with pytest.raises(AnalysisError) as info:
        analyzer.analyze(load_study(ffdm_dir))
    assert str(info.value) == SENTENCE
    assert str(info.value).count(".") == 1  # one sentence


def test_other_gaps_are_named_too():
    px = np.zeros((8, 8), np.uint8)
    rc_only = Study("P", "S")
    rc_only.add(StudyImage("L", "CC", "rc", px, source=__file__))
    assert missing_inputs_message(rc_only, ("le", "rc")).startswith(
        "the analysis needs the low energy (LE) images of a contrast-enhanced study and found none; nothing")
    unpaired = Study("P", "S")
    unpaired.add(StudyImage("L", "CC", "rc", px, source=__file__))
    unpaired.add(StudyImage("R", "CC", "le", px, source=__file__))
    assert missing_inputs_message(unpaired, ("le", "rc")) == (
        "the analysis needs the low energy (LE) and recombined (RC) images of one view together, and no view of "
        "this study has both; nothing was analysed.")


@pytest.mark.parametrize("which", ["png", "dicom"])
def test_cli_prints_the_sentence_and_exits_2(which, ffdm_dir, demo_dir, weights, tmp_path, capsys):
    if which == "png":
        study = ffdm_dir
    else:
        study = tmp_path / "cbis"
        cbis_ddsm_study(study, demo_dir)
    out = tmp_path / "out"
    code = main([str(study), "--out", str(out), "--weights-seg", str(weights["seg"]),
                 "--weights-cls", str(weights["cls"]), "--device", "cpu", "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"nafv-analyze: {SENTENCE}"
    assert not out.exists()  # nothing half-written


def test_cli_hangs_images_the_reader_placed_before_analysing(demo_dir, weights, tmp_path, capsys, monkeypatch):
    from core_model.review.model import AssignImage, ReviewSession
    from core_model.review.store import ReviewStore

    monkeypatch.setenv("NAFV_DATA_DIR", str(tmp_path / "data"))
    study_dir = tmp_path / "exam"
    cbis_ddsm_study(study_dir, demo_dir, views=(), unplaced=1)
    argv = [str(study_dir), "--out", str(tmp_path / "out"), "--weights-seg", str(weights["seg"]),
            "--weights-cls", str(weights["cls"]), "--device", "cpu", "--threads", "1"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "nafv-analyze: the analysis needs images hung on their views, and 1 image(s) of this study have no view in "
        "their files: place them in the viewer (drag each from the strip under the views), then analyse again.")

    study = load_study(study_dir)  # what the viewer does when the reader drops the image on L-MLO
    store = ReviewStore()
    ReviewSession(store.open(study), store).do(AssignImage(study.unassigned[0].uid, "L_MLO", study))

    assert main(argv) == 2  # now hung as L-MLO: what is still missing is the recombined image
    assert capsys.readouterr().err.strip() == f"nafv-analyze: {SENTENCE}"


def test_an_analysis_that_runs_names_the_images_it_left_out(demo_dir, weights):
    from core_model.domain.study import UnassignedImage

    study = load_study(demo_dir)
    extra = study.get("L_MLO", "le")
    study.unassigned.append(UnassignedImage(uid="1.2.3", energy="le", pixels=extra.pixels, source=extra.source,
                                            reason="no view"))
    analysis = Analyzer(weights["seg"], weights["cls"], device="cpu", num_threads=1).analyze(study, explain=False)
    assert set(analysis.views) == {"L_CC", "L_MLO", "R_CC", "R_MLO"}
    assert ("1 image(s) without a view in their files were not analysed; place them in the viewer to include them"
            in analysis.warnings)


def test_cli_refuses_a_single_energy_study_before_any_model_is_built(ffdm_dir, tmp_path):
    """A fresh process, as a user runs it: the sentence comes without torch or the model code ever imported."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "out"
    probe = ("import json, sys\n"
             "from core_model.cli.analyze import main\n"
             f"code = main([{str(ffdm_dir)!r}, '--out', {str(out)!r}, '--device', 'cpu'])\n"
             "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'core_model.models',"
             " 'core_model.inference.analyzer', 'safetensors.torch')))\n"
             "print(json.dumps({'code': code, 'heavy': heavy}))\n")
    run = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": str(repo)})
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen == {"code": 2, "heavy": []}
    assert run.stderr.strip().splitlines()[-1] == f"nafv-analyze: {SENTENCE}"
    assert not out.exists()


def test_the_early_check_reads_the_energies_from_the_card_or_leaves_it_to_the_loader(weights, tmp_path):
    from core_model.domain.resources import DEFAULT_SEG_WEIGHTS
    from core_model.inference.inputs_check import card_channels

    assert card_channels(DEFAULT_SEG_WEIGHTS) == ("le", "rc")  # the shipped segmentation reads both energies
    assert card_channels(weights["seg"]) is None  # the card gives no channels: the analyzer checks, as before
    broken = tmp_path / "broken.safetensors"
    broken.with_suffix(".json").write_text("{not json")
    assert card_channels(broken) is None
    assert card_channels(tmp_path / "absent.safetensors") is None
