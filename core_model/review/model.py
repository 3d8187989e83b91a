"""The reader's review of one study: findings, their states and links, and the assessment.

Qt-free and numpy-light so the viewer, the CLI and the tests share it. The AI
proposes findings (one per lesion contour of an :class:`~core_model.domain.analysis.Analysis`);
the reader accepts, rejects or edits them, draws the ones it missed, links the
CC and MLO contours of one lesion, and records a per-breast assessment. The
AI's probability is kept beside the reader's call (``Review.ai``), never in
its place: no reader field is ever filled from the model.

Every change is a small command object with ``apply`` / ``undo`` so the GUI's
``QUndoStack`` can wrap it; :class:`ReviewSession` applies commands, keeps its
own undo/redo stacks for Qt-free use, and saves after every change through a
store (see :mod:`core_model.review.store`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from core_model.domain.errors import NafvError
from core_model.domain.study import SIDES, VIEW_KEYS, split_view_key
from core_model.imaging.geometry import max_diameter, polygon_area
from core_model.review import signoff
from core_model.review.lexicon import BPE, FIELD_NAMES, check_term, describe, known_term, retype
from core_model.review.schema import BIRADS, DENSITIES, ORIGINS, SCHEMA_VERSION, STATES, check_review

PROPOSED, ACCEPTED, EDITED, REJECTED = STATES
# States whose contour the reader stands behind: the only ones exported as findings.
CONFIRMED = (ACCEPTED, EDITED)
ASSESSMENT_FIELDS = ("birads", "density", "text", "bpe")


class ReviewError(NafvError):
    """A review edit that cannot be made (unknown finding, invalid category, ...)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


Point = tuple[float, float]


def _as_polygon(points: Iterable[Iterable[float]]) -> list[Point]:
    poly = [(float(p[0]), float(p[1])) for p in points]
    if len(poly) < 3:
        raise ReviewError(f"a contour needs at least 3 points, got {len(poly)}")
    if not all(math.isfinite(v) for p in poly for v in p):
        raise ReviewError("a contour point is not a finite number")
    return poly


@dataclass
class Finding:
    """One contour on one view. ``id`` is stable for the life of the review."""

    id: str
    key: str  # view key, "L_CC", ...
    polygon: list[Point]  # (x, y) in original pixels of that view, closed implicitly
    state: str = PROPOSED
    origin: str = "ai"
    ai_score: float | None = None  # mean segmentation probability inside the AI contour
    ai_polygon: list[Point] | None = None  # the AI's contour as proposed, kept for audit
    link: str | None = None  # id of the same lesion's finding on the other view of the breast
    # The reader's BI-RADS lexicon terms (core_model.review.lexicon.DESCRIPTORS); only the ones set. A term
    # an older review stored that the type does not take stays here (lexicon.stray_terms flags it).
    descriptors: dict[str, str] = field(default_factory=dict)

    @property
    def side(self) -> str:
        return split_view_key(self.key)[0]

    @property
    def view(self) -> str:
        return split_view_key(self.key)[1]

    @property
    def confirmed(self) -> bool:
        return self.state in CONFIRMED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "polygon": [list(p) for p in self.polygon],
            "state": self.state,
            "origin": self.origin,
            "ai_score": self.ai_score,
            "ai_polygon": None if self.ai_polygon is None else [list(p) for p in self.ai_polygon],
            "link": self.link,
            "descriptors": dict(self.descriptors),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        f = cls(
            id=str(d["id"]),
            key=str(d["key"]),
            polygon=[(float(x), float(y)) for x, y in d["polygon"]],
            state=str(d["state"]),
            origin=str(d.get("origin", "ai")),
            ai_score=None if d.get("ai_score") is None else float(d["ai_score"]),
            ai_polygon=None if d.get("ai_polygon") is None else [(float(x), float(y)) for x, y in d["ai_polygon"]],
            link=d.get("link"),
            descriptors={str(k): str(v) for k, v in (d.get("descriptors") or {}).items()},
        )
        split_view_key(f.key)
        if f.state not in STATES or f.origin not in ORIGINS:
            raise ValueError(f"finding {f.id}: invalid state {f.state!r} or origin {f.origin!r}")
        return f


