"""Classification data: labelled cases from study folders, network inputs, and cached token maps.

A *case* is one affected breast of one patient: its CC and MLO images (both
energies), its lesion masks, its benign/malignant label, and the contralateral
breast's CC and MLO when the study has them. The affected side is the side
whose lesion masks are non-empty (a patient with lesions on both sides gives
two cases, each with the other side as contralateral).

Inputs (``core_model.transforms.model_inputs``, shared with the analyzer; ``case_inputs`` adds Eq. 9) follow the paper: every view is
resized to a square ``input_size`` (mammograms are taller than wide; the
aspect is not kept, as in the 512x512 CDD-CESM release), the energies named by
``channels`` fill the three input channels, and the result is multiplied by
the lesion position mask (Eq. 8). The contralateral views get the position
mask of the affected lesion mirrored to their side (the "symmetrical
alignment of positional information" of the paper's ablation), and
adversarial variants replace them with the lesion pasted there (Eq. 9) under
a jittered position mask.

Labels come from a CSV in the CDD-CESM ``annotations.csv`` format (one row per
image: Image_name, Patient_ID, Side, ..., BIRADS, ..., Pathology
Classification/ Follow up), or the collection's own spreadsheet ``Radiology
manual annotations.xlsx`` with the same columns: ``birads`` 1-3 -> benign, 4-6
-> malignant (the paper's rule; a cell such as ``4$2`` lists several findings
and the highest counts), ``pathology`` Malignant -> 1, Benign/Normal -> 0 (in
a cell listing several, Malignant counts). A side's label is the highest over
its rows.

Studies come from any layout the study loaders read with masks in a masks/
folder beside them, or from the public collection as downloaded, whose lesion
masks are drawn from the radiologists' outlines (core_model.io.cdd_collection).
Views larger than ``MAX_SIDE`` are kept shrunk to it: the collection's
full-size images would otherwise take some 100 MB per case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from core_model.domain.errors import NafvError
from core_model.domain.study import Study, contralateral, view_key
from core_model.imaging.orientation import flip_array
from core_model.io.cdd_collection import find_column, find_collection, read_table
from core_model.io.masks import read_mask_png
from core_model.io.naming import parse_loose_name
from core_model.train.masks import lesion_source, read_mask
from core_model.transforms.adversarial import DEFAULT_JITTER, contralateral_sample
from core_model.transforms.model_inputs import (SOURCE_MAX_SIDE, VIEWS, breast_images, breast_inputs, crop_breasts,
                                                fit_long_side, in_reading_orientation, lesion_masks_at, view_stack)
from core_model.transforms.position_mask import DEFAULT_DECAY, position_mask
LABEL_SOURCES = ("birads", "pathology")
# Longest side a case's views are kept at in memory; the classifier sees them as
# --input-size squares (224-518 px), or lesion squares of them, so this keeps all the detail it can
# use (the analysis reads the same: model_inputs.source_long_side).
MAX_SIDE = SOURCE_MAX_SIDE


@dataclass
class Case:
    patient_id: str
    side: str  # affected side, L / R
    label: int  # 1 = malignant
    affected: dict[tuple[str, str], np.ndarray]  # (view, energy) -> float32 [0, 1]
    masks: dict[str, np.ndarray]  # view -> bool lesion mask (image size of that view)
    contralateral: dict[tuple[str, str], np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.patient_id}_{self.side}"


# ----------------------------------------------------------------------------- labels

def read_labels(csv_path: str | Path, label_from: str = "birads") -> dict[tuple[str, str], int]:
    """(patient id, side) -> 0 benign / 1 malignant from a CDD-CESM-style annotation CSV or the collection's .xlsx."""
    from core_model.io.cdd_cesm import normalize_patient

    if label_from not in LABEL_SOURCES:
        raise NafvError(f"labels come from one of {LABEL_SOURCES}, not {label_from!r}")
    path = Path(csv_path)
    header, rows = read_table(path)
    col = find_column(header, "birads", "bi-rads") if label_from == "birads" else find_column(header, "pathology")
    name_col, pid_col = find_column(header, "image_name"), find_column(header, "patient_id")
    side_col = find_column(header, "side")
    if col is None or (name_col is None and (pid_col is None or side_col is None)):
        raise NafvError(f"label file has no {label_from.upper()} column or no Image_name / Patient_ID + Side columns "
                        f"(columns: {', '.join(header)})", path)
    labels: dict[tuple[str, str], int] = {}
    for row in rows:
        info = parse_loose_name(row[name_col]) if name_col and row.get(name_col) else None
        if info is not None and info.patient_id:
            pid, side = info.patient_id, info.side
        elif pid_col and side_col and row.get(pid_col) and row.get(side_col):
            pid, side = normalize_patient(row[pid_col]), row[side_col].strip().upper()[:1]
        else:
            continue
        value = (row.get(col) or "").strip()
        if label_from == "birads":
            scores = [int(d) for d in re.findall(r"\d", value)]
            if not scores:
                continue
            y = int(max(scores) >= 4)
        else:
            parts = [v.strip().lower() for v in value.split("$")]  # "Benign$Malignant": several findings
            if any(v.startswith("malig") for v in parts):
                y = 1
            elif any(v.startswith(("benign", "normal")) for v in parts):
                y = 0
            else:
                continue
        labels[(pid, side)] = max(y, labels.get((pid, side), 0))
    if not labels:
        raise NafvError(f"no usable {label_from} labels in the label file", path)
    return labels


