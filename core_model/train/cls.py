"""``nafv-train cls``: the four-view classifier with patient-level k-fold cross-validation.

Protocol (paper, "Implementation details"): k folds split by patient (k=10 is
7:2:1 train/val/test, ``core_model.train.common.patient_kfold``), AdamW
(lr 1e-3, weight decay 1e-2), up to 300 epochs, early stopping after 30
epochs without a validation-AUC gain, the best-AUC state evaluated on the
fold's test patients; AUC, precision and recall (threshold 0.5) as mean ± std
over folds.

The DINOv2 backbone is frozen here and used as a feature extractor, as in the
paper: its token maps for every case (originals, the symmetric contralateral
views, and ``--adversarial-variants`` contralateral adversarial samples per
case, Eq. 9) are computed once and cached in OUT/cache, so the classifier
trains on a CPU in minutes. ``--finetune-backbone EPOCHS --finetune-data DIR``
first trains the backbone (supervised, one view at a time, position-masked)
on a *separate* data set, so no fold's test patients leak into the features,
and saves it as OUT/backbone_finetuned.safetensors.

Variants: four-view with adversarial samples (loss Eq. 10), four-view without
(focal loss only), dual-view (affected CC+MLO, cross-entropy, as the paper's
ablation). ``--ablation`` runs all three on the same folds and the same cache
and writes the comparison table (OUT/ablation.md).

Each variant leaves metrics.csv (one row per fold), roc.png, summary.json and
per fold a learning-curve CSV/PNG; a rerun with the same OUT resumes (done
folds are skipped, an interrupted fold continues from its last epoch: each fold
trains on core_model.train.loop, shared with ``nafv-train seg``, and keeps its
resume files there). Under
``torchrun`` each process trains on its share of every batch (DDP, gloo on
CPU). ``--export FILE.safetensors`` finally trains on all patients (80/20
train/val for early stopping) and writes the full model with its model card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from core_model.domain.errors import NafvError
from core_model.losses.classification import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA, nafv_loss
from core_model.models.checkpoint import save_checkpoint, sha256_file
from core_model.models.device import pick_device
from core_model.io.atomic import atomic_path, write_text
from core_model.train.common import (DistInfo, cleanup_distributed, init_distributed, patient_kfold, patient_split,
                                     seed_everything, write_json)
from core_model.train.loop import STATE_NAME, save_weights
from core_model.train.loop import fit as fit_loop
from core_model.transforms.position_mask import DEFAULT_DECAY

CROP_LIMITATION = (" It reads a square around the outlined lesion of each view: a view without an outline is read "
                   "whole, and the score says nothing about tissue outside the squares.")

VARIANTS = {
    "four-view": dict(mode="four-view", adversarial=True),
    "four-view-no-adversarial": dict(mode="four-view", adversarial=False),
    "dual-view": dict(mode="dual-view", adversarial=False),
}


# ----------------------------------------------------------------------------- metrics

def auc_score(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties count half); NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(p):  # average ranks over ties
        j = i
        while j + 1 < len(p) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) over all thresholds."""
    y = np.asarray(y).astype(bool)
    thr = np.r_[np.inf, np.unique(p)[::-1]]
    tpr = np.array([(p[y] >= t).mean() if y.any() else 0.0 for t in thr])
    fpr = np.array([(p[~y] >= t).mean() if (~y).any() else 0.0 for t in thr])
    return fpr, tpr


