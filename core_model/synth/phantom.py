"""Synthetic four-view CEM studies with ground truth (lesion masks, label, geometry).

Real CEM data at hand is all malignant and mostly lacks the contralateral
breast, so the four-view path (asymmetric fusion, contralateral adversarial
samples, benign vs malignant) cannot be exercised on it. This module draws
complete studies - both breasts, CC and MLO, low energy (``le``) and
recombined (``rc``) - deterministically from a seed:

- breast outline in a millimetre frame (240 x 195 mm detector field), chest
  wall on the image side CDD-CESM uses (right breast: chest wall on the right
  edge, nipple pointing left; left breast: the mirror image), pectoral muscle
  on MLO;
- fibroglandular texture from power-law filtered noise (amplitude ~ f^-beta/2,
  beta ~ 3 as measured on mammograms) plus radial strands converging on the
  nipple; the two breasts share most of their noise, mirrored, so they are
  broadly symmetric with realistic left/right differences;
- background parenchymal enhancement (BPE) on RC following the glandular
  tissue, symmetric-ish;
- one lesion on one side, seen in CC and MLO at the same depth from the nipple
  and a consistent clock position: benign = round/oval, circumscribed,
  homogeneous enhancement; malignant = irregular or spiculated, heterogeneous
  or rim enhancement, sometimes architectural distortion. Size, contrast,
  density and an ``ambiguity`` rate (malignant lesions that look benign and the
  reverse) are the difficulty controls.

Pixels are uint16 with 12 bits stored (0..4095), like real mammograms.
Everything written says synthetic (Study.synthetic, description, labels.csv,
DICOM tags). No randomness outside the seeded generator.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from core_model.domain.errors import NafvError
from core_model.domain.notice import SYNTHETIC_NOTICE
from core_model.domain.study import VIEW_KEYS, Study, StudyImage, view_key

BITS_STORED = 12
MAX_VALUE = (1 << BITS_STORED) - 1
FIELD_MM = (240.0, 195.0)  # detector field (height, width) the image samples, whatever its pixel size
DEFAULT_SIZE = (512, 416)
NIPPLE_REACH_MM = 4.5  # a nipple drawn in profile reaches this far beyond the skin line (centre 1 mm + half-length 3.5 mm)
PATIENT_NUMBER_BASE = 900000  # file names P{900000 + n}: numeric so the CDD-CESM pattern parses
DENSITIES = ("A", "B", "C", "D")
DENSE_FRACTION = {"A": 0.08, "B": 0.25, "C": 0.5, "D": 0.75}  # share of breast area that is fibroglandular
BPE_LEVELS = ("minimal", "mild", "moderate", "marked")
BPE_GAIN = {"minimal": 0.03, "mild": 0.08, "moderate": 0.15, "marked": 0.24}
LABELS = ("benign", "malignant")
DIFFICULTIES = ("easy", "medium", "hard")
# DICOM PatientOrientation (row direction, column direction) of each view as drawn here.
ORIENTATION = {"R_CC": ("P", "L"), "L_CC": ("A", "R"), "R_MLO": ("P", "F"), "L_MLO": ("A", "F")}


@dataclass(frozen=True)
class PhantomConfig:
    """Difficulty controls; ``PhantomConfig.preset("hard")`` for the named levels."""

    benign_radius_mm: tuple[float, float] = (4.0, 15.0)
    malignant_radius_mm: tuple[float, float] = (5.0, 22.0)
    # RC enhancement of the lesion above the surrounding tissue (fraction of full scale)
    rc_contrast: tuple[float, float] = (0.12, 0.32)
    # LE density of the lesion (fraction of full scale); dense breasts hide it
    le_contrast: tuple[float, float] = (0.06, 0.2)
    density_weights: tuple[float, float, float, float] = (0.1, 0.4, 0.35, 0.15)  # ACR a, b, c, d
    bpe_weights: tuple[float, float, float, float] = (0.35, 0.35, 0.2, 0.1)  # minimal .. marked
    # probability that a lesion takes the morphology of the other class
    # (round homogeneous cancers, lobulated / heterogeneous benign masses)
    ambiguity: float = 0.2
    distortion_prob: float = 0.3  # malignant lesions with architectural distortion
    calcification_prob: float = 0.3  # malignant lesions with a cluster of fine calcifications (LE only)
    rim_prob: float = 0.35  # malignant lesions with rim enhancement (else heterogeneous)
    spiculated_prob: float = 0.5  # malignant non-ambiguous lesions with spicules (else irregular)
    texture_beta: float = 2.6  # power-law exponent of the fibroglandular texture
    lr_independence: float = 0.3  # share of texture variance not shared between the breasts
    noise: float = 0.012  # quantum noise (fraction of full scale)

    @classmethod
    def preset(cls, difficulty: str) -> "PhantomConfig":
        if difficulty == "medium":
            return cls()
        if difficulty == "easy":
            return cls(benign_radius_mm=(6.0, 16.0), malignant_radius_mm=(8.0, 22.0), rc_contrast=(0.25, 0.4),
                       le_contrast=(0.12, 0.25), density_weights=(0.3, 0.5, 0.2, 0.0),
                       bpe_weights=(0.6, 0.4, 0.0, 0.0), ambiguity=0.0, spiculated_prob=0.8)
        if difficulty == "hard":
            return cls(benign_radius_mm=(3.0, 14.0), malignant_radius_mm=(3.5, 18.0), rc_contrast=(0.06, 0.22),
                       le_contrast=(0.03, 0.12), density_weights=(0.05, 0.25, 0.4, 0.3),
                       bpe_weights=(0.15, 0.3, 0.35, 0.2), ambiguity=0.35, distortion_prob=0.2)
        raise NafvError(f"unknown phantom difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}")


@dataclass
class PhantomLesion:
    """Ground truth of the lesion in one view (pixel coordinates of the image as stored)."""

    view_key: str
    center: tuple[float, float]  # (row, col)
    radius_px: tuple[float, float]  # mean radius along (rows, cols)
    radius_mm: float
    box: tuple[int, int, int, int]  # (row0, col0, row1, col1) of the mask, end exclusive
    nipple: tuple[float, float]  # (row, col)
    depth_mm: float  # distance from the nipple along the nipple - chest-wall axis
    clock: float  # clock position in hours (12 = superior), as a radiologist reads it
    margin: str  # circumscribed / lobulated / irregular / spiculated
    enhancement: str  # homogeneous / heterogeneous / rim
    distortion: bool
    calcifications: int = 0  # number of fine calcifications drawn on LE (not in the mask)
    # straight distance on this view from the nipple (its tip when drawn in profile) to the lesion centre
    nipple_distance_mm: float = 0.0


@dataclass
class PhantomCase:
    study: Study
    masks: dict[str, np.ndarray]  # view key -> uint8 {0,1}; zeros on the contralateral side
    label: str  # benign / malignant
    affected_side: str  # L / R
    lesions: list[PhantomLesion]
    seed: int
    density: str  # ACR A..D
    bpe: str
    age: int
    birads: int
    findings: str
    patient_number: int

    @property
    def patient_id(self) -> str:
        return self.study.patient_id


# --------------------------------------------------------------------------- noise


def _power_noise(rng: np.random.Generator, shape: tuple[int, int], spacing: tuple[float, float],
                 beta: float, f0: float = 1.0 / 40.0) -> np.ndarray:
    """Zero-mean, unit-variance noise with power spectrum ~ (f^2 + f0^2)^(-beta/2), f in cycles/mm."""
    fy = np.fft.fftfreq(shape[0], d=spacing[0])[:, None]
    fx = np.fft.rfftfreq(shape[1], d=spacing[1])[None, :]
    amp = (fy * fy + fx * fx + f0 * f0) ** (-beta / 4.0)
    spec = np.fft.rfft2(rng.standard_normal(shape)) * amp
    out = np.fft.irfft2(spec, s=shape)
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], spacing: tuple[float, float],
                  sigma_mm: float) -> np.ndarray:
    """Band-limited (Gaussian-correlated) unit-variance noise: its zero lines form smooth curvy networks."""
    out = ndimage.gaussian_filter(rng.standard_normal(shape), (sigma_mm / spacing[0], sigma_mm / spacing[1]),
                                  mode="wrap")
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# --------------------------------------------------------------------------- geometry


@dataclass
class _Breast:
    """Outline of one breast in one view, canonical frame (chest wall at x = 0, mm)."""

    view: str
    depth: float  # nipple distance from the chest wall, mm
    nipple_y: float
    b_up: float  # half-extent above the nipple axis
    b_low: float  # half-extent below
    p: float  # superellipse exponent
    wobble: np.ndarray  # boundary modulation, harmonics (k, amp, phase)
    pect_w: float = 0.0  # pectoral muscle: width at the top edge, height on the chest wall
    pect_h: float = 0.0
    pect_q: float = 1.0
    p_up: float = 0.0  # exponent above the nipple axis when different (MLO: the upper contour runs to the axilla)

    def rho(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Normalised radius: < 1 inside the breast, 1 on the skin line."""
        dy = y - self.nipple_y
        b = np.where(dy < 0, self.b_up, self.b_low)
        xn = np.maximum(x, 0.0) / self.depth
        p = np.where(dy < 0, self.p_up or self.p, self.p)
        r = (xn ** p + np.abs(dy / b) ** p) ** (1.0 / p)
        ang = np.arctan2(dy / b, xn)
        mod = np.ones_like(r)
        for k, a, ph in self.wobble:
            mod += a * np.cos(k * ang + ph)
        return r / mod

    def half_height(self, x: float, above: bool) -> float:
        xn = min(max(x / self.depth, 0.0), 1.0)
        b = self.b_up if above else self.b_low
        p = (self.p_up or self.p) if above else self.p
        return b * (1.0 - xn ** p) ** (1.0 / p)

    def pectoral(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.pect_w <= 0:
            return np.zeros(np.broadcast(x, y).shape, dtype=np.float32)
        s = (np.maximum(x, 0) / self.pect_w) ** self.pect_q + np.maximum(y, 0) / self.pect_h
        return _sigmoid((1.0 - s) / 0.02).astype(np.float32)


def _draw_breasts(rng: np.random.Generator) -> dict[str, _Breast]:
    """Outline per view key; the two sides share the shape up to a few per cent."""
    h, w = FIELD_MM
    depth = rng.uniform(0.42, 0.7) * w
    p = rng.uniform(1.7, 2.2)
    cc_half = rng.uniform(0.34, 0.44) * h
    cc_y = h / 2 + rng.uniform(-0.04, 0.04) * h
    mlo_y = rng.uniform(0.5, 0.62) * h
    mlo_depth = depth * rng.uniform(1.0, 1.1)
    b_low = (h - mlo_y) * rng.uniform(0.72, 0.92)
    b_up = mlo_y * rng.uniform(1.0, 1.08)  # > nipple row: the axillary tail reaches the top edge
    pect_w = mlo_depth * rng.uniform(0.35, 0.55)
    pect_h = mlo_y * rng.uniform(0.9, 1.4)
    p_up = rng.uniform(1.3, 1.7)
    pect_q = rng.uniform(0.8, 1.3)
    out = {}
    for side in ("R", "L"):
        sz = rng.uniform(0.97, 1.03)  # left/right size difference

        def wob() -> np.ndarray:
            return np.array([(k, rng.uniform(0, 0.02), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)])

        out[view_key(side, "CC")] = _Breast("CC", depth * sz, cc_y + rng.uniform(-3, 3), cc_half * sz,
                                            cc_half * sz, p, wob())
        out[view_key(side, "MLO")] = _Breast("MLO", mlo_depth * sz, mlo_y + rng.uniform(-4, 4), b_up * sz,
                                             b_low * sz, p, wob(), pect_w * rng.uniform(0.92, 1.08),
                                             pect_h * rng.uniform(0.92, 1.08), pect_q, p_up)
    return out


def _clock(side: str, lateral: float, superior: float) -> float:
    """Clock hour seen facing the patient: 12 superior, lateral = 9 on the right, 3 on the left."""
    viewer_right = -lateral if side == "R" else lateral
    deg = math.degrees(math.atan2(viewer_right, superior)) % 360.0
    hour = deg / 30.0
    return 12.0 if hour < 0.25 else round(hour, 2)


# --------------------------------------------------------------------------- lesion


@dataclass
class _LesionSpec:
    radius_mm: float
    aspect: float
    harmonics: list[tuple[int, float, float]]
    spicules: list[tuple[float, float, float]]  # (angle, length factor, width mm)
    margin: str
    enhancement: str
    distortion: bool
    rc_contrast: float
    le_contrast: float
    softness_mm: float
    calcifications: int = 0


def _draw_lesion_spec(rng: np.random.Generator, label: str, cfg: PhantomConfig) -> _LesionSpec:
    """Morphology of the lesion: drawn from its own class, or with probability ``ambiguity`` from the other.

    An ambiguous lesion takes the other class's whole appearance (margin and
    enhancement), so morphology alone cannot reach more than ~1 - ambiguity
    accuracy. Weak cues stay with the true label, as in real CEM: size ranges
    (overlapping), enhancement strength (cancers skew stronger) and
    architectural distortion (cancers only).
    """
    ambiguous = rng.random() < cfg.ambiguity
    looks_malignant = (label == "malignant") != ambiguous
    lo, hi = cfg.malignant_radius_mm if label == "malignant" else cfg.benign_radius_mm
    radius = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # log-uniform: many small, some large
    harmonics: list[tuple[int, float, float]] = []
    spicules: list[tuple[float, float, float]] = []
    if looks_malignant:
        spiculated = rng.random() < cfg.spiculated_prob
        margin = "spiculated" if spiculated else "irregular"
        for k in range(2, 11):
            harmonics.append((k, rng.uniform(0.03, 0.14) * (2.0 / k), rng.uniform(0, 2 * np.pi)))
        if spiculated:
            for _ in range(int(rng.integers(6, 16))):
                spicules.append((rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.6), rng.uniform(0.4, 0.9)))
        enhancement = "rim" if rng.random() < cfg.rim_prob else "heterogeneous"
        aspect = rng.uniform(0.6, 1.0)
        softness = rng.uniform(0.6, 1.4)
    else:
        lobulated = rng.random() < 0.3
        margin = "lobulated" if lobulated else "circumscribed"
        if lobulated:
            for k in (3, 4, 5):
                harmonics.append((k, rng.uniform(0.03, 0.08), rng.uniform(0, 2 * np.pi)))
        else:
            harmonics.append((2, rng.uniform(0.0, 0.03), rng.uniform(0, 2 * np.pi)))
        # some fibroadenomas enhance heterogeneously (dark internal septations)
        enhancement = "heterogeneous" if rng.random() < 0.15 else "homogeneous"
        aspect = rng.uniform(0.55, 1.0)
        softness = rng.uniform(0.25, 0.6)
    distortion = label == "malignant" and looks_malignant and rng.random() < cfg.distortion_prob
    u = rng.random()
    strength = u ** 0.7 if label == "malignant" else u ** 1.4  # cancers skew toward strong enhancement
    rc_contrast = cfg.rc_contrast[0] + strength * (cfg.rc_contrast[1] - cfg.rc_contrast[0])
    calcs = 0
    if label == "malignant" and looks_malignant and rng.random() < cfg.calcification_prob:
        calcs = int(rng.integers(6, 25))
    return _LesionSpec(radius, aspect, harmonics, spicules, margin, enhancement, distortion,
                       float(rc_contrast), float(rng.uniform(*cfg.le_contrast)), softness, calcs)