# ----------------------------------------------------------------------------- cases

def read_masks(mask_dir: str | Path) -> dict[tuple[str, str, str], np.ndarray]:
    """(patient, side, view) -> bool lesion mask: the RC image's mask, else the LE one (core_model.train.masks)."""
    found: dict[tuple[str, str, str], dict[str, Path]] = {}
    for p in sorted(Path(mask_dir).iterdir()):
        info = parse_loose_name(p.name)
        if info is None or info.patient_id is None or p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            continue
        found.setdefault((info.patient_id, info.side, info.view), {})[info.energy] = p
    return {k: read_mask_png(lesion_source(by_energy)) for k, by_energy in found.items()}


def cases_from_study(study: Study, masks: dict[str, np.ndarray], labels: dict[str, int]) -> list[Case]:
    """Cases of one study. ``masks``: view key -> lesion mask; ``labels``: side -> 0/1 (sides without a label are skipped)."""
    cases = []
    for side in ("R", "L"):
        side_masks = {v: masks.get(view_key(side, v)) for v in VIEWS}
        if not any(m is not None and m.any() for m in side_masks.values()) or side not in labels:
            continue
        imgs = breast_images(study, side)
        if not all((v, "le") in imgs for v in VIEWS):
            continue  # the classifier needs CC and MLO of the affected breast
        contra = breast_images(study, contralateral(side))
        m = {v: (side_masks[v] if side_masks[v] is not None else np.zeros(imgs[(v, "le")].shape, bool)) for v in VIEWS}
        cases.append(Case(study.patient_id, side, int(labels[side]), imgs, m,
                          contra if all((v, "le") in contra for v in VIEWS) else None))
    return cases


def shrink_case(case: Case, max_side: int = MAX_SIDE) -> Case:
    """The case with every view (and mask) shrunk to fit ``max_side``, in place."""
    for images in (case.affected, case.contralateral or {}):
        for k, a in images.items():
            images[k] = fit_long_side(a, max_side)
    case.masks = {v: fit_long_side(m, max_side) for v, m in case.masks.items()}
    return case


