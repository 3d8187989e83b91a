"""BI-RADS assessment categories in words: the name and the standard management recommendation.

From the ACR BI-RADS Atlas (5th edition, mammography); the same categories
are used for contrast-enhanced mammography. A report prints a category with
its name ("4B — Suspicious (moderate suspicion)"), never a bare number, and
the overall impression takes the category that most needs action.
"""

from __future__ import annotations

NAMES = {
    "0": "Incomplete: needs additional imaging evaluation",
    "1": "Negative",
    "2": "Benign",
    "3": "Probably benign",
    "4": "Suspicious",
    "4A": "Suspicious (low suspicion for malignancy)",
    "4B": "Suspicious (moderate suspicion for malignancy)",
    "4C": "Suspicious (high suspicion for malignancy)",
    "5": "Highly suggestive of malignancy",
    "6": "Known biopsy-proven malignancy",
}

RECOMMENDATIONS = {
    "0": "Recall for additional imaging and/or comparison with prior examinations",
    "1": "Routine screening",
    "2": "Routine screening",
    "3": "Short-interval (6-month) follow-up or continued surveillance",
    "4": "Tissue diagnosis",
    "4A": "Tissue diagnosis",
    "4B": "Tissue diagnosis",
    "4C": "Tissue diagnosis",
    "5": "Tissue diagnosis",
    "6": "Surgical excision when clinically appropriate",
}

# Which category decides the overall impression: the Atlas's order of precedence
# (a category needing action outranks one that does not; 0 outranks 1-3 and 6).
_PRECEDENCE = ["1", "2", "3", "6", "0", "4", "4A", "4B", "4C", "5"]

DENSITY_NAMES = {
    "a": "almost entirely fatty",
    "b": "scattered areas of fibroglandular density",
    "c": "heterogeneously dense, which may obscure small masses",
    "d": "extremely dense, which lowers the sensitivity of mammography",
}


def category_text(category: str | None) -> str:
    """'4B — Suspicious (moderate suspicion for malignancy)'; 'not given' when the reader set none."""
    if not category:
        return "not given"
    return f"{category} — {NAMES.get(category, 'unknown category')}"


def recommendation(category: str | None) -> str:
    return RECOMMENDATIONS.get(category or "", "")


def rank(category: str | None) -> int:
    """Precedence of ``category`` for the overall impression; -1 when none was given."""
    return _PRECEDENCE.index(category) if category in _PRECEDENCE else -1


def overall(categories: list[str | None]) -> str | None:
    """The category that decides the impression of a study (None when the reader gave none)."""
    given = [c for c in categories if c in _PRECEDENCE]
    return max(given, key=_PRECEDENCE.index) if given else None


def density_text(density: str | None) -> str:
    if not density:
        return "not given"
    return f"ACR {density.upper()} — {DENSITY_NAMES.get(density, '')}".rstrip(" —")
