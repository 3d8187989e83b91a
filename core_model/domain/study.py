"""A CEM study: up to eight images keyed by side (L/R), view (CC/MLO) and energy (le/rc).

One name per concept everywhere: view keys ``R_CC``, ``L_CC``, ``R_MLO``,
``L_MLO``; energies ``le`` (low energy) and ``rc`` (recombined). Missing images
are allowed: a study with only the affected breast is common, and
:meth:`Study.missing` says which slots are empty. Images whose side or view no
tag, description or file name gives wait in :attr:`Study.unassigned` until the
reader puts each on a slot (:meth:`Study.assign`, kept in the review by SOP
Instance UID, or for a plain image file by a hash of its bytes, so the next
open hangs them the same way).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SIDES = ("R", "L")
SIDE_NAMES = {"L": "left", "R": "right"}  # the breast in words, wherever a reader reads it
VIEWS = ("CC", "MLO")
ENERGIES = ("le", "rc")
# Hanging order: R-CC | L-CC over R-MLO | L-MLO.
VIEW_KEYS = ("R_CC", "L_CC", "R_MLO", "L_MLO")
ENERGY_NAMES = {"le": "low energy", "rc": "recombined"}


def view_key(side: str, view: str) -> str:
    side, view = side.upper(), view.upper()
    if side not in SIDES or view not in VIEWS:
        raise ValueError(f"not a mammography view: side={side!r} view={view!r}")
    return f"{side}_{view}"


def split_view_key(key: str) -> tuple[str, str]:
    side, _, view = key.partition("_")
    view_key(side, view)  # validates
    return side, view


def contralateral(side: str) -> str:
    return {"L": "R", "R": "L"}[side]


FILE_ID_MAX = 64  # characters; file systems allow 255 per name, paths get long


def file_safe_id(text: str, limit: int = FILE_ID_MAX) -> str:
    """A patient or study id made safe to name a file or folder: letters, digits, ``. _ -``, at most ``limit`` characters.

    Ids come from the files and may hold separators, '..', or hundreds of
    characters. A shortened id ends in 8 hex digits of a hash of the whole id,
    so two long ids that differ only at the end still name two folders.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "study"
    if len(safe) <= limit:
        return safe
    digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]
    return f"{safe[: limit - 9].rstrip('._')}_{digest}"


