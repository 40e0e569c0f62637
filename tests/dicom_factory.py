"""Write small synthetic DICOM files for tests (real pydicom writing, real files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_SOP = "1.2.840.10008.5.1.4.1.1.1"


def write_dicom(
    path: str | Path,
    pixels: np.ndarray | None,
    *,
    bits_stored: int | None = None,
    photometric: str = "MONOCHROME2",
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance: int = 1,
    patient_id: str = "P1",
    transfer_syntax: str | None = ExplicitVRLittleEndian,
    modality: str = "CR",
    body_part: str = "CHEST",
    **elements,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    if transfer_syntax is not None:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = CR_SOP
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = CR_SOP
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.InstanceNumber = instance
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    if pixels is not None:
        frames = pixels.shape[0] if pixels.ndim == 3 and photometric.startswith("MONO") else 1
        if frames > 1:
            ds.NumberOfFrames = frames
        rows, cols = (pixels.shape[1:3] if frames > 1 else pixels.shape[:2])
        ds.Rows, ds.Columns = rows, cols
        bits = pixels.dtype.itemsize * 8
        ds.BitsAllocated = bits
        ds.BitsStored = bits_stored or bits
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
        ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for k, v in elements.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=transfer_syntax is not None)
    return path