def _log_likelihood(spec: _LesionSpec, label: str, cfg: PhantomConfig) -> float:
    """log p(lesion features | label) under :func:`_draw_lesion_spec`, for the features it draws:
    which class the look is taken from, distortion, calcifications, radius and enhancement strength
    (margin, enhancement type, aspect and softness follow from the look alone, so they add nothing)."""
    looks_mal = spec.margin in ("spiculated", "irregular")
    a = cfg.ambiguity
    mal = label == "malignant"
    p_look = (1 - a if looks_mal else a) if mal else (a if looks_mal else 1 - a)
    if p_look <= 0:
        return -np.inf
    ll = np.log(p_look)
    if mal and looks_mal:
        ll += np.log(cfg.distortion_prob if spec.distortion else 1 - cfg.distortion_prob)
        ll += np.log(cfg.calcification_prob if spec.calcifications else 1 - cfg.calcification_prob)
    elif spec.distortion or spec.calcifications:
        return -np.inf  # only malignant-looking cancers get them
    lo, hi = cfg.malignant_radius_mm if mal else cfg.benign_radius_mm
    if not lo <= spec.radius_mm <= hi:
        return -np.inf
    ll += -np.log(spec.radius_mm * (np.log(hi) - np.log(lo)))  # log-uniform radius
    k = 0.7 if mal else 1.4  # strength = u ** k
    r0, r1 = cfg.rc_contrast
    st = np.clip((spec.rc_contrast - r0) / max(r1 - r0, 1e-12), 1e-12, 1.0)
    ll += np.log(1.0 / k) + (1.0 / k - 1.0) * np.log(st)
    return float(ll)