@dataclass
class StudyImage:
    """One image of a study, pixels as stored (bit depth preserved)."""

    side: str
    view: str
    energy: str
    pixels: np.ndarray
    source: Path
    pixel_spacing_mm: tuple[float, float] | None = None  # (row, column) spacing
    bits_stored: int = 8
    # Display window from the file (DICOM VOI) as (center, width), else None.
    window: tuple[float, float] | None = None
    # DICOM PatientOrientation (row direction, column direction), e.g. ("P", "L");
    # None when the file does not say (the viewer then detects the chest wall).
    orientation: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self._check_slot()
        if self.pixels.ndim != 2:
            raise ValueError(f"{self.source}: expected a 2-D greyscale image, got shape {self.pixels.shape}")

    def _check_slot(self) -> None:
        """Side, view and energy in their one spelling (``L``, ``CC``, ``le``); anything else is refused."""
        self.side = self.side.upper()
        self.view = self.view.upper()
        self.energy = self.energy.lower()
        if self.energy not in ENERGIES:
            raise ValueError(f"energy must be one of {ENERGIES}, not {self.energy!r}")
        view_key(self.side, self.view)

    @property
    def key(self) -> str:
        return view_key(self.side, self.view)

    @property
    def slot(self) -> tuple[str, str]:
        return self.key, self.energy

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]

    def normalized(self) -> np.ndarray:
        """float32 in [0, 1]: the file's window when it has one, else the image's own min..max.

        Plain min..max, not a percentile window: the classifier was trained on
        this scaling (:func:`core_model.transforms.model_inputs.breast_images`),
        so a change here would change its scores.
        """
        px = self.pixels.astype(np.float32, copy=False)
        if self.window is not None and self.window[1] > 0:
            c, w = self.window
            lo, hi = c - w / 2.0, c + w / 2.0
        else:
            lo, hi = float(px.min()), float(px.max())
        if hi <= lo:
            return np.zeros_like(px, dtype=np.float32)
        return np.clip((px - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


@dataclass
class UnassignedImage:
    """An image of the study whose slot the files do not say; the reader chooses it.

    ``uid`` is the SOP Instance UID (for a plain image file ``sha1:`` and the hash
    of its bytes): it keys the reader's choice in the review. ``side`` is kept when only the view was
    missing, as a hint.
    """

    uid: str
    energy: str
    pixels: np.ndarray = field(repr=False)
    source: Path
    reason: str  # what was missing, in words
    side: str | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    bits_stored: int = 8
    window: tuple[float, float] | None = None
    orientation: tuple[str, str] | None = None

    def hung_as(self, key: str, energy: str | None = None) -> StudyImage:
        side, view = split_view_key(key)
        return StudyImage(side=side, view=view, energy=energy or self.energy, pixels=self.pixels, source=self.source,
                          pixel_spacing_mm=self.pixel_spacing_mm, bits_stored=self.bits_stored, window=self.window,
                          orientation=self.orientation)


@dataclass
class Study:
    """Images of one patient's CEM examination plus identity and load warnings."""

    patient_id: str
    study_id: str
    images: dict[tuple[str, str], StudyImage] = field(default_factory=dict)  # (view key, energy) -> image
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)
    synthetic: bool = False
    description: str = ""
    unassigned: list[UnassignedImage] = field(default_factory=list)
    # uid -> (the image as it waited, the slot the reader gave it), so an assignment can be undone.
    assigned: dict[str, tuple[UnassignedImage, tuple[str, str]]] = field(default_factory=dict)

    def add(self, image: StudyImage) -> None:
        slot = (image.key, image.energy)
        if slot in self.images:
            other = self.images[slot].source
            raise ValueError(f"two files claim {image.key} {image.energy.upper()}: {other.name} and {image.source.name}")
        self.images[slot] = image

    def unassigned_image(self, uid: str) -> UnassignedImage | None:
        return next((u for u in self.unassigned if u.uid == uid), None)

    def assign(self, uid: str, key: str, energy: str | None = None) -> StudyImage:
        """Hang the unassigned image ``uid`` on ``key`` (its own energy unless ``energy`` is given).

        ValueError (a sentence for the reader) when there is no such image or the slot is taken.
        """
        waiting = self.unassigned_image(uid)
        if waiting is None:
            raise ValueError(f"no unassigned image {uid} in this study")
        image = waiting.hung_as(key, energy)
        if image.slot in self.images:
            raise ValueError(f"{key} {image.energy.upper()} already holds {self.images[image.slot].source.name}; "
                             "an image can only go to an empty slot")
        self.images[image.slot] = image
        self.unassigned.remove(waiting)
        self.assigned[uid] = (waiting, image.slot)
        return image

    def unassign(self, uid: str) -> UnassignedImage:
        """Take an image the reader hung back to the unassigned ones (undo of :meth:`assign`)."""
        if uid not in self.assigned:
            raise ValueError(f"image {uid} was not assigned by the reader")
        waiting, slot = self.assigned.pop(uid)
        self.images.pop(slot, None)
        self.unassigned.append(waiting)
        return waiting

    def apply_assignments(self, assignments: dict[str, dict[str, str]]) -> list[str]:
        """Hang the images a saved review placed (uid -> {"key", "energy"}); a sentence per one that could not be."""
        notes = []
        for uid, where in assignments.items():
            if uid in self.assigned or self.unassigned_image(uid) is None:
                continue  # already hung, or an image this study no longer holds
            try:
                self.assign(uid, where["key"], where.get("energy"))
            except (ValueError, KeyError) as err:
                notes.append(f"the saved review put image {uid} on {where.get('key')}, which is not possible now: {err}")
        return notes

    def get(self, key: str, energy: str) -> StudyImage | None:
        return self.images.get((key, energy.lower()))

    def has(self, key: str, energy: str) -> bool:
        return (key, energy.lower()) in self.images

    def views_present(self) -> list[str]:
        return [k for k in VIEW_KEYS if any((k, e) in self.images for e in ENERGIES)]

    def sides_present(self) -> list[str]:
        return [s for s in SIDES if any(k.startswith(s + "_") for k in self.views_present())]

    def missing(self) -> list[tuple[str, str]]:
        return [(k, e) for k in VIEW_KEYS for e in ENERGIES if (k, e) not in self.images]

    @property
    def complete(self) -> bool:
        return not self.missing()

    def __len__(self) -> int:
        return len(self.images)

    def summary(self) -> str:
        present = ", ".join(f"{k} {e.upper()}" for k in VIEW_KEYS for e in ENERGIES if (k, e) in self.images)
        waiting = f"; {len(self.unassigned)} image(s) without a view, waiting to be placed" if self.unassigned else ""
        return f"patient {self.patient_id}, study {self.study_id}: {len(self)} of 8 images ({present}){waiting}"
