"""Exports of a review: PDF report, DICOM SEG, JSON."""
