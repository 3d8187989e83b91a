"""The public CDD-CESM collection as The Cancer Imaging Archive distributes it, for training.

Khaled R. et al., "Categorized Digital Database for Low energy and Subtracted
Contrast Enhanced Spectral Mammography images" (CDD-CESM), TCIA 2021,
DOI 10.7937/29kw-ae92; Sci Data 9, 122 (2022). The download looks like::

    PKG - CDD-CESM/
        CDD-CESM/
            Low energy images of CDD-CESM/    P1_L_DM_CC.jpg, ...   DM = low energy (le)
            Subtracted images of CDD-CESM/    P1_L_CM_CC.jpg, ...   CM = recombined (rc)
        Radiology manual annotations.xlsx      one row per image (Image_name, Patient_ID, Side, Type,
                                               ..., BIRADS, ..., Pathology Classification/ Follow up)
        Radiology_hand_drawn_segmentations_v2.csv   the radiologists' outlines, a VGG Image Annotator
                                               export (#filename, ..., region_shape_attributes)

Copies of it differ in the details, so :func:`find_collection` looks for the
two image folders anywhere a few levels below the folder it is given, and for
the spreadsheet ("Radiology manual annotations", "Radiology-manual-annotations",
"Radiology_manual_annotations"; .xlsx or a .csv saved from it) and the
segmentation CSV below it or, failing that, in the folder above. Names with
stray spaces (``P3_L_CM_CC .jpg``) are read as the name without them.

Lesion masks are drawn in memory from the outlines at the size of the image
they were drawn on (read from the JPEG header): polygons (and polylines, which
the annotators used as closed outlines), ellipses (rotated by ``theta`` when
given), circles, rectangles, and points as small discs. Views whose annotation
rows all say Normal have no outline and get an empty mask, so they train the
segmentation as lesion-free views. Reading the .xlsx needs ``openpyxl`` (the
``train`` extra); nothing here is used by the viewer.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from core_model.domain.errors import NafvError
from core_model.domain.study import view_key
from core_model.io.cdd_cesm import patient_sort_key
from core_model.io.naming import NameInfo, parse_cdd_cesm_name

log = logging.getLogger(__name__)

ImageKey = tuple[str, str, str, str]  # (patient, side, view, energy), e.g. ("P12", "L", "CC", "rc")
ViewKey = tuple[str, str, str]  # (patient, side, view)

_OF_CDD = r"(?:[\s_-]*images?)?(?:[\s_-]*of[\s_-]*cdd[\s_-]*cesm)?"
LOW_ENERGY_DIR_RE = re.compile(rf"^low[\s_-]*energy{_OF_CDD}$", re.IGNORECASE)
SUBTRACTED_DIR_RE = re.compile(rf"^subtracted{_OF_CDD}$", re.IGNORECASE)
TABLE_RE = re.compile(r"manual[\s_-]*annotations?", re.IGNORECASE)
SEGMENTATIONS_RE = re.compile(r"hand[\s_-]*drawn[\s_-]*segmentations?", re.IGNORECASE)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
MAX_DEPTH = 4  # PKG - CDD-CESM / CDD-CESM / Low energy images of CDD-CESM / P1_L_DM_CC.jpg
# A point marks a finding without outlining it; it becomes a disc of this radius
# (about 2.5 mm at the collection's ~0.1 mm pixels), the size other users of the
# collection gave it too.
POINT_RADIUS_PX = 25.0


# ----------------------------------------------------------------------------- tables

def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Patient_ID 3.0 -> "3"
    return str(value).strip()


def find_column(header: Sequence[str], *candidates: str) -> str | None:
    """The first header whose lower-cased name starts with one of ``candidates`` (in that order)."""
    low = {h.strip().lower(): h for h in header if h}
    for c in candidates:
        for k, h in low.items():
            if k.startswith(c):
                return h
    return None


def _read_xlsx(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        import openpyxl
    except ImportError:
        raise NafvError("reading the collection's annotation spreadsheet needs openpyxl "
                        "(pip install 'nafv-viewer[train]', or pip install openpyxl)", path) from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile / XML errors of a damaged file
        raise NafvError(f"cannot read the spreadsheet ({exc})", path) from None
    header: list[str] = []
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    try:
        # The collection's workbook has a sheet "all"; without one, every sheet that has the columns.
        sheets = [ws for ws in wb.worksheets if ws.title.strip().lower() == "all"] or list(wb.worksheets)
        for ws in sheets:
            it = ws.iter_rows(values_only=True)
            hdr = None
            for _, values in zip(range(10), it):
                cells = [_cell(v) for v in values]
                if any(c.lower() == "image_name" for c in cells):
                    hdr = cells
                    break
            if hdr is None:
                continue
            header = header or hdr
            name_col = find_column(hdr, "image_name")
            for values in it:
                row = {h: _cell(v) for h, v in zip(hdr, values) if h}
                name = row.get(name_col, "")
                if not any(row.values()) or (name and name in seen):
                    continue
                seen.add(name)
                rows.append(row)
    finally:
        wb.close()
    if not header:
        raise NafvError("no sheet of this spreadsheet has an Image_name column", path)
    return header, rows


def read_table(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of an annotation table: the collection's .xlsx or a CSV with the same columns."""
    path = Path(path)
    if not path.is_file():
        raise NafvError("label file not found", path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _parse_shape(text: str) -> dict | None:
    text = (text or "").strip()
    if not text or text == "{}":
        return None
    try:
        shape = json.loads(text)
    except ValueError:
        try:
            shape = ast.literal_eval(text)  # single-quoted dicts in hand-edited copies
        except (ValueError, SyntaxError):
            return None
    return shape if isinstance(shape, dict) and shape.get("name") else None


def read_segmentations(path: str | Path, notes: list[str] | None = None) -> dict[ImageKey, list[dict]]:
    """The drawn shapes of every image named in a VGG Image Annotator CSV export."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {h.strip().lstrip("#").strip().lower(): h for h in reader.fieldnames or [] if h}
        name_col, shape_col = cols.get("filename"), cols.get("region_shape_attributes")
        if name_col is None or shape_col is None:
            raise NafvError("not a segmentation export: it needs the columns #filename (or filename) and "
                            f"region_shape_attributes (columns: {', '.join(reader.fieldnames or [])})", path)
        out: dict[ImageKey, list[dict]] = {}
        unnamed, unreadable = set(), 0
        for row in reader:
            name = (row.get(name_col) or "").strip()
            info = parse_cdd_cesm_name(name)
            if info is None:
                if name:
                    unnamed.add(name)
                continue
            shape = _parse_shape(row.get(shape_col) or "")
            if shape is None:
                unreadable += (row.get(shape_col) or "").strip() not in ("", "{}")
                continue
            out.setdefault((info.patient_id, info.side, info.view, info.energy), []).append(shape)
    if notes is not None:
        if unnamed:
            notes.append(f"{path.name}: {len(unnamed)} file name(s) not named like P12_L_CM_CC.jpg, "
                         f"e.g. {sorted(unnamed)[0]}")
        if unreadable:
            notes.append(f"{path.name}: {unreadable} region(s) whose shape could not be read were left out")
    return out


# ----------------------------------------------------------------------------- masks

def _num(shape: dict, key: str, default: float | None = None) -> float:
    v = shape.get(key, default)
    if v is None:
        raise KeyError(key)
    return float(v)


def _ellipse(cx: float, cy: float, rx: float, ry: float, theta: float = 0.0) -> list[tuple[float, float]]:
    n = int(min(720, max(24, math.pi * (rx + ry))))  # about one vertex per pixel of outline
    c, s = math.cos(theta), math.sin(theta)
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        pts.append((cx + c * x - s * y, cy + s * x + c * y))
    return pts


def shape_outline(shape: dict) -> list[tuple[float, float]] | None:
    """Outline of one VIA region in image pixels (x = column, y = row), or None for an unknown shape."""
    name = str(shape.get("name", "")).lower()
    try:
        if name in ("polygon", "polyline"):
            xs, ys = shape["all_points_x"], shape["all_points_y"]
            return [(float(x), float(y)) for x, y in zip(xs, ys)]
        if name == "ellipse":
            return _ellipse(_num(shape, "cx"), _num(shape, "cy"), _num(shape, "rx"), _num(shape, "ry"),
                            _num(shape, "theta", 0.0))
        if name == "circle":
            r = _num(shape, "r")
            return _ellipse(_num(shape, "cx"), _num(shape, "cy"), r, r)
        if name == "point":
            return _ellipse(_num(shape, "cx"), _num(shape, "cy"), POINT_RADIUS_PX, POINT_RADIUS_PX)
        if name == "rect":
            x, y, w, h = (_num(shape, k) for k in ("x", "y", "width", "height"))
            return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    except (KeyError, TypeError, ValueError):
        return None
    return None


def rasterize(shapes: Sequence[dict], size: tuple[int, int]) -> np.ndarray:
    """Boolean mask (rows, cols) = ``size`` with every shape filled."""
    h, w = int(size[0]), int(size[1])
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        pts = shape_outline(shape)
        if not pts:
            continue
        if len(pts) >= 3:
            draw.polygon(pts, fill=1, outline=1)
        else:
            draw.line(pts + pts[:1], fill=1)
    return np.asarray(canvas, dtype=bool)


def image_size(path: Path) -> tuple[int, int]:
    """(rows, cols) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:
        raise NafvError(f"cannot read image ({exc})", path) from None


@dataclass(frozen=True)
class DrawnMask:
    """A lesion mask drawn from the radiologists' shapes when called; no shapes: an empty (lesion-free) mask.

    Stands where a mask file would: ``os.fspath`` gives the image it was drawn on.
    """

    shapes: tuple[dict, ...]
    size: tuple[int, int]  # (rows, cols) of that image
    image: Path

    def __call__(self) -> np.ndarray:
        return rasterize(self.shapes, self.size)

    def __fspath__(self) -> str:
        return os.fspath(self.image)

    @property
    def empty(self) -> bool:
        return not self.shapes


# ----------------------------------------------------------------------------- the collection

@dataclass
class CddCollection:
    root: Path
    images: dict[ImageKey, Path]
    table: Path | None = None  # Radiology manual annotations (.xlsx, or a .csv with its columns)
    segmentations: Path | None = None  # Radiology_hand_drawn_segmentations(_v2).csv
    notes: list[str] = field(default_factory=list)

    def patients(self) -> list[str]:
        return sorted({k[0] for k in self.images}, key=patient_sort_key)

    def files_of(self, patient: str) -> list[tuple[Path, NameInfo]]:
        """(path, name info) of one patient's images, for :func:`core_model.io.cdd_cesm.load_named_study`."""
        return [(p, NameInfo(pid, side, view, energy))
                for (pid, side, view, energy), p in self.images.items() if pid == patient]

    @cached_property
    def rows(self) -> list[dict[str, str]]:
        return read_table(self.table)[1] if self.table is not None else []

    @cached_property
    def shapes(self) -> dict[ImageKey, list[dict]]:
        if self.segmentations is None:
            return {}
        notes: list[str] = []
        shapes = read_segmentations(self.segmentations, notes)
        for n in notes:
            log.warning("%s", n)
        self.notes.extend(notes)
        return shapes

    @cached_property
    def normal_views(self) -> set[ViewKey]:
        """(patient, side, view) whose annotation rows all say Normal (pathology column)."""
        if not self.rows:
            return set()
        header = list(self.rows[0])
        name_col, path_col = find_column(header, "image_name"), find_column(header, "pathology")
        if name_col is None or path_col is None:
            self.notes.append(f"{self.table.name}: no Image_name or Pathology column, so no view counts as normal")
            return set()
        verdict: dict[ViewKey, bool] = {}
        for row in self.rows:
            info = parse_cdd_cesm_name(row.get(name_col, ""))
            if info is None:
                continue
            parts = [p.strip().lower() for p in row.get(path_col, "").split("$") if p.strip()]
            normal = bool(parts) and all(p.startswith("normal") for p in parts)
            key = (info.patient_id, info.side, info.view)
            verdict[key] = verdict.get(key, True) and normal
        return {k for k, v in verdict.items() if v}

    def _drawn(self, key: ImageKey) -> DrawnMask | None:
        shapes = self.shapes.get(key)
        if not shapes or key not in self.images:
            return None
        return DrawnMask(tuple(shapes), image_size(self.images[key]), self.images[key])

    def segmentation_masks(self) -> dict[ViewKey, DrawnMask]:
        """The segmentation target of every view that has one: the outline drawn on the RC image, the LE
        one when RC has none, an empty mask when the view is normal; views with neither have no target."""
        out: dict[ViewKey, DrawnMask] = {}
        views = sorted({k[:3] for k in self.images}, key=lambda k: (patient_sort_key(k[0]), k[1:]))
        normal = self.normal_views
        for pid, side, view in views:
            m = self._drawn((pid, side, view, "rc")) or self._drawn((pid, side, view, "le"))
            if m is None and (pid, side, view) in normal:
                image = self.images.get((pid, side, view, "rc")) or self.images[(pid, side, view, "le")]
                m = DrawnMask((), image_size(image), image)
            if m is not None:
                out[(pid, side, view)] = m
        return out


def _walk(root: Path):
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and len(here.parts) - base < MAX_DEPTH)
        yield here, dirnames, sorted(filenames)


