"""PDF report of a review (reportlab): a page a radiologist signs, then an appendix with the AI's output.

Page 1: identification (patient, study, study date and age where the files
give them, technique), the reader's findings one row per lesion (location,
size, descriptors, the AI score beside the reader's call), key images (LE
and RC of the views with findings) with the contours in the viewer's
colours, the impression (BI-RADS with its name and standard
recommendation), and the sign-off with any addenda. The appendix holds the
AI marks the reader dismissed or did not review, the model identity with its
validation figures, and the four views with every AI mark (and heatmaps when
asked). The not-for-clinical-use notice is in the header and footer of every
page. An export no reader has touched is titled "AI output, not reviewed by
a reader".

Made to survive grey printing: each finding state has its own line style
(accepted solid, edited dashed, reader-drawn dash-dot) over a dark halo, and
every contour carries its finding id, so nothing depends on colour. The
classifier's output is labelled as the AI's model score (worded by its
weights' calibration; never a probability of cancer), never in the reader's place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core_model.domain.analysis import side_source_words
from core_model.domain.errors import NafvError
from core_model.domain.notice import NO_LESION_FOUND_SHORT, score_words
from core_model.domain.study import ENERGY_NAMES, SIDE_NAMES, VIEW_KEYS
from core_model.export.common import (SOFTWARE, model_lines, notice, now_utc, refuse_overwrite, shown_ids, size_dict,
                                      study_facts)
from core_model.imaging.orientation import flip_points, reading_flips
from core_model.imaging.tissue import tissue_bbox
from core_model.io.atomic import atomic_path
from core_model.review import birads
from core_model.review.lexicon import describe, stray_terms
from core_model.review.model import ACCEPTED, CONFIRMED, EDITED, PROPOSED, REJECTED, Finding, Review
from core_model.review.signoff import addendum_lines, status_text

MAX_EMBED_PX = 900  # longest side of an embedded view: sharp in print, small file

# Colours as the viewer draws each state (nafv_viewer.widgets.review_editor.STATE_PENS), so the
# report and the screen agree; the dash pattern differs too, so the states also read in grey.
# state/origin -> (RGB, dash pattern in points, legend text)
STYLE = {
    ACCEPTED: ((60 / 255, 220 / 255, 90 / 255), None, "accepted AI contour (green, solid)"),
    EDITED: ((0.0, 210 / 255, 1.0), (4, 2.5), "AI contour edited by the reader (cyan, dashed)"),
    "reader": ((60 / 255, 220 / 255, 90 / 255), (5, 2, 1, 2), "drawn by the reader (green, dash-dot)"),
    PROPOSED: ((1.0, 210 / 255, 0.0), (1, 2), "AI proposal, not reviewed (yellow, dotted)"),
    REJECTED: ((0.65, 0.65, 0.65), (1, 2), "AI mark the reader dismissed (grey, dotted)"),
}


class PdfExportError(NafvError):
    """The PDF report could not be written."""


def _fonts() -> tuple[str, str]:
    """A Unicode TrueType font (reader names and notes are free text), falling back to reportlab's Vera."""
    if "NafvSans" in pdfmetrics.getRegisteredFontNames():
        return "NafvSans", "NafvSans-Bold"
    import reportlab

    candidates = [
        (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")),
        (Path(reportlab.__file__).parent / "fonts" / "Vera.ttf", Path(reportlab.__file__).parent / "fonts" / "VeraBd.ttf"),
    ]
    for regular, bold in candidates:
        if regular.is_file() and bold.is_file():
            pdfmetrics.registerFont(TTFont("NafvSans", str(regular)))
            pdfmetrics.registerFont(TTFont("NafvSans-Bold", str(bold)))
            return "NafvSans", "NafvSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _style_of(f: Finding):
    return STYLE["reader"] if f.origin == "reader" and f.state != REJECTED else STYLE[f.state]


def tissue_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) around the breast with a small margin: the black around it is left out
    so the tissue fills the printed cell."""
    h, w = grey.shape
    x0, y0, x1, y1 = tissue_bbox(grey)
    pad = int(0.02 * max(h, w))
    return max(0, int(y0) - pad), min(h, int(y1) + pad), max(0, int(x0) - pad), min(w, int(x1) + pad)


def _view_image(img, heatmap: np.ndarray | None, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """The view (cut to ``box``) as an 8-bit PIL image (RGB when a heatmap is blended in), downsampled for embedding."""
    grey = img.normalized()
    r0, r1, c0, c1 = box or (0, grey.shape[0], 0, grey.shape[1])
    if heatmap is not None and heatmap.shape == grey.shape:
        from matplotlib import colormaps

        heatmap = heatmap[r0:r1, c0:c1]
        grey = grey[r0:r1, c0:c1]
        heat = colormaps["inferno"](np.clip(heatmap, 0, 1))[..., :3]
        alpha = 0.45 * np.clip(heatmap, 0, 1)[..., None]  # cold areas stay the plain image
        rgb = grey[..., None] * (1 - alpha) + heat * alpha
        pil = Image.fromarray((rgb * 255).astype(np.uint8), "RGB")
    else:
        pil = Image.fromarray((grey[r0:r1, c0:c1] * 255).astype(np.uint8), "L")
    scale = MAX_EMBED_PX / max(pil.size)
    if scale < 1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.LANCZOS)
    return pil


def page_points(polygon, shape: tuple[int, int], flips: tuple[bool, bool], left: float, top: float,
                s: float) -> list[tuple[float, float]]:
    """Contour pixel-centre coordinates (stored image) -> page points of the hung, scaled image.

    Pixel c spans [c - 0.5, c + 0.5], so its centre lies (c + 0.5) * s from the
    image's left (or top) edge; the page's y axis points up.
    """
    xy = flip_points(polygon, shape, flips)
    return [(left + (x + 0.5) * s, top - (y + 0.5) * s) for x, y in xy]


class ViewGrid(Flowable):
    """Images in a grid, each with the contours of the chosen states drawn as vectors.

    ``cells`` lists (view key, energy) in reading order, ``cols`` per row (the
    default is R-CC | L-CC over R-MLO | L-MLO in ``energy``). Views hang as in
    the viewer (:func:`core_model.imaging.orientation.reading_flips`): right breast on
    the left, chest walls in the middle; contours flip with them.
    """

    def __init__(self, review: Review, study: Any, width: float, energy: str, heatmaps: dict[str, np.ndarray] | None, font: str,
                 states: tuple[str, ...] = CONFIRMED, cells: list[tuple[str, str]] | None = None, cols: int = 2,
                 cell_h: float | None = None):
        super().__init__()
        self.review, self.study, self.energy, self.heatmaps, self.font = review, study, energy, heatmaps or {}, font
        self.states = states
        self.cells = cells or [(k, energy) for k in VIEW_KEYS]
        self.cols = cols
        self.gap = 4 * mm if cols <= 2 else 2.5 * mm
        self.width = width
        self.cell_w = (width - (cols - 1) * self.gap) / cols
        self.cell_h = cell_h or self.cell_w * 0.62
        self.label_h = 5 * mm
        self.rows = (len(self.cells) + cols - 1) // cols
        self.height = self.rows * (self.cell_h + self.label_h) + (self.rows - 1) * 3 * mm

    def wrap(self, availWidth, availHeight):  # noqa: N803 - reportlab's signature
        return self.width, self.height

    def _image_for(self, key: str, energy: str | None = None):
        energy = energy or self.energy
        for e in (energy, "le" if energy == "rc" else "rc"):
            img = self.study.get(key, e) if self.study is not None else None
            if img is not None:
                return img, e
        return None, None

    def _box(self, key: str, img) -> tuple[int, int, int, int]:
        """The tissue box of view ``key``: the union over its energies (``img``'s whole frame if their sizes differ)."""
        both = [self.study.get(key, e) for e in ("le", "rc") if self.study.get(key, e) is not None]
        if len({i.shape for i in both}) != 1:
            return 0, img.shape[0], 0, img.shape[1]
        boxes = [tissue_box(i.normalized()) for i in both]
        return min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), max(b[3] for b in boxes)

    def flips(self, key: str, energy: str | None = None) -> tuple[bool, bool]:
        """Flips that hang view ``key`` as the viewer does (tags, else the chest wall of both energies)."""
        img, energy = self._image_for(key, energy)
        if img is None:
            return False, False
        other = self.study.get(key, "le" if energy == "rc" else "rc")
        return reading_flips(img.side, img.view, img.pixels, img.orientation,
                             None if other is None else other.pixels)

    def draw(self) -> None:
        c = self.canv
        for i, (key, want) in enumerate(self.cells):
            col, row = i % self.cols, i // self.cols
            x = col * (self.cell_w + self.gap)
            y_top = self.height - row * (self.cell_h + self.label_h + 3 * mm)
            img, energy = self._image_for(key, want)
            label = key.replace("_", " ")
            c.setFont(self.font, 8 if self.cols <= 2 else 7)
            c.setFillColor(colors.black)
            if img is None:
                c.drawString(x, y_top - 3.5 * mm, f"{label}: not in this study")
                c.setStrokeColor(colors.grey)
                c.setDash(2, 2)
                c.rect(x, y_top - self.label_h - self.cell_h, self.cell_w, self.cell_h)
                c.setDash()
                continue
            ids = [f.id for f in self.review.on_view(key) if f.state in self.states]
            title = f"{label} ({ENERGY_NAMES[energy]})" + (f": {', '.join(ids)}" if ids else "")
            c.drawString(x, y_top - 3.5 * mm, _fit(title, self.font, 8 if self.cols <= 2 else 7, self.cell_w))
            # both energies of a view cut to the same box, so LE and RC stay comparable side by side
            box = self._box(key, img)
            pil = _view_image(img, self.heatmaps.get(key), box)
            flips = self.flips(key, energy)
            if flips[0]:
                pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
            if flips[1]:
                pil = pil.transpose(Image.FLIP_TOP_BOTTOM)
            r0, r1, c0, c1 = box
            h_px, w_px = r1 - r0, c1 - c0
            s = min(self.cell_w / w_px, self.cell_h / h_px)
            w, h = w_px * s, h_px * s
            x0 = x + (self.cell_w - w) / 2
            y0 = y_top - self.label_h - h
            c.drawImage(ImageReader(pil), x0, y0, w, h)
            c.setStrokeColor(colors.black)
            c.setLineWidth(0.5)
            c.rect(x0, y0, w, h)
            # dismissed marks under the reader's, so a confirmed contour is never hidden
            for f in sorted(self.review.on_view(key), key=lambda f: f.state != REJECTED):
                if f.state in self.states:
                    poly = [(x - c0, y - r0) for x, y in f.polygon]
                    self._contour(f, page_points(poly, (h_px, w_px), flips, x0, y0 + h, s))

    def _contour(self, f: Finding, pts: list[tuple[float, float]]) -> None:
        c = self.canv
        rgb, dash, _ = _style_of(f)
        path = c.beginPath()
        path.moveTo(*pts[0])
        for p in pts[1:]:
            path.lineTo(*p)
        path.close()
        c.saveState()
        c.setLineJoin(1)
        c.setStrokeColor(colors.black)  # dark halo: the viewer's bright colours read on bright tissue too
        c.setLineWidth(2.4)
        c.drawPath(path, stroke=1, fill=0)
        c.setStrokeColorRGB(*rgb)
        c.setLineWidth(1.2)
        if dash:
            c.setDash(*dash) if len(dash) == 2 else c.setDash(list(dash), 0)
        c.drawPath(path, stroke=1, fill=0)
        c.restoreState()
        # id label just above the contour's top point, black on a white box
        tx, ty = max(pts, key=lambda p: p[1])
        c.saveState()
        c.setFont(self.font + "-Bold" if self.font == "NafvSans" else self.font, 7)
        tw = c.stringWidth(f.id, c._fontname, 7)
        c.setFillColor(colors.white)
        c.rect(tx - tw / 2 - 1, ty + 2, tw + 2, 8, stroke=0, fill=1)
        c.setFillColor(colors.black)
        c.drawCentredString(tx, ty + 3.5, f.id)
        c.restoreState()


