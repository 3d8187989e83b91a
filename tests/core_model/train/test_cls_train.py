"""`nafv-train cls` end to end on a handful of synthetic studies: folds, metrics, ROC, resume, export, errors."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from core_model.cli.train import main as cli_main
from core_model.models.checkpoint import load_checkpoint
from core_model.train.cls import auc_score, expected_calibration_error, fit_temperature, precision_recall, roc_curve

TINY = ["--backbone", "vit_small_patch14_dinov2", "--input-size", "56", "--backbone-depth", "1", "--backbone-dim", "48", "--backbone-heads", "2",
        "--head-dims", "16,24,32", "--head-depths", "1,1,1", "--head-heads", "2,2,2", "--threads", "1",
        "--batch-size", "4", "--adversarial-variants", "2"]


def test_auc_precision_recall_hand_computed():
    y = np.array([0, 0, 1, 1])
    assert auc_score(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert auc_score(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)  # ties count half
    assert np.isnan(auc_score(np.array([1, 1]), np.array([0.2, 0.3])))
    p, r = precision_recall(y, np.array([0.6, 0.4, 0.7, 0.2]))
    assert (p, r) == (0.5, 0.5)
    assert precision_recall(y, np.zeros(4)) == (0.0, 0.0)  # nothing called malignant
    fpr, tpr = roc_curve(y, np.array([0.1, 0.4, 0.35, 0.8]))
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1


@pytest.fixture(scope="module")
def phantom_data(tmp_path_factory):
    from core_model.synth.phantom import write_dataset

    return write_dataset(tmp_path_factory.mktemp("phantom"), 9, seed=3, size=(64, 64))


@pytest.mark.slow
def test_cls_ablation_end_to_end_resume_and_export(phantom_data, tmp_path):
    out = tmp_path / "run"
    weights = tmp_path / "w.safetensors"
    args = ["cls", "--data", str(phantom_data), "--label-from", "pathology", "--out", str(out), "--folds", "3",
            "--epochs", "3", "--patience", "2", "--ablation", "--export", str(weights),
            "--trained-on", "9 synthetic phantom studies"] + TINY
    assert cli_main(args) == 0
    for variant in ("four-view", "four-view-no-adversarial", "dual-view"):
        rows = list(csv.DictReader(open(out / variant / "metrics.csv")))
        assert [r["fold"] for r in rows] == ["1", "2", "3"]
        assert sum(int(r["n_test"]) for r in rows) == 9  # every patient tested exactly once
        assert (out / variant / "roc.png").stat().st_size > 1000
        s = json.loads((out / variant / "summary.json").read_text())
        assert 0.0 <= s["auc_mean"] <= 1.0 and s["folds"] == 3
        assert (out / variant / "fold_00" / "log.csv").is_file()
    table = (out / "ablation.md").read_text()
    assert "four-view-no-adversarial" in table and "±" in table
    # a rerun resumes: finished folds are read back, results identical
    first = (out / "four-view" / "metrics.csv").read_text()
    assert cli_main(args) == 0
    assert (out / "four-view" / "metrics.csv").read_text() == first
    # exported weights load through the registry with their card
    loaded = load_checkpoint(weights)
    assert loaded.identity["trained_on"] == "9 synthetic phantom studies"
    assert loaded.identity["not_for_clinical_use"] is True
    assert loaded.model.mode == "four-view" and loaded.model.input_size == 56
    assert loaded.card["cross_validation"]["variant"] == "four-view"


def test_cls_user_errors(phantom_data, tmp_path, capsys):
    # only malignant labels -> a clear message, exit 2
    only = tmp_path / "only.csv"
    lines = open(phantom_data / "labels.csv").read().splitlines()
    only.write_text("\n".join([lines[0]] + [line for line in lines[1:] if "Malignant" in line.split(",")]) + "\n")
    rc = cli_main(["cls", "--data", str(phantom_data), "--labels", str(only), "--label-from", "pathology",
                   "--out", str(tmp_path / "r"), "--folds", "3"] + TINY)
    assert rc == 2
    assert "both benign and malignant" in capsys.readouterr().err
    rc = cli_main(["cls", "--data", str(phantom_data), "--out", str(tmp_path / "r3"), "--no-freeze-backbone"])
    assert rc == 2
    assert "--finetune-backbone" in capsys.readouterr().err
    rc = cli_main(["cls", "--data", str(phantom_data), "--label-from", "pathology", "--out", str(tmp_path / "r4")]
                  + TINY + ["--input-size", "50"])
    assert rc == 2
    assert "multiple of the 14-pixel patch" in capsys.readouterr().err
    rc = cli_main(["cls", "--data", str(tmp_path), "--out", str(tmp_path / "r2")])
    assert rc == 2
    assert "no label file" in capsys.readouterr().err


def test_temperature_scaling_fixes_overconfidence_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    true_margin = rng.normal(0, 1.5, 4000) + (2 * y - 1) * 1.0  # the data's own log-odds ...
    p_true = 1 / (1 + np.exp(-true_margin))
    y = (rng.random(4000) < p_true).astype(int)
    overconfident = 4.0 * true_margin  # ... reported four times too sure
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(4.0, rel=0.15)
    raw, cal = 1 / (1 + np.exp(-overconfident)), 1 / (1 + np.exp(-overconfident / t))
    assert expected_calibration_error(y, cal) < 0.5 * expected_calibration_error(y, raw)
    assert auc_score(y, cal) == pytest.approx(auc_score(y, raw))
    assert fit_temperature(np.array([1.0, 2.0]), np.array([1, 1])) is None  # one class: nothing to fit, none claimed


@pytest.mark.slow
def test_pretrained_backbone_fresh_adversarial_and_calibrated_export(phantom_data, tmp_path):
    """The default backbone (ImageNet EfficientNet-Lite0 from its package), a new adversarial sample
    every epoch, and an exported card that says how the score was calibrated."""
    out, weights = tmp_path / "run", tmp_path / "w.safetensors"
    args = ["cls", "--data", str(phantom_data), "--label-from", "pathology", "--out", str(out), "--folds", "3",
            "--epochs", "2", "--patience", "2", "--export", str(weights), "--input-size", "64",
            "--head-dims", "16,24,32", "--head-depths", "1,1,1", "--head-heads", "2,2,2", "--threads", "1",
            "--batch-size", "4"]
    assert cli_main(args) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["adversarial_variants"] == 0 and cfg["backbone"] == "tf_efficientnet_lite0"
    rows = [json.loads((out / "four-view" / f"fold_{f:02d}" / "result.json").read_text()) for f in range(3)]
    assert all(r["temperature"] > 0 for r in rows)
    card = load_checkpoint(weights).card
    assert "ImageNet" in card["backbone"] and card["training"]["adversarial"] == "a new sample per case each epoch"
    if card["training"]["final_val_auc"] < 0:  # a one-class validation split: nothing to fit, nothing claimed
        assert "calibration" not in card
    else:
        assert card["calibration"]["method"] == "temperature scaling" and card["calibration"]["temperature"] > 0
    assert card["synthetic_only"] is True  # phantom folders: the analyzer will say so beside patients' scores


@pytest.mark.slow
def test_a_rerun_with_other_settings_is_refused_not_mixed_into_the_folds(phantom_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["cls", "--data", str(phantom_data), "--label-from", "pathology", "--out", str(out), "--folds", "3",
            "--epochs", "1", "--patience", "1"] + TINY
    assert cli_main(args) == 0
    assert cli_main(args + ["--lr", "3e-4"]) == 2  # finished folds were trained at lr 1e-3
    assert "other settings (lr)" in capsys.readouterr().err
    assert cli_main(args) == 0  # the same settings resume


@pytest.mark.slow
def test_cnn_backbone_finetuned_on_lesion_squares_of_other_patients(phantom_data, tmp_path, capsys):
    """--finetune-backbone on the EfficientNet-Lite backbone with lesion squares: the features are
    trained on a separate set of patients, shipped inside the classifier's weights and named on its
    card; a fine-tune set that shares patients with the folds is refused."""
    from safetensors.torch import load_file

    from core_model.models.pretrained import imagenet_state_dict
    from core_model.synth.phantom import write_dataset

    other = write_dataset(tmp_path / "other", 6, seed=5, size=(64, 64), first_id=500)
    out, weights = tmp_path / "run", tmp_path / "w.safetensors"
    args = ["cls", "--data", str(phantom_data), "--label-from", "pathology", "--out", str(out), "--folds", "3",
            "--epochs", "1", "--patience", "1", "--input-size", "64", "--crop", "0.3",
            "--head-dims", "16,24,32", "--head-depths", "1,1,1", "--head-heads", "2,2,2", "--threads", "1",
            "--batch-size", "4", "--finetune-backbone", "2", "--finetune-batch-size", "4"]
    assert cli_main(args + ["--finetune-data", str(phantom_data)]) == 2
    assert "shares patients" in capsys.readouterr().err
    assert cli_main(args + ["--finetune-data", str(other), "--export", str(weights)]) == 0
    tuned = load_file(str(out / "backbone_finetuned.safetensors"))
    start = imagenet_state_dict("tf_efficientnet_lite0")
    moved = [k for k, v in tuned.items() if k.startswith("net.") and k[4:] in start
             and v.shape == start[k[4:]].shape and not np.allclose(v.numpy(), start[k[4:]].numpy())]
    assert len(moved) > 20  # the convolutions were trained, not just copied
    loaded = load_checkpoint(weights)
    shipped = {k[len("backbone."):]: v for k, v in loaded.model.state_dict().items() if k.startswith("backbone.")}
    assert all(np.array_equal(shipped[k].numpy(), v.numpy()) for k, v in tuned.items())
    assert "fine-tuned for 2 epochs" in loaded.card["backbone"] and "lesion squares" in loaded.card["backbone"]
    assert "ImageNet" in loaded.card["backbone"] and loaded.model.crop == pytest.approx(0.3)
    # a rerun in the same folder reuses the fine-tuned backbone only for the recipe it was made with
    assert cli_main(args + ["--finetune-data", str(other), "--finetune-lr", "1e-3"]) == 2
    assert "fine-tuned backbone was made with other settings (lr)" in capsys.readouterr().err
    assert cli_main(args + ["--finetune-data", str(other), "--finetune-windows", "grown"]) == 2
    assert "other settings (windows)" in capsys.readouterr().err
    recipe = json.loads((out / "backbone_finetuned.json").read_text())
    assert (recipe["schedule"], recipe["windows"], recipe["epochs"]) == ("constant", "zoom", 2)
    assert cli_main(args + ["--finetune-data", str(other)]) == 0  # the same recipe resumes
    # a recipe written before the schedule and windows were recorded meant constant and zoom: it resumes
    (out / "backbone_finetuned.json").write_text(json.dumps({k: v for k, v in recipe.items()
                                                             if k not in ("schedule", "windows")}))
    assert cli_main(args + ["--finetune-data", str(other)]) == 0
    # the other windows and schedule run, train features of their own and are named on the card
    out2 = tmp_path / "run2"
    args2 = [a if a != str(out) else str(out2) for a in args]
    assert cli_main(args2 + ["--finetune-data", str(other), "--finetune-windows", "grown",
                             "--finetune-schedule", "cosine", "--export", str(tmp_path / "w2.safetensors")]) == 0
    assert json.loads((out2 / "backbone_finetuned.json").read_text())["windows"] == "grown"
    assert "grown windows, cosine learning rate" in load_checkpoint(tmp_path / "w2.safetensors").card["backbone"]
    other_tuned = load_file(str(out2 / "backbone_finetuned.safetensors"))
    assert any(not np.array_equal(other_tuned[k].numpy(), tuned[k].numpy()) for k in tuned)


def test_finetune_learning_rate_schedules():
    from core_model.train.cls import finetune_backbone, finetune_lr

    assert [finetune_lr(1e-3, k, 10, "constant") for k in (0, 5, 9)] == [1e-3] * 3
    cosine = [finetune_lr(1e-3, k, 10, "cosine") for k in range(10)]
    assert cosine[0] == pytest.approx(1e-3) and cosine[5] == pytest.approx(5e-4)
    assert all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] < 3e-5
    with pytest.raises(ValueError, match="schedule"):
        finetune_lr(1e-3, 0, 10, "step")
    with pytest.raises(ValueError, match="windows"):
        finetune_backbone(None, [], 1, 1e-3, 0, Path("."), "cpu", False, windows="crop")
