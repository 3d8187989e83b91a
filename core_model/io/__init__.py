"""Loaders that turn files on disk into a :class:`core_model.domain.study.Study`.

``load_study(path, patient=None)`` picks the loader from what the folder holds
(DICOM, CDD-CESM names in one folder or in the collection's low-energy /
subtracted folders, or PNG/JPEG/TIFF named with side, view and energy);
``list_patients(path)`` lists the patients a folder holds;
:func:`core_model.io.dicom_write.write_mg_dicom` writes a DICOM MG file.
"""

from core_model.io.detect import list_patients, load_study
from core_model.io.dicom_write import write_mg_dicom
from core_model.io.limits import MAX_PIXELS, MAX_SIDE_PX

__all__ = ["load_study", "list_patients", "write_mg_dicom", "MAX_SIDE_PX", "MAX_PIXELS"]