@dataclass
class BreastAssessment:
    """The reader's call for one breast; every field empty until the reader sets it."""

    birads: str | None = None
    density: str | None = None  # breast composition, ACR a-d
    text: str = ""
    bpe: str | None = None  # background parenchymal enhancement on the recombined images

    def to_dict(self) -> dict[str, Any]:
        return {"birads": self.birads, "density": self.density, "text": self.text, "bpe": self.bpe}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BreastAssessment":
        return cls(birads=d.get("birads"), density=d.get("density"), text=str(d.get("text", "")), bpe=d.get("bpe"))


# assessment field -> (how a typed value is written, the allowed values, what the reader is told)
_CHOICES: dict[str, tuple[Any, Any, str]] = {
    "birads": (str.upper, BIRADS, f"BI-RADS category must be one of {', '.join(BIRADS)}"),
    "density": (str.lower, DENSITIES, "ACR breast density must be one of a, b, c, d"),
    "bpe": (str.lower, BPE, f"background parenchymal enhancement must be one of {', '.join(BPE)}"),
}


def validate_assessment(field_name: str, value: Any) -> Any:
    if field_name == "text":
        return "" if value is None else str(value)
    if field_name not in _CHOICES:
        raise ReviewError(f"unknown assessment field {field_name!r}")
    if value is None:
        return None
    case, allowed, rule = _CHOICES[field_name]
    v = case(str(value).strip())
    if v not in allowed:
        raise ReviewError(f"{rule}, not {value!r}")
    return v


@dataclass
class Review:
    """Everything the reader decided about one study, plus what the AI proposed."""

    identity: dict[str, Any]  # see review_store.study_identity: patient_id, study_id, digest, images, key
    findings: dict[str, Finding] = field(default_factory=dict)
    assessments: dict[str, BreastAssessment] = field(default_factory=lambda: {s: BreastAssessment() for s in SIDES})
    reader: str = ""
    # What the AI said, kept apart from the reader's fields: model identities,
    # affected side, malignancy probability, notice.
    ai: dict[str, Any] = field(default_factory=dict)
    # Per view key: {"shape": [rows, cols], "pixel_spacing_mm": [row, col] | None}
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Images the files gave no slot and the reader placed: SOP Instance UID -> {"key": "L_MLO", "energy": "le"}.
    # Absent from files written before it existed: nothing placed.
    assignments: dict[str, dict[str, str]] = field(default_factory=dict)
    # Finalised by whom and when, and the addenda after it (see core_model.review.signoff).
    signoff: dict[str, Any] = field(default_factory=signoff.empty_signoff)
    next_number: int = 1
    revision: int = 0
    created: str = field(default_factory=_now)
    modified: str = field(default_factory=_now)
    # Said when the review was restored (e.g. the images changed since); not saved.
    restore_warnings: list[str] = field(default_factory=list, compare=False, repr=False)
    # The file's content when this copy last agreed with it (loaded or saved), None for a
    # review never on disk: a save compares it with the disk to find another viewer's changes.
    base: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    # What the last save merged in from another viewer, in words ("" when nothing), and the
    # ids of this copy's new findings it had to renumber because the other viewer took them.
    merge_note: str = field(default="", compare=False, repr=False)
    renamed_ids: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------ queries
    def finding(self, fid: str) -> Finding:
        try:
            return self.findings[fid]
        except KeyError:
            raise ReviewError(f"no finding {fid!r} in this review") from None

    def on_view(self, key: str) -> list[Finding]:
        return [f for f in self.findings.values() if f.key == key]

    def confirmed(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.confirmed]

    def pixel_spacing(self, key: str) -> tuple[float, float] | None:
        sp = self.images.get(key, {}).get("pixel_spacing_mm")
        return None if sp is None else (float(sp[0]), float(sp[1]))

    @property
    def not_for_clinical_use(self) -> bool:
        return bool(self.ai.get("not_for_clinical_use", True))

    def new_id(self) -> str:
        fid = f"F{self.next_number}"
        self.next_number += 1
        return fid

    def touch(self) -> None:
        self.revision += 1
        self.modified = _now()

    # ---------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "nafv-review",
            "schema_version": SCHEMA_VERSION,
            "identity": dict(self.identity),
            "reader": self.reader,
            "revision": self.revision,
            "created": self.created,
            "modified": self.modified,
            "next_number": self.next_number,
            "ai": copy.deepcopy(self.ai),
            "images": copy.deepcopy(self.images),
            "assignments": copy.deepcopy(self.assignments),
            "assessments": {s: a.to_dict() for s, a in self.assessments.items()},
            "findings": [f.to_dict() for f in self.findings.values()],
            "signoff": copy.deepcopy(self.signoff),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Review":
        """The review a file holds; :class:`~core_model.review.schema.ReviewSchemaError` when it is damaged."""
        check_review(d)
        findings = [Finding.from_dict(x) for x in d.get("findings", [])]
        r = cls(
            identity=dict(d["identity"]),
            findings={f.id: f for f in findings},
            assessments={s: BreastAssessment.from_dict(d.get("assessments", {}).get(s, {})) for s in SIDES},
            reader=str(d.get("reader", "")),
            ai=dict(d.get("ai", {})),
            images=dict(d.get("images", {})),
            assignments={str(u): dict(v) for u, v in (d.get("assignments") or {}).items()},
            next_number=int(d.get("next_number", len(findings) + 1)),
            revision=int(d.get("revision", 0)),
            created=str(d.get("created", "")),
            modified=str(d.get("modified", "")),
            signoff=copy.deepcopy(d.get("signoff") or signoff.empty_signoff()),
        )
        return r

    def adopt(self, other: "Review") -> None:
        """Take ``other``'s saved content in place, so every holder of this object sees it."""
        for name in ("identity", "findings", "assessments", "reader", "ai", "images", "assignments", "next_number",
                     "revision", "created", "modified", "signoff"):
            setattr(self, name, getattr(other, name))


