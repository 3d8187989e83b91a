"""BI-RADS lexicon terms the reader records: per finding, the descriptors its type takes, and per breast
the background parenchymal enhancement (BPE).

Source: ACR BI-RADS Atlas, 5th edition (2013), mammography lexicon (masses:
shape, margin, density; calcifications: typically benign and suspicious
morphology, distribution; asymmetries; architectural distortion), and the ACR
BI-RADS contrast-enhanced mammography (CEM) supplement (2022) for what is seen
on the recombined images: mass internal enhancement, non-mass enhancement
distribution and internal enhancement pattern, whether a finding seen on the
low-energy image enhances (calcifications, asymmetry, architectural
distortion: present or absent), and BPE.

One table, :data:`DESCRIPTORS`, says which fields each finding type takes and
their terms; the lexicon does not describe calcifications by shape or margin,
nor a mass by distribution, so :func:`check_term` refuses those. Kept as the
project adds it, not from the lexicon: "no enhancement" among a mass's internal
enhancement terms (the reader's record that the recombined image shows none). Terms are stored as the lower-case words below; a report prints them as
they are.

Reviews written before the descriptors depended on the type (shape, margin and
internal enhancement offered for every type, or set with no type) load as they
are: a stored term the finding's type does not take is kept in the file and
reported by :func:`stray_terms`, never mapped to another term or type, because
the file is the reader's record and a mapping would put words in the reader's
mouth (an untyped "irregular shape" does not say the finding is a mass).
"""

from __future__ import annotations

from typing import Mapping

TYPES = ("mass", "non-mass enhancement", "asymmetry", "architectural distortion", "calcifications")

CALCIFICATIONS_BENIGN = ("skin", "vascular", "coarse or popcorn-like", "large rod-like", "round", "rim",
                         "dystrophic", "milk of calcium", "suture")
CALCIFICATIONS_SUSPICIOUS = ("amorphous", "coarse heterogeneous", "fine pleomorphic",
                             "fine linear or fine-linear branching")

# Findings seen on the low-energy image (calcifications, asymmetry, distortion) are described on CEM by
# whether the recombined image shows enhancement there, not by an internal pattern.
ENHANCEMENT = ("present", "absent")

# finding type -> the fields it takes (in the order a reader fills them) -> their terms
DESCRIPTORS: dict[str, dict[str, tuple[str, ...]]] = {
    "mass": {
        "shape": ("oval", "round", "irregular"),
        "margin": ("circumscribed", "obscured", "microlobulated", "indistinct", "spiculated"),
        "mass_density": ("high", "equal", "low", "fat-containing"),
        "internal_enhancement": ("homogeneous", "heterogeneous", "rim enhancement", "no enhancement"),
    },
    "non-mass enhancement": {
        "distribution": ("focal", "linear", "segmental", "regional", "multiple regions", "diffuse"),
        "internal_enhancement": ("homogeneous", "heterogeneous", "clumped", "clustered ring"),
    },
    "calcifications": {
        "morphology": CALCIFICATIONS_BENIGN + CALCIFICATIONS_SUSPICIOUS,
        "distribution": ("diffuse", "regional", "grouped", "linear", "segmental"),
        "enhancement": ENHANCEMENT,
    },
    "asymmetry": {
        "asymmetry_kind": ("asymmetry", "global asymmetry", "focal asymmetry", "developing asymmetry"),
        "enhancement": ENHANCEMENT,
    },
    "architectural distortion": {
        "enhancement": ENHANCEMENT,
    },
}

# every field, in the order the findings panel shows them; the words a reader reads for each
FIELD_NAMES = {"type": "type", "shape": "shape", "margin": "margin", "mass_density": "density",
               "asymmetry_kind": "kind of asymmetry", "morphology": "morphology", "distribution": "distribution",
               "internal_enhancement": "internal enhancement", "enhancement": "enhancement"}
FIELDS = tuple(FIELD_NAMES)


