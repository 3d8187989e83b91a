"""Where a finding lies in the breast: nipple, chest wall, distance, depth, quadrant and clock face.

Pure numpy, no Qt, no model. Per view the breast outline (the one tissue mask
of :func:`core_model.imaging.tissue.tissue_mask`) gives two landmarks, found in
reading orientation (:mod:`core_model.transforms.model_inputs`) and then turned into a
*canonical frame* with the chest wall on the left edge, the nipple to the
right, and lateral (CC) or superior (MLO) at the top:

- the nipple: the most anterior point of the skin line (the breast's
  outline farthest from the chest wall);
- the chest wall: on MLO the pectoral muscle's edge when
  :mod:`core_model.imaging.pectoral` finds it plausibly (``chest_wall`` says
  "pectoral line"); otherwise, and always on CC, the image edge the breast is
  cut by ("image edge").

The posterior nipple line runs from the nipple to the chest wall: to the foot
of the perpendicular on the pectoral line, or straight back to the image
edge. Per finding and view: distance from the nipple (mm when the view has a
pixel spacing, else pixels), depth as the anterior / middle / posterior third
of the posterior nipple line (the finding projected onto it), and the offset from
the nipple axis as a fraction of the breast's half-height at that depth
(lateral on CC, superior on MLO; positive = up in the canonical frame).

For a CC + MLO pair of the same lesion the two offsets give its position in
the coronal plane: CC says lateral or medial, MLO says superior or inferior.
The MLO is taken at the usual 45 degree obliquity, so a lateral lesion
projects higher on MLO than it lies ("lateral lesions rise on the MLO"), and
that share is taken out. The clock face is read facing the patient: 12
superior, 3 the patient's left, 9 the patient's right, so the upper-outer
quadrant is 10-11 o'clock in the right breast and 1-2 o'clock in the left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from core_model.imaging.geometry import max_diameter, polygon_area
from core_model.imaging.orientation import flip_points, orientation_flips
from core_model.imaging.pectoral import find_pectoral
from core_model.imaging.tissue import tissue_mask

Flips = tuple[bool, bool]

MLO_OBLIQUITY_DEG = 45.0
DEPTHS = ("anterior", "middle", "posterior")
# Within this share of the half-height of the nipple axis on both views the lesion is behind the nipple.
CENTRAL_FRACTION = 0.12
NO_SPACING = "in pixels, no spacing in the file"
# Resolution the breast outline is found on, for images kept as levels (about 0.5 mm per pixel on a
# full-field mammogram, far finer than a clock position or a distance in whole millimetres needs); a
# finer level the analysis already decoded for its models is used instead, so locating costs no decode.
LANDMARK_LONG_SIDE = 512
MAX_SIZE_RATIO = 3.0  # CC and MLO contours of one lesion differ in size by less than this


@dataclass
class ViewLandmarks:
    """The nipple and chest wall of one view, and the breast outline to measure offsets against."""

    key: str  # "L_CC", ...
    shape: tuple[int, int]  # stored image (rows, cols)
    flips: Flips  # stored -> reading orientation
    spacing: tuple[float, float] | None  # (row, col) mm per pixel
    nipple_xy: tuple[float, float]  # stored image coordinates (x = column, y = row)
    nipple_c: tuple[float, float]  # canonical frame, full-resolution pixels
    top: np.ndarray  # per canonical column (full-res index), first breast row (nan: no breast)
    bottom: np.ndarray  # last breast row
    chest_wall: str = "image edge"  # or "pectoral line"
    pectoral_c: tuple[tuple[float, float], tuple[float, float]] | None = None  # its ends, canonical full-res

    @property
    def chest_wall_c(self) -> tuple[float, float]:
        """End of the posterior nipple line (canonical frame): the foot of the perpendicular from the
        nipple on the pectoral line (right angle in mm when the spacing is known), or where that line
        leaves the image when the foot lies beyond it; without a pectoral line, the image edge."""
        nx, ny = self.nipple_c
        if self.pectoral_c is None:
            return -0.5, ny
        sy, sx = self.spacing or (1.0, 1.0)
        (x0, y0), (x1, y1) = self.pectoral_c
        d = np.array([(x1 - x0) * sx, (y1 - y0) * sy])
        d /= max(float(np.hypot(*d)), 1e-9)
        t = float(np.dot(np.array([(nx - x0) * sx, (ny - y0) * sy]), d))
        fx, fy = float(x0 + t * d[0] / sx), float(y0 + t * d[1] / sy)
        if fx < -0.5 < nx:  # the muscle line would meet it beyond the image: the edge comes first
            k = (nx + 0.5) / (nx - fx)
            return -0.5, ny + k * (fy - ny)
        return fx, fy

    @property
    def side(self) -> str:
        return self.key.split("_")[0]

    @property
    def view(self) -> str:
        return self.key.split("_")[1]

    def to_canonical(self, xy) -> np.ndarray:
        """Stored (x, y) points -> canonical frame (chest wall at x = 0)."""
        pts = flip_points(xy, self.shape, self.flips)
        if self.side == "R":  # reading orientation puts the right chest wall on the right edge
            pts[:, 0] = (self.shape[1] - 1) - pts[:, 0]
        return pts

    def nipple_to_chest_wall(self) -> float:
        """Length of the posterior nipple line in pixels."""
        (nx, ny), (fx, fy) = self.nipple_c, self.chest_wall_c
        return float(math.hypot(nx - fx, ny - fy))

    def depth_fraction(self, xy_c: tuple[float, float]) -> float:
        """0 at the nipple, 1 at the chest wall: the canonical point projected onto the posterior nipple line."""
        sy, sx = self.spacing or (1.0, 1.0)
        (nx, ny), (fx, fy) = self.nipple_c, self.chest_wall_c
        ax, ay = (fx - nx) * sx, (fy - ny) * sy
        along = ((xy_c[0] - nx) * sx * ax + (xy_c[1] - ny) * sy * ay) / max(ax * ax + ay * ay, 1.0)
        return float(np.clip(along, 0.0, 1.0))

    def from_canonical(self, xy_c) -> np.ndarray:
        """Canonical (x, y) points -> stored image coordinates."""
        pts = np.array(xy_c, float).reshape(-1, 2)
        if self.side == "R":
            pts[:, 0] = (self.shape[1] - 1) - pts[:, 0]
        return flip_points(pts, self.shape, self.flips)  # a flip is its own inverse

    def to_dict(self) -> dict[str, Any]:
        sy, sx = self.spacing or (None, None)
        (nx, ny), (fx, fy) = self.nipple_c, self.chest_wall_c
        out = {"nipple": [round(self.nipple_xy[0], 1), round(self.nipple_xy[1], 1)],
               "chest_wall": self.chest_wall,
               "nipple_to_chest_wall_mm": None if sx is None else round(math.hypot((nx - fx) * sx, (ny - fy) * sy), 1),
               "nipple_to_chest_wall_px": round(self.nipple_to_chest_wall(), 1)}
        if self.pectoral_c is not None:  # stored pixels, (top end, chest-wall end)
            out["pectoral_line"] = [[round(float(v), 1) for v in p] for p in self.from_canonical(self.pectoral_c)]
        return out


def canonical_view(key: str, pixels: np.ndarray, flips: Flips) -> np.ndarray:
    """The stored image in the canonical frame (a view, no copy): reading orientation, then the right breast mirrored."""
    canon = pixels[:, ::-1] if flips[0] else pixels
    canon = canon[::-1, :] if flips[1] else canon
    return canon[:, ::-1] if key.startswith("R_") else canon


def view_landmarks(key: str, pixels: np.ndarray, flips: Flips, spacing: tuple[float, float] | None,
                   full_shape: tuple[int, int] | None = None) -> ViewLandmarks | None:
    """Landmarks of one view from its image as stored; None when no breast outline is found.

    ``pixels`` may be a reduced resolution level of an image of ``full_shape``: the
    outline is found on a coarse grid anyway, and the landmarks are given in full-size pixels.
    """
    px = np.asarray(pixels)
    h, w = full_shape or px.shape
    fy, fx = h / px.shape[0], w / px.shape[1]
    canon = canonical_view(key, px, flips)
    mask, step = tissue_mask(canon)
    if mask.sum() < 16:
        return None
    sy, sx = step * fy, step * fx  # full-size pixels per mask cell
    cols = np.flatnonzero(mask.any(axis=0))
    tip = int(cols[-1])
    rows = np.flatnonzero(mask[:, max(tip - 1, 0): tip + 1].any(axis=1))
    nip_row = float(np.median(rows)) * sy + (sy - 1) / 2.0
    nip_col = min((tip + 1) * sx - 0.5, w - 1.0)
    r = np.arange(mask.shape[0])[:, None]
    top_w = np.where(mask, r, np.iinfo(np.int32).max).min(axis=0).astype(float)
    bot_w = np.where(mask, r, -1).max(axis=0).astype(float)
    present = mask.any(axis=0)
    top_w[~present], bot_w[~present] = np.nan, np.nan
    full_cols = np.minimum((np.arange(w) / sx).astype(int), mask.shape[1] - 1)
    top = top_w[full_cols] * sy
    bottom = bot_w[full_cols] * sy + (sy - 1)
    lm = ViewLandmarks(key=key, shape=(h, w), flips=flips, spacing=spacing, nipple_xy=(0.0, 0.0),
                       nipple_c=(nip_col, nip_row), top=top, bottom=bottom)
    sn = lm.from_canonical([[nip_col, nip_row]])
    lm.nipple_xy = (float(sn[0, 0]), float(sn[0, 1]))
    line = find_pectoral(canon) if key.endswith("_MLO") else None
    if line is not None:  # level pixels -> full-size pixels (centre to centre)
        lm.pectoral_c = tuple((x * fx + (fx - 1) / 2.0, y * fy + (fy - 1) / 2.0) for x, y in (line.top, line.low))
        lm.chest_wall = "pectoral line"
    return lm


def landmark_level(pyramid: Any) -> int:
    """The level to find the outline on: about :data:`LANDMARK_LONG_SIDE`, or the coarsest level already
    decoded that is at least that fine (the analysis's own, when its models read a finer one)."""
    k = pyramid.level_for(LANDMARK_LONG_SIDE)
    if pyramid.decoded(k):
        return k
    ready = [j for j in pyramid.decoded_levels() if max(pyramid.shape(j)) >= LANDMARK_LONG_SIDE]
    return max(ready) if ready else k


def study_landmarks(study: Any, flips_by_view: dict[str, Flips] | None = None) -> dict[str, ViewLandmarks]:
    """Per view key of ``study`` (as stored), its landmarks; views without a breast outline are left out.

    ``flips_by_view``: the reading-orientation flips when the caller already has them (they
    do not depend on resolution), so that an image kept as levels is not decoded at full size.
    """

    out = {}
    for key, flips in (flips_by_view if flips_by_view is not None else orientation_flips(study)).items():
        img = study.get(key, "le") or study.get(key, "rc")
        spacing = next((i.pixel_spacing_mm for i in (study.get(key, "le"), study.get(key, "rc"))
                        if i is not None and i.pixel_spacing_mm is not None), None)
        pyramid = getattr(img, "pyramid", None)
        if pyramid is not None:  # a coarse level is enough for an outline; no full-size decode
            lm = view_landmarks(key, pyramid.level(landmark_level(pyramid)), flips, spacing,
                                full_shape=pyramid.full_shape)
        else:
            lm = view_landmarks(key, img.pixels, flips, spacing)
        if lm is not None:
            out[key] = lm
    return out


# ----------------------------------------------------------------------------- one view

def polygon_centroid(poly) -> tuple[float, float]:
    """Area centroid of a closed polygon (x, y); the vertex mean for a degenerate one."""
    p = np.asarray(poly, float).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-9:
        return float(x.mean()), float(y.mean())
    return float(((x + x1) * cross).sum() / (6 * a)), float(((y + y1) * cross).sum() / (6 * a))


def size_of(poly, spacing: tuple[float, float] | None) -> dict[str, Any]:
    """Longest diameter and area, in mm with a spacing, else in pixels and said so."""
    pts = [(float(x), float(y)) for x, y in np.asarray(poly, float).reshape(-1, 2)]
    if spacing is None:
        return {"max_diameter_px": round(max_diameter(pts), 1), "area_px": round(polygon_area(pts), 1),
                "unit": "px", "note": NO_SPACING}
    return {"max_diameter_mm": round(max_diameter(pts, spacing), 2), "area_mm2": round(polygon_area(pts, spacing), 2),
            "unit": "mm"}


@dataclass
class Place:
    """A finding on one view, measured from that view's landmarks."""

    key: str
    nipple_distance: float  # mm with a spacing, else pixels
    unit: str  # "mm" or "px"
    depth_fraction: float  # 0 at the nipple, 1 at the chest wall
    offset: float  # signed share of the half-height: + lateral (CC) / superior (MLO)
    size: float  # longest diameter, same unit

    @property
    def depth(self) -> str:
        return DEPTHS[min(2, int(self.depth_fraction * 3))]


def place(lm: ViewLandmarks, poly) -> Place:
    """Where the contour ``poly`` (stored (x, y) pixels) lies relative to ``lm``."""
    cx, cy = lm.to_canonical(np.array([polygon_centroid(poly)]))[0]
    nx, ny = lm.nipple_c
    sy, sx = lm.spacing or (1.0, 1.0)
    dist = math.hypot((cx - nx) * sx, (cy - ny) * sy)
    frac = lm.depth_fraction((cx, cy))
    col = int(np.clip(round(cx), 0, len(lm.top) - 1))
    up = ny - cy  # > 0: above the nipple axis
    edge = lm.top[col] if up > 0 else lm.bottom[col]
    half = abs(ny - edge) if np.isfinite(edge) else float("nan")
    if not np.isfinite(half) or half < 1.0:
        half = max(abs(up), 1.0)
    offset = float(np.clip(up / half, -1.0, 1.0))
    pts = np.asarray(poly, float).reshape(-1, 2)
    size = size_of(pts, lm.spacing)
    diam = size.get("max_diameter_mm", size.get("max_diameter_px"))
    return Place(key=lm.key, nipple_distance=dist, unit="px" if lm.spacing is None else "mm", depth_fraction=frac,
                 offset=offset, size=float(diam))


# ----------------------------------------------------------------------------- two views

def coronal_position(cc_offset: float, mlo_offset: float, obliquity_deg: float = MLO_OBLIQUITY_DEG) -> tuple[float, float]:
    """(lateral, superior) in the coronal plane from the CC and MLO offsets (shares of the half-height)."""
    t = math.radians(obliquity_deg)
    lateral = cc_offset
    superior = (mlo_offset - lateral * math.sin(t)) / math.cos(t)
    return lateral, float(np.clip(superior, -1.0, 1.0))


def clock_hour(side: str, lateral: float, superior: float) -> float:
    """Clock face as hours 0.5..12 in half-hour steps, read facing the patient (12 superior).

    The patient's left is at 3 o'clock, so lateral is 9 o'clock in the right breast and 3 in the left.
    """
    toward_3 = lateral if side.upper() == "L" else -lateral
    hours = (math.degrees(math.atan2(toward_3, superior)) % 360.0) / 30.0
    half = round(hours * 2) / 2
    return 12.0 if half == 0 else float(half)


def clock_text(hour: float | None) -> str:
    if hour is None:
        return ""
    h = int(hour)
    return f"{h}:30" if hour != h else f"{h} o'clock"


def quadrant(lateral: float, superior: float) -> str:
    """BI-RADS quadrant from the coronal position; "central" just behind the nipple."""
    if abs(lateral) < CENTRAL_FRACTION and abs(superior) < CENTRAL_FRACTION:
        return "central"
    return f"{'upper' if superior >= 0 else 'lower'} {'outer' if lateral >= 0 else 'inner'}"


def propose_pairs(cc: Sequence[Place], mlo: Sequence[Place]) -> list[tuple[int, int]]:
    """(CC index, MLO index) of findings taken for the same lesion: similar nipple distance and size.

    Greedy on the cost; a pair is proposed only when the distances differ by less than 30 % (at
    least 15 mm) and the sizes by less than a factor 3: one lesion's outline differs more between
    the views than its distance from the nipple does (compression, projection, what the
    segmentation took in), so the distance carries the pairing and the size only vetoes.
    """
    cand = []
    for i, a in enumerate(cc):
        for j, b in enumerate(mlo):
            if a.unit != b.unit:
                continue
            scale = 15.0 if a.unit == "mm" else 30.0
            gap = abs(a.nipple_distance - b.nipple_distance)
            ratio = max(a.size, b.size, 1e-6) / max(min(a.size, b.size), 1e-6)
            if gap > max(scale, 0.3 * max(a.nipple_distance, b.nipple_distance)) or ratio > MAX_SIZE_RATIO:
                continue
            cand.append((gap / max(a.nipple_distance, b.nipple_distance, scale) + 0.5 * math.log(ratio), i, j))
    used_i, used_j, out = set(), set(), []
    for _, i, j in sorted(cand):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            out.append((i, j))
    return out


def location_dict(p: Place, side: str, partner: Place | None) -> dict[str, Any]:
    """The ``location`` object of a finding; clock and quadrant only with the other view's partner."""
    out: dict[str, Any] = {"clock": None, "quadrant": None, "depth": p.depth,
                           "nipple_distance_mm": round(p.nipple_distance, 1) if p.unit == "mm" else None}
    if p.unit == "px":
        out["nipple_distance_px"] = round(p.nipple_distance, 1)
        out["note"] = NO_SPACING
    if partner is not None:
        cc, mlo = (p, partner) if p.key.endswith("_CC") else (partner, p)
        lat, sup = coronal_position(cc.offset, mlo.offset)
        out["clock"] = clock_hour(side, lat, sup)
        out["quadrant"] = quadrant(lat, sup)
    return out


def locate(landmarks: dict[str, ViewLandmarks], polygons: dict[str, list], links: dict[tuple[str, int], tuple[str, int]] | None = None):
    """Locations of every contour: ``polygons`` maps view key -> list of stored-pixel polygons.

    ``links`` pairs (key, index) entries of the same lesion (both directions); without it the
    pairing is proposed per breast by :func:`propose_pairs`. Returns (locations, links): per
    (key, index) its location dict (None when the view has no landmarks), and the links used.
    """
    places: dict[tuple[str, int], Place] = {}
    for key, polys in polygons.items():
        lm = landmarks.get(key)
        if lm is None:
            continue
        for i, poly in enumerate(polys):
            if len(poly) >= 3:
                places[(key, i)] = place(lm, poly)
    if links is None:
        links = {}
        for side in ("L", "R"):
            cc = [k for k in places if k[0] == f"{side}_CC"]
            mlo = [k for k in places if k[0] == f"{side}_MLO"]
            for i, j in propose_pairs([places[k] for k in cc], [places[k] for k in mlo]):
                links[cc[i]] = mlo[j]
                links[mlo[j]] = cc[i]
    out: dict[tuple[str, int], dict[str, Any] | None] = {}
    for key, polys in polygons.items():
        for i in range(len(polys)):
            p = places.get((key, i))
            partner = places.get(links.get((key, i))) if (key, i) in links else None
            out[(key, i)] = None if p is None else location_dict(p, key[0], partner)
    return out, links


def location_words(loc: dict[str, Any] | None) -> str:
    """One short line for a report: "10:30 upper outer, 42 mm from nipple, middle third".

    Without a linked CC + MLO pair there is no clock face, and the line says only distance and depth.
    """
    if not loc:
        return "not located (no breast outline found)"
    parts = []
    if loc.get("clock") is not None:
        parts.append(f"{clock_text(loc['clock'])} {loc['quadrant']}")
    if loc.get("nipple_distance_mm") is not None:
        parts.append(f"{loc['nipple_distance_mm']:.0f} mm from nipple")
    elif loc.get("nipple_distance_px") is not None:
        parts.append(f"{loc['nipple_distance_px']:.0f} px from nipple")
    parts.append(f"{loc['depth']} third")
    return ", ".join(parts)


def locate_analysis(study: Any, analysis: Any, flips_by_view: dict[str, Flips] | None = None) -> None:
    """Fill in each lesion's ``location``, ``size`` and proposed ``pair`` and each view's ``landmarks``.

    ``study`` as stored and ``analysis`` with its contours on the stored images (after
    :func:`core_model.transforms.model_inputs.map_views_back`).
    """
    landmarks = study_landmarks(study, flips_by_view)
    polygons = {key: [les.polygon for les in vr.lesions] for key, vr in analysis.views.items()}
    locations, links = locate(landmarks, polygons)
    for key, vr in analysis.views.items():
        lm = landmarks.get(key)
        vr.landmarks = lm.to_dict() if lm is not None else None
        img = study.get(key, "le") or study.get(key, "rc")
        spacing = lm.spacing if lm is not None else (img.pixel_spacing_mm if img is not None else None)
        for i, les in enumerate(vr.lesions):
            les.location = locations.get((key, i))
            les.size = size_of(les.polygon, spacing)
            other = links.get((key, i))
            les.pair = f"{other[0]}:{other[1]}" if other else None


def locate_review(review: Any, study: Any) -> dict[str, dict[str, Any] | None]:
    """Per finding id of ``review``, its location on ``study``; clock and quadrant from the reader's links.

    A finding linked to the same lesion on the other view (``Finding.link``, proposed by the
    analysis, changed by the reader) gets the clock face; an unlinked one gets distance and depth.
    """
    landmarks = study_landmarks(study)
    for key, lm in landmarks.items():
        if lm.spacing is None and review.pixel_spacing(key) is not None:
            lm.spacing = review.pixel_spacing(key)
    polygons: dict[str, list] = {}
    index: dict[str, tuple[str, int]] = {}
    for f in review.findings.values():
        index[f.id] = (f.key, len(polygons.setdefault(f.key, [])))
        polygons[f.key].append(f.polygon)
    links = {index[f.id]: index[f.link] for f in review.findings.values() if f.link in index}
    found, _ = locate(landmarks, polygons, links)
    return {fid: found.get(pos) for fid, pos in index.items()}
