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


def write_without_meta(path: str | Path, pixels: np.ndarray, *, implicit: bool = True, **elements) -> Path:
    """A DICOM data set with no preamble and no file meta information (as old CR archives
    wrote them): the bytes start with the first data element, (0008,xxxx)."""
    from pydicom.filewriter import write_dataset

    tmp = write_dicom(Path(path).with_suffix(".tmp-with-meta"), pixels, **elements)
    import pydicom

    ds = pydicom.dcmread(tmp)
    tmp.unlink()
    del ds.file_meta
    path = Path(path)
    from pydicom.filebase import DicomBytesIO

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, implicit
    write_dataset(buf, ds)
    path.write_bytes(buf.getvalue())
    return path


# ----------------------------------------------------------------- 12-bit JPEG Extended (process 4)


def _huffman_table(symbols: list[int], length: int) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """A canonical Huffman table giving every symbol a code of `length` bits (no all-ones code):
    (DHT payload after Tc/Th, {symbol: (code, length)})."""
    assert len(symbols) < 2 ** length
    bits = [0] * 16
    bits[length - 1] = len(symbols)
    codes = {s: (i, length) for i, s in enumerate(symbols)}
    return bytes(bits) + bytes(symbols), codes


def _category(v: int) -> int:
    return abs(int(v)).bit_length()


def _bits_of(v: int, size: int) -> int:
    return v if v >= 0 else v + (1 << size) - 1


def encode_jpeg12(pixels: np.ndarray, q: int = 2) -> bytes:
    """A baseline-structured 12-bit JPEG Extended (SOF1, Huffman, process 4) stream of a 2-D
    array of 12-bit unsigned samples (rows and columns multiples of 8), written from the JPEG
    standard (ITU T.81): orthonormal 8x8 DCT, a flat quantisation table of `q`, fixed-length
    Huffman codes. An independent generator for decoder tests (no encoder library needed)."""
    rows, cols = pixels.shape
    assert rows % 8 == 0 and cols % 8 == 0 and pixels.max() < 4096
    k = np.arange(8)
    t = np.sqrt(2 / 8) * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    t[0] /= np.sqrt(2)
    zigzag = sorted(((i, j) for i in range(8) for j in range(8)),
                    key=lambda p: (p[0] + p[1], p[1] if (p[0] + p[1]) % 2 == 0 else p[0]))
    dc_payload, dc_codes = _huffman_table(list(range(16)), 5)
    ac_symbols = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 15)]
    ac_payload, ac_codes = _huffman_table(ac_symbols, 8)
    out = bytearray()
    acc, nbits = 0, 0

    def put(code: int, length: int) -> None:
        nonlocal acc, nbits
        acc = (acc << length) | code
        nbits += length
        while nbits >= 8:
            byte = (acc >> (nbits - 8)) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)
            nbits -= 8
        acc &= (1 << nbits) - 1

    prev_dc = 0
    x = pixels.astype(np.float64) - 2048
    for by in range(0, rows, 8):
        for bx in range(0, cols, 8):
            coef = np.rint(t @ x[by:by + 8, bx:bx + 8] @ t.T / q).astype(int)
            zz = [int(coef[i, j]) for i, j in zigzag]
            diff = zz[0] - prev_dc
            prev_dc = zz[0]
            size = _category(diff)
            put(*dc_codes[size])
            if size:
                put(_bits_of(diff, size), size)
            run = 0
            for v in zz[1:]:
                if v == 0:
                    run += 1
                    continue
                while run > 15:
                    put(*ac_codes[0xF0])
                    run -= 16
                size = _category(v)
                put(*ac_codes[(run << 4) | size])
                put(_bits_of(v, size), size)
                run = 0
            if run:
                put(*ac_codes[0x00])
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    header = b"\xff\xd8"
    header += segment(0xDB, bytes([0x00]) + bytes([q] * 64))  # DQT: 8-bit entries, table 0
    header += segment(0xC1, bytes([12]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0]))
    header += segment(0xC4, bytes([0x00]) + dc_payload) + segment(0xC4, bytes([0x10]) + ac_payload)
    header += segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
    return header + bytes(out) + b"\xff\xd9"


def write_jpeg12_dicom(path: str | Path, pixels: np.ndarray, **elements) -> Path:
    """A DICOM file in JPEG Extended (Process 2 and 4) with a 12-bit stream (encode_jpeg12)."""
    import pydicom
    from pydicom.encaps import encapsulate

    path = write_dicom(path, pixels.astype(np.uint16), bits_stored=12, **elements)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.51"
    ds.PixelData = encapsulate([encode_jpeg12(pixels)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_gdcm_jpeg(path: str | Path, pixels: np.ndarray) -> Path:
    """JPEG Extended written by GDCM's own encoder from 12-bit data: GDCM writes a lossy stream
    with 16-bit sample precision, which pydicom's plugins refuse (a real-world case)."""
    import gdcm

    src = write_dicom(Path(path).with_suffix(".src.dcm"), pixels.astype(np.uint16), bits_stored=12)
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
    codec = gdcm.JPEGCodec()
    codec.SetLossless(False)
    codec.SetQuality(95)
    change.SetUserCodec(codec)
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    src.unlink()
    return Path(path)
