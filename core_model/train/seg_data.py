"""Breast-level segmentation samples from a folder in the CDD-CESM layout.

``DIR/images/P{id}_{L|R}_{DM|CM}_{CC|MLO}.(jpg|png)`` with lesion masks under
``DIR/masks/`` with the same names (JPEG, so thresholded at 127), or the
public collection as downloaded, whose masks are drawn from the radiologists'
outlines and are empty for normal views (core_model.io.cdd_collection). One sample
is one breast: its CC and MLO views (each with the requested energies as
channels), their masks, which views exist, and the contralateral breast's
CC/MLO when the folder has them. Images are prepared once with
core_model.imaging.preprocess (normalize_image, then Letterbox) and kept in memory:
the 512x512 set at 192x192 is a few tens of MB.

Masks: the RC image's mask is the target, the LE mask only where RC has none
(the one rule of both trainers, core_model.train.masks).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core_model.domain.errors import NafvError
from core_model.imaging.orientation import flip_array, reading_flips
from core_model.imaging.preprocess import Letterbox, normalize_image
from core_model.io.cdd_collection import CddCollection, find_collection
from core_model.io.images import read_raster
from core_model.io.naming import parse_cdd_cesm_name
from core_model.train.loop import epoch_seed
from core_model.train.masks import lesion_source, read_mask

VIEWS = ("CC", "MLO")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


@dataclass
class Breast:
    patient: str
    side: str
    # view -> energy -> path
    images: dict[str, dict[str, Path]] = field(default_factory=dict)
    # view -> mask file, or a callable that draws the mask (see read_mask)
    masks: dict[str, Path | Callable[[], np.ndarray]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.patient}_{self.side}"

    def has_view(self, view: str, channels: tuple[str, ...]) -> bool:
        return all(e in self.images.get(view, {}) for e in channels)


def collection_breasts(coll: CddCollection) -> dict[tuple[str, str], Breast]:
    """Breasts of the public collection: its images, and the masks drawn from its outlines."""
    breasts: dict[tuple[str, str], Breast] = {}
    for (pid, side, view, energy), p in coll.images.items():
        b = breasts.setdefault((pid, side), Breast(pid, side))
        b.images.setdefault(view, {})[energy] = p
    for (pid, side, view), m in coll.segmentation_masks().items():
        breasts[(pid, side)].masks[view] = m
    return breasts


def scan_folder(data_dir: str | Path) -> dict[tuple[str, str], Breast]:
    """All breasts in a CDD-CESM-layout folder (images/ + masks/, or the collection as downloaded),
    keyed by (patient, side)."""
    root = Path(data_dir)
    img_dir, mask_dir = root / "images", root / "masks"
    if not (img_dir.is_dir() and mask_dir.is_dir()):
        coll = find_collection(root)
        if coll is not None:
            return collection_breasts(coll)
    if not img_dir.is_dir():
        raise NafvError("not a CDD-CESM folder: it has no images/ subfolder (with masks/ beside it), and no "
                        "'Low energy images of CDD-CESM' / 'Subtracted images of CDD-CESM' folders", root)
    breasts: dict[tuple[str, str], Breast] = {}
    masks: dict[tuple[str, str, str], dict[str, Path]] = {}
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        info = parse_cdd_cesm_name(p)
        if info is None:
            continue
        b = breasts.setdefault((info.patient_id, info.side), Breast(info.patient_id, info.side))
        b.images.setdefault(info.view, {})[info.energy] = p
        m = next((q for q in (mask_dir / p.name, mask_dir / (p.stem + ".png")) if q.is_file()), None)
        if m is not None:
            masks.setdefault((info.patient_id, info.side, info.view), {})[info.energy] = m
    for (pid, side, view), by_energy in masks.items():
        breasts[(pid, side)].masks[view] = lesion_source(by_energy)
    if not breasts:
        raise NafvError("no images named like P12_L_CM_CC.jpg in images/", img_dir)
    return breasts


def is_synthetic_folder(data_dir: str | Path) -> bool:
    """Whether a folder holds synthetic studies (``nafv-train phantom`` writes its notice into README.txt)."""
    from core_model.domain.notice import SYNTHETIC_MARK_RE

    readme = Path(data_dir) / "README.txt"
    try:
        return readme.is_file() and bool(SYNTHETIC_MARK_RE.search(readme.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def scan_folders(data_dirs: list[str | Path]) -> tuple[dict[tuple[str, str], Breast], dict[str | Path, list[str]]]:
    """All breasts of several CDD-CESM-layout folders, and each folder's patients (in the order given).

    A patient id found in two folders is refused: the split, the contralateral pairing and the
    model card all key on it, and two different people under one id would be mixed silently."""
    breasts: dict[tuple[str, str], Breast] = {}
    sources: dict[str | Path, list[str]] = {}
    owner: dict[str, str | Path] = {}
    for d in data_dirs:
        found = scan_folder(d)
        pats = patients_of(found)
        clash = sorted(p for p in pats if p in owner)
        if clash:
            raise NafvError(f"patient ids {clash[:3]} occur in both {owner[clash[0]]} and {d}; "
                            "give each folder its own ids (e.g. nafv-train phantom --first-id)", d)
        for p in pats:
            owner[p] = d
        breasts.update(found)
        sources[d] = pats
    return breasts, sources


def select_breasts(breasts: dict[tuple[str, str], Breast], patients: set[str] | None,
                   channels: tuple[str, ...], need_masks: bool = True) -> list[Breast]:
    """Breasts of the given patients with at least one usable (and annotated) view."""
    out = []
    for (pid, _), b in sorted(breasts.items(), key=lambda kv: (_pid_num(kv[0][0]), kv[0][1])):
        if patients is not None and pid not in patients:
            continue
        usable = [v for v in VIEWS if b.has_view(v, channels) and (not need_masks or v in b.masks)]
        if usable:
            out.append(b)
    return out


def _pid_num(pid: str) -> int:
    return int(pid[1:]) if pid[1:].isdigit() else 0


def prepare_view(b: Breast, view: str, channels: tuple[str, ...], size: tuple[int, int]):
    """(image [C, H, W] float32, letterbox, flips) of one view, or (None, None, None) if it is missing.

    The image is brought to reading orientation as the analyzer does (the chest-wall detector of
    :mod:`core_model.imaging.orientation`, both energies together; these files carry no orientation tags);
    ``flips`` says how, so masks and predictions can follow."""
    if not b.has_view(view, channels):
        return None, None, None
    pixels = [read_raster(Path(b.images[view][e]))[0] for e in channels]  # the viewer's reader: same pixels
    for e, px in zip(channels, pixels):
        if px.shape != pixels[0].shape:
            raise NafvError(f"{view} LE and RC images differ in size ({px.shape} vs {pixels[0].shape})", b.images[view][e])
    flips = reading_flips(b.side, view, pixels[0], None, partner=pixels[1] if len(pixels) > 1 else None)
    lb = Letterbox.fit(pixels[0].shape, size)
    planes = [lb.apply(normalize_image(flip_array(px, flips))) for px in pixels]
    return np.stack(planes), lb, flips


def prepare_breast(b: Breast, contra: Breast | None, channels: tuple[str, ...], size: tuple[int, int]) -> dict:
    C, (H, W) = len(channels), size
    views = np.zeros((2, C, H, W), np.float32)
    masks = np.zeros((2, 1, H, W), np.float32)
    present = np.zeros(2, bool)
    has_mask = np.zeros(2, bool)
    cviews = np.zeros((2, C, H, W), np.float32)
    cpresent = np.zeros(2, bool)
    for i, v in enumerate(VIEWS):
        img, lb, flips = prepare_view(b, v, channels, size)
        if img is not None:
            views[i], present[i] = img, True
            if v in b.masks:
                m = read_mask(b.masks[v])
                if m.shape != lb.src_shape:
                    m = np.asarray(Image.fromarray(m).resize(lb.src_shape[::-1], Image.NEAREST))
                m = flip_array(m, flips)
                masks[i, 0] = lb.apply(m.astype(np.float32)) > 0.5
                has_mask[i] = True
        if contra is not None:
            cimg, _, _ = prepare_view(contra, v, channels, size)
            if cimg is not None:
                cviews[i], cpresent[i] = cimg, True
    return {
        "views": torch.from_numpy(views), "masks": torch.from_numpy(masks),
        "present": torch.from_numpy(present), "has_mask": torch.from_numpy(has_mask),
        "contra": torch.from_numpy(cviews), "contra_present": torch.from_numpy(cpresent),
    }


@dataclass
class AugmentConfig:
    """Anatomy-respecting augmentation: small zoom/rotation/shift and intensity changes.
    The horizontal flip mirrors the whole breast (both views, masks, and the contralateral
    breast) at once, i.e. it turns a left breast into a plausible right one; the model is
    not told the laterality, so nothing becomes inconsistent."""

    flip_p: float = 0.5
    max_rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    max_shift: float = 0.04
    gamma: tuple[float, float] = (0.8, 1.25)
    contrast: tuple[float, float] = (0.9, 1.1)


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment(sample: dict, g: torch.Generator, cfg: AugmentConfig = AugmentConfig()) -> dict:
    """Randomised copy of a prepared sample; all randomness from ``g``."""
    s = dict(sample)
    views, masks, contra = s["views"].clone(), s["masks"].clone(), s["contra"].clone()
    if float(torch.rand((), generator=g)) < cfg.flip_p:
        views, masks, contra = views.flip(-1), masks.flip(-1), contra.flip(-1)
    thetas = []
    for _ in range(views.shape[0]):
        a = math.radians(_u(g, -cfg.max_rotate_deg, cfg.max_rotate_deg))
        sc = _u(g, *cfg.scale)
        tx, ty = _u(g, -cfg.max_shift, cfg.max_shift) * 2, _u(g, -cfg.max_shift, cfg.max_shift) * 2
        c, sn = math.cos(a) / sc, math.sin(a) / sc
        thetas.append([[c, -sn, tx], [sn, c, ty]])
    theta = torch.tensor(thetas, dtype=torch.float32)
    grid = F.affine_grid(theta, list(views.shape), align_corners=False)
    views = F.grid_sample(views, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = (F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.5).float()
    for i in range(views.shape[0]):
        gam, con = _u(g, *cfg.gamma), _u(g, *cfg.contrast)
        views[i] = (views[i].clamp(0, 1) ** gam * con).clamp(0, 1)
    views = views * s["present"].view(-1, 1, 1, 1)  # a missing view stays a zero image
    s.update(views=views, masks=masks, contra=contra)
    return s


class SegDataset(torch.utils.data.Dataset):
    """Prepared breasts in memory; ``set_epoch`` reseeds augmentation so a run is
    reproducible from its seed whatever the process count."""

    def __init__(self, breasts: list[Breast], all_breasts: dict[tuple[str, str], Breast],
                 channels: tuple[str, ...], size: tuple[int, int], augment_cfg: AugmentConfig | None = None,
                 seed: int = 0):
        self.breasts = breasts
        self.augment_cfg = augment_cfg
        self.seed, self.epoch = seed, 0
        other = {"L": "R", "R": "L"}
        self.samples = [prepare_breast(b, all_breasts.get((b.patient, other[b.side])), channels, size)
                        for b in breasts]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        if self.augment_cfg is None:
            return s
        g = torch.Generator()
        g.manual_seed(epoch_seed(self.seed, self.epoch) * 10_007 + i)
        return augment(s, g, self.augment_cfg)


def collate(items: list[dict]) -> dict:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def patients_of(breasts: dict[tuple[str, str], Breast]) -> list[str]:
    return sorted({pid for pid, _ in breasts}, key=_pid_num)