def ceiling_auc(config: PhantomConfig, n: int = 20000, seed: int = 0) -> float:
    """The highest benign-vs-malignant ROC AUC the generator's ground truth allows: that of the
    Bayes-optimal score of an oracle that sees every feature the generator draws for a lesion
    (Monte Carlo over ``n`` lesions per class). A model reading the images can only do worse, since
    density, noise and size at the model's resolution hide part of what the oracle sees."""
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for label in LABELS:
        for _ in range(n):
            spec = _draw_lesion_spec(rng, label, config)
            lm, lb = _log_likelihood(spec, "malignant", config), _log_likelihood(spec, "benign", config)
            if np.isinf(lm) and np.isinf(lb):
                d = 0.0
            else:
                d = float(np.clip(lm - lb, -1e6, 1e6))  # a feature only one class has decides outright
            scores.append(d)
            labels.append(label == "malignant")
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks over ties
        tie = s == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _render_lesion(rng: np.random.Generator, spec: _LesionSpec, dx: np.ndarray, dy: np.ndarray,
                   size_factor: float, rotation: float, phase_shift: float, spacing: tuple[float, float]):
    """Body (soft 0..1), hard mask, spicule map and internal enhancement pattern on a local mm grid."""
    c, s = math.cos(rotation), math.sin(rotation)
    u = c * dx + s * dy
    v = (-s * dx + c * dy) / spec.aspect
    r = np.hypot(u, v)
    ang = np.arctan2(v, u)
    rad = np.full_like(r, spec.radius_mm * size_factor)
    mod = np.ones_like(r)
    for k, a, ph in spec.harmonics:
        mod += a * np.cos(k * ang + ph + k * phase_shift)
    rad = rad * mod
    dist = r - rad  # signed distance-like (mm), < 0 inside
    body = _sigmoid(-dist / max(spec.softness_mm * 0.4, 0.1))
    mask = dist < 0
    spic = np.zeros_like(r)
    R = spec.radius_mm * size_factor
    for a0, lf, wmm in spec.spicules:
        a = a0 + phase_shift
        # distance from the ray at angle a, only beyond the body and up to its length
        along = u * math.cos(a) + v * math.sin(a) * spec.aspect
        across = np.abs(-u * math.sin(a) + v * math.cos(a) * spec.aspect)
        taper = np.clip(1.0 - (along - 0.7 * R) / (lf * R), 0.0, 1.0) * (along > 0.6 * R)
        width = wmm * (0.3 + 0.7 * taper)
        spic = np.maximum(spic, taper * np.exp(-0.5 * (across / np.maximum(width, 0.05)) ** 2))
    # internal enhancement pattern
    rn = np.clip(r / np.maximum(rad, 1e-3), 0, 1)
    if spec.enhancement == "homogeneous":
        pattern = 1.0 - 0.08 * rn ** 2
    elif spec.enhancement == "rim":
        pattern = 0.2 + 0.8 * rn ** 3
    else:
        blob = _power_noise(rng, np.broadcast(dx, dy).shape, spacing, beta=2.2, f0=1.0 / max(R, 2.0))
        pattern = np.clip(0.72 + 0.3 * blob, 0.3, 1.1)
    return body, mask, spic, pattern


