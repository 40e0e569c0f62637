"""Pixel decoding of compressed DICOM: pydicom's decoders (pylibjpeg, Pillow, GDCM plugins),
then GDCM's own reader for what pydicom's GDCM plugin refuses (lossy JPEG with 12- or 16-bit
precision, as GDCM and some modalities write it), and named errors for the rest: which transfer
syntax, and which decoder (plugin) would read it.
"""
from __future__ import annotations

import functools

import numpy as np

from radview.io.errors import ImageError

# Syntaxes pydicom (3.0) has no decoder for, and what would read them.
_NO_PYDICOM_DECODER = {
    "1.2.840.10008.1.2.4.110": ("JPEG XL Lossless", "a JPEG XL decoder (e.g. the imagecodecs package's jpegxl codec)"),
    "1.2.840.10008.1.2.4.111": ("JPEG XL JPEG Recompression", "a JPEG XL decoder (e.g. the imagecodecs package's jpegxl codec)"),
    "1.2.840.10008.1.2.4.112": ("JPEG XL", "a JPEG XL decoder (e.g. the imagecodecs package's jpegxl codec)"),
}
_VIDEO_PREFIXES = ("1.2.840.10008.1.2.4.10", "1.2.840.10008.1.2.4.20")  # MPEG-2/4, HEVC
_GDCM_SYNTAXES = {  # what GDCM's reader decodes itself (pydicom's plugin refuses some of them)
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
}


def syntax_name(tsuid: str) -> str:
    if tsuid in _NO_PYDICOM_DECODER:
        return _NO_PYDICOM_DECODER[tsuid][0]
    from pydicom.uid import UID

    uid = UID(tsuid)
    return uid.name if uid.name != tsuid else tsuid


def gdcm_available() -> bool:
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def undecodable_reason(tsuid: str) -> str | None:
    """Why no installed decoder can read this compressed syntax (naming the syntax and what
    would read it), or None when one is installed."""
    name = syntax_name(tsuid)
    if tsuid in _NO_PYDICOM_DECODER:
        return (f"unsupported transfer syntax {name} ({tsuid}): pydicom has no decoder for it; "
                f"{_NO_PYDICOM_DECODER[tsuid][1]} would read it")
    if tsuid.startswith(_VIDEO_PREFIXES):
        return (f"unsupported transfer syntax {name} ({tsuid}): a video stream, not an image; "
                "a video decoder (FFmpeg, e.g. through PyAV) would read it")
    try:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(tsuid)
    except (NotImplementedError, ValueError, KeyError):
        return f"unsupported transfer syntax {name} ({tsuid}): no pixel data decoder exists for it in pydicom"
    if decoder.is_available:
        return None
    missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
    return f"unsupported transfer syntax {name} ({tsuid}): no installed decoder; install one of: {missing}"


def decode(path: str, ds, index: int | None, header: dict) -> np.ndarray:
    """All frames (index None) or one frame of a dataset's pixel data, as pydicom returns them."""
    from pydicom.pixels import pixel_array

    tsuid = str(ds.file_meta.get("TransferSyntaxUID", ""))
    name = syntax_name(tsuid)
    reason = undecodable_reason(tsuid) if tsuid else None
    if reason is not None:
        raise ImageError(path, reason)
    try:
        return pixel_array(ds, index=index)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many kinds for broken data
        first_error = _first_line(exc)
    if tsuid in _GDCM_SYNTAXES and gdcm_available():
        arr, gdcm_error = _gdcm_decode(path, header, index)
        if arr is not None:
            return arr
        first_error += f"; GDCM's reader: {gdcm_error}"
    elif tsuid in _GDCM_SYNTAXES:
        first_error += "; python-gdcm (not installed) may read it"
    raise ImageError(path, f"cannot decode {name} pixel data: {first_error}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # pydicom: "Unable to decode as exceptions were raised by all available plugins:\n  gdcm: ..."
    if len(lines) > 1 and lines[0].lower().startswith("unable to decode"):
        return "; ".join(lines[1:])[:400]
    return lines[0][:400]


_GDCM_DTYPES = {"UINT8": np.uint8, "INT8": np.int8, "UINT12": np.uint16, "INT12": np.int16, "UINT16": np.uint16,
                "INT16": np.int16, "UINT32": np.uint32, "INT32": np.int32}


def _gdcm_decode(path: str, header: dict, index: int | None) -> tuple[np.ndarray | None, str]:
    """GDCM's own reader on the file (grayscale only): (array, '') or (None, reason)."""
    import gdcm

    for name in ("WarningOff", "DebugOff", "ErrorOff"):
        getattr(gdcm.Trace, name, lambda: None)()
    reader = gdcm.ImageReader()
    reader.SetFileName(path)
    if not reader.Read():
        return None, "cannot read the file"
    image = reader.GetImage()
    pf = image.GetPixelFormat()
    if pf.GetSamplesPerPixel() != 1:
        return None, "colour images are left to pydicom's decoders"
    dtype = _GDCM_DTYPES.get(pf.GetScalarTypeAsString())
    if dtype is None:
        return None, f"pixel format {pf.GetScalarTypeAsString()} not handled"
    buf = image.GetBuffer()
    if buf is None:
        return None, "no pixel data decoded"
    data = buf.encode("utf-8", "surrogateescape") if isinstance(buf, str) else bytes(buf)
    rows, cols = int(header["Rows"]), int(header["Columns"])
    frames = max(1, int(header.get("NumberOfFrames", 1) or 1))
    arr = np.frombuffer(data, dtype=dtype)
    if arr.size != rows * cols * frames:
        return None, f"decoded {arr.size} samples for {frames} frame(s) of {rows}x{cols}"
    arr = arr.reshape(frames, rows, cols)
    return (arr[index] if index is not None else (arr[0] if frames == 1 else arr)).copy(), ""