def precision_recall(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    tp = int((pred & y).sum())
    # no malignant prediction at all: precision 0 (scikit-learn's zero_division=0), not undefined
    precision = tp / int(pred.sum()) if pred.any() else 0.0
    recall = tp / int(y.sum()) if y.any() else float("nan")
    return precision, recall


def mean_std(values: list[float]) -> tuple[float, float]:
    v = np.array([x for x in values if not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


# ----------------------------------------------------------------------------- arguments

FINETUNE_SCHEDULES = ("constant", "cosine")
FINETUNE_WINDOWS = ("zoom", "grown")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nafv-train cls", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, action="append",
                   help="study folder (images/ or the studies themselves, plus masks/), or the public CDD-CESM "
                        "collection as downloaded; repeat to pool folders (e.g. easy and medium synthetic studies; "
                        "their patient ids must differ)")
    p.add_argument("--labels", help="annotation CSV (CDD-CESM format) or the collection's .xlsx; default "
                   "DATA/labels.csv or DATA/annotations.csv, else the collection's 'Radiology manual annotations'")
    p.add_argument("--label-from", choices=("birads", "pathology"), default="birads",
                   help="BI-RADS 1-3 benign / 4-6 malignant, or the pathology column")
    p.add_argument("--out", required=True, help="run folder (rerun with the same folder to resume)")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--mode", choices=("four-view", "dual-view"), default="four-view")
    p.add_argument("--no-adversarial", action="store_true", help="four-view without contralateral adversarial samples")
    p.add_argument("--ablation", action="store_true",
                   help="run four-view, four-view without adversarial samples and dual-view on the same folds")
    p.add_argument("--backbone", default="tf_efficientnet_lite0",
                   help="tf_efficientnet_lite0/1/2 (ImageNet weights from its package, the train extra; the default: "
                        "it is what a CPU can embed each epoch's adversarial samples with) or a timm DINOv2 name / "
                        "small/base/large (weights from --backbone-weights)")
    p.add_argument("--backbone-weights", help="local DINOv2 weights (official .pth or timm .safetensors); none: random init")
    p.add_argument("--scratch", action="store_true", help="random initialisation of an EfficientNet-Lite backbone")
    p.add_argument("--backbone-depth", type=int, help="shrink the ViT: number of blocks")
    p.add_argument("--backbone-dim", type=int, help="shrink the ViT: embedding width")
    p.add_argument("--backbone-heads", type=int, help="shrink the ViT: attention heads")
    p.add_argument("--freeze-backbone", action=argparse.BooleanOptionalAction, default=True,
                   help="the backbone is a frozen feature extractor with cached token maps (the only mode on CPU)")
    p.add_argument("--finetune-backbone", type=int, default=0, metavar="EPOCHS",
                   help="first fine-tune the backbone for EPOCHS on --finetune-data (a separate data set)")
    p.add_argument("--finetune-data", action="append",
                   help="study folder for --finetune-backbone (its patients must not be in --data); repeat to pool")
    p.add_argument("--finetune-labels", help="annotation CSV for --finetune-data (default as for --labels)")
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--finetune-schedule", choices=FINETUNE_SCHEDULES, default="constant",
                   help="learning rate of --finetune-backbone: constant (default, the shipped weights), or cosine "
                        "decay to 0 over its epochs")
    p.add_argument("--finetune-windows", choices=FINETUNE_WINDOWS, default="zoom",
                   help="how --finetune-backbone moves lesion squares: windows of a 1.25x wider cut (default, the "
                        "shipped weights; large lesions' windows also zoom), or of the square grown by 1.25 "
                        "around its centre (grown: the analysis' scale for every lesion size)")
    p.add_argument("--finetune-batch-size", type=int, default=16, help="views per step of --finetune-backbone")
    p.add_argument("--input-size", type=int, default=224,
                   help="square input side in pixels (a multiple of 14 for DINOv2, of 16 for EfficientNet-Lite)")
    p.add_argument("--channels", default="le,le,rc", help="energies filling the three input channels")
    p.add_argument("--position-decay", type=float, default=DEFAULT_DECAY, help="Eq. 8 decay, fraction of the image diagonal")
    p.add_argument("--crop", type=float, default=0.0,
                   help="read each view as a square around its lesion, this fraction of the view's longer side "
                        "(at least twice the lesion); 0: the whole view, as the paper (docs/classification.md)")
    p.add_argument("--adversarial-variants", type=int, default=0,
                   help="0 (default, Algorithm 1): a new contralateral adversarial sample per case every epoch; "
                        "N > 0: N samples per case drawn once and cached (faster, fewer distinct samples)")
    p.add_argument("--head-dims", default="128,192,256")
    p.add_argument("--head-depths", default="2,2,2", help="L1,L2,L3 MedCB blocks per stage")
    p.add_argument("--head-heads", default="4,4,8")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--focal-alpha", type=float, default=DEFAULT_ALPHA)
    p.add_argument("--focal-gamma", type=float, default=DEFAULT_GAMMA)
    p.add_argument("--beta", type=float, default=DEFAULT_BETA, help="weight of the KL robust term (Eq. 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--export", help="also train on all patients and write FILE.safetensors + model card")
    p.add_argument("--trained-on", help="model-card text saying what the data are (default: the data folder)")
    p.add_argument("--status", help="model-card status line shown with every result (e.g. 'demo weights, synthetic data')")
    return p


def _ints(text: str, n: int = 3) -> tuple[int, ...]:
    try:
        v = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise NafvError(f"expected {n} comma-separated integers, got {text!r}") from None
    if len(v) != n:
        raise NafvError(f"expected {n} comma-separated integers, got {text!r}")
    return v


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """The registry config of ``nafv_cls`` this run builds (without the weights path)."""
    overrides = {k: v for k, v in (("depth", args.backbone_depth), ("embed_dim", args.backbone_dim),
                                   ("num_heads", args.backbone_heads)) if v}
    channels = tuple(c.strip().lower() for c in args.channels.split(","))
    return dict(backbone=args.backbone, input_size=args.input_size, backbone_overrides=overrides,
                mode=args.mode, channels=channels, dims=_ints(args.head_dims), depths=_ints(args.head_depths),
                num_heads=_ints(args.head_heads), position_decay=args.position_decay, crop=args.crop)


def _default_labels(data: Path, given: str | None) -> Path:
    """--labels, else DATA/labels.csv or DATA/annotations.csv, else the collection's own spreadsheet."""
    from core_model.io.cdd_collection import find_collection

    if given:
        return Path(given)
    for name in ("labels.csv", "annotations.csv"):
        if (data / name).is_file():
            return data / name
    coll = None if (data / "masks").is_dir() else find_collection(data)
    if coll is not None and coll.table is not None:
        return coll.table
    raise NafvError("no label file: pass --labels (a CDD-CESM-style annotations CSV, or the collection's "
                    "'Radiology manual annotations.xlsx')", data)


# ----------------------------------------------------------------------------- backbone fine-tuning

def finetune_lr(lr: float, step: int, total_steps: int, schedule: str) -> float:
    """Learning rate of fine-tune step ``step`` (0-based) of ``total_steps``: ``lr`` throughout
    ("constant"), or decayed from ``lr`` towards 0 along half a cosine ("cosine")."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    raise ValueError(f"unknown fine-tune schedule {schedule!r} (choose from {', '.join(FINETUNE_SCHEDULES)})")


def finetune_backbone(model, cases, epochs: int, lr: float, seed: int, out: Path, device, show: bool,
                      batch_size: int = 16, shift: float = 0.25, schedule: str = "constant",
                      windows: str = "zoom") -> Path:
    """Supervised fine-tune of the backbone (DINOv2 or EfficientNet-Lite) on single position-masked views
    of the affected breast (benign / malignant), on the training loop (no validation: the data set is
    separate from the folds); saves the backbone's weights.

    With lesion squares (``model.crop`` > 0) every step reads each view through a square shifted at
    random by up to ``shift`` / 2 of its side, so the features learn the lesion, not where exactly the
    square lies (the analyzer places it from its own outline, a few pixels off the training masks):
    the views are cut larger and a window of the input size is taken at random. ``windows``:

    - "zoom" (the shipped weights): cut with ``crop`` times ``1 + shift``. A square set by twice the
      lesion's extent cannot grow with the crop (fully over 18.75 % of the view's longer side at crop
      0.3, partly from 15 %), so those windows zoom into the square by what it could not grow;
    - "grown": cut to the analysis' square grown by ``1 + shift`` around its centre (``lesion_box``'s
      ``grow``), at the square's own scale for every lesion size; only a square over 1 / (1 + shift)
      of the longer side grows less (up to that side) and its windows zoom by the rest.

    In both the position mask's fade is set on the cut, so it is ``1 + shift`` times wider around
    the lesion than in the analysis. ``schedule``: :func:`finetune_lr`. Measured
    (docs/classification.md): "grown" with "cosine" and 8 epochs scored no better on the validation
    studies than the shipped recipe."""
    from core_model.train.cls_data import case_inputs

    if windows not in FINETUNE_WINDOWS:
        raise ValueError(f"unknown fine-tune windows {windows!r} (choose from {', '.join(FINETUNE_WINDOWS)})")
    finetune_lr(lr, 0, 1, schedule)  # an unknown schedule fails here, before the inputs are built
    size = model.input_size
    big = int(round(size * (1 + shift))) if model.crop > 0 else size
    backbone = model.backbone
    xs, ys = [], []
    if windows == "grown":
        crop, grow = model.crop, big / size
    else:
        crop, grow = model.crop * big / size, 1.0
    for c in tqdm(cases, desc="fine-tune inputs", disable=not show):
        x = case_inputs(c, big, model.channels, model.position_decay, crop=crop, grow=grow)["affected"]
        xs.append(torch.from_numpy(x).half())  # [2 views, 3, big, big]; half: 1000 cases in ~1 GB
        ys.extend([c.label] * len(x))
    x_all, y_all = torch.cat(xs), torch.tensor(ys)
    probe = torch.nn.Linear(backbone.num_features, 2).to(device)
    opt = torch.optim.AdamW(list(backbone.parameters()) + list(probe.parameters()), lr=lr, weight_decay=0.05)

    def pooled(x: torch.Tensor) -> torch.Tensor:
        x = (x - model.pixel_mean) / model.pixel_std
        if model.is_cnn:
            return backbone(x)[-1].mean((2, 3))
        return backbone.forward_features(x)[:, backbone.num_prefix_tokens :].mean(1)

    def window(b: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if big == size:
            return x_all[b].float()
        offs = torch.randint(0, big - size + 1, (len(b), 2), generator=g)
        return torch.stack([x_all[i, :, r:r + size, c:c + size] for i, (r, c) in zip(b.tolist(), offs.tolist())]).float()

    # the fine-tune runs in one process (fit_loop without dist), so every step sees the whole order
    steps_per_epoch = -(-len(x_all) // batch_size)
    total_steps = max(1, epochs * steps_per_epoch)

    def train_epoch(epoch: int, order: list[int], g: torch.Generator) -> dict:
        backbone.train()
        total, right = 0.0, 0
        for k, i in enumerate(range(0, len(order), batch_size)):
            for group in opt.param_groups:
                group["lr"] = finetune_lr(lr, (epoch - 1) * steps_per_epoch + k, total_steps, schedule)
            b = torch.as_tensor(order[i : i + batch_size], dtype=torch.long)
            logits = probe(pooled(window(b, g).to(device)))
            y = y_all[b].to(device)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            right += int((logits.argmax(1) == y).sum())
        return {"train_loss": total / max(len(order), 1), "train_accuracy": right / max(len(order), 1)}

    fit_loop(backbone, opt, len(x_all), train_epoch, None, epochs=epochs, seed=seed,
             describe=(lambda r: f"backbone fine-tune epoch {r.epoch}: loss {r.train['train_loss']:.4f}, "
                                 f"accuracy {r.train['train_accuracy']:.3f}") if show else None)
    backbone.eval()
    path = out / "backbone_finetuned.safetensors"
    save_weights(backbone, path)
    return path


# ----------------------------------------------------------------------------- training on cached tokens

class _HeadStep(torch.nn.Module):
    """One forward for the whole step (DDP needs one forward per backward)."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, a, c=None):
        return self.head(a, c)