def _all_terms(name: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for fields in DESCRIPTORS.values():
        seen.update(dict.fromkeys(fields.get(name, ())))
    return tuple(seen)


# field -> every term it has for any type (what a file may hold, whatever the type)
FINDING_TERMS: dict[str, tuple[str, ...]] = {"type": TYPES, **{n: _all_terms(n) for n in FIELDS if n != "type"}}
BPE = ("minimal", "mild", "moderate", "marked")


def fields_of(finding_type: str | None) -> tuple[str, ...]:
    """The descriptor fields a finding of this type takes, besides its type (none without a type)."""
    return tuple(DESCRIPTORS.get(finding_type or "", {}))


def terms_of(name: str, finding_type: str | None) -> tuple[str, ...]:
    """The terms of field ``name`` for this type; () when the type does not take the field."""
    if name == "type":
        return TYPES
    return DESCRIPTORS.get(finding_type or "", {}).get(name, ())


def _words(names) -> str:
    names = [FIELD_NAMES[n] for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def known_term(name: str, value: str | None) -> str | None:
    """``value`` as stored when it is a term of field ``name`` for some type (None clears); ValueError otherwise."""
    if name not in FINDING_TERMS:
        raise ValueError(f"unknown finding descriptor {name!r}; one of {', '.join(FIELD_NAMES.values())}")
    if value in (None, ""):
        return None
    v = str(value).strip().lower()
    if v not in FINDING_TERMS[name]:
        raise ValueError(f"{FIELD_NAMES[name]} must be one of {', '.join(FINDING_TERMS[name])}, not {value!r}")
    return v


def check_term(name: str, value: str | None, type: str | None = None) -> str | None:  # noqa: A002 - the lexicon's word
    """``value`` as stored (None clears it) for a finding of ``type``; ValueError in words otherwise.

    A field the type does not take is refused whatever the value; clearing is
    always allowed (it removes a term an older review stored)."""
    v = known_term(name, value)
    if v is None or name == "type":
        return v
    if type is None:
        raise ValueError(f"choose the finding's type before its {FIELD_NAMES[name]}: "
                         "which descriptors apply depends on it")
    if type not in DESCRIPTORS:
        raise ValueError(f"{type!r} is not a finding type; one of {', '.join(TYPES)}")
    allowed = terms_of(name, type)
    if not allowed:
        raise ValueError(f"the BI-RADS lexicon gives {type} no {FIELD_NAMES[name]}; "
                         f"{type} is described by {_words(fields_of(type))}")
    if v not in allowed:
        raise ValueError(f"{FIELD_NAMES[name]} of {type} must be one of {', '.join(allowed)}, not {value!r}")
    return v


def stray_terms(descriptors: Mapping[str, str]) -> dict[str, str]:
    """The stored terms the finding's type does not take (from an older review): kept, flagged."""
    kind = descriptors.get("type")
    return {n: v for n, v in descriptors.items() if n != "type" and v not in terms_of(n, kind)}


def retype(descriptors: Mapping[str, str], new_type: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(kept, dropped): the descriptors after the type becomes ``new_type``; only terms it takes stay."""
    old_type = descriptors.get("type")
    kept = {} if new_type is None else {"type": new_type}
    dropped = {}
    for n, v in descriptors.items():
        if n == "type":
            continue
        # the same word under the same field can mean another thing for another type (a segmental
        # calcification distribution is not a segmental non-mass enhancement): keep a term only where
        # the field is the same concept, i.e. offers the same terms (or the finding had no type yet)
        same_concept = old_type is None or terms_of(n, old_type) == terms_of(n, new_type)
        if same_concept and v in terms_of(n, new_type):
            kept[n] = v
        else:
            dropped[n] = v
    return kept, dropped


def describe(descriptors: Mapping[str, str]) -> list[str]:
    """The terms as report words, in the panel's order: "oval shape", "fine pleomorphic morphology"."""
    out = []
    for n in FIELDS:
        v = descriptors.get(n)
        if not v:
            continue
        if n == "asymmetry_kind" and v == descriptors.get("type"):
            continue  # "asymmetry" once, not "asymmetry, asymmetry"
        if n == "enhancement":
            out.append("enhancing on the recombined image" if v == "present" else "no enhancement")
        elif n in ("type", "asymmetry_kind") or n == "internal_enhancement" and "enhancement" in v \
                or n == "mass_density" and v == "fat-containing":
            out.append(v)
        elif n == "morphology":
            group = "suspicious" if v in CALCIFICATIONS_SUSPICIOUS else "typically benign"
            out.append(f"{v} morphology ({group})")
        else:
            out.append(f"{v} {FIELD_NAMES[n]}")
    return out
