"""benchmarks/seg_table_summary.py: rows per variant and stage, seed means, runs that failed named."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("seg_table_summary", REPO / "benchmarks" / "seg_table_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(root: Path, variant: str, stage: str, dice: float, epochs: int, seed: int) -> None:
    d = root / variant / stage
    d.mkdir(parents=True)
    (d / "last.json").write_text(json.dumps({
        "architecture": {"name": "unet", "config": {"channels": ["le", "rc"], "input_size": [256, 256]}},
        "seed": seed, "epochs": epochs, "epochs_requested": 60, "metrics": {"best_epoch": epochs - 2},
        "training": {"seconds_per_epoch": 2.5}}))
    (root / variant / f"eval_{stage}.json").write_text(json.dumps({
        "dice": dice, "miou": dice - 0.1, "dice_ci95_patient_bootstrap": [dice - 0.07, dice + 0.07],
        "n_images": 56, "n_patients": 28, "weights_sha256": "ab" * 32}))


def test_rows_seed_means_and_missing_runs(tmp_path, capsys):
    mod = _load()
    _run(tmp_path, "unet_lerc_s0", "sgd", 0.57, 47, 0)
    _run(tmp_path, "unet_lerc_s0", "adamw", 0.62, 46, 0)
    _run(tmp_path, "unet_lerc_s1", "sgd", 0.58, 37, 1)
    _run(tmp_path, "unet_lerc_s1", "adamw", 0.60, 50, 1)
    (tmp_path / "nafv_lerc_s0").mkdir()  # a run that failed before writing anything
    out = tmp_path / "summary.json"
    assert mod.main([str(tmp_path), "--json", str(out), "--device", "test"]) == 0
    doc = json.loads(out.read_text())
    by = {(r["variant"], r["stage"]): r for r in doc["rows"]}
    assert by[("unet_lerc_s1", "adamw")]["epochs_run"] == 50 and by[("unet_lerc_s1", "adamw")]["channels"] == "le+rc"
    assert "no evaluation" in by[("nafv_lerc_s0", "adamw")]["error"]
    means = {(m["variant"], m["stage"]): m for m in doc["seed_means"]}
    assert means[("unet_lerc", "adamw")]["dice_mean"] == 0.61 and means[("unet_lerc", "adamw")]["seeds"] == [0, 1]
    assert ("nafv_lerc", "adamw") not in means
    printed = capsys.readouterr().out
    assert "unet_lerc_s0\tadamw\t0.6200\t0.550-0.690" in printed
    assert mod.main([str(tmp_path / "nowhere")]) == 2


def test_a_dice_that_could_not_be_computed_is_null_in_the_json(tmp_path, capsys):
    # a collapsed run evaluates to NaN Dice; the summary must stay readable by strict JSON readers
    mod = _load()
    _run(tmp_path, "unet_lerc_s0", "sgd", float("nan"), 47, 0)
    out = tmp_path / "summary.json"
    assert mod.main([str(tmp_path), "--json", str(out)]) == 0

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    doc = json.loads(out.read_text(), parse_constant=refuse)
    assert doc["rows"][0]["dice"] is None and doc["seed_means"][0]["dice_mean"] is None
    assert "dice" in capsys.readouterr().err


def test_single_stage_runs_of_the_encoder_ablation(tmp_path):
    # scripts/seg_encoder_ablation.sh runs one AdamW stage per variant: no "sgd" error rows,
    # and the rows say which encoder initialisation each variant had
    mod = _load()
    _run(tmp_path, "pretrained_s0", "adamw", 0.55, 8, 0)
    _run(tmp_path, "scratch_s0", "adamw", 0.31, 8, 0)
    card = tmp_path / "pretrained_s0" / "adamw" / "last.json"
    doc = json.loads(card.read_text())
    doc["encoder"] = {"name": "tf_efficientnet_lite0", "init": "ImageNet"}
    card.write_text(json.dumps(doc))
    out = tmp_path / "summary.json"
    assert mod.main([str(tmp_path), "--stages", "adamw", "--json", str(out), "--what", "ablation recipe"]) == 0
    doc = json.loads(out.read_text())
    assert doc["what"] == "ablation recipe"
    assert [(r["variant"], r["stage"]) for r in doc["rows"]] == [("pretrained_s0", "adamw"), ("scratch_s0", "adamw")]
    assert [r["encoder_init"] for r in doc["rows"]] == ["ImageNet", "scratch"]