def image_geometry(study: Any) -> dict[str, dict[str, Any]]:
    """Per view key: image shape and pixel spacing, from whichever energy's file gives a spacing
    (one vendor's recombined image may carry it while its low-energy file does not)."""
    images: dict[str, dict[str, Any]] = {}
    for key in VIEW_KEYS:
        imgs = [i for i in (study.get(key, "le"), study.get(key, "rc")) if i is not None]
        if not imgs:
            continue
        img = next((i for i in imgs if i.pixel_spacing_mm is not None and i.shape == imgs[0].shape), imgs[0])
        sp = img.pixel_spacing_mm
        images[key] = {"shape": list(img.shape), "pixel_spacing_mm": None if sp is None else [float(sp[0]), float(sp[1])]}
    return images


def with_study_spacing(review: Review, study: Any) -> Review:
    """``review`` as exports should measure it: a view whose saved entry has no pixel spacing takes the
    study's, when the study's image of that view has the same size (a review saved from a copy of the
    study that lost its spacing, or before spacing was read, must not print sizes in pixels forever).
    A shallow copy; the review itself is not changed."""
    fresh = image_geometry(study)
    images = copy.deepcopy(review.images)
    changed = False
    for key, geo in fresh.items():
        saved = images.get(key)
        if geo["pixel_spacing_mm"] is None or (saved is not None and saved.get("pixel_spacing_mm") is not None):
            continue
        if saved is None or list(saved.get("shape", [])) == geo["shape"]:
            images[key] = geo
            changed = True
    if not changed:
        return review
    out = copy.copy(review)
    out.images = images
    return out


def review_from_analysis(analysis: Any, study: Any, identity: dict[str, str]) -> Review:
    """A fresh review: every AI lesion becomes a *proposed* finding, nothing decided yet.

    ``analysis`` is an :class:`~core_model.domain.analysis.Analysis` (or None when no
    model ran: the reader then draws findings alone); ``study`` gives image
    shapes and pixel spacing so sizes in mm survive without the images.
    """
    images = image_geometry(study)
    ai: dict[str, Any] = {"ran": analysis is not None, "not_for_clinical_use": True}
    review = Review(identity=dict(identity), images=images, ai=ai)
    if analysis is None:
        return review
    ai.update(
        models=copy.deepcopy(analysis.models),
        affected_side=analysis.affected_side,
        affected_side_source=analysis.affected_side_source,
        lesion_found=getattr(analysis, "lesion_found", None),
        malignancy_probability=analysis.malignancy_probability,
        classifier_mode=analysis.classifier_mode,
        not_for_clinical_use=bool(analysis.not_for_clinical_use),
        warnings=list(analysis.warnings),
    )
    made: dict[str, str] = {}  # "<view key>:<index>" -> finding id
    for key in VIEW_KEYS:
        vr = analysis.views.get(key)
        if vr is None:
            continue
        for i, lesion in enumerate(vr.lesions):
            poly = _as_polygon(lesion.polygon.tolist())
            fid = review.new_id()
            made[f"{key}:{i}"] = fid
            review.findings[fid] = Finding(
                id=fid, key=key, polygon=poly, state=PROPOSED, origin="ai", ai_polygon=list(poly),
                ai_score=float(lesion.score) if math.isfinite(lesion.score) else None,
            )
    # the CC/MLO pairs the analysis proposed (core_model.imaging.location) start linked; the reader can change them
    for key in VIEW_KEYS:
        vr = analysis.views.get(key)
        for i, lesion in enumerate(vr.lesions if vr is not None else []):
            other = made.get(getattr(lesion, "pair", None) or "")
            if other is not None:
                review.findings[made[f"{key}:{i}"]].link = other
    return review