# --------------------------------------------------------------------------- case


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    h, w = size
    sy, sx = FIELD_MM[0] / h, FIELD_MM[1] / w
    y = ((np.arange(h) + 0.5) * sy)[:, None]
    x = ((np.arange(w) + 0.5) * sx)[None, :]
    return x, y, (sy, sx)


def _polar(src: np.ndarray, x: np.ndarray, y: np.ndarray, nipple: tuple[float, float], mm_per_col: float) -> np.ndarray:
    """Sample ``src`` (rows: angle around the nipple, cols: distance from it) on the image grid."""
    nx, ny = nipple
    r = np.hypot(x - nx, y - ny)
    th = np.arctan2(y - ny, nx - x)  # 0 = toward the chest wall
    rows = np.broadcast_to((th + np.pi) / (2 * np.pi) * src.shape[0], r.shape)
    cols = r / mm_per_col
    return ndimage.map_coordinates(src, [rows.ravel(), cols.ravel()], order=1, mode="grid-wrap").reshape(r.shape)


def _strand_field(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, nipple: tuple[float, float]) -> np.ndarray:
    """Ducts and strands converging on the nipple: noise elongated along the radius in polar coordinates."""
    src = _power_noise(rng, (256, 128), (1.5, 0.4), beta=2.6, f0=1.0 / 20.0)
    field_ = _polar(src, x, y, nipple, 2.0)
    r = np.hypot(x - nipple[0], y - nipple[1])
    # fade out within ~2 cm of the nipple so the strands do not form a sunburst there
    return field_ / (field_.std() + 1e-9) * (1.0 - np.exp(-((r / 20.0) ** 2)))


def _ligaments(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, nipple: tuple[float, float]) -> np.ndarray:
    """Thin curvy lines (Cooper ligaments, trabeculae), mostly running toward the nipple, in [0, 1]."""
    # zero lines of smooth noise form a network; stretching it along the radius orients it
    src = _smooth_noise(rng, (512, 160), (1.0 / 1.3, 1.0 / 5.0), 1.0)
    r = np.hypot(x - nipple[0], y - nipple[1])
    return np.exp(-((_polar(src, x, y, nipple, 1.5) / 0.18) ** 2)) * (1.0 - np.exp(-((r / 15.0) ** 2)))


def _vessels(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, breast: _Breast, n: int) -> np.ndarray:
    """A few smooth tortuous vessels from the chest wall toward the nipple (bright on RC)."""
    out = np.zeros(np.broadcast(x, y).shape, dtype=np.float64)
    for _ in range(n):
        y0 = breast.nipple_y + rng.uniform(-0.8, 0.8) * (breast.b_up if rng.random() < 0.5 else breast.b_low) * 0.8
        y1 = breast.nipple_y + rng.uniform(-0.3, 0.3) * breast.b_low
        amp, k, ph = rng.uniform(2, 8), rng.uniform(1, 3), rng.uniform(0, 2 * np.pi)
        t = np.clip(x / breast.depth, 0, 1)
        yc = y0 + (y1 - y0) * t + amp * np.sin(k * np.pi * t + ph)
        width = rng.uniform(0.4, 0.9)
        reach = rng.uniform(0.5, 0.95)
        out = np.maximum(out, np.exp(-0.5 * ((y - yc) / width) ** 2) * (t < reach) * rng.uniform(0.5, 1.0))
    return out


