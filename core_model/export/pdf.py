"""PDF report of a review (reportlab): identifiers, four views with the reader's contours, findings, assessment.

Made to survive grey printing: each finding state has its own line style
(accepted solid, edited dashed, reader-drawn dash-dot) over a white halo, and
every contour carries its finding id, so nothing depends on colour. The
classifier's output is printed beside the reader's BI-RADS call, labelled as
the AI's model score (worded by its weights' calibration; never a probability of cancer), never in its
place. The model identity (with the card's status and validation metrics) and
the not-for-clinical-use notice are on every page when the weights are not
validated.
"""

from __future__ import annotations

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
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core_model.analysis import side_source_words
from core_model.errors import NafvError
from core_model.orientation import flip_points, reading_flips
from core_model.export.common import SOFTWARE, model_lines, notice, now_utc, refuse_overwrite, shown_ids, size_dict
from core_model.notice import NO_LESION_FOUND_SHORT, score_words
from core_model.review import ACCEPTED, CONFIRMED, EDITED, PROPOSED, Finding, Review
from core_model.study import ENERGY_NAMES, SIDE_NAMES, VIEW_KEYS

MAX_EMBED_PX = 900  # longest side of an embedded view: sharp in print, small file

# state/origin -> (RGB, dash pattern in points, legend text)
STYLE = {
    ACCEPTED: ((0.85, 0.1, 0.1), None, "accepted AI contour (solid)"),
    EDITED: ((0.1, 0.3, 0.95), (4, 2.5), "edited AI contour (dashed)"),
    "reader": ((0.0, 0.6, 0.2), (5, 2, 1, 2), "drawn by the reader (dash-dot)"),
    PROPOSED: ((0.95, 0.55, 0.0), (1, 2), "AI proposal, not reviewed (dotted)"),
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
    return STYLE["reader"] if f.origin == "reader" else STYLE[f.state]


def _view_image(img, heatmap: np.ndarray | None) -> Image.Image:
    """The view as an 8-bit PIL image (RGB when a heatmap is blended in), downsampled for embedding."""
    grey = img.normalized()
    if heatmap is not None and heatmap.shape == grey.shape:
        from matplotlib import colormaps

        heat = colormaps["inferno"](np.clip(heatmap, 0, 1))[..., :3]
        alpha = 0.45 * np.clip(heatmap, 0, 1)[..., None]  # cold areas stay the plain image
        rgb = grey[..., None] * (1 - alpha) + heat * alpha
        pil = Image.fromarray((rgb * 255).astype(np.uint8), "RGB")
    else:
        pil = Image.fromarray((grey * 255).astype(np.uint8), "L")
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
    """R-CC | L-CC over R-MLO | L-MLO, each image with the confirmed contours drawn as vectors.

    Views hang as in the viewer (:func:`core_model.orientation.reading_flips`):
    right breast on the left, chest walls in the middle; contours flip with them.
    """

    def __init__(self, review: Review, study: Any, width: float, energy: str, heatmaps: dict[str, np.ndarray] | None, font: str,
                 states: tuple[str, ...] = CONFIRMED):
        super().__init__()
        self.review, self.study, self.energy, self.heatmaps, self.font = review, study, energy, heatmaps or {}, font
        self.states = states
        self.width = width
        self.cell_w = (width - 4 * mm) / 2
        self.cell_h = self.cell_w * 0.62  # keeps views, findings and assessment on one page
        self.label_h = 5 * mm
        self.height = 2 * (self.cell_h + self.label_h) + 3 * mm

    def wrap(self, availWidth, availHeight):  # noqa: N803 - reportlab's signature
        return self.width, self.height

    def _image_for(self, key: str):
        for e in (self.energy, "le" if self.energy == "rc" else "rc"):
            img = self.study.get(key, e) if self.study is not None else None
            if img is not None:
                return img, e
        return None, None

    def flips(self, key: str) -> tuple[bool, bool]:
        """Flips that hang view ``key`` as the viewer does (tags, else the chest wall of both energies)."""
        img, energy = self._image_for(key)
        if img is None:
            return False, False
        other = self.study.get(key, "le" if energy == "rc" else "rc")
        return reading_flips(img.side, img.view, img.pixels, img.orientation,
                             None if other is None else other.pixels)

    def draw(self) -> None:
        c = self.canv
        for i, key in enumerate(VIEW_KEYS):
            col, row = i % 2, i // 2
            x = col * (self.cell_w + 4 * mm)
            y_top = self.height - row * (self.cell_h + self.label_h + 3 * mm)
            img, energy = self._image_for(key)
            label = key.replace("_", " ")
            c.setFont(self.font, 8)
            c.setFillColor(colors.black)
            if img is None:
                c.drawString(x, y_top - 3.5 * mm, f"{label}: not in this study")
                c.setStrokeColor(colors.grey)
                c.setDash(2, 2)
                c.rect(x, y_top - self.label_h - self.cell_h, self.cell_w, self.cell_h)
                c.setDash()
                continue
            ids = [f.id for f in self.review.on_view(key) if f.state in self.states]
            none = ": no confirmed finding" if PROPOSED not in self.states else ": no finding"
            c.drawString(x, y_top - 3.5 * mm, f"{label} ({ENERGY_NAMES[energy]})" + (f": {', '.join(ids)}" if ids else none))
            pil = _view_image(img, self.heatmaps.get(key))
            flips = self.flips(key)
            if flips[0]:
                pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
            if flips[1]:
                pil = pil.transpose(Image.FLIP_TOP_BOTTOM)
            h_px, w_px = img.shape
            s = min(self.cell_w / w_px, self.cell_h / h_px)
            w, h = w_px * s, h_px * s
            x0 = x + (self.cell_w - w) / 2
            y0 = y_top - self.label_h - h
            c.drawImage(ImageReader(pil), x0, y0, w, h)
            c.setStrokeColor(colors.black)
            c.setLineWidth(0.5)
            c.rect(x0, y0, w, h)
            for f in self.review.on_view(key):
                if f.state in self.states:
                    self._contour(f, page_points(f.polygon, img.shape, flips, x0, y0 + h, s))

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
        c.setStrokeColor(colors.white)  # halo: the line reads on dark and on bright tissue
        c.setLineWidth(2.6)
        c.drawPath(path, stroke=1, fill=0)
        c.setStrokeColorRGB(*rgb)
        c.setLineWidth(1.3)
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


def report_content(review: Review, *, deidentify: bool = False, created: str | None = None) -> dict[str, Any]:
    """Every text the report prints, as plain rows: what the tests check and the PDF lays out."""
    pid, sid = (_cut(i) for i in shown_ids(review, deidentify))
    created = created or now_utc()
    ident_rows = [
        ["Patient ID", pid + (" (de-identified)" if deidentify else ""), "Report date", _utc(created)],
        ["Study", sid + (" — SYNTHETIC phantom, not patient data" if review.identity.get("synthetic") else ""),
         "Review saved", _utc(review.modified)],
        ["Reader", review.reader or "(not given)", "Software", SOFTWARE],
    ]
    models = model_lines(review) if review.ai.get("ran", False) else ["none ran on this study: every finding is the reader's"]
    findings = [["#", "Breast", "View", "Size (longest, area)", "State", "From", "AI score", "Same lesion as"]]
    for f in review.findings.values():
        sz = size_dict(review, f)
        size = f"{sz['max_diameter_mm']:.1f} mm, {sz['area_mm2']:.0f} mm²" if sz else "no pixel spacing"
        findings.append([f.id, SIDE_NAMES[f.side], f.view, size, f.state, "AI" if f.origin == "ai" else "reader",
                         _fmt_prob(f.ai_score), f.link or ""])
    ai_side = review.ai.get("affected_side")
    ai_p = review.ai.get("malignancy_probability")
    score_label = score_words(review.ai.get("models"))
    no_lesion = review.ai.get("ran", False) and review.ai.get("lesion_found") is False and ai_side is None
    assessment = [["Breast", "BI-RADS (reader)", "Density (reader)", "AI classifier score"]]
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
        assessment.append([name, a.birads or "not given", (a.density.upper() if a.density else "not given"), ai_cell])
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
    ai_notes = [str(w) for w in review.ai.get("warnings") or []]
    return {"patient_id": pid, "study_id": sid, "created": created, "notice": notice(review), "identity": ident_rows,
            "models": models, "findings": findings, "assessment": assessment, "notes": notes, "ai_side": ai_side,
            "ai_side_text": ai_side_text, "ai_notes": ai_notes}


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
    """Write the report; ``heatmaps`` (view key -> 0..1 array, original size) are blended in when given.

    ``include_proposed`` also draws the AI proposals nobody reviewed (dotted),
    for batch reports made straight from the AI output.
    """
    path = Path(path)
    refuse_overwrite([path], overwrite)  # never another patient's report replaced without being asked
    regular, bold = _fonts()
    ss = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=ss["BodyText"], fontName=regular, fontSize=9, leading=11.5)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5)
    h1 = ParagraphStyle("h1", parent=ss["Title"], fontName=bold, fontSize=15, leading=18, spaceAfter=2 * mm, alignment=0)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontName=bold, fontSize=11, leading=13, spaceBefore=3 * mm, spaceAfter=1.5 * mm)
    warn = ParagraphStyle("warn", parent=body, fontName=bold, fontSize=9.5, leading=12, borderColor=colors.black, borderWidth=1.2,
                          borderPadding=4, backColor=colors.Color(0.93, 0.93, 0.93), spaceBefore=2, spaceAfter=8)
    P = lambda text, st=body: Paragraph(escape(str(text)).replace("\n", "<br/>"), st)  # noqa: E731

    content = report_content(review, deidentify=deidentify)
    pid, sid, note, created = content["patient_id"], content["study_id"], content["notice"], content["created"]
    unreviewed = include_proposed and not review.confirmed()
    title = "AI output, not reviewed by a reader" if unreviewed else "review report"
    story: list[Any] = [Paragraph(f"Contrast-enhanced mammography — {title}", h1)]
    if note:
        story.append(P(note if "not for clinical use" in note.lower() else "NOT FOR CLINICAL USE. " + note, warn))

    grid_style = TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), regular), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("FONTNAME", (0, 0), (0, -1), bold), ("FONTNAME", (2, 0), (2, -1), bold),
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("SPAN", (1, 3), (3, 3)),
    ])
    # values as paragraphs: a long id or reader name wraps inside its cell instead of printing over the next one
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=10.5)
    ident_rows = [[label, P(value, cell), label2, P(value2, cell)] for label, value, label2, value2 in content["identity"]]
    ident_rows += [["Model", [P(line, small) for line in content["models"]], "", ""]]
    story.append(Table(ident_rows, colWidths=[22 * mm, 68 * mm, 24 * mm, 66 * mm], style=grid_style, hAlign="LEFT"))
    story.append(Spacer(1, 3 * mm))

    frame_w = A4[0] - 30 * mm
    states = CONFIRMED + ((PROPOSED,) if include_proposed else ())
    story.append(ViewGrid(review, study, frame_w, energy, heatmaps, regular, states))
    legend = "; ".join(f"{v[2]}" for k, v in STYLE.items() if k != PROPOSED or include_proposed)
    legend += (".  AI proposals not reviewed by a reader are drawn dotted." if include_proposed
               else ".  Only findings the reader accepted, edited or drew are drawn.")
    if heatmaps:
        legend += " Heat overlay: the model's attention map (Grad-CAM), not a lesion outline."
    story.append(P("Contours: " + legend, small))

    tstyle = TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), regular), ("FONTSIZE", (0, 0), (-1, -1), 8.5), ("FONTNAME", (0, 0), (-1, 0), bold),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black), ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.black),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.Color(0.94, 0.94, 0.94)]),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ])
    rows = content["findings"] if len(content["findings"]) > 1 else content["findings"] + [["", "", "", "no findings", "", "", "", ""]]
    story.append(Paragraph("Findings", h2))
    story.append(Table(rows, colWidths=[10 * mm, 15 * mm, 12 * mm, 40 * mm, 20 * mm, 15 * mm, 17 * mm, 25 * mm], style=tstyle,
                       hAlign="LEFT", repeatRows=1))
    story.append(P("AI score: mean segmentation probability inside the AI contour (0-1), not a probability of cancer. "
                   "Sizes are measured on the contour in the image plane of that view.", small))

    # the AI's score sits beside the reader's call, in its own labelled column
    assess = [Paragraph("Assessment", h2),
              Table(content["assessment"][:1] + [row[:3] + [P(row[3], small)] for row in content["assessment"][1:]], colWidths=[18 * mm, 35 * mm, 32 * mm, 70 * mm], style=tstyle, hAlign="LEFT")]
    for name, text in content["notes"]:
        assess.append(Spacer(1, 1.5 * mm))
        assess.append(Paragraph(f"<b>{name} breast, reader's findings:</b> " + escape(text).replace("\n", "<br/>"), body))
    if content["ai_side_text"]:
        assess.append(P(content["ai_side_text"], small))
    if content["ai_notes"]:
        notes_text = " ".join(w[:1].upper() + w[1:] + ("" if w.endswith(".") else ".") for w in content["ai_notes"])
        assess.append(Paragraph("<b>AI analysis notes:</b> " + escape(notes_text), small))
    story.append(KeepTogether(assess))

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.setFillColor(colors.black)
        page = f"page {doc.page}"
        rest = f"   ·   {created[:10]}" + ("   ·   NOT FOR CLINICAL USE" if note else "")
        # the ids give way, never the date or the notice, and nothing runs into the page number
        room = A4[0] - 30 * mm - canvas.stringWidth(page, regular, 7) - 6 * mm - canvas.stringWidth(rest, regular, 7)
        canvas.drawString(15 * mm, 9 * mm, _fit(f"{pid} / {sid}", regular, 7, room) + rest)
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, page)
        canvas.restoreState()

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm, bottomMargin=15 * mm,
                            title=f"CEM review {pid}", author=review.reader or SOFTWARE, creator=SOFTWARE)
    try:
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PdfExportError(f"the PDF report could not be written ({exc.strerror or exc})", path) from None
    return path


def heatmaps_from(analysis: Any) -> dict[str, np.ndarray]:
    """View key -> Grad-CAM heatmap, for the views of ``analysis`` that have one."""
    return {k: vr.heatmap for k, vr in analysis.views.items() if getattr(vr, "heatmap", None) is not None}