def _utc(iso: str) -> str:
    return iso.replace("T", " ")[:16] + " UTC" if iso else "—"


MAX_ID_CHARS = 64  # the DICOM limit for PatientID and StudyInstanceUID; longer ids are met in the wild


def _cut(text: str, n: int = MAX_ID_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` points in one line."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _fmt_prob(p: Any) -> str:
    return "—" if p is None else f"{float(p):.2f}"


def finding_size_text(review: Review, f: Finding) -> str:
    """"12.3 mm, 95 mm²" from the view's pixel spacing; in pixels, said so, only when the file has none."""
    sz = size_dict(review, f)
    if sz is not None:
        return f"{sz['max_diameter_mm']:.1f} mm, {sz['area_mm2']:.0f} mm²"
    from core_model.imaging.location import NO_SPACING, size_of

    return f"{size_of(f.polygon, None)['max_diameter_px']:.0f} px ({NO_SPACING})"


# Software advice that analysis notes may carry (for the viewer's user); a report states findings only.
_ADVICE = re.compile(r"\s*[—-]+\s*check, or choose the affected breast explicitly", re.IGNORECASE)


def _report_note(text: str) -> str:
    return _ADVICE.sub("", str(text)).strip()


def _location_text(d: dict[str, Any]) -> str:
    """The finding's location as the review holds it (filled by the location analysis), '—' when none."""
    loc = d.get("location") or {}
    if not isinstance(loc, dict):
        return "—"
    parts = []
    if loc.get("clock") not in (None, ""):
        clock = loc["clock"]
        parts.append(f"{clock} o'clock" if isinstance(clock, (int, float)) or str(clock).isdigit() else str(clock))
    for k in ("quadrant", "depth"):
        if loc.get(k):
            parts.append(str(loc[k]) + (" third" if k == "depth" and "third" not in str(loc[k]) else ""))
    nd = loc.get("nipple_distance_mm")
    if isinstance(nd, (int, float)):
        parts.append(f"{nd:.0f} mm from the nipple")
    return ", ".join(parts) or "—"


def _location_of(f: Finding, d: dict[str, Any], locations: dict[str, Any] | None) -> str:
    if locations is not None:
        from core_model.imaging.location import location_words

        return location_words(locations.get(f.id))
    return _location_text(d)


def _descriptor_text(d: dict[str, Any]) -> str:
    """BI-RADS lexicon descriptors the reader recorded for the finding, '—' when none.

    A term an older review stored that the finding's type does not take is
    printed too, marked as such: it is the reader's record, not the lexicon's."""
    lex = d.get("descriptors") if isinstance(d.get("descriptors"), dict) else {}
    stray = stray_terms(lex)
    parts = describe({k: v for k, v in lex.items() if k not in stray})
    if stray:
        kind = lex.get("type")
        parts.append(f"from an earlier review, {'without a type' if not kind else 'not used for ' + kind}: "
                     + ", ".join(describe(stray)))
    return ", ".join(parts) or "—"


def _size_text(review: Review, f: Finding) -> str:
    return finding_size_text(review, f)


def _group_size(review: Review, group: list[Finding]) -> str:
    sizes = [_size_text(review, g) for g in group]
    if len(group) == 1 or len(set(sizes)) == 1 and size_dict(review, group[0]) is None:
        return sizes[0]
    return "; ".join(f"{g.view} {t}" for g, t in zip(group, sizes))


def _call_text(f: Finding) -> str:
    if f.origin == "reader":
        return "drawn by the reader"
    return {ACCEPTED: "AI contour accepted", EDITED: "AI contour edited", REJECTED: "dismissed"}.get(f.state, "not reviewed")


def reviewed_by_reader(review: Review) -> bool:
    """True once the reader decided anything: a finding accepted, edited, rejected or drawn, an assessment, a signature."""
    if review.signoff.get("finalised"):
        return True
    if any(f.state != PROPOSED or f.origin == "reader" for f in review.findings.values()):
        return True
    return any(a.birads or a.density or a.text.strip() for a in review.assessments.values())


def report_content(review: Review, *, deidentify: bool = False, created: str | None = None,
                   facts: dict[str, str] | None = None, locations: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every text the report prints, as plain rows: what the tests check and the PDF lays out.

    ``locations``: finding id -> location (:func:`core_model.imaging.location.locate_review`); without
    it a finding's location is what the review holds, if anything."""
    pid, sid = (_cut(i) for i in shown_ids(review, deidentify))
    created = created or now_utc()
    facts = facts or {}
    not_given = "not in the files"
    ident_rows = [
        ["Patient ID", pid + (" (de-identified)" if deidentify else ""), "Report date", _utc(created)],
        ["Study", sid + (" — SYNTHETIC phantom, not patient data" if review.identity.get("synthetic") else ""),
         "Study date", facts.get("study_date") or ("left out (de-identified)" if deidentify else not_given)],
        ["Reader", review.reader or "(not given)", "Age", facts.get("age") or not_given],
    ]
    if facts.get("indication"):
        ident_rows.append(["Indication", facts["indication"], "", ""])
    if facts.get("technique"):
        ident_rows.append(["Technique", facts["technique"], "", ""])
    models = model_lines(review) if review.ai.get("ran", False) else ["none ran on this study: every finding is the reader's"]

    # the reader's findings, one row per lesion (a linked CC + MLO pair is one lesion); before any
    # reader decision, the AI proposals themselves (the title and the call column say so)
    reviewed = reviewed_by_reader(review)

    def listed(g: Finding) -> bool:
        return g.confirmed or (not reviewed and g.origin == "ai" and g.state == PROPOSED)

    findings = [["#", "Breast, view", "Location", "Size (longest, area)", "Descriptors", "Reader's call", "AI score"]]
    done: set[str] = set()
    for f in review.findings.values():
        if not listed(f) or f.id in done:
            continue
        group = [f]
        other = review.findings.get(f.link) if f.link else None
        if other is not None and listed(other):
            group.append(other)
        done.update(g.id for g in group)
        dicts = [g.to_dict() for g in group]
        findings.append([
            " + ".join(g.id for g in group),
            f"{SIDE_NAMES[f.side]} " + " + ".join(g.view for g in group),
            "; ".join(dict.fromkeys(_location_of(g, d, locations) for g, d in zip(group, dicts))),
            _group_size(review, group),
            "; ".join(dict.fromkeys(_descriptor_text(d) for d in dicts)),
            "; ".join(dict.fromkeys(_call_text(g) for g in group)),
            " / ".join(_fmt_prob(g.ai_score) for g in group),
        ])
    dismissed = [["#", "Breast", "View", "AI score", "Reader's decision"]]
    for f in review.findings.values():
        if f.origin == "ai" and (f.state == REJECTED or (reviewed and f.state == PROPOSED)):
            dismissed.append([f.id, SIDE_NAMES[f.side], f.view, _fmt_prob(f.ai_score),
                              "dismissed" if f.state == REJECTED else "not reviewed"])

    ai_side = review.ai.get("affected_side")
    ai_p = review.ai.get("malignancy_probability")
    score_label = score_words(review.ai.get("models"))
    no_lesion = review.ai.get("ran", False) and review.ai.get("lesion_found") is False and ai_side is None
    assessment = [["Breast", "BI-RADS (reader)", "Recommendation", "Composition, BPE", "AI classifier score"]]
    for side, name in (("R", "right"), ("L", "left")):
        a = review.assessments[side]
        if ai_p is None and no_lesion:
            ai_cell = f"— ({NO_LESION_FOUND_SHORT})"
        elif ai_p is None:
            ai_cell = "— (no classifier ran)"
        elif side == ai_side:
            ai_cell = (f"{_fmt_prob(ai_p)}: {score_label}, "
                       f"{review.ai.get('classifier_mode') or 'classifier'}")
        else:
            ai_cell = "— (scored for the affected breast only)"
        assessment.append([name, birads.category_text(a.birads), birads.recommendation(a.birads) or "—",
                           birads.density_text(a.density) + f"; BPE {a.bpe or 'not given'}", ai_cell])
    top = birads.overall([review.assessments[s].birads for s in ("R", "L")])
    impression = (f"BI-RADS {birads.category_text(top)}. Recommendation: {birads.recommendation(top)}."
                  if top else "No BI-RADS category given by the reader.")
    notes = [(name, review.assessments[side].text.strip()) for side, name in (("R", "Right"), ("L", "Left"))
             if review.assessments[side].text.strip()]
    ai_side_text = ""
    if ai_side in ("L", "R"):
        breast = SIDE_NAMES[ai_side]
        if review.ai.get("affected_side_source") == "caller":
            ai_side_text = (f"The affected breast was set explicitly ({breast}), not decided from the images; "
                            "the AI classifier scored that breast.")
        else:
            ai_side_text = (f"The AI took the {breast} breast as the affected one "
                            f"({side_source_words(review.ai.get('affected_side_source', 'segmentation'))}).")
        ai_side_text += (f" The classifier's output ({score_label}) is shown for reference beside the "
                         "reader's category; it does not replace it.")
    elif no_lesion:
        ai_side_text = ("The AI found no lesion in either breast (no contour reached the segmentation threshold), "
                        "so no malignancy score was computed.")
    ai_notes = [_report_note(w) for w in review.ai.get("warnings") or []]
    return {"patient_id": pid, "study_id": sid, "created": created, "notice": notice(review), "identity": ident_rows,
            "models": models, "findings": findings, "dismissed": dismissed, "assessment": assessment,
            "impression": impression, "notes": notes, "ai_side": ai_side, "ai_side_text": ai_side_text,
            "ai_notes": ai_notes, "signoff": status_text(review), "addenda": addendum_lines(review),
            "reviewed": reviewed}


def key_views(review: Review, study: Any) -> list[str]:
    """The (at most two) views the key images show: those with the reader's findings, else both CC views."""
    have = {k for k, _ in (study.images if study is not None else {})}
    with_findings = [k for k in VIEW_KEYS if k in have and any(f.confirmed for f in review.on_view(k))]
    if len(with_findings) > 2:  # the CC and MLO of the breast that matters most: highest category, then the AI's side
        rank = {s: (birads.rank(review.assessments[s].birads), sum(k.startswith(s) for k in with_findings),
                    review.ai.get("affected_side") == s) for s in ("R", "L")}
        side = max(rank, key=rank.get)
        with_findings = [k for k in with_findings if k.startswith(side)][:2]
    return with_findings or [k for k in ("R_CC", "L_CC") if k in have]


def export_pdf(
    review: Review,
    study: Any,
    path: str | Path,
    *,
    deidentify: bool = False,
    heatmaps: dict[str, np.ndarray] | None = None,
    energy: str = "rc",
    include_proposed: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the report: page 1 for the reader's report, then an appendix with the AI's output.

    Page 1: identification, the reader's findings (location, size, descriptors, the
    AI score beside the reader's call), key images of LE and RC with the contours in
    the viewer's colours, the impression (BI-RADS with its name and recommendation)
    and the sign-off. Appendix: AI marks the reader dismissed or did not review, the
    model identity and validation figures, the four views with every AI mark
    (``heatmaps``, view key -> 0..1 array, blended in when given). The not-for-clinical-use
    notice is in the header and footer of every page.

    ``include_proposed`` also draws the AI proposals nobody reviewed on page 1 (dotted),
    for batch reports made straight from the AI output.
    """
    path = Path(path)
    refuse_overwrite([path], overwrite)  # never another patient's report replaced without being asked
    regular, bold = _fonts()
    ss = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=ss["BodyText"], fontName=regular, fontSize=9, leading=11.5)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5)
    h1 = ParagraphStyle("h1", parent=ss["Title"], fontName=bold, fontSize=14, leading=17, spaceAfter=1.5 * mm, alignment=0)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontName=bold, fontSize=10.5, leading=12.5, spaceBefore=2.5 * mm,
                        spaceAfter=1.2 * mm)
    strong = ParagraphStyle("strong", parent=body, fontName=bold, fontSize=10, leading=12.5)
    P = lambda text, st=body: Paragraph(escape(str(text)).replace("\n", "<br/>"), st)  # noqa: E731

    from core_model.imaging.location import locate_review
    from core_model.review.model import with_study_spacing

    review = with_study_spacing(review, study)
    facts = study_facts(study, deidentify)
    content = report_content(review, deidentify=deidentify, facts=facts, locations=locate_review(review, study))
    pid, sid, note, created = content["patient_id"], content["study_id"], content["notice"], content["created"]
    reviewed = content["reviewed"]
    title = "Contrast-enhanced mammography report" if reviewed else \
        "Contrast-enhanced mammography — AI output, not reviewed by a reader"
    story: list[Any] = [Paragraph(escape(title), h1)]
    if not reviewed:
        story.append(P("No reader has reviewed this study: every contour below is an AI proposal.", strong))

    grid_style = TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), regular), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("FONTNAME", (0, 0), (0, -1), bold), ("FONTNAME", (2, 0), (2, -1), bold),
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2), ("TOPPADDING", (0, 0), (-1, -1), 1.2),
        *[("SPAN", (1, r), (3, r)) for r in range(3, len(content["identity"]))],
    ])
    # values as paragraphs: a long id or reader name wraps inside its cell instead of printing over the next one
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10.5)
    ident_rows = [[label, P(value, cell), label2, P(value2, cell)] for label, value, label2, value2 in content["identity"]]
    story.append(Table(ident_rows, colWidths=[22 * mm, 73 * mm, 22 * mm, 63 * mm], style=grid_style, hAlign="LEFT"))

    tstyle = TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), regular), ("FONTSIZE", (0, 0), (-1, -1), 8), ("FONTNAME", (0, 0), (-1, 0), bold),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black), ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.black),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.Color(0.94, 0.94, 0.94)]),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.2), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
    ])
    tcell = ParagraphStyle("tcell", parent=body, fontSize=8, leading=9.5)
    wrap_rows = lambda rows: rows[:1] + [[P(v, tcell) for v in r] for r in rows[1:]]  # noqa: E731

    story.append(Paragraph("Findings" if reviewed else "Findings proposed by the AI (not reviewed by a reader)", h2))
    rows = content["findings"]
    if len(rows) > 1:
        story.append(Table(wrap_rows(rows), colWidths=[14 * mm, 22 * mm, 34 * mm, 33 * mm, 30 * mm, 28 * mm, 19 * mm],
                           style=tstyle, hAlign="LEFT", repeatRows=1))
        story.append(P("AI score: mean segmentation probability inside the AI contour (0-1), not a probability of cancer. "
                       "Sizes are measured on the contour in the image plane of that view.", small))
    else:
        story.append(P("No finding confirmed or drawn by the reader." if reviewed else "No finding confirmed by a reader."))
    for name, text in content["notes"]:
        story.append(Spacer(1, 1 * mm))
        story.append(Paragraph(f"<b>{name} breast:</b> " + escape(text).replace("\n", "<br/>"), body))

    frame_w = A4[0] - 30 * mm
    states = CONFIRMED + ((PROPOSED,) if include_proposed else ())
    views = key_views(review, study)
    cells = [(k, e) for k in views for e in ("le", "rc")]
    story.append(Paragraph("Key images", h2))
    story.append(ViewGrid(review, study, frame_w, energy, None, regular, states, cells=cells, cols=4, cell_h=52 * mm))
    legend = "; ".join(v[2] for k, v in STYLE.items() if k in states or (k == "reader" and ACCEPTED in states))
    story.append(P("Contours: " + legend + ".", small))

    assess = [Paragraph("Impression", h2), P(content["impression"], strong), Spacer(1, 1.2 * mm),
              Table(content["assessment"][:1] + [row[:1] + [P(v, tcell) for v in row[1:]] for row in content["assessment"][1:]],
                    colWidths=[13 * mm, 42 * mm, 30 * mm, 45 * mm, 50 * mm], style=tstyle, hAlign="LEFT")]
    assess.append(P("The AI classifier score is shown for reference beside the reader's category; it does not replace it.",
                    small))
    sign = content["signoff"] or "Not finalised: draft, not signed by the reader."
    assess += [Spacer(1, 1.5 * mm), P(sign, strong)]
    for line in content["addenda"]:
        assess.append(P(line, body))
    story.append(KeepTogether(assess))

    # ---- appendix: the AI's output and where it comes from
    story.append(PageBreak())
    story.append(Paragraph("Appendix: AI output and model", h1))
    rows = content["dismissed"]
    story.append(Paragraph("AI marks dismissed or not reviewed by the reader", h2))
    if len(rows) > 1:
        story.append(Table(rows, colWidths=[14 * mm, 20 * mm, 16 * mm, 18 * mm, 36 * mm], style=tstyle, hAlign="LEFT"))
    else:
        story.append(P("None: every AI mark was confirmed by the reader." if review.ai.get("ran") else "No AI ran on this study."))
    if content["ai_side_text"]:
        story.append(Spacer(1, 1.5 * mm))
        story.append(P(content["ai_side_text"], small))
    if content["ai_notes"]:
        notes_text = " ".join(w[:1].upper() + w[1:] + ("" if w.endswith(".") else ".") for w in content["ai_notes"])
        story.append(Paragraph("<b>AI analysis notes:</b> " + escape(notes_text), small))
    story.append(Paragraph("Model identity and validation", h2))
    for line in content["models"]:
        story.append(P(line, small))
    story.append(Paragraph("All AI marks on the four views" + (" with the model's attention maps" if heatmaps else ""), h2))
    story.append(ViewGrid(review, study, frame_w * 0.82, energy, heatmaps, regular,
                          CONFIRMED + (PROPOSED, REJECTED)))
    legend = "; ".join(v[2] for v in STYLE.values()) + "."
    if heatmaps:
        legend += " Heat overlay: the model's attention map (Grad-CAM), not a lesion outline."
    story.append(P("Contours: " + legend, small))

    notice_line = ("NOT FOR CLINICAL USE — " + note) if note and "not for clinical use" not in note.lower() else (note or "")

    def page_marks(canvas, doc):
        canvas.saveState()
        canvas.setFillColor(colors.black)
        width = A4[0] - 30 * mm
        if notice_line:  # header: the notice, on every page
            canvas.setFont(bold, 7.5)
            canvas.drawString(15 * mm, A4[1] - 9 * mm, _fit(notice_line, bold, 7.5, width))
            canvas.setLineWidth(0.6)
            canvas.line(15 * mm, A4[1] - 10.5 * mm, A4[0] - 15 * mm, A4[1] - 10.5 * mm)
        canvas.setFont(regular, 7)
        page = f"page {doc.page}"
        rest = f"   ·   {created[:10]}" + ("   ·   NOT FOR CLINICAL USE" if note else "")
        # the ids give way, never the date or the notice, and nothing runs into the page number
        room = width - canvas.stringWidth(page, regular, 7) - 6 * mm - canvas.stringWidth(rest, regular, 7)
        canvas.drawString(15 * mm, 9 * mm, _fit(f"{pid} / {sid}", regular, 7, room) + rest)
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, page)
        canvas.restoreState()

    try:
        with atomic_path(path) as tmp:
            doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                                    bottomMargin=14 * mm, title=f"CEM report {pid}", author=review.reader or SOFTWARE,
                                    creator=SOFTWARE)
            doc.build(story, onFirstPage=page_marks, onLaterPages=page_marks)
    except OSError as exc:
        raise PdfExportError(f"the PDF report could not be written ({exc.strerror or exc})", path) from None
    return path


def heatmaps_from(analysis: Any) -> dict[str, np.ndarray]:
    """View key -> Grad-CAM heatmap, for the views of ``analysis`` that have one."""
    return {k: vr.heatmap for k, vr in analysis.views.items() if getattr(vr, "heatmap", None) is not None}
