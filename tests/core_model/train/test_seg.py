"""`nafv-train seg` on the real CDD-CESM test images: data, learning, determinism, resume, cards."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from core_model.cli.train import main as nafv_train
from core_model.losses.segmentation import seg_loss
from core_model.models.checkpoint import load_checkpoint
from core_model.models.registry import create_model
from core_model.train.common import MetricsLog
from core_model.train.seg import make_split
from core_model.train.seg_data import AugmentConfig, SegDataset, augment, collate, scan_folder, select_breasts


def test_scan_groups_breasts_and_prefers_rc_masks(cdd_test_dir):
    breasts = scan_folder(cdd_test_dir)
    assert sorted(breasts) == [("P102", "R"), ("P106", "L"), ("P12", "L")]
    p12 = breasts[("P12", "L")]
    assert set(p12.images) == {"CC", "MLO"} and set(p12.images["CC"]) == {"le", "rc"}
    assert p12.masks["CC"].name == "P12_L_CM_CC.jpg"
    assert set(breasts[("P106", "L")].images) == {"MLO"}


def test_prepared_sample_marks_missing_view_and_masks(cdd_test_dir):
    breasts = scan_folder(cdd_test_dir)
    ds = SegDataset(select_breasts(breasts, None, ("le", "rc")), breasts, ("le", "rc"), (64, 64))
    by_key = {b.key: s for b, s in zip(ds.breasts, ds.samples)}
    s = by_key["P106_L"]
    assert s["views"].shape == (2, 2, 64, 64) and s["present"].tolist() == [False, True]
    assert s["views"][0].abs().sum() == 0  # the missing CC is a zero image
    assert s["has_mask"].tolist() == [False, True]
    m = by_key["P12_L"]["masks"]
    assert 0.005 < float(m.mean()) < 0.5 and set(m.unique().tolist()) <= {0.0, 1.0}
    assert not by_key["P12_L"]["contra_present"].any()  # no right breast of P12 here


def test_augmentation_is_seeded_and_keeps_masks_binary(cdd_test_dir):
    breasts = scan_folder(cdd_test_dir)
    ds = SegDataset(select_breasts(breasts, None, ("rc",)), breasts, ("rc",), (64, 64))
    s = ds.samples[0]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = augment(s, g1), augment(s, g2)
    torch.testing.assert_close(a["views"], b["views"])
    assert set(a["masks"].unique().tolist()) <= {0.0, 1.0}
    # always flipping mirrors image and mask together
    f = augment(s, torch.Generator().manual_seed(0), AugmentConfig(flip_p=1.0, max_rotate_deg=0, scale=(1, 1),
                                                                    max_shift=0, gamma=(1, 1), contrast=(1, 1)))
    torch.testing.assert_close(f["masks"], s["masks"].flip(-1))
    torch.testing.assert_close(f["views"], s["views"].flip(-1), atol=1e-5, rtol=0)


def test_split_is_by_patient_and_forces_demo_patient_into_validation():
    patients = [f"P{i}" for i in range(1, 41)] + ["P66"]
    for seed in range(3):
        train, val = make_split(patients, 0.2, seed)
        assert "P66" in val and not set(train) & set(val)
        assert sorted(train + val) == sorted(patients) and len(val) == 8


def test_a_few_sgd_steps_lower_the_loss_on_real_images(cdd_test_dir):
    torch.manual_seed(0)
    breasts = scan_folder(cdd_test_dir)
    ds = SegDataset(select_breasts(breasts, None, ("rc",)), breasts, ("rc",), (64, 64))
    batch = collate(ds.samples)
    valid = batch["present"] & batch["has_mask"]
    m = create_model("nafv_seg_tiny")
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(12):
        loss = seg_loss(m(batch["views"], present=batch["present"]), batch["masks"], valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def _train(out, *extra):
    return nafv_train(["seg", "--data", str(out[0]), "--out", str(out[1]), "--arch", "nafv_seg_tiny",
                       "--threads", "1", "--no-progress", "--batch-size", "2", *extra])


@pytest.mark.slow
def test_cli_trains_deterministically_resumes_and_writes_card(cdd_test_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _train((cdd_test_dir, full), "--epochs", "2") == 0
    assert _train((cdd_test_dir, part), "--epochs", "1") == 0
    # resume the 1-epoch run to 2 epochs: identical to the uninterrupted run
    assert _train((cdd_test_dir, part), "--epochs", "2", "--resume") == 0
    a, b = load_file(str(full / "last.safetensors")), load_file(str(part / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows_full, rows_part = MetricsLog(full / "metrics.csv").rows(), MetricsLog(part / "metrics.csv").rows()
    assert [r["epoch"] for r in rows_full] == ["1", "2"]
    drop_time = [{k: v for k, v in r.items() if k != "seconds"} for r in rows_full]
    assert drop_time == [{k: v for k, v in r.items() if k != "seconds"} for r in rows_part]
    assert (full / "curves.png").stat().st_size > 1000
    card = json.loads((full / "best.json").read_text())
    split = card["split"]
    assert not set(split["train"]) & set(split["val"]) and len(split["val"]) == 1
    assert card["architecture"]["name"] == "nafv_seg_tiny" and card["seed"] == 0
    assert card["preprocessing"]["channels"] == ["rc"] and card["not_for_clinical_use"] is True
    assert 0.0 <= card["metrics"]["val_dice"] <= 1.0
    loaded = load_checkpoint(full / "best.safetensors")
    assert loaded.card["training"]["optimizer"] == "SGD" and loaded.card["training"]["lr"] == 0.01


def test_cli_user_errors_exit_2(tmp_path, capsys):
    assert nafv_train(["seg", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "images/" in capsys.readouterr().err
    assert nafv_train(["seg", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--arch", "unet",
                       "--no-cross"]) == 2


@pytest.mark.slow
def test_init_starts_from_given_weights_and_refuses_other_models_or_leaks(cdd_test_dir, tmp_path, capsys):
    from core_model.domain.errors import NafvError
    from core_model.train.seg import init_weights

    first, tuned = tmp_path / "first", tmp_path / "tuned"
    assert _train((cdd_test_dir, first), "--epochs", "1") == 0
    start = first / "best.safetensors"
    # lr 0: the fine-tuning run must end exactly where its --init weights are
    assert _train((cdd_test_dir, tuned), "--epochs", "1", "--init", str(start), "--optimizer", "adamw", "--lr", "0") == 0
    a, b = load_file(str(start)), load_file(str(tuned / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    best = json.loads((tuned / "best.json").read_text())
    assert best["training"]["optimizer"] == "AdamW" and best["training"]["momentum"] is None
    assert best["training"]["init_from"]["weights_sha256"] == load_checkpoint(start).sha256
    # the card says where the encoder's weights first came from, and that they came through --init
    first_init = json.loads((first / "best.json").read_text())["encoder"]["init"]
    assert best["encoder"]["init"] == f"{first_init}, through the --init weights (best.safetensors)"
    # an epoch that does no better than the start does not replace it as "best"
    assert best["metrics"]["best_epoch"] == 0
    assert best["metrics"]["val_dice"] == pytest.approx(json.loads((first / "best.json").read_text())["metrics"]["val_dice"])
    assert json.loads((tuned / "state.json").read_text())["init_from"]["weights"] == str(start)

    # another input (le+rc) is another model: a clear error, exit 2
    assert _train((cdd_test_dir, tmp_path / "x"), "--epochs", "1", "--init", str(start), "--channels", "le+rc") == 2
    assert "different model" in capsys.readouterr().err
    # weights trained on a patient that is now in validation would leak
    card = load_checkpoint(start).card
    model = create_model("nafv_seg_tiny")
    with pytest.raises(NafvError, match="validation patients"):
        init_weights(model, "nafv_seg_tiny", str(start), {"val": card["split"]["train"][:1]})


@pytest.mark.slow
def test_adamw_runs_resume_exactly_and_refuse_another_optimizer(cdd_test_dir, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _train((cdd_test_dir, full), "--epochs", "2", "--optimizer", "adamw") == 0
    assert _train((cdd_test_dir, part), "--epochs", "1", "--optimizer", "adamw") == 0
    # AdamW's moments and step count come back from last_optim.safetensors, so the result is identical
    assert _train((cdd_test_dir, part), "--epochs", "2", "--optimizer", "adamw", "--resume") == 0
    a, b = load_file(str(full / "last.safetensors")), load_file(str(part / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((full / "best.json").read_text())["training"]["lr"] == 3e-4  # the adamw default
    assert _train((cdd_test_dir, part), "--epochs", "3", "--resume") == 2  # default sgd: not this run's optimizer
    assert "--optimizer adamw" in capsys.readouterr().err


def test_time_budget_shrinks_planned_epochs_to_what_fits():
    from core_model.train.seg import epochs_that_fit

    # 10 s epochs after a 30 s start-up epoch, 50 s used of 100: the slow first epoch is not the estimate
    assert epochs_that_fit(3, 40, 50.0, [30.0, 10.0, 10.0], 100.0) == 8
    assert epochs_that_fit(2, 40, 60.0, [30.0, 30.0], 100.0) == 40  # two epochs are too few to cut the plan on
    assert epochs_that_fit(3, 4, 35.0, [10.0, 10.0, 10.0], 600.0) == 4  # never more than planned
    assert epochs_that_fit(1, 40, 90.0, [90.0], 60.0) == 1  # budget spent: stop after this epoch
    # one slow epoch among the last five does not move the median
    assert epochs_that_fit(6, 40, 100.0, [30.0, 10.0, 10.0, 50.0, 10.0, 10.0], 200.0) == 16


def test_cli_time_budget_stops_early_and_records_it(cdd_test_dir, tmp_path, capsys):
    out = tmp_path / "budget"
    # a budget spent before the first epoch ends: the run stops after it, and the card says so
    assert _train((cdd_test_dir, out), "--epochs", "5", "--schedule", "poly", "--max-minutes", "0.0001") == 0
    assert [r["epoch"] for r in MetricsLog(out / "metrics.csv").rows()] == ["1"]
    card = json.loads((out / "last.json").read_text())
    assert card["epochs_requested"] == 5 and card["epochs_planned"] == 1 and card["time_budget_min"] == 0.0001
    assert "planned epochs 5 -> 1" in capsys.readouterr().out
    assert _train((cdd_test_dir, tmp_path / "zero"), "--epochs", "5", "--max-minutes", "0") == 2
    assert "--max-minutes must be above 0" in capsys.readouterr().err


@pytest.mark.slow
def test_time_budget_cut_replans_the_schedule_and_survives_resume(cdd_test_dir, tmp_path, monkeypatch):
    import argparse

    from core_model.train import seg

    monkeypatch.setattr(seg, "epochs_that_fit", lambda epoch, planned, *a: min(planned, 3))
    out = tmp_path / "cut"
    assert _train((cdd_test_dir, out), "--epochs", "5", "--schedule", "poly", "--max-minutes", "100") == 0
    rows = MetricsLog(out / "metrics.csv").rows()
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    cfg = json.loads((out / "config.json").read_text())
    n_train = len(json.loads((out / "split.json").read_text())["train_breasts"])
    per_epoch = -(-n_train // 2)  # batch size 2
    poly = argparse.Namespace(schedule="poly", lr=0.01)
    # the last epoch ran the end of a 3-epoch poly schedule, not the middle of a 5-epoch one
    last_step = 3 * per_epoch - 1
    assert float(rows[-1]["lr"]) == pytest.approx(seg.lr_at(poly, last_step, 3 * per_epoch))
    assert float(rows[-1]["lr"]) < 0.7 * seg.lr_at(poly, last_step, 5 * per_epoch)
    assert json.loads((out / "best.json").read_text())["epochs_planned"] == 3  # rewritten after the cut
    assert cfg["max_minutes"] == 100

    monkeypatch.undo()
    # the same command again keeps the cut plan (nothing left to train) ...
    assert _train((cdd_test_dir, out), "--epochs", "5", "--schedule", "poly", "--resume") == 0
    assert len(MetricsLog(out / "metrics.csv").rows()) == 3
    # ... while a deliberately longer --epochs extends it
    assert _train((cdd_test_dir, out), "--epochs", "4", "--schedule", "poly", "--resume") == 0
    assert [r["epoch"] for r in MetricsLog(out / "metrics.csv").rows()] == ["1", "2", "3", "4"]
