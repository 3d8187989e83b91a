"""BI-RADS lexicon terms the reader records: per finding (type, shape, margin, internal enhancement)
and per breast (background parenchymal enhancement, BPE).

Terms of the ACR BI-RADS mammography lexicon, with the contrast-enhanced
mammography supplement's internal-enhancement and BPE terms. Stored as the
lower-case words below; a report prints them as they are.
"""

from __future__ import annotations

FINDING_TERMS: dict[str, tuple[str, ...]] = {
    "type": ("mass", "non-mass enhancement", "asymmetry", "architectural distortion", "calcifications"),
    "shape": ("oval", "round", "irregular"),
    "margin": ("circumscribed", "obscured", "microlobulated", "indistinct", "spiculated"),
    "internal_enhancement": ("homogeneous", "heterogeneous", "rim enhancement", "no enhancement"),
}
FIELD_NAMES = {"type": "type", "shape": "shape", "margin": "margin", "internal_enhancement": "internal enhancement"}
BPE = ("minimal", "mild", "moderate", "marked")


def check_term(field: str, value: str | None) -> str | None:
    """``value`` as stored (None clears it); ValueError naming the allowed terms otherwise."""
    if field not in FINDING_TERMS:
        raise ValueError(f"unknown finding descriptor {field!r}; one of {', '.join(FINDING_TERMS)}")
    if value in (None, ""):
        return None
    v = str(value).strip().lower()
    if v not in FINDING_TERMS[field]:
        raise ValueError(f"{FIELD_NAMES[field]} must be one of {', '.join(FINDING_TERMS[field])}, not {value!r}")
    return v