def load_cases(data: str | Path, labels_csv: str | Path, label_from: str = "birads",
               progress=None, max_side: int = MAX_SIDE) -> tuple[list[Case], list[str]]:
    """Every labelled case under ``data`` (any layout the study loaders read with masks in data/masks/,
    or the public collection as downloaded)."""
    from core_model.io import list_patients, load_study
    from core_model.io.cdd_cesm import load_named_study

    data = Path(data)
    mask_dir = data / "masks"
    coll = None if mask_dir.is_dir() else find_collection(data)
    if coll is None and not mask_dir.is_dir():
        raise NafvError("lesion masks are expected in a masks/ folder beside the images "
                        "(or the CDD-CESM collection's image folders with its segmentation CSV)", data)
    labels = read_labels(labels_csv, label_from)
    notes: list[str] = []
    if coll is not None:
        patients = coll.patients()
        drawn = coll.segmentation_masks()  # per view: the RC outline, else the LE one (the trainers' one rule)

        def study_and_masks(pid: str):
            study = load_named_study(coll.files_of(pid), coll.root, pid, cdd=True, warnings=notes)
            return study, {view_key(s, v): read_mask(m) for (p, s, v), m in drawn.items() if p == pid}
    else:
        all_masks = read_masks(mask_dir)
        image_root = data / "images" if (data / "images").is_dir() else data
        patients = list_patients(image_root)

        def study_and_masks(pid: str):
            study = load_study(image_root, patient=pid)
            return study, {view_key(s, v): m for (p, s, v), m in all_masks.items() if p == study.patient_id}
    if not patients:
        raise NafvError("no studies found", data)
    cases: list[Case] = []
    for i, pid in enumerate(patients):
        stored, stored_masks = study_and_masks(pid)
        study, flips = in_reading_orientation(stored)  # the orientation the analyzer gives the model
        masks = {k: flip_array(m, flips.get(k, (False, False))) for k, m in stored_masks.items()}
        side_labels = {s: y for (p, s), y in labels.items() if p == study.patient_id}
        got = [shrink_case(c, max_side) for c in cases_from_study(study, masks, side_labels)]
        if not got:
            notes.append(f"{pid}: no labelled side with a lesion mask and both CC and MLO")
        cases.extend(got)
        if progress is not None:
            progress(i + 1, len(patients))
    if coll is not None:
        notes = coll.notes + notes
    return cases, notes


# ----------------------------------------------------------------------------- inputs

def case_inputs(case: Case, input_size: int, channels: Sequence[str], decay: float = DEFAULT_DECAY,
                n_adversarial: int = 0, rng: np.random.Generator | None = None,
                jitter: float = DEFAULT_JITTER, crop: float = 0.0, grow: float = 1.0) -> dict[str, np.ndarray]:
    """Network inputs of one case: 'affected' [2, 3, S, S], 'contralateral' [2, 3, S, S] (if present),
    'adversarial' [n, 2, 3, S, S] (if requested and a contralateral side exists). ``crop``, ``grow``:
    the lesion-centred squares of ``model_inputs`` (crop 0: whole views); the adversarial paste happens
    in them."""
    s = input_size
    affected, masks, contralateral = crop_breasts(case.affected, case.masks, case.contralateral, crop,
                                                  grow=grow)
    out = breast_inputs(affected, masks, contralateral, s, channels, decay)  # Eq. 8
    if contralateral is None:
        return out
    lesion = lesion_masks_at(masks, s)
    adv_views = []
    if n_adversarial > 0:
        rng = rng or np.random.default_rng(0)
        aff_full = {v: view_stack(affected, v, channels, s) for v in VIEWS}
        con_full = {v: view_stack(contralateral, v, channels, s) for v in VIEWS}
        for _ in range(n_adversarial):
            sample = []
            for v in VIEWS:
                seed = int(rng.integers(2**31))
                fused, moved = [], None
                for c in range(3):  # same paste and jitter in every channel
                    f, moved = contralateral_sample(aff_full[v][c], lesion[v], con_full[v][c],
                                                    np.random.default_rng(seed), jitter=jitter)
                    fused.append(f)
                sample.append(np.stack(fused) * position_mask(moved, decay))  # Eq. 9 then Eq. 8
            adv_views.append(np.stack(sample))
        out["adversarial"] = np.stack(adv_views).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- token cache

