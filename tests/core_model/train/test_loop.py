"""The one training loop (core_model.train.loop) on a tiny model and data the tests make: fast, not slow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from core_model.domain.errors import NafvError
from core_model.train.common import DistInfo, MetricsLog
from core_model.train.loop import fit, shard


def _problem(seed: int = 0):
    """A linear regression with noise: 40 training and 20 validation samples of 3 features."""
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[1.5], [-2.0], [0.5]])
    x = torch.randn(60, 3, generator=g)
    y = x @ w + 0.1 * torch.randn(60, 1, generator=g)
    return (x[:40], y[:40]), (x[40:], y[40:])


def _trainer(lr: float = 0.05):
    """A fresh tiny model with AdamW (state to resume) and the train/validate functions of the loop."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    (xt, yt), (xv, yv) = _problem()

    def train_epoch(epoch, indices, g):
        model.train()
        total = 0.0
        for i in range(0, len(indices), 8):
            b = torch.as_tensor(indices[i:i + 8])
            noise = 0.01 * torch.randn(len(b), 3, generator=g)  # the epoch's generator, as augmentation uses it
            loss = torch.nn.functional.mse_loss(model(xt[b] + noise), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        return {"train_loss": total / len(indices)}

    def validate(epoch):
        with torch.no_grad():
            mse = float(torch.nn.functional.mse_loss(model(xv), yv))
        return {"val_score": -mse, "val_loss": mse}

    return model, opt, train_epoch, validate


def _run(run_dir, epochs, resume=False, **kw):
    model, opt, train_epoch, validate = _trainer()
    result = fit(model, opt, 40, train_epoch, validate, epochs=epochs, seed=3, run_dir=run_dir,
                 metric="val_score", resume=resume, **kw)
    return model, result


def test_one_epoch_trains_and_leaves_the_run_files(tmp_path):
    _, opt, train_epoch, validate = _trainer()
    before = validate(0)["val_loss"]
    model, result = _run(tmp_path, 1)
    assert result.epochs_run == 1 and result.best_epoch == 1 and not result.stopped_early
    assert result.best_metrics["val_loss"] < before  # one epoch of AdamW on a linear problem helps
    for name in ("state.json", "last.safetensors", "last_optim.safetensors", "best.safetensors", "metrics.csv"):
        assert (tmp_path / name).is_file()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 1 and state["best_epoch"] == 1 and state["seed"] == 3
    assert [r["epoch"] for r in MetricsLog(tmp_path / "metrics.csv").rows()] == ["1"]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    _run(full, 5)
    _run(part, 2)
    model, result = _run(part, 5, resume=True)  # a fresh process: weights, AdamW moments, order all come back
    a, b = load_file(str(full / "last.safetensors")), load_file(str(part / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((full / "state.json").read_text())["best"] == result.best
    no_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert no_time(MetricsLog(full / "metrics.csv").rows()) == no_time(MetricsLog(part / "metrics.csv").rows())
    with pytest.raises(NafvError, match="nothing to resume"):
        _run(tmp_path / "empty", 2, resume=True)


def test_a_run_stopped_while_saving_is_not_resumed_on_mismatched_files(tmp_path):
    _run(tmp_path, 2)
    state = (tmp_path / "state.json").read_text()
    _run(tmp_path, 3, resume=True)  # epoch 3 saved ...
    (tmp_path / "state.json").write_text(state)  # ... as if killed before its state.json was written
    with pytest.raises(NafvError, match="last.safetensors is not the file state.json was saved with .*epoch 3"):
        _run(tmp_path, 4, resume=True)


def test_the_best_epoch_is_kept_when_later_epochs_are_worse_and_patience_stops(tmp_path):
    model, opt, train_epoch, _ = _trainer()
    scores = {1: 0.5, 2: 0.9, 3: 0.4, 4: 0.3, 5: 0.95}
    seen = {}

    def validate(epoch):
        seen[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"val_auc": scores[epoch], "val_loss": 1.0}

    result = fit(model, opt, 40, train_epoch, validate, epochs=5, seed=0, run_dir=tmp_path, metric="val_auc",
                 patience=2)
    # epochs 3 and 4 are worse than 2: patience 2 stops after epoch 4, before the better epoch 5
    assert result.stopped_early and result.epochs_run == 4
    assert result.best == 0.9 and result.best_epoch == 2
    best = load_file(str(tmp_path / "best.safetensors"))
    assert all(torch.equal(best[k], seen[2][k]) for k in best)
    assert all(torch.equal(v, seen[2][k]) for k, v in model.state_dict().items())  # the best is what the model holds
    last = load_file(str(tmp_path / "last.safetensors"))
    assert not torch.equal(last["weight"], seen[2]["weight"])
    # resuming a run that stopped early trains nothing more
    again = fit(model, opt, 40, train_epoch, validate, epochs=5, seed=0, run_dir=tmp_path, metric="val_auc",
                patience=2, resume=True)
    assert again.epochs_run == 4 and again.best_epoch == 2 and 5 not in seen


def test_a_tie_goes_to_the_lower_tie_breaker_without_resetting_patience(tmp_path):
    model, opt, train_epoch, _ = _trainer()
    figures = {1: (0.8, 0.6), 2: (0.8, 0.4), 3: (0.8, 0.5), 4: (float("nan"), 0.1)}

    def validate(epoch):
        auc, loss = figures[epoch]
        return {"val_auc": auc, "val_loss": loss}

    result = fit(model, opt, 40, train_epoch, validate, epochs=4, seed=0, metric="val_auc", tie_break="val_loss",
                 patience=3)
    # epoch 2 ties on AUC with a lower loss: the new best, yet no gain, so patience runs out after epoch 4
    # (an AUC that could not be computed is never the best, whatever its loss)
    assert result.best_epoch == 2 and result.stopped_early and result.epochs_run == 4


def test_ddp_shards_pad_so_every_rank_takes_as_many_steps_and_every_sample_is_seen():
    order = [4, 0, 3, 1, 2]
    shares = [shard(order, DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert [len(s) for s in shares] == [3, 3]
    assert set(shares[0]) | set(shares[1]) == set(order)
    assert shard(order, DistInfo()) == order


def test_both_trainers_take_the_rc_mask_and_the_le_one_only_without_rc(tmp_path):
    from core_model.train.cls_data import read_masks
    from core_model.train.seg_data import scan_folder

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    le, rc = np.zeros((40, 30), np.uint8), np.zeros((40, 30), np.uint8)
    le[5:30, 5:25] = 255  # the low-energy outline is wider ...
    rc[10:20, 10:20] = 200  # ... than the enhancing lesion (and above the 127 threshold)
    for name, mask in (("P1_L_DM_CC", le), ("P1_L_CM_CC", rc), ("P1_L_DM_MLO", le)):
        Image.fromarray(np.full((40, 30), 90, np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{name}.png")
    cls_masks = read_masks(tmp_path / "masks")
    assert cls_masks[("P1", "L", "CC")].sum() == 100  # RC, not the union
    assert cls_masks[("P1", "L", "MLO")].sum() == 25 * 20  # no RC outline: the LE one
    seg_masks = scan_folder(tmp_path)[("P1", "L")].masks
    assert seg_masks["CC"].name == "P1_L_CM_CC.png" and seg_masks["MLO"].name == "P1_L_DM_MLO.png"


def test_one_pick_device_for_analysis_and_training():
    from core_model.inference.analyzer import pick_device as analyzer_pick
    from core_model.models.device import pick_device

    assert analyzer_pick is pick_device
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(NafvError, match="unknown device"):
        pick_device("abacus")