def add_ai_findings(review: Review, fresh: Review) -> None:
    """Add the AI proposals of ``fresh`` (a :func:`review_from_analysis`) to ``review`` under new ids,
    beside whatever the reader already drew; the proposed CC/MLO links follow their findings."""
    renamed: dict[str, str] = {}
    for f in fresh.findings.values():
        renamed[f.id] = review.new_id()
    for old, f in list(fresh.findings.items()):
        f.id, f.link = renamed[old], (renamed.get(f.link) if f.link else None)
        review.findings[f.id] = f


def finding_size_mm(review: Review, finding: Finding) -> tuple[float, float] | None:
    """(longest diameter mm, area mm^2), or None when the view has no pixel spacing."""
    sp = review.pixel_spacing(finding.key)
    if sp is None:
        return None
    return max_diameter(finding.polygon, sp), polygon_area(finding.polygon, sp)


# ------------------------------------------------------------------ commands
class Command:
    """One undoable change. ``apply`` may be called again after ``undo`` (redo)."""

    text = "change"

    def apply(self, review: Review) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def undo(self, review: Review) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def rename_ids(self, renamed: dict[str, str]) -> None:
        """Follow findings renumbered by a merge, so undo and redo still find them."""
        for name in ("fid", "a", "b"):
            old = getattr(self, name, None)
            if old in renamed:
                setattr(self, name, renamed[old])


@dataclass
class SetState(Command):
    fid: str
    state: str
    _old: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ReviewError(f"unknown finding state {self.state!r}")
        self.text = {ACCEPTED: "accept", REJECTED: "reject"}.get(self.state, f"mark {self.state}") + f" {self.fid}"

    def apply(self, review: Review) -> None:
        f = review.finding(self.fid)
        self._old = f.state
        f.state = self.state
        # Accepting an AI finding whose contour the reader changed confirms the
        # reader's contour: it stays "edited", so reports never call it the AI's.
        if self.state == ACCEPTED and f.origin == "ai" and f.ai_polygon is not None and \
                [tuple(p) for p in f.polygon] != [tuple(p) for p in f.ai_polygon]:
            f.state = EDITED

    def undo(self, review: Review) -> None:
        review.finding(self.fid).state = self._old  # type: ignore[assignment]


def accept(fid: str) -> SetState:
    return SetState(fid, ACCEPTED)


def reject(fid: str) -> SetState:
    return SetState(fid, REJECTED)


class _PolygonEdit(Command):
    """Base of contour edits: remembers the old contour and state for undo.

    An AI finding whose contour the reader changes becomes *edited*; a
    reader-drawn finding keeps its state (it is the reader's own contour).
    """

    fid: str

    def new_polygon(self, old: list[Point]) -> list[Point]:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, review: Review) -> None:
        f = review.finding(self.fid)
        new = _as_polygon(self.new_polygon(list(f.polygon)))
        self._old_poly, self._old_state = list(f.polygon), f.state
        f.polygon = new
        if f.origin == "ai":
            f.state = EDITED

    def undo(self, review: Review) -> None:
        f = review.finding(self.fid)
        f.polygon, f.state = self._old_poly, self._old_state


def _check_index(poly: list[Point], index: int, insert: bool = False) -> None:
    hi = len(poly) if insert else len(poly) - 1
    if not 0 <= index <= hi:
        raise ReviewError(f"contour has {len(poly)} points: no vertex {index}")


@dataclass
class _VertexAt(_PolygonEdit):
    """A contour edit that puts point ``xy`` at vertex ``index``."""

    fid: str
    index: int
    xy: Point

    @property
    def point(self) -> Point:
        return float(self.xy[0]), float(self.xy[1])


