"""Triangulation between the CC and MLO views of one breast: the band at the same nipple distance.

A lesion lies at about the same distance from the nipple on the CC and on the
MLO view: compression and the oblique projection move it along the arc, not
towards or away from the nipple. So when the reader selects a finding on one
view, the other view of the same breast can show the band of points at that
distance, where the same lesion should be looked for.

The band is centred on the other view's nipple (the landmark
:mod:`core_model.imaging.location` finds, stored in each view's analysis) with
a half-width of ``max(MIN_HALF_WIDTH_MM, half the finding's longest
diameter)``: the distance of one lesion differs between the two views by up to
about a centimetre in practice, and a large lesion's centre is less certain
than a small one's. Without pixel spacing on both views the distance is
carried over as a share of the nipple-to-chest-wall axis instead of in mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core_model.imaging.geometry import max_diameter
from core_model.imaging.location import polygon_centroid

MIN_HALF_WIDTH_MM = 10.0
MIN_HALF_WIDTH_AXIS = 0.1  # without spacing: share of the nipple-to-chest-wall axis


@dataclass(frozen=True)
class Band:
    """An annulus around ``center`` (stored x, y pixels of the other view); radii in that view's pixels
    as (along x, along y), which differ when the pixel spacing is not square."""

    center: tuple[float, float]
    inner: tuple[float, float]
    outer: tuple[float, float]
    distance: float  # the finding's distance from the nipple on its own view
    unit: str  # "mm" or "axis" (share of the nipple-to-chest-wall axis)

    def label(self) -> str:
        if self.unit == "mm":
            return f"{self.distance:.0f} mm from the nipple"
        return f"{self.distance:.0%} of the nipple-to-chest-wall distance"


def triangulation_band(polygon, src: dict[str, Any], src_spacing: tuple[float, float] | None,
                       dst: dict[str, Any], dst_spacing: tuple[float, float] | None) -> Band | None:
    """The band on the view with landmarks ``dst`` for a finding ``polygon`` on the view with ``src``.

    ``src`` / ``dst`` are the landmark dicts of the analysis (``nipple`` [x, y] in stored pixels,
    ``nipple_to_chest_wall_px``); spacings are (row, column) mm per pixel or None. None when a
    landmark is missing."""
    if not src or not dst or src.get("nipple") is None or dst.get("nipple") is None:
        return None
    c = polygon_centroid(polygon)  # the point the finding's own nipple distance is measured from
    nx, ny = (float(v) for v in src["nipple"])
    center = (float(dst["nipple"][0]), float(dst["nipple"][1]))
    if src_spacing and dst_spacing:
        sy, sx = src_spacing
        d = math.hypot((c[0] - nx) * sx, (c[1] - ny) * sy)
        half = max(MIN_HALF_WIDTH_MM, max_diameter(polygon, src_spacing) / 2.0)
        dy, dx = dst_spacing
        radius = lambda mm: (max(mm, 0.0) / dx, max(mm, 0.0) / dy)  # noqa: E731 - mm -> (x, y) pixels
        return Band(center=center, inner=radius(d - half), outer=radius(d + half), distance=d, unit="mm")
    axis_src = float(src.get("nipple_to_chest_wall_px") or 0.0)
    axis_dst = float(dst.get("nipple_to_chest_wall_px") or 0.0)
    if axis_src < 1.0 or axis_dst < 1.0:
        return None
    share = math.hypot(c[0] - nx, c[1] - ny) / axis_src
    half = max(MIN_HALF_WIDTH_AXIS, max_diameter(polygon) / 2.0 / axis_src)
    r_in, r_out = max(share - half, 0.0) * axis_dst, (share + half) * axis_dst
    return Band(center=center, inner=(r_in, r_in), outer=(r_out, r_out), distance=share, unit="axis")