def _place_lesion(rng: np.random.Generator, spec: _LesionSpec, cc: _Breast, mlo: _Breast):
    """Depth from the nipple (mm), (x, y) per view in mm, and the coronal position (lateral, superior).

    One point of the breast, given by its depth and a coronal position in the
    unit disc, is projected into both views, so CC and MLO agree like two
    projections of the same lesion: same depth, lateral offset on CC, mostly
    superior offset on MLO (45 degree obliquity). A lesion too large for the
    breast is shrunk until it fits (``spec.radius_mm`` is updated).
    """
    ring = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ob = math.radians(45.0)
    for attempt in range(400):
        if attempt and attempt % 100 == 0:
            spec.radius_mm *= 0.8
        depth_mm = rng.uniform(0.18, 0.8) * min(cc.depth, mlo.depth)
        rr, ang = math.sqrt(rng.uniform(0, 1)) * 0.75, rng.uniform(0, 2 * np.pi)
        lat, sup = rr * math.cos(ang), rr * math.sin(ang)
        mlo_v = sup * math.cos(ob) + lat * math.sin(ob) * 0.8
        pos, ok = {}, True
        for b, v in ((cc, lat), (mlo, mlo_v)):
            xm = b.depth - depth_mm
            ym = b.nipple_y - v * b.half_height(xm, above=v > 0)  # lateral (CC) / superior (MLO) at the top
            pos[b.view] = (xm, ym)
            margin = spec.radius_mm * 1.3 + 3.0
            rx, ry = xm + margin * np.cos(ring), ym + margin * np.sin(ring)
            if (b.rho(rx, ry).max() > 0.9 or ry.min() < 2.0 or ry.max() > FIELD_MM[0] - 2.0 or rx.min() < 3.0
                    or b.pectoral(rx, ry).max() > 0.1):
                ok = False
        if ok:
            return depth_mm, pos, (lat, sup)
    raise RuntimeError("could not place the phantom lesion")  # pragma: no cover - shrinking always ends inside