def _logits(head, cache, idx, variant: dict) -> torch.Tensor:
    a = cache["affected"][idx]
    if variant["mode"] == "dual-view":
        return head(a)
    return head(a, cache["contralateral"][idx])


@torch.no_grad()
def margins(head, cache, idx, variant: dict, device, batch: int = 64) -> np.ndarray:
    """Logit margin (malignant - benign) per case: softmax(logits / T)[1] = sigmoid(margin / T)."""
    head.eval()
    out = []
    for i in range(0, len(idx), batch):
        b = idx[i : i + batch]
        c = {k: v[b].to(device) for k, v in cache.items() if k in ("affected", "contralateral")}
        z = _logits(head, c, slice(None), variant).float().cpu()
        out.append(z[:, 1] - z[:, 0])
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def predict(head, cache, idx, variant: dict, device, batch: int = 64, temperature: float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margins(head, cache, idx, variant, device, batch) / temperature))


def fit_temperature(margin: np.ndarray, y: np.ndarray) -> float | None:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the validation NLL of
    sigmoid(margin / T). One parameter, so it changes how sure the score sounds, never the ranking
    (the AUC); searched on a log grid, which is exact enough and cannot diverge."""
    if len(y) == 0 or len(set(np.asarray(y).tolist())) < 2:
        return None  # nothing to fit on: no calibration, and none is claimed
    ts = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
    y = np.asarray(y, dtype=np.float64)
    nll = [float(np.mean(np.logaddexp(0.0, -margin / t) * y + np.logaddexp(0.0, margin / t) * (1 - y))) for t in ts]
    return float(ts[int(np.argmin(nll))])


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width probability bins: the case-weighted gap between confidence and frequency."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(y) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(p[which == k].mean() - y[which == k].mean()) * (which == k).sum()
                     for k in range(bins) if (which == k).any()) / len(y))


def train_head(head, cache, train_idx, val_idx, variant: dict, args, device, dist: DistInfo, run_dir: Path,
               desc: str, fresh=None) -> dict[str, Any]:
    """Early-stopped training of one head on the training loop (core_model.train.loop); resumes from the
    files it leaves in run_dir; leaves the best state in ``head`` and returns its epoch.

    ``fresh(epoch, case_indices)``, when given, returns that epoch's adversarial token maps
    [len(case_indices), 2, D, h, w] (drawn anew each epoch); else they come from the cache."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    head.to(device)
    step_model = _HeadStep(head)
    if dist.enabled:
        step_model = DDP(step_model)
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    labels = cache["label"]
    use_adv = variant["adversarial"] and (fresh is not None or "adversarial" in cache)
    n_adv = cache["adversarial"].shape[1] if (use_adv and fresh is None) else 0
    train_idx = torch.as_tensor(train_idx).long()
    pos = torch.full((len(labels),), -1, dtype=torch.long)
    pos[train_idx] = torch.arange(len(train_idx))  # case index -> row of this epoch's fresh samples

    def train_epoch(epoch: int, order: list[int], g: torch.Generator) -> dict:
        head.train()
        mine = train_idx[torch.as_tensor(order, dtype=torch.long)]
        if use_adv and fresh is not None:
            # Algorithm 1: new contralateral adversarial samples every epoch, drawn from (seed, epoch, case)
            fresh_tokens = fresh(epoch, train_idx)
        total, count = 0.0, 0
        for i in range(0, len(mine), args.batch_size):
            b = mine[i : i + args.batch_size]
            if len(b) < 2 and len(mine) > 2:
                continue  # a lone last case gives BatchNorm a degenerate batch (every rank has as many: padded)
            y = labels[b].to(device)
            a = cache["affected"][b].to(device)
            if variant["mode"] == "dual-view":
                loss = F.cross_entropy(step_model(a), y)  # the paper's dual-view ablation uses cross-entropy
            elif not use_adv:
                loss = nafv_loss(step_model(a, cache["contralateral"][b].to(device)), y,
                                 alpha=args.focal_alpha, gamma=args.focal_gamma)  # Eq. 11 alone
            else:
                if fresh is not None:
                    adv = fresh_tokens[pos[b]].to(device)
                else:
                    pick = torch.randint(n_adv, (len(b),), generator=g)
                    adv = cache["adversarial"][b, pick].to(device)
                con = cache["contralateral"][b].to(device)
                logits = step_model(torch.cat([a, a]), torch.cat([con, adv]))
                lo, la = logits[: len(b)], logits[len(b) :]
                loss = nafv_loss(lo, y, la, alpha=args.focal_alpha, gamma=args.focal_gamma, beta=args.beta)  # Eq. 10
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
        return {"train_loss": total / max(count, 1)}

    def validate(epoch: int) -> dict:
        p_val = predict(head, cache, val_idx, variant, device)
        y_val = labels[val_idx].numpy()
        val_loss = float(F.binary_cross_entropy(torch.tensor(p_val, dtype=torch.float32).clamp(1e-6, 1 - 1e-6),
                                                torch.tensor(y_val).float()))
        return {"val_loss": val_loss, "val_auc": auc_score(y_val, p_val)}

    # best = highest val AUC; ties (common on small folds) broken by the lower val loss
    result = fit_loop(head, opt, len(train_idx), train_epoch, validate, epochs=args.epochs, seed=args.seed,
                      run_dir=run_dir, dist=dist, metric="val_auc", tie_break="val_loss", patience=args.patience,
                      resume=(run_dir / STATE_NAME).is_file(), best_name="best_head.safetensors", log_name="log.csv",
                      curves=(["train_loss", "val_loss", "val_auc"], desc))
    # -1: no validation AUC could be computed (one class only), as the result files have always said
    return dict(best_epoch=result.best_epoch, val_auc=-1.0 if result.best is None else result.best,
                epochs_run=result.epochs_run)


