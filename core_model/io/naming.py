"""File-name conventions that carry side, view and energy.

The CDD-CESM collection names files ``P{id}_{L|R}_{DM|CM}_{CC|MLO}`` (DM = low
energy, CM = recombined/subtracted). Plain image folders use looser names such
as ``left_cc_le.png`` or ``R-MLO-recombined.tif``; :func:`parse_loose_name`
reads those. CBIS-DDSM and similar archives put side and view in the patient
id (``Mass-Test_P_00173_LEFT_CC``); :func:`slot_hints` reads those words and
:func:`patient_without_view` gives the patient id without them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CDD_CESM_RE = re.compile(r"^P(?P<pid>\d+)_(?P<side>[LR])_(?P<kind>DM|CM)_(?P<view>CC|MLO)$", re.IGNORECASE)
CDD_ENERGY = {"DM": "le", "CM": "rc"}


@dataclass(frozen=True)
class NameInfo:
    patient_id: str | None
    side: str
    view: str
    energy: str
    energy_assumed: bool = False  # no energy word in the name: a single-energy mammogram, shown as low energy


def parse_cdd_cesm_name(name: str | Path) -> NameInfo | None:
    stem = Path(name).stem.strip()
    m = CDD_CESM_RE.match(stem)
    if not m:
        return None
    return NameInfo(
        patient_id=f"P{int(m['pid'])}",
        side=m["side"].upper(),
        view=m["view"].upper(),
        energy=CDD_ENERGY[m["kind"].upper()],
    )


_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_SIDE_TOKENS = {"l": "L", "left": "L", "lt": "L", "r": "R", "right": "R", "rt": "R"}
_VIEW_TOKENS = {"cc": "CC", "xccl": "CC", "xccm": "CC", "mlo": "MLO"}
_ENERGY_TOKENS = {
    "le": "le", "low": "le", "lowenergy": "le", "dm": "le",
    "rc": "rc", "recombined": "rc", "subtracted": "rc", "sub": "rc", "cm": "rc", "cesm": "rc",
}
_COMPACT_RE = re.compile(r"^(?P<side>[LR])(?P<view>CC|MLO)$", re.IGNORECASE)


def parse_loose_name(name: str | Path, assume_le: bool = False) -> NameInfo | None:
    """Side, view and energy from tokens of a file name, or None if any is missing or ambiguous.

    With ``assume_le``, a name that gives side and view but no energy
    (``L-CC.png``: digital mammography, no contrast) is read as low energy,
    with ``energy_assumed`` set so the loader can say so.
    """
    info = parse_cdd_cesm_name(name)
    if info is not None:
        return info
    stem = Path(name).stem
    sides, views, energies = slot_hints(stem)
    # A lone "low" in a file name ("L_CC_low.png") means low energy.
    if "le" not in energies and "low" in (t.lower() for t in _TOKEN_SPLIT.split(stem)):
        energies.add("le")
    assumed = assume_le and not energies
    if assumed:
        energies = {"le"}
    if len(sides) != 1 or len(views) != 1 or len(energies) != 1:
        return None
    return NameInfo(patient_id=None, side=sides.pop(), view=views.pop(), energy=energies.pop(),
                    energy_assumed=assumed)


_TEXT_VIEW_RE = {
    "CC": re.compile(r"cranio[\s_-]*caudal", re.IGNORECASE),
    "MLO": re.compile(r"medio[\s_-]*lateral[\s_-]*oblique", re.IGNORECASE),
}


def slot_hints(text: str) -> tuple[set[str], set[str], set[str]]:
    """Every side, view and energy that the words of ``text`` name (each set may be empty or hold several).

    Used for free text such as a DICOM SeriesDescription ("L CC", "RMLO low energy"),
    where any one of the three may be absent.
    """
    tokens = [t.lower() for t in _TOKEN_SPLIT.split(text) if t]
    joined = [a + b for a, b in zip(tokens, tokens[1:]) if a + b in _ENERGY_TOKENS]
    sides, views, energies = set(), set(), set()
    for t in tokens + joined:
        if t in _SIDE_TOKENS:
            sides.add(_SIDE_TOKENS[t])
        if t in _VIEW_TOKENS:
            views.add(_VIEW_TOKENS[t])
        if t in _ENERGY_TOKENS:
            energies.add(_ENERGY_TOKENS[t])
        m = _COMPACT_RE.match(t)
        if m:
            sides.add(m["side"].upper())
            views.add(m["view"].upper())
    for view, rx in _TEXT_VIEW_RE.items():
        if rx.search(text):
            views.add(view)
    return sides, views, energies


# CBIS-DDSM names each image's patient id after its slot: Mass-Test_P_00173_LEFT_CC (ROI masks add _1, _2).
_ID_SLOT_SUFFIX = re.compile(r"^(?P<patient>.+?)[\s_-]+(?:LEFT|RIGHT|L|R)[\s_-]*(?:CC|MLO)(?:[\s_-]+\d+)?$",
                             re.IGNORECASE)


def patient_without_view(patient_id: str) -> str:
    """``patient_id`` without a trailing side and view (``Mass-Test_P_00173_LEFT_CC`` -> ``Mass-Test_P_00173``).

    Archives that name each image's patient id after its slot would otherwise
    split one examination into four patients.
    """
    m = _ID_SLOT_SUFFIX.match(patient_id.strip())
    return m["patient"] if m else patient_id