def generate_case(seed: int, size: tuple[int, int] = DEFAULT_SIZE, label: str | None = None,
                  config: PhantomConfig | None = None, patient_number: int | None = None) -> PhantomCase:
    """One complete synthetic study (8 images) with masks and ground truth, deterministic by ``seed``.

    ``size`` is (rows, cols); the 240 x 195 mm field is resampled to it, so
    512 x 512 gives the same squashed look as the CDD-CESM 512 subset.
    ``patient_number`` names the patient (SYN{n:05d}); it defaults to the seed.
    """
    cfg = config or PhantomConfig()
    if label is not None and label not in LABELS:
        raise NafvError(f"phantom label must be 'benign' or 'malignant', not {label!r}")
    h, w = int(size[0]), int(size[1])
    if h < 64 or w < 64:
        raise NafvError(f"phantom images must be at least 64 x 64 pixels, not {h} x {w}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    number = int(seed if patient_number is None else patient_number)
    label = label or str(rng.choice(LABELS))
    affected = str(rng.choice(["L", "R"]))
    density = DENSITIES[int(rng.choice(4, p=np.asarray(cfg.density_weights) / sum(cfg.density_weights)))]
    bpe = BPE_LEVELS[int(rng.choice(4, p=np.asarray(cfg.bpe_weights) / sum(cfg.bpe_weights)))]
    age = int(rng.integers(35, 76))
    x, y, spacing = _grid((h, w))
    breasts = _draw_breasts(rng)

    spec = _draw_lesion_spec(rng, label, cfg)
    cc, mlo = breasts[view_key(affected, "CC")], breasts[view_key(affected, "MLO")]
    rot = rng.uniform(0, np.pi)
    depth_mm, pos, (lat, sup) = _place_lesion(rng, spec, cc, mlo)
    clock = _clock(affected, lat, sup)

    # Shared texture fields: one per view, mirrored between the breasts (canonical frame).
    beta = cfg.texture_beta
    shared = {v: _power_noise(rng, (h, w), spacing, beta) for v in ("CC", "MLO")}
    # slow RC background variation (scatter / thickness correction residue), shared by both sides
    lowfreq = {v: _power_noise(rng, (h, w), spacing, 4.0, f0=1.0 / 60.0) for v in ("CC", "MLO")}
    target = DENSE_FRACTION[density]
    vessel_n = int(rng.integers(2, 6))
    bpe_gain = BPE_GAIN[bpe]
    images: dict[tuple[str, str], StudyImage] = {}
    masks: dict[str, np.ndarray] = {}
    lesions: list[PhantomLesion] = []
    sy, sx = spacing
    shift = rng.uniform(0, 2 * np.pi)
    for key in VIEW_KEYS:
        side, view = key.split("_")
        b = breasts[key]
        a = cfg.lr_independence
        tex = math.sqrt(1 - a) * shared[view] + math.sqrt(a) * _power_noise(rng, (h, w), spacing, beta)
        rho = b.rho(x, y)
        inside = rho < 1.0
        # compressed thickness falls off over the last ~12% toward the skin line
        edge = np.clip((1.0 - rho) / 0.12, 0.0, 1.0)
        thick = np.sqrt(edge * (2.0 - edge))
        pect = b.pectoral(x, y) * inside
        # glandular envelope: subcutaneous fat under the skin, retroglandular fat at the chest wall
        xn = x / b.depth
        env = _sigmoid((0.8 - rho) / 0.07) * _sigmoid((xn - 0.06) / 0.05) * (1 - pect)
        strands = _strand_field(rng, x, y, (b.depth, b.nipple_y))
        # mid-frequency lobules (fat holes inside the dense tissue) on top of the power-law field
        lob = _smooth_noise(rng, (h, w), spacing, 1.2)
        score = ndimage.gaussian_filter(tex, (0.3 / sy, 0.3 / sx)) + 0.6 * lob + 2.2 * np.log(env + 1e-3) + 0.1 * strands
        sel = inside & (env > 0.05)
        thr = np.quantile(score[sel], 1.0 - target) if sel.any() else 0.0
        gland = _sigmoid((score - thr) / 0.8) * env * np.clip(0.9 + 0.1 * strands, 0.3, 1.2)
        # strands add linear structure on top of the blobs (Cooper ligaments, ducts)
        fine = np.clip(0.5 + 0.5 * strands, 0, 1) ** 3 * env
        vessels = _vessels(rng, x, y, b, vessel_n) * inside * (1 - pect)
        # Cooper ligaments / trabeculae, kept out of the skin and the muscle
        ridges = _ligaments(rng, x, y, (b.depth, b.nipple_y)) * _sigmoid((0.97 - rho) / 0.02) * (1 - pect)

        # lesion (affected side only)
        lesion_body = np.zeros((h, w))
        lesion_mask = np.zeros((h, w), dtype=bool)
        spic = np.zeros((h, w))
        pattern = np.zeros((h, w))
        if side == affected:
            xm, ym = pos[view]
            sf = rng.uniform(0.9, 1.1)
            dxx, dyy = x - xm, y - ym
            lesion_body, lesion_mask, spic, pattern = _render_lesion(
                rng, spec, dxx, dyy, sf, rot + (0.0 if view == "CC" else rng.uniform(-0.6, 0.6)),
                0.0 if view == "CC" else shift, spacing)
            lesion_mask &= inside
            if spec.distortion:
                # architectural distortion: tissue pulled toward the lesion centre
                d2 = (dxx ** 2 + dyy ** 2) / (2.5 * spec.radius_mm) ** 2
                pull = 0.45 * np.exp(-d2)
                src_r = (y + pull * (ym - y)) / sy - 0.5
                src_c = (x + pull * (xm - x)) / sx - 0.5
                coords = [np.broadcast_to(src_r, (h, w)).ravel(), np.broadcast_to(src_c, (h, w)).ravel()]
                gland = ndimage.map_coordinates(gland, coords, order=1, mode="nearest").reshape(h, w)
                fine = ndimage.map_coordinates(fine, coords, order=1, mode="nearest").reshape(h, w)

        # ---- low energy: a mammogram
        fat = 0.12
        le = fat + 0.45 * gland + 0.03 * fine + 0.1 * ridges * (1 - 0.5 * gland) + 0.02 * vessels + pect * (0.28 + 0.03 * tex)
        if side == affected:
            le = le + spec.le_contrast * (lesion_body + 0.7 * spic)
            if spec.calcifications:
                # fine pleomorphic calcifications clustered in and around the mass
                n_c = spec.calcifications
                ang_c, rad_c = rng.uniform(0, 2 * np.pi, n_c), spec.radius_mm * sf * np.sqrt(rng.uniform(0, 1.2, n_c))
                rows_c = np.clip(np.rint((ym + rad_c * np.sin(ang_c)) / sy - 0.5), 0, h - 1).astype(int)
                cols_c = np.clip(np.rint((xm + rad_c * np.cos(ang_c)) / sx - 0.5), 0, w - 1).astype(int)
                dots = np.zeros((h, w))
                np.add.at(dots, (rows_c, cols_c), rng.uniform(0.5, 1.0, n_c))
                sig = (max(0.6, 0.25 / sy), max(0.6, 0.25 / sx))
                kernel_peak = ndimage.gaussian_filter(np.pad([[1.0]], 6), sig).max()
                le = le + 0.35 * ndimage.gaussian_filter(dots, sig) / kernel_peak
        le = le * (0.55 + 0.45 * thick)  # thin tissue at the edge attenuates less
        le = le + 0.18 * np.exp(-((1.0 - rho) / 0.012) ** 2) * (rho < 1.03)  # skin line
        le = le + cfg.noise * rng.standard_normal((h, w)) * (0.4 + le)
        le = le * _sigmoid((1.0 - rho) / 0.004)  # air outside the breast stays black
        # nipple in profile (most views): a small bump beyond the skin line, dense on LE and bright on RC
        nipple = np.zeros((h, w))
        in_profile = rng.random() < 0.75
        if in_profile:
            nipple = _sigmoid((1.0 - ((x - b.depth - 1.0) / 3.5) ** 2 - ((y - b.nipple_y) / 5.0) ** 2) / 0.15)
            le = np.maximum(le, 0.3 * nipple)

        # ---- recombined: iodine uptake
        uptake = ndimage.gaussian_filter(gland, (2.0 / sy, 2.0 / sx))
        bpe_map = bpe_gain * uptake * (0.7 + 0.3 * np.clip(tex, -2, 2))
        rc = 0.18 + 0.04 * lowfreq[view] + bpe_map + 0.08 * vessels + 0.015 * ridges - 0.02 * pect
        if side == affected:
            rc = rc + spec.rc_contrast * (lesion_body * pattern + 0.35 * spic)
        rc = rc + 0.25 * np.exp(-(1.0 - rho) / 0.06) * (rho < 1.0)  # bright rim along the skin line
        # crumpled fine network left by the LE/HE recombination (imperfect cancellation of tissue edges)
        crumple = np.exp(-((_smooth_noise(rng, (h, w), spacing, 2.0) / 0.12) ** 2))
        rc = rc + 0.05 * crumple
        grain = ndimage.gaussian_filter(rng.standard_normal((h, w)), 0.7)
        rc = rc + 1.6 * cfg.noise * grain / (grain.std() + 1e-9)
        rc = rc * _sigmoid((1.0 - rho) / 0.004)
        rc = np.maximum(rc, 0.4 * nipple)

        # canonical frame has the chest wall at column 0 (left breast); right breast is mirrored
        flip = side == "R"
        for energy, img in (("le", le), ("rc", rc)):
            px = np.clip(np.rint(np.clip(img, 0.0, 1.0) * MAX_VALUE), 0, MAX_VALUE).astype(np.uint16)
            if flip:
                px = px[:, ::-1].copy()
            images[(key, energy)] = StudyImage(
                side=side, view=view, energy=energy, pixels=px,
                source=Path("synthetic") / f"SYN{number:05d}" / f"{key}_{energy}",
                pixel_spacing_mm=(sy, sx), bits_stored=BITS_STORED, window=None,
                orientation=ORIENTATION[key])
        m = lesion_mask.astype(np.uint8)
        if flip:
            m = m[:, ::-1].copy()
        masks[key] = m
        if side == affected:
            rows, cols = np.nonzero(m)
            if rows.size == 0:  # pragma: no cover - placement keeps the lesion inside
                raise RuntimeError("phantom lesion fell outside the breast")
            nip_col = b.depth / sx - 0.5
            xm_col = xm / sx - 0.5
            if flip:
                nip_col, xm_col = w - 1 - nip_col, w - 1 - xm_col
            r_eff = spec.radius_mm * sf
            tip = b.depth + (NIPPLE_REACH_MM if in_profile else 0.0)
            lesions.append(PhantomLesion(
                view_key=key, center=(float(ym / sy - 0.5), float(xm_col)),
                radius_px=(float(r_eff / sy), float(r_eff / sx)), radius_mm=float(r_eff),
                box=(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1),
                nipple=(float(b.nipple_y / sy - 0.5), float(nip_col)), depth_mm=float(depth_mm), clock=clock,
                margin=spec.margin, enhancement=spec.enhancement, distortion=spec.distortion,
                calcifications=spec.calcifications, nipple_distance_mm=float(math.hypot(xm - tip, ym - b.nipple_y))))

    birads = int(rng.choice([2, 3])) if label == "benign" else int(rng.choice([4, 5]))
    shape_word = {"circumscribed": "oval circumscribed", "lobulated": "lobulated circumscribed",
                  "irregular": "irregular", "spiculated": "spiculated"}[spec.margin]
    findings = (f"synthetic phantom: {shape_word} mass, {spec.enhancement} enhancement"
                f"{', architectural distortion' if spec.distortion else ''}"
                f"{', fine calcifications' if spec.calcifications else ''}, {2 * spec.radius_mm:.0f} mm, "
                f"{'right' if affected == 'R' else 'left'} breast {clock:.0f} o'clock, {depth_mm:.0f} mm from the nipple")
    study = Study(patient_id=f"SYN{number:05d}", study_id=f"SYN{number:05d}-1", images=images,
                  source=None, synthetic=True,
                  description=f"{SYNTHETIC_NOTICE}; {label} ({findings}); ACR density {density}, BPE {bpe}")
    return PhantomCase(study=study, masks=masks, label=label, affected_side=affected, lesions=lesions,
                       seed=int(seed), density=density, bpe=bpe, age=age, birads=birads, findings=findings,
                       patient_number=number)


# --------------------------------------------------------------------------- files

LABEL_COLUMNS = ("Image_name", "Patient_ID", "Side", "Type", "Age", "Breast density (ACR)", "BIRADS", "Findings",
                 "View", "Tags", "Machine", "Pathology Classification/ Follow up", "Clock", "Nipple distance (mm)")
LESION_COLUMNS = ("Image_name", "Patient_ID", "seed", "label", "view_key", "center_row", "center_col", "radius_mm",
                  "radius_px_row", "radius_px_col", "box_row0", "box_col0", "box_row1", "box_col1", "nipple_row",
                  "nipple_col", "depth_mm", "clock", "margin", "enhancement", "distortion", "calcifications", "density", "bpe",
                  "nipple_distance_mm")
CDD_KIND = {"le": "DM", "rc": "CM"}


def file_stem(case: PhantomCase, key: str, energy: str) -> str:
    """CDD-CESM name of one image of ``case``: P{900000 + n}_{L|R}_{DM|CM}_{CC|MLO}."""
    side, view = key.split("_")
    return f"P{PATIENT_NUMBER_BASE + case.patient_number}_{side}_{CDD_KIND[energy]}_{view}"


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset drawn with ``seed`` (independent streams per case)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _label_rows(case: PhantomCase) -> list[dict[str, str]]:
    rows = []
    lesion_of = {les.view_key: les for les in case.lesions}
    for key in VIEW_KEYS:
        side, view = key.split("_")
        affected = side == case.affected_side
        les = lesion_of.get(key)
        for energy in ("le", "rc"):
            if affected:
                tags = f"synthetic, {case.label}, mass, {case.lesions[0].margin}"
                findings = case.findings
                birads, pathology = str(case.birads), case.label.capitalize()
            else:
                tags, findings, birads, pathology = "synthetic, normal", "synthetic phantom: no finding", "1", "Normal"
            rows.append({
                "Image_name": file_stem(case, key, energy),
                "Patient_ID": str(PATIENT_NUMBER_BASE + case.patient_number),
                "Side": side,
                "Type": "DM" if energy == "le" else "CESM",
                "Age": str(case.age),
                "Breast density (ACR)": case.density if energy == "le" else "_",
                "BIRADS": birads,
                "Findings": findings,
                "View": view,
                "Tags": tags,
                "Machine": "synthetic",
                "Pathology Classification/ Follow up": pathology,
                # where the lesion lies (ground truth of the geometry): clock hours facing the patient, and
                # the straight distance on this view from the nipple to the lesion centre; empty without one
                "Clock": f"{les.clock:.2f}" if les is not None else "",
                "Nipple distance (mm)": f"{les.nipple_distance_mm:.1f}" if les is not None else "",
            })
    return rows


def _lesion_rows(case: PhantomCase) -> list[dict[str, str]]:
    rows = []
    for les in case.lesions:
        rows.append({
            "Image_name": file_stem(case, les.view_key, "rc"), "Patient_ID": str(PATIENT_NUMBER_BASE + case.patient_number),
            "seed": str(case.seed), "label": case.label, "view_key": les.view_key,
            "center_row": f"{les.center[0]:.2f}", "center_col": f"{les.center[1]:.2f}", "radius_mm": f"{les.radius_mm:.2f}",
            "radius_px_row": f"{les.radius_px[0]:.2f}", "radius_px_col": f"{les.radius_px[1]:.2f}",
            "box_row0": str(les.box[0]), "box_col0": str(les.box[1]), "box_row1": str(les.box[2]), "box_col1": str(les.box[3]),
            "nipple_row": f"{les.nipple[0]:.2f}", "nipple_col": f"{les.nipple[1]:.2f}", "depth_mm": f"{les.depth_mm:.2f}",
            "clock": f"{les.clock:.2f}", "margin": les.margin, "enhancement": les.enhancement,
            "distortion": str(int(les.distortion)), "calcifications": str(les.calcifications), "density": case.density, "bpe": case.bpe,
            "nipple_distance_mm": f"{les.nipple_distance_mm:.2f}",
        })
    return rows


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    # The mark travels with each file, so a phantom copied out of its folder still loads as synthetic.
    info = PngInfo()
    info.add_text("Comment", SYNTHETIC_NOTICE)
    Image.fromarray(array).save(path, format="PNG", optimize=False, pnginfo=info)


def write_case(case: PhantomCase, out_dir: str | Path, dicom: bool = False) -> list[Path]:
    """Write one case's 8 images and masks (and DICOM files) under ``out_dir``; returns the image paths."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    written = []
    pid = f"P{PATIENT_NUMBER_BASE + case.patient_number}"
    for key in VIEW_KEYS:
        mask8 = (case.masks[key] * 255).astype(np.uint8)  # 0/255 like the CDD-CESM masks (threshold at 127)
        for energy in ("le", "rc"):
            img = case.study.get(key, energy)
            stem = file_stem(case, key, energy)
            path = out / "images" / f"{stem}.png"
            _write_png(path, img.pixels)
            _write_png(out / "masks" / f"{stem}.png", mask8)
            written.append(path)
            if dicom:
                from core_model.io.dicom_write import write_mg_dicom

                (out / "dicom" / pid).mkdir(parents=True, exist_ok=True)
                write_mg_dicom(out / "dicom" / pid / f"{stem}.dcm", img.pixels, side=img.side, view=img.view,
                               energy=energy, patient_id=pid, pixel_spacing_mm=img.pixel_spacing_mm, synthetic=True,
                               StudyDescription=f"SYNTHETIC phantom study {case.patient_id}"[:64])
    return written


def write_dataset(out_dir: str | Path, n: int, seed: int, size: tuple[int, int] = DEFAULT_SIZE, dicom: bool = False,
                  benign_fraction: float = 0.5, config: PhantomConfig | None = None, progress=None,
                  first_id: int = 0) -> Path:
    """Write ``n`` synthetic studies in the CDD-CESM layout and return ``out_dir``.

    ``out_dir/images/P{id}_{L|R}_{DM|CM}_{CC|MLO}.png`` (16-bit PNG, 12 bits
    used), ``out_dir/masks/<same>.png`` (0/255), ``out_dir/labels.csv`` in the
    CDD-CESM annotations format, ``out_dir/lesions.csv`` (geometry ground
    truth), and with ``dicom`` also ``out_dir/dicom/P{id}/*.dcm``. Exactly
    ``round(n * benign_fraction)`` cases are benign. ``progress(done, total)``
    is called after each case.
    """
    if n < 1:
        raise NafvError(f"the number of phantom studies must be at least 1, not {n}")
    if not 0.0 <= benign_fraction <= 1.0:
        raise NafvError(f"the benign fraction must be between 0 and 1, not {benign_fraction}")
    if first_id < 0 or first_id + n > 99999:
        raise NafvError("phantom study numbers must lie in 0..99999 (patient ids P900000..P999999)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_benign = int(round(n * benign_fraction))
    labels = np.array(["benign"] * n_benign + ["malignant"] * (n - n_benign))
    np.random.default_rng(np.random.SeedSequence([int(seed), 2**31 - 1])).shuffle(labels)
    label_rows, lesion_rows = [], []
    for i in range(n):
        case = generate_case(case_seed(seed, i), size=size, label=str(labels[i]), config=config,
                             patient_number=first_id + i)
        write_case(case, out, dicom=dicom)
        label_rows += _label_rows(case)
        lesion_rows += _lesion_rows(case)
        if progress is not None:
            progress(i + 1, n)
    for name, columns, rows in (("labels.csv", LABEL_COLUMNS, label_rows), ("lesions.csv", LESION_COLUMNS, lesion_rows)):
        with open(out / name, "w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=columns)
            wr.writeheader()
            wr.writerows(rows)
    (out / "README.txt").write_text(
        f"{SYNTHETIC_NOTICE}.\n\n{n} synthetic four-view CEM studies written by core_model.synth.phantom "
        f"(seed {seed}, size {size[0]}x{size[1]}, benign fraction {benign_fraction}).\n"
        "images/: P{id}_{L|R}_{DM|CM}_{CC|MLO}.png, DM = low energy, CM = recombined; 16-bit PNG, 12 bits stored.\n"
        "masks/: lesion masks, 0/255. labels.csv: CDD-CESM annotation columns. lesions.csv: lesion geometry.\n",
        encoding="utf-8")
    return out