def _is_energy_dir(name: str) -> bool:
    name = name.strip()
    return bool(LOW_ENERGY_DIR_RE.match(name) or SUBTRACTED_DIR_RE.match(name))


def _pick(found: list[Path], prefer_xlsx: bool = False) -> Path | None:
    """The .xlsx when preferred, then the shallowest, then the last name ("..._v2.csv" over "....csv")."""
    if not found:
        return None
    by_name = sorted(found, key=lambda p: p.name.lower(), reverse=True)
    return min(by_name, key=lambda p: (not (prefer_xlsx and p.suffix.lower() == ".xlsx"), len(p.parts)))


def find_collection(root: str | Path) -> CddCollection | None:
    """The collection under ``root`` (see the module docstring), or None when ``root`` holds no
    "Low energy images of CDD-CESM" / "Subtracted images of CDD-CESM" folder with CDD-CESM-named images."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    energy_dirs: list[Path] = []
    tables: list[Path] = []
    segmentations: list[Path] = []

    def sort_files(folder: Path, names: list[str]) -> None:
        for f in names:
            if f.startswith(("~$", ".")):  # Excel's lock file of an open workbook, hidden files
                continue
            stem, suffix = Path(f).stem, Path(f).suffix.lower()
            if TABLE_RE.search(stem) and suffix in (".xlsx", ".xlsm", ".csv"):
                tables.append(folder / f)
            elif SEGMENTATIONS_RE.search(stem) and suffix == ".csv":
                segmentations.append(folder / f)

    for here, dirnames, filenames in _walk(root):
        if _is_energy_dir(here.name):
            energy_dirs.append(here)
            dirnames[:] = []  # the images are directly inside
            continue
        sort_files(here, filenames)
    if not energy_dirs:
        return None
    if not tables and not segmentations and root.parent != root:
        # The inner "CDD-CESM" folder was given: the tables sit beside it.
        sort_files(root.parent, sorted(f.name for f in root.parent.iterdir() if f.is_file()))

    images: dict[ImageKey, Path] = {}
    notes: list[str] = []
    for d in sorted(energy_dirs):
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith(".") or not p.is_file():
                continue
            info = parse_cdd_cesm_name(p)
            if info is None:
                continue
            key = (info.patient_id, info.side, info.view, info.energy)
            if key in images:
                notes.append(f"{p}: skipped, {images[key].name} in {images[key].parent.name} is the same image")
                continue
            images[key] = p
    if not images:
        return None
    try:
        import openpyxl  # noqa: F401
        prefer_xlsx = True
    except ImportError:
        prefer_xlsx = not any(t.suffix.lower() == ".csv" for t in tables)
    coll = CddCollection(root=root, images=dict(sorted(images.items())), table=_pick(tables, prefer_xlsx),
                         segmentations=_pick(segmentations), notes=notes)
    if coll.table is None:
        notes.append("no 'Radiology manual annotations' spreadsheet found: no view counts as normal, "
                     "and labels must be given with --labels")
    if coll.segmentations is None:
        notes.append("no 'Radiology_hand_drawn_segmentations' CSV found: no lesion outlines")
    for n in notes:
        log.warning("%s", n)
    return coll
