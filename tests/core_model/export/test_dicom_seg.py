"""DICOM SEG export: reads back with pydicom and highdicom, masks match the contours, references the sources."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as MplPath

from core_model.export.dicom_seg import export_dicom_seg, polygon_mask, read_seg_masks
from core_model.imaging.geometry import polygon_area
from core_model.io import load_study
from core_model.review.model import AddFinding, Link, MoveVertex, ReviewSession, accept, reject, review_from_analysis
from core_model.review.store import study_identity

from review_export_helpers import analysis_from_masks


def test_polygon_mask_agrees_with_an_independent_point_in_polygon_test():
    poly = [(10.2, 5.0), (40.7, 12.3), (33.0, 41.9), (8.0, 30.5)]
    m = polygon_mask(poly, (50, 60))
    yy, xx = np.mgrid[0:50, 0:60]
    inside = MplPath(poly).contains_points(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(50, 60)
    assert (inside & ~m).sum() == 0  # every pixel centre inside is in the mask
    assert (m & ~inside).sum() < 0.15 * inside.sum()  # the extras are boundary pixels only
    assert abs(m.sum() - polygon_area(poly)) < 0.15 * polygon_area(poly)


def test_seg_of_accepted_and_edited_contours_reads_back_and_matches(dicom_review, tmp_path):
    study, review = dicom_review
    s = ReviewSession(review)
    assert [f.key for f in review.findings.values()] == ["L_CC", "L_MLO"]
    s.do(accept("F1"))
    s.do(MoveVertex("F2", 0, (review.findings["F2"].polygon[0][0] + 6, review.findings["F2"].polygon[0][1] + 4)))
    s.do(Link("F1", "F2"))
    s.do(AddFinding("L_CC", [(60, 60), (90, 62), (80, 95)]))  # reader-drawn, accepted
    s.do(AddFinding("L_CC", [(200, 200), (220, 200), (210, 230)]))
    s.do(reject("F4"))  # rejected: must not be exported
    review.reader = "Reader^Test"

    out = export_dicom_seg(review, study, tmp_path / "seg")
    assert sorted(out.written) == ["L_CC", "L_MLO"] and out.skipped == []

    for key, expect in (("L_CC", ["F1", "F3"]), ("L_MLO", ["F2"])):
        path = out.written[key]
        src = pydicom.dcmread(study.get(key, "rc").source, stop_before_pixels=True)
        ds = pydicom.dcmread(path)
        assert ds.Modality == "SEG" and ds.PatientID == "P12" and ds.StudyInstanceUID == src.StudyInstanceUID
        assert str(ds.ContentCreatorName) == "Reader^Test"
        back = read_seg_masks(path)
        assert back["source_sop_instance_uid"] == src.SOPInstanceUID  # references the RC image it was drawn on
        assert [label.split()[0] for label in back["masks"]] == expect
        for label, mask in back["masks"].items():
            f = review.findings[label.split()[0]]
            assert mask.shape == (512, 512)
            assert np.array_equal(mask, polygon_mask(f.polygon, (512, 512)))
            area = polygon_area(f.polygon)
            assert abs(mask.sum() - area) < 0.1 * area + 40  # pixel count ~ contour area
        # highdicom reads it too, by source instance
        seg = hd.seg.segread(path)
        arr = seg.get_pixels_by_source_instance([src.SOPInstanceUID], segment_numbers=list(range(1, len(expect) + 1)))
        assert arr.shape == (1, 512, 512, len(expect))
        assert np.array_equal(arr[0, ..., 0].astype(bool), polygon_mask(review.findings[expect[0]].polygon, (512, 512)))

    cc, mlo = (pydicom.dcmread(out.written[k]) for k in ("L_CC", "L_MLO"))
    assert cc.SeriesInstanceUID == mlo.SeriesInstanceUID
    # the linked lesion carries one tracking UID in both views; the reader's own finding is MANUAL
    assert cc.SegmentSequence[0].TrackingUID == mlo.SegmentSequence[0].TrackingUID
    assert cc.SegmentSequence[0].TrackingID == "L lesion F1+F2"
    assert cc.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert cc.SegmentSequence[1].SegmentAlgorithmType == "MANUAL"
    assert "not for clinical use" in cc.ContentDescription


def test_non_dicom_source_says_what_is_missing_and_writes_nothing(demo_dir, tmp_path):
    study = load_study(demo_dir)
    analysis = analysis_from_masks(study, demo_dir.parent / "demo_masks")
    review = review_from_analysis(analysis, study, study_identity(study))
    out = export_dicom_seg(review, study, tmp_path / "seg")
    assert out.written == {} and out.skipped == ["no accepted or edited findings: there is nothing to put in a DICOM SEG"]
    for fid in list(review.findings):
        accept(fid).apply(review)
    out = export_dicom_seg(review, study, tmp_path / "seg")
    assert out.written == {} and not (tmp_path / "seg").exists()
    assert len(out.skipped) == len({f.key for f in review.findings.values()}) >= 2
    assert all("is not DICOM" in m and "JSON and PDF" in m for m in out.skipped)
    assert "P66_L_CM_CC.jpg" in " ".join(out.skipped)


def test_source_with_pixel_spacing_keeps_it_and_reads_back_with_pydicom(cdd_test_dir, tmp_path):
    # MG files may carry PixelSpacing besides ImagerPixelSpacing; the SEG then states it in its Pixel
    # Measures (without SliceThickness, which DICOM requires only with a Frame of Reference).
    from PIL import Image

    from core_model.io import write_mg_dicom
    from core_model.review.model import AddFinding

    px = np.array(Image.open(cdd_test_dir / "images" / "P102_R_CM_CC.jpg").convert("L"))
    write_mg_dicom(tmp_path / "src" / "cc.dcm", px, side="R", view="CC", energy="rc", patient_id="P102",
                   pixel_spacing_mm=(0.07, 0.07), PixelSpacing=[0.07, 0.07])
    study = load_study(tmp_path / "src")
    review = review_from_analysis(None, study, study_identity(study))
    AddFinding("R_CC", [(100.5, 120.0), (180.0, 110.0), (170.0, 200.0), (110.0, 190.0)]).apply(review)
    out = export_dicom_seg(review, study, tmp_path / "seg")
    ds = pydicom.dcmread(out.written["R_CC"])
    assert [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing] == [0.07, 0.07]
    back = read_seg_masks(out.written["R_CC"])
    assert np.array_equal(back["masks"]["F1 accepted"], polygon_mask(review.findings["F1"].polygon, px.shape))