def _new_head(in_dim: int, cfg: dict, seed: int):
    from core_model.models.four_view import FourViewHead

    torch.manual_seed(seed)
    return FourViewHead(in_dim, cfg["dims"], cfg["depths"], cfg["num_heads"])


def run_variant(name: str, cache, case_patients: list[str], folds, cfg, args, device, dist, out: Path,
                fresh=None) -> dict:
    variant = VARIANTS[name]
    vdir = out / name
    vdir.mkdir(parents=True, exist_ok=True)
    in_dim = cache["affected"].shape[2]
    pats = np.array(case_patients)
    rows, rocs = [], []
    for f, (tr, va, te) in enumerate(folds):
        fdir = vdir / f"fold_{f:02d}"
        fdir.mkdir(exist_ok=True)
        idx = [np.flatnonzero(np.isin(pats, group)).tolist() for group in (tr, va, te)]
        result_path = fdir / "result.json"
        if result_path.is_file():
            # a metric that could not be computed is written as null; back to NaN, as when it was computed
            row = {k: (float("nan") if v is None else v) for k, v in json.loads(result_path.read_text()).items()}
        else:
            head = _new_head(in_dim, cfg, args.seed + f)
            info = train_head(head, cache, idx[0], idx[1], variant, args, device, dist, fdir,
                              f"{name} fold {f + 1}/{len(folds)}", fresh=fresh if variant["adversarial"] else None)
            # temperature fitted on the fold's validation patients, applied to its test patients
            t = fit_temperature(margins(head, cache, idx[1], variant, device), cache["label"][idx[1]].numpy()) or 1.0
            m_test = margins(head, cache, idx[2], variant, device)
            p_raw = 1.0 / (1.0 + np.exp(-m_test))
            p_test = 1.0 / (1.0 + np.exp(-m_test / t))
            y_test = cache["label"][idx[2]].numpy()
            prec, rec = precision_recall(y_test, p_test)
            row = dict(fold=f + 1, n_train=len(idx[0]), n_val=len(idx[1]), n_test=len(idx[2]),
                       best_epoch=info["best_epoch"], epochs_run=info["epochs_run"], val_auc=info["val_auc"],
                       test_auc=auc_score(y_test, p_test), precision=prec, recall=rec, temperature=t,
                       ece_uncalibrated=expected_calibration_error(y_test, p_raw),
                       ece=expected_calibration_error(y_test, p_test),
                       y_test=y_test.tolist(), p_test=[round(float(x), 6) for x in p_test])
            if dist.is_main:  # best_head.safetensors: written by the training loop
                write_json(result_path, row)
        rows.append(row)
        rocs.append((np.array(row["y_test"]), np.array(row["p_test"])))
    for r in rows:  # folds written before precision defaulted to 0
        if r["precision"] is None or (isinstance(r["precision"], float) and math.isnan(r["precision"])):
            r["precision"] = 0.0
    summary = {k: mean_std([r.get(k, float("nan")) for r in rows])
               for k in ("test_auc", "precision", "recall", "ece", "ece_uncalibrated")}
    y_all = np.concatenate([r[0] for r in rocs])
    p_all = np.concatenate([r[1] for r in rocs])
    summary_out = dict(variant=name, folds=len(folds), cases=int(len(case_patients)),
                       auc_mean=summary["test_auc"][0], auc_std=summary["test_auc"][1],
                       precision_mean=summary["precision"][0], precision_std=summary["precision"][1],
                       recall_mean=summary["recall"][0], recall_std=summary["recall"][1],
                       pooled_auc=auc_score(y_all, p_all),
                       ece_mean=summary["ece"][0], ece_uncalibrated_mean=summary["ece_uncalibrated"][0],
                       median_best_epoch=float(np.median([r["best_epoch"] for r in rows])))
    if dist.is_main:
        import csv

        with atomic_path(vdir / "metrics.csv") as tmp, open(tmp, "w", newline="") as fcsv:
            keys = ["fold", "n_train", "n_val", "n_test", "best_epoch", "epochs_run", "val_auc", "test_auc", "precision", "recall"]
            w = csv.DictWriter(fcsv, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{r[k]:.4f}" if isinstance(r[k], float) else r[k]) for k in keys})
        write_json(vdir / "summary.json", summary_out)
        _plot_roc(rocs, vdir / "roc.png", f"{name}: test ROC per fold (pooled AUC {summary_out['pooled_auc']:.3f})")
    return summary_out


def _plot_roc(rocs, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for i, (y, p) in enumerate(rocs):
        if len(set(y.tolist())) == 2:
            fpr, tpr = roc_curve(y, p)
            ax.plot(fpr, tpr, alpha=0.4, lw=1, label=f"fold {i + 1}" if len(rocs) <= 10 else None)
    y = np.concatenate([r[0] for r in rocs])
    p = np.concatenate([r[1] for r in rocs])
    if len(set(y.tolist())) == 2:
        fpr, tpr = roc_curve(y, p)
        ax.plot(fpr, tpr, color="k", lw=2, label="pooled")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (malignant)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def _cache_key(args, cfg: dict, backbone_id: str, data_id: str) -> str:
    blob = json.dumps(dict(cfg={k: v for k, v in cfg.items() if k not in ("mode", "dims", "depths", "num_heads")},
                           backbone=backbone_id, data=data_id, adv=args.adversarial_variants, seed=args.seed),
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.freeze_backbone:
        raise NafvError("end-to-end backbone training is not available here: use --finetune-backbone on a separate "
                        "data set, then train the classifier on the frozen backbone")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dist = init_distributed(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(args.seed)
    folders = [Path(d) for d in args.data]
    if args.labels and len(folders) > 1:
        raise NafvError("--labels names one label file: with several --data folders each uses its own")
    labels_csvs = [_default_labels(d, args.labels) for d in folders]
    data = folders[0] if len(folders) == 1 else Path(" + ".join(d.name for d in folders))  # shown, never opened
    cfg = model_config(args)
    variants = list(VARIANTS) if args.ablation else [
        "dual-view" if args.mode == "dual-view" else ("four-view-no-adversarial" if args.no_adversarial else "four-view")]
    previous = out / "config.json"
    if previous.is_file() and any((out / v).is_dir() for v in VARIANTS):
        # a rerun resumes finished folds: only with the recipe they were made with
        old = json.loads(previous.read_text(encoding="utf-8"))
        keys = ("model_config", "backbone", "backbone_weights", "adversarial_variants", "folds", "seed", "label_from",
                "data", "lr", "epochs", "patience", "batch_size", "beta", "focal_alpha", "focal_gamma", "scratch")
        now = json.loads(json.dumps(dict(vars(args), model_config=cfg), default=str))
        changed = [k for k in keys if old.get(k) != now.get(k)]
        if changed:
            raise NafvError(f"this run folder holds folds trained with other settings ({', '.join(changed)}); "
                            "use a new --out, or rerun with the same settings to resume", out)
    if dist.is_main:
        write_json(out / "config.json", dict(vars(args), model_config=cfg, variants=variants, world_size=dist.world_size))

    from core_model.models.registry import create_model
    from core_model.train.cls_data import embed_cases, load_cases

    show = dist.is_main
    t0 = time.time()
    cases, notes = [], []
    for folder, labels_csv in zip(folders, labels_csvs):
        got, more = load_cases(folder, labels_csv, args.label_from)
        clash = sorted({c.patient_id for c in got} & {c.patient_id for c in cases})
        if clash:
            raise NafvError(f"patient ids {clash[:3]} occur in two --data folders; give each folder its own ids "
                            "(nafv-train phantom --first-id)", folder)
        cases += got
        notes += more
    if not cases:
        raise NafvError("no labelled cases with lesion masks found", data)
    four = any(VARIANTS[v]["mode"] == "four-view" for v in variants)
    if four:
        dropped = [c.key for c in cases if c.contralateral is None]
        cases = [c for c in cases if c.contralateral is not None]
        if dropped:
            notes.append(f"{len(dropped)} case(s) without a complete contralateral side left out of four-view training")
    ys = {c.label for c in cases}
    if ys != {0, 1}:
        raise NafvError(f"both benign and malignant cases are needed; found only {'malignant' if 1 in ys else 'benign'} "
                        f"({len(cases)} cases)", data)
    # the resolution the classifier learns from: the analysis brings a study's views to it (model_inputs)
    cfg["source_side"] = max(max(a.shape) for c in cases for a in c.affected.values())
    patients = sorted({c.patient_id for c in cases})
    if show:
        print(f"{len(cases)} cases ({sum(c.label for c in cases)} malignant) from {len(patients)} patients "
              f"in {time.time() - t0:.1f} s", file=sys.stderr)
        for n in notes[:10]:
            print(f"  note: {n}", file=sys.stderr)

    # The backbone: random init from the seed, a local file, or fine-tuned here on separate data.
    torch.manual_seed(args.seed)
    try:
        model = create_model("nafv_cls", backbone_weights=args.backbone_weights, **cfg).to(device)
    except ValueError as exc:  # bad --input-size / --channels / head widths: a message, not a traceback
        raise NafvError(f"invalid model settings: {exc}") from None
    backbone_desc = (f"weights from the local file {Path(args.backbone_weights).name}, frozen" if args.backbone_weights
                     else f"randomly initialised (seed {args.seed}), frozen")
    backbone_id = sha256_file(args.backbone_weights) if args.backbone_weights else f"random-{args.seed}"
    if getattr(model, "is_cnn", False) and not args.scratch:
        n_loaded = model.backbone.load_imagenet()
        model.to(device)
        backbone_desc = f"{args.backbone}, ImageNet weights ({n_loaded} tensors from its package), frozen"
        backbone_id = f"imagenet-{args.backbone}"
    if args.finetune_backbone:
        if not args.finetune_data:
            raise NafvError("--finetune-backbone needs --finetune-data (a data set separate from --data)")
        ft_path = out / "backbone_finetuned.safetensors"
        # what the fine-tuned backbone was made from, beside it: a rerun reuses it only for the same recipe
        recipe_path = ft_path.with_suffix(".json")
        recipe = dict(epochs=args.finetune_backbone, lr=args.finetune_lr, schedule=args.finetune_schedule,
                      windows=args.finetune_windows, batch_size=args.finetune_batch_size,
                      data=[str(Path(d).resolve()) for d in args.finetune_data], labels=args.finetune_labels,
                      label_from=args.label_from, seed=args.seed, backbone=args.backbone, scratch=args.scratch,
                      model={k: cfg[k] for k in ("input_size", "channels", "position_decay", "crop")})
        if ft_path.is_file():
            done = json.loads(recipe_path.read_text(encoding="utf-8")) if recipe_path.is_file() else {}
            if done:  # recorded before the schedule and windows were settings: the behaviour then
                done = {"schedule": "constant", "windows": "zoom", **done}
            changed = sorted(k for k in recipe if json.dumps(done.get(k), default=str) != json.dumps(recipe[k], default=str))
            if changed:
                raise NafvError(f"this run folder's fine-tuned backbone was made with other settings "
                                f"({', '.join(changed)}); use a new --out", out)
            ft_patients = set(done.get("patients", []))
        else:
            ft_cases = []
            for fdata in map(Path, args.finetune_data):
                ft_cases += load_cases(fdata, _default_labels(fdata, args.finetune_labels), args.label_from)[0]
            ft_patients = {c.patient_id for c in ft_cases}
        if ft_patients & set(patients):
            raise NafvError("--finetune-data shares patients with --data: the folds' test patients would "
                            "shape the features they are scored with")
        if not ft_path.is_file():
            if dist.is_main:
                finetune_backbone(model, ft_cases, args.finetune_backbone, args.finetune_lr, args.seed, out, device, show,
                                  batch_size=args.finetune_batch_size, schedule=args.finetune_schedule,
                                  windows=args.finetune_windows)
                write_json(recipe_path, dict(recipe, patients=sorted(ft_patients)))
            if dist.enabled:
                torch.distributed.barrier()
        if getattr(model, "is_cnn", False):
            model.backbone.load_state_dict(load_file(str(ft_path)), strict=True)
            start = backbone_desc.removesuffix(", frozen")
        else:
            from core_model.models.backbone import create_backbone

            model.backbone = create_backbone(cfg["backbone"], img_size=cfg["input_size"], weights=ft_path,
                                             **cfg["backbone_overrides"]).to(device)
            start = Path(args.backbone_weights).name if args.backbone_weights else "random init"
        settings = ([f"{args.finetune_windows} windows"] if cfg["crop"] > 0 and args.finetune_windows != "zoom" else []) \
            + ([f"{args.finetune_schedule} learning rate"] if args.finetune_schedule != "constant" else [])
        backbone_desc = (f"fine-tuned for {args.finetune_backbone} epochs (supervised, single position-masked "
                         + ("lesion squares, randomly shifted" if cfg["crop"] > 0 else "views")
                         + "".join(f", {x}" for x in settings) + ") on "
                         + " + ".join(Path(d).name for d in args.finetune_data) + f", starting from {start}; frozen")
        backbone_id = sha256_file(ft_path)
    for p in model.backbone.parameters():
        p.requires_grad_(False)

    data_id = hashlib.sha256(json.dumps([c.key for c in cases] + [str(f.resolve()) for f in folders]
                                        + [str(c.resolve()) for c in labels_csvs] + [args.label_from]).encode()).hexdigest()
    cache_path = out / "cache" / f"tokens-{_cache_key(args, cfg, backbone_id, data_id)}.safetensors"
    n_adv = args.adversarial_variants if any(VARIANTS[v]["adversarial"] for v in variants) else 0
    if not cache_path.is_file():
        if dist.is_main:
            cache_path.parent.mkdir(exist_ok=True)
            t1 = time.time()
            bar = tqdm(total=len(cases), desc="backbone token maps", disable=not show)
            cache = embed_cases(model, cases, n_adv, args.seed,
                                progress=lambda i, n: bar.update(1))
            bar.close()
            with atomic_path(cache_path) as tmp:
                save_file({k: v.contiguous() for k, v in cache.items()}, str(tmp))
            print(f"cached token maps in {time.time() - t1:.1f} s -> {cache_path}", file=sys.stderr)
        if dist.enabled:
            torch.distributed.barrier()
    cache = load_file(str(cache_path))

    fresh = None
    if n_adv == 0 and any(VARIANTS[v]["adversarial"] for v in variants):
        from core_model.train.cls_data import embed_adversarial

        def draw_adversarial(epoch: int, idx: torch.Tensor) -> torch.Tensor:
            return embed_adversarial(model, [cases[i] for i in idx.tolist()], [int(i) for i in idx.tolist()],
                                     args.seed, epoch)

        fresh = draw_adversarial

    folds = patient_kfold(patients, args.folds, args.seed)
    case_patients = [c.patient_id for c in cases]
    results = []
    for name in variants:
        s = run_variant(name, cache, case_patients, folds, cfg, args, device, dist, out, fresh=fresh)
        results.append(s)
        if show:
            print(f"{name}: AUC {s['auc_mean']:.3f} ± {s['auc_std']:.3f}, precision {s['precision_mean']:.3f} ± "
                  f"{s['precision_std']:.3f}, recall {s['recall_mean']:.3f} ± {s['recall_std']:.3f} "
                  f"({args.folds} folds, {len(cases)} cases)")
    if show:
        _write_table(results, out, args, len(cases), len(patients), backbone_desc)

    if args.export:
        _export(model, cache, cases, results[0], variants[0], cfg, args, device, dist, out, backbone_desc, data,
                fresh=fresh)
    if show:
        print(f"done in {time.time() - t0:.0f} s; results in {out}", file=sys.stderr)
    cleanup_distributed()
    return 0


def _write_table(results, out: Path, args, n_cases: int, n_patients: int, backbone_desc: str) -> None:
    fmt = lambda m, s: f"{m:.3f} ± {s:.3f}"  # noqa: E731
    lines = [f"| Variant | AUC | Precision | Recall | pooled AUC |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['variant']} | {fmt(r['auc_mean'], r['auc_std'])} | {fmt(r['precision_mean'], r['precision_std'])} "
                     f"| {fmt(r['recall_mean'], r['recall_std'])} | {r['pooled_auc']:.3f} |")
    sources = " + ".join(str(d) for d in args.data)
    head = (f"{args.folds}-fold patient-level CV on {n_cases} cases / {n_patients} patients from {sources}; "
            f"backbone: {backbone_desc}; input {args.input_size} px; seed {args.seed}\n\n")
    write_text(out / "ablation.md" if len(results) > 1 else out / "results.md", head + "\n".join(lines) + "\n")


def _export(model, cache, cases, cv_summary, variant_name, cfg, args, device, dist, out, backbone_desc, data,
            fresh=None) -> None:
    """Final head on all patients (80/20 for early stopping), saved with the backbone and a model card."""
    variant = VARIANTS[variant_name]
    patients = sorted({c.patient_id for c in cases})
    tr, va = patient_split(patients, [0.8, 0.2], args.seed)
    pats = np.array([c.patient_id for c in cases])
    idx_tr = np.flatnonzero(np.isin(pats, tr)).tolist()
    idx_va = np.flatnonzero(np.isin(pats, va)).tolist()
    fdir = out / f"final-{variant_name}"
    fdir.mkdir(exist_ok=True)
    head = _new_head(cache["affected"].shape[2], cfg, args.seed)
    info = train_head(head, cache, idx_tr, idx_va, variant, args, device, dist, fdir, "final model",
                      fresh=fresh if variant["adversarial"] else None)
    if not dist.is_main:
        return
    m_val, y_val = margins(head, cache, idx_va, variant, device), cache["label"][idx_va].numpy()
    temperature = fit_temperature(m_val, y_val)
    calibration = None if temperature is None else dict(method="temperature scaling", temperature=round(temperature, 4),
                       fitted_on=f"the final model's validation patients ({len(va)} patients, {len(idx_va)} cases) "
                                 f"of {data.name}",
                       ece_validation_uncalibrated=round(expected_calibration_error(y_val, 1 / (1 + np.exp(-m_val))), 4),
                       ece_validation=round(expected_calibration_error(y_val, 1 / (1 + np.exp(-m_val / (temperature or 1.0)))), 4),
                       at_search_limit=bool(temperature is not None and not 0.05 < temperature < 20.0),
                       ece_cross_validation=(round(cv_summary["ece_mean"], 4)
                                             if not math.isnan(cv_summary.get("ece_mean", float("nan"))) else None),
                       meaning="calibrated on the training data's distribution only: on other data (real patients, "
                               "if trained on synthetic studies) the score is not a probability")
    model.head.load_state_dict(head.state_dict())
    model.mode = variant["mode"]
    config = dict(cfg, mode=variant["mode"])
    card = dict(
        name="NaFV-Net classifier (demo weights)",
        architecture=dict(name="nafv_cls", config=config),
        trained_on=args.trained_on or f"{data.name}: {len(cases)} cases from {len(patients)} patients",
        task="benign (0) vs malignant (1) of the affected breast from CC + MLO"
             + (" of both breasts" if variant["mode"] == "four-view" else ""),
        inputs=dict(channels=list(cfg["channels"]), input_size=cfg["input_size"], position_decay=cfg["position_decay"],
                    crop=cfg["crop"], source_side=cfg["source_side"],
                    value_range="[0, 1] per image (file window or min/max), times the Eq. 8 position mask"),
        backbone=backbone_desc,
        training=dict(variant=variant_name, beta=args.beta,
                      adversarial=("a new sample per case each epoch" if args.adversarial_variants == 0
                                   else f"{args.adversarial_variants} cached samples per case"),
                      focal_alpha=args.focal_alpha, focal_gamma=args.focal_gamma, lr=args.lr,
                      weight_decay=args.weight_decay, batch_size=args.batch_size, seed=args.seed,
                      final_split="all patients, 80/20 train/val for early stopping",
                      final_best_epoch=info["best_epoch"], final_val_auc=info["val_auc"]),
        cross_validation=cv_summary,
        # what the analyzer shows beside every result
        metrics=dict(evaluation=f"{cv_summary['folds']}-fold patient-level cross-validation on the training data",
                     auc=f"{cv_summary['auc_mean']:.3f} ± {cv_summary['auc_std']:.3f}",
                     precision=f"{cv_summary['precision_mean']:.3f} ± {cv_summary['precision_std']:.3f}",
                     recall=f"{cv_summary['recall_mean']:.3f} ± {cv_summary['recall_std']:.3f}",
                     pooled_auc=round(cv_summary["pooled_auc"], 3)),
        calibration=calibration,
        intended_use="demonstration and software testing of the NaFV-Net classification pipeline",
        limitations=("Scores are not probabilities of cancer: they are temperature-scaled on the training data's own "
                     "validation patients only. Trained and evaluated only on the data named "
                     "in trained_on; performance on real mammograms is unknown. A four-view model given no "
                     "contralateral side runs its dual-view path, which it was not trained for."
                     + (CROP_LIMITATION if cfg["crop"] > 0 else "")),
        not_for_clinical_use=True,
    )
    if calibration is None:
        del card["calibration"]
    from core_model.train.seg_data import is_synthetic_folder

    # the analyzer warns beside every score such weights give a patient, whatever trained_on says
    card["synthetic_only"] = all(is_synthetic_folder(Path(d)) for d in args.data)
    if args.status:
        card["status"] = args.status
    save_checkpoint(model, args.export, card)
    print(f"wrote {args.export} (+ model card)", file=sys.stderr)