@dataclass
class MoveVertex(_VertexAt):
    text: str = "move vertex"

    def new_polygon(self, old: list[Point]) -> list[Point]:
        _check_index(old, self.index)
        old[self.index] = self.point
        return old


@dataclass
class InsertVertex(_VertexAt):
    """Insert ``xy`` before vertex ``index`` (``index == len`` appends)."""

    text: str = "add vertex"

    def new_polygon(self, old: list[Point]) -> list[Point]:
        _check_index(old, self.index, insert=True)
        old.insert(self.index, self.point)
        return old


@dataclass
class RemoveVertex(_PolygonEdit):
    fid: str
    index: int
    text: str = "remove vertex"

    def new_polygon(self, old: list[Point]) -> list[Point]:
        _check_index(old, self.index)
        if len(old) <= 3:
            raise ReviewError("a contour needs at least 3 points: delete the finding instead")
        del old[self.index]
        return old


@dataclass
class AddFinding(Command):
    """A finding the reader draws (one the AI missed): accepted, origin 'reader'."""

    key: str
    polygon: list[Point]
    text: str = "draw finding"
    fid: str | None = None  # assigned on first apply, kept for redo

    def __post_init__(self) -> None:
        split_view_key(self.key)
        self.polygon = _as_polygon(self.polygon)

    def apply(self, review: Review) -> None:
        if self.fid is None:
            self.fid = review.new_id()
        review.findings[self.fid] = Finding(id=self.fid, key=self.key, polygon=list(self.polygon), state=ACCEPTED, origin="reader")

    def undo(self, review: Review) -> None:
        review.findings.pop(self.fid)  # type: ignore[arg-type]


def _partner(review: Review, f: Finding) -> Finding | None:
    """The other view's contour of the same lesion, when ``f`` is linked and that contour still exists."""
    return review.findings.get(f.link) if f.link else None


@dataclass
class DeleteFinding(Command):
    fid: str
    text: str = "delete finding"

    def apply(self, review: Review) -> None:
        f = review.finding(self.fid)
        order = list(review.findings)
        self._pos, self._saved = order.index(self.fid), copy.deepcopy(f)
        partner = _partner(review, f)
        if partner is not None:
            partner.link = None
        del review.findings[self.fid]

    def undo(self, review: Review) -> None:
        items = list(review.findings.items())
        items.insert(self._pos, (self.fid, copy.deepcopy(self._saved)))
        review.findings.clear()
        review.findings.update(items)
        partner = _partner(review, self._saved)
        if partner is not None:
            partner.link = self.fid


def _set_links(review: Review, links: dict[str, str | None]) -> None:
    for fid, other in links.items():
        if fid in review.findings:
            review.findings[fid].link = other


@dataclass
class Link(Command):
    """Mark two contours as one lesion: same breast, one CC and one MLO."""

    a: str
    b: str
    text: str = "link CC and MLO"

    def apply(self, review: Review) -> None:
        fa, fb = review.finding(self.a), review.finding(self.b)
        if fa.side != fb.side:
            raise ReviewError("only contours of the same breast can be linked")
        if {fa.view, fb.view} != {"CC", "MLO"}:
            raise ReviewError("link a CC contour with an MLO contour of the same breast")
        # one lesion, one description: the pair shares its lexicon terms
        if fa.descriptors and fb.descriptors and fa.descriptors != fb.descriptors:
            raise ReviewError(f"{self.a} and {self.b} are described differently "
                              f"({', '.join(describe(fa.descriptors)) or 'no terms'} vs "
                              f"{', '.join(describe(fb.descriptors)) or 'no terms'}): make them the same, "
                              "or clear one, before linking them as one lesion")
        touched = {self.a, self.b, fa.link, fb.link} - {None}
        self._old = {fid: review.findings[fid].link for fid in touched if fid in review.findings}
        self._old_terms = {self.a: dict(fa.descriptors), self.b: dict(fb.descriptors)}
        for old in (fa.link, fb.link):
            if old and old in review.findings:
                review.findings[old].link = None
        fa.link, fb.link = self.b, self.a
        shared = dict(fa.descriptors or fb.descriptors)
        fa.descriptors, fb.descriptors = dict(shared), dict(shared)

    def undo(self, review: Review) -> None:
        _set_links(review, self._old)
        _set_descriptors(review, getattr(self, "_old_terms", {}))