@torch.no_grad()
def embed_cases(model, cases: Sequence[Case], n_adversarial: int, seed: int, decay: float | None = None,
                batch_views: int = 16, progress=None) -> dict[str, torch.Tensor]:
    """Backbone token maps for every case (frozen backbone), the expensive part done once.

    Returns 'affected' [N, 2, D, h, w], 'contralateral' [N, 2, D, h, w] (zeros where a case has none),
    'has_contralateral' [N] bool, 'adversarial' [N, n, 2, D, h, w] (if n > 0), 'label' [N].
    Adversarial variants come from a generator seeded per case (seed, index), so a cache is reproducible.
    """
    model.eval()
    decay = model.position_decay if decay is None else decay
    device = next(model.parameters()).device
    d = model.backbone.num_features
    h, w = model.token_grid
    n = len(cases)
    aff = torch.zeros(n, 2, d, h, w)
    con = torch.zeros(n, 2, d, h, w)
    adv = torch.zeros(n, n_adversarial, 2, d, h, w) if n_adversarial else None
    has = torch.zeros(n, dtype=torch.bool)

    pending: list[tuple[torch.Tensor, tuple]] = []

    def flush() -> None:
        if not pending:
            return
        x = torch.stack([p[0] for p in pending]).to(device)  # [V, 2, 3, S, S]
        t = model.embed(x).float().cpu()
        for (_, where), tok in zip(pending, t):
            kind, i, j = where
            if kind == "a":
                aff[i] = tok
            elif kind == "c":
                con[i] = tok
            else:
                adv[i, j] = tok  # type: ignore[index]
        pending.clear()

    for i, case in enumerate(cases):
        x = case_inputs(case, model.input_size, model.channels, decay, n_adversarial,
                        np.random.default_rng([seed, i]), crop=model.crop)
        pending.append((torch.from_numpy(x["affected"]), ("a", i, 0)))
        if "contralateral" in x:
            has[i] = True
            pending.append((torch.from_numpy(x["contralateral"]), ("c", i, 0)))
            for j in range(n_adversarial):
                pending.append((torch.from_numpy(x["adversarial"][j]), ("v", i, j)))
        if len(pending) >= batch_views:
            flush()
        if progress is not None:
            progress(i + 1, n)
    flush()
    out = {"affected": aff, "contralateral": con, "has_contralateral": has,
           "label": torch.tensor([c.label for c in cases], dtype=torch.long)}
    if adv is not None:
        out["adversarial"] = adv
    return out


@torch.no_grad()
def embed_adversarial(model, cases: Sequence[Case], keys: Sequence[int], seed: int, epoch: int,
                      decay: float | None = None, batch_views: int = 16) -> torch.Tensor:
    """One new contralateral adversarial sample per case (Eq. 9, then the Eq. 8 mask), embedded by the
    frozen backbone: [len(cases), 2, D, h, w], zeros for a case without a contralateral side.

    Each sample is drawn from (seed, epoch, key), so every epoch sees new ones (Algorithm 1) and a
    rerun sees the same ones."""
    model.eval()
    decay = model.position_decay if decay is None else decay
    device = next(model.parameters()).device
    h, w = model.token_grid
    out = torch.zeros(len(cases), 2, model.backbone.num_features, h, w)
    todo = []
    for i, (case, key) in enumerate(zip(cases, keys)):
        if case.contralateral is None:
            continue
        x = case_inputs(case, model.input_size, model.channels, decay, 1,
                        np.random.default_rng([seed, 1_000_003 + epoch, key]), crop=model.crop)
        todo.append((i, torch.from_numpy(x["adversarial"][0])))
    for j in range(0, len(todo), batch_views):
        chunk = todo[j:j + batch_views]
        t = model.embed(torch.stack([c[1] for c in chunk]).to(device)).float().cpu()
        for (i, _), tok in zip(chunk, t):
            out[i] = tok
    return out