def _set_descriptors(review: Review, terms_by_id: dict[str, dict[str, str]]) -> None:
    """Put back the lexicon terms an undo restores (findings deleted meanwhile are skipped)."""
    for fid, terms in terms_by_id.items():
        if fid in review.findings:
            review.findings[fid].descriptors = dict(terms)


@dataclass
class Unlink(Command):
    fid: str
    text: str = "unlink"

    def apply(self, review: Review) -> None:
        f = review.finding(self.fid)
        self._old = {self.fid: f.link}
        partner = _partner(review, f)
        if partner is not None:
            self._old[partner.id] = partner.link
            partner.link = None
        f.link = None

    def undo(self, review: Review) -> None:
        _set_links(review, self._old)


@dataclass
class SetAssessment(Command):
    side: str
    field_name: str
    value: Any
    text: str = "assessment"

    def __post_init__(self) -> None:
        self.side = self.side.upper()
        if self.side not in SIDES:
            raise ReviewError(f"breast side must be R or L, not {self.side!r}")
        self.value = validate_assessment(self.field_name, self.value)
        self.text = f"set {self.side} {self.field_name}"

    def apply(self, review: Review) -> None:
        a = review.assessments[self.side]
        self._old = getattr(a, self.field_name)
        setattr(a, self.field_name, self.value)

    def undo(self, review: Review) -> None:
        setattr(review.assessments[self.side], self.field_name, self._old)


@dataclass
class AssignImage(Command):
    """The reader puts an image the files gave no slot onto ``key`` (drag from the unassigned strip).

    Applied to the review and to the open ``study`` together, so undo and redo
    move the image too. The review's identity is recomputed with the image
    hung, so the next open, which hangs it before the review is restored,
    finds the same images and raises no "images changed" warning.
    """

    uid: str
    key: str
    study: Any = field(repr=False, compare=False)
    energy: str | None = None
    text: str = "place image"

    def __post_init__(self) -> None:
        split_view_key(self.key)
        self.text = f"place image on {self.key}"

    def apply(self, review: Review) -> None:
        from core_model.review.store import study_identity  # the store imports this module

        try:
            image = self.study.assign(self.uid, self.key, self.energy)
        except ValueError as err:
            raise ReviewError(str(err)) from None
        self.energy = image.energy
        self._old = (copy.deepcopy(review.identity), review.images.get(self.key))
        review.assignments[self.uid] = {"key": self.key, "energy": image.energy}
        review.identity = study_identity(self.study)
        if self.key not in review.images:
            sp = image.pixel_spacing_mm
            review.images[self.key] = {"shape": list(image.shape),
                                       "pixel_spacing_mm": None if sp is None else [float(sp[0]), float(sp[1])]}

    def undo(self, review: Review) -> None:
        self.study.unassign(self.uid)
        review.assignments.pop(self.uid, None)
        review.identity, images = self._old
        if images is None:
            review.images.pop(self.key, None)


@dataclass
class SetDescriptor(Command):
    """Set (or clear, with None) one lexicon term of a lesion: on the finding and its linked other view.

    The term is checked against the finding's type (a calcification has no
    margin). Setting the type keeps only the terms the new type takes, and
    drops the rest in the same command, so one undo brings them back; the
    command's text names what was dropped. Setting the type it already has
    drops the terms an older review stored that the type does not take.
    """

    fid: str
    field_name: str
    value: str | None
    text: str = "descriptor"

    def __post_init__(self) -> None:
        try:
            # a term of the lexicon; whether this finding's type takes it is checked in apply
            self.value = known_term(self.field_name, self.value)
        except ValueError as err:
            raise ReviewError(str(err)) from None
        self.text = f"set {self.fid} {FIELD_NAMES[self.field_name]}"

    def apply(self, review: Review) -> None:
        f = review.finding(self.fid)
        ids = [self.fid] + ([f.link] if f.link in review.findings else [])
        if self.field_name != "type":
            for i in ids:  # each contour of the lesion against its own type (a merge may have made them differ)
                try:
                    check_term(self.field_name, self.value, review.findings[i].descriptors.get("type"))
                except ValueError as err:
                    where = "" if i == self.fid else f"the linked contour {i}: "
                    raise ReviewError(where + str(err)) from None
        self._old = {i: dict(review.findings[i].descriptors) for i in ids}
        dropped: dict[str, str] = {}
        for i in ids:
            d = review.findings[i].descriptors
            if self.field_name == "type":
                kept, gone = retype(d, self.value)
                review.findings[i].descriptors = kept
                dropped.update(gone)
            elif self.value is None:
                d.pop(self.field_name, None)
            else:
                d[self.field_name] = self.value
        if self.field_name == "type":
            self.text = f"set {self.fid} type to {self.value or 'none'}"
            if dropped:
                self.text += (f"; dropped {', '.join(describe(dropped))} (not "
                              f"{'used without a type' if self.value is None else 'used for ' + self.value})")

    def undo(self, review: Review) -> None:
        _set_descriptors(review, self._old)


@dataclass
class SetReader(Command):
    name: str
    text: str = "reader name"

    def apply(self, review: Review) -> None:
        self._old, review.reader = review.reader, str(self.name).strip()

    def undo(self, review: Review) -> None:
        review.reader = self._old


# ------------------------------------------------------------------ session
class Saver(Protocol):
    def save(self, review: Review) -> Any: ...


Listener = Callable[[Review, Command, str], None]  # (review, command, "do" | "undo" | "redo" | "reload")


class ReviewSession:
    """Applies commands to a review and saves after every one.

    If saving fails, the change is rolled back in memory and the error is
    raised, so what the reader sees is always what is on disk. When the
    error carries the file's content (``err.reload``: another viewer changed
    the same thing), the review takes that content and the undo history,
    which described a review no longer on disk, is dropped; listeners then
    hear ``"reload"`` before the error is raised.

    The GUI can either use :meth:`do` / :meth:`undo` / :meth:`redo` directly or
    wrap each command in a ``QUndoCommand`` whose ``redo``/``undo`` call
    :meth:`apply` / :meth:`revert` (which save but keep no stack).
    """

    def __init__(self, review: Review, store: Saver | None = None):
        self.review = review
        self.store = store
        self._undo: list[Command] = []
        self._redo: list[Command] = []
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _commit(self, cmd: Command, how: str) -> None:
        before = (self.review.revision, self.review.modified)
        self.review.touch()
        if self.store is not None:
            try:
                self.store.save(self.review)
            except Exception as err:
                self.review.revision, self.review.modified = before
                (cmd.undo if how != "undo" else cmd.apply)(self.review)
                if getattr(err, "reload", None) is not None:
                    self.review.adopt(err.reload)
                    self.review.base = getattr(err, "reload_base", None)
                    self._undo.clear()
                    self._redo.clear()
                    self._notify(cmd, "reload")
                raise
            if self.review.renamed_ids:
                cmd.rename_ids(self.review.renamed_ids)
        self._notify(cmd, how)

    def _notify(self, cmd: Command, how: str) -> None:
        for fn in list(self._listeners):
            fn(self.review, cmd, how)

    def apply(self, cmd: Command, how: str = "do") -> None:
        signoff.check_editable(self.review, cmd)  # a finalised review changes only through an addendum
        before = copy.deepcopy(self.review.signoff)
        cmd.apply(self.review)
        signoff.note_change(self.review, cmd, how)
        self._commit_keeping(cmd, how, before)

    def revert(self, cmd: Command) -> None:
        if isinstance(cmd, signoff.SignoffCommand):
            raise signoff.ReviewLockedError("A signature is not withdrawn: open an addendum to change the review.")
        signoff.check_editable(self.review, cmd)
        before = copy.deepcopy(self.review.signoff)
        cmd.undo(self.review)
        signoff.note_change(self.review, cmd, "undo")
        self._commit_keeping(cmd, "undo", before)

    def _commit_keeping(self, cmd: Command, how: str, signoff_before: dict[str, Any]) -> None:
        try:
            self._commit(cmd, how)
        except Exception as err:
            if getattr(err, "reload", None) is None:  # rolled back: so is the addendum's list of changes
                self.review.signoff = signoff_before
            raise

    def do(self, cmd: Command) -> Command:
        self.apply(cmd)
        self._undo.append(cmd)
        self._redo.clear()
        return cmd

    def undo(self) -> Command | None:
        if not self._undo:
            return None
        cmd = self._undo[-1]
        self.revert(cmd)
        self._undo.pop()
        self._redo.append(cmd)
        return cmd

    def redo(self) -> Command | None:
        if not self._redo:
            return None
        cmd = self._redo.pop()
        self.apply(cmd, "redo")
        self._undo.append(cmd)
        return cmd

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)
