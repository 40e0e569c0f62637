"""DICOM: header scans (no pixels) and pixel decoding into a Frame.

The display pipeline order follows PS3.4 N.2: stored values -> modality LUT (rescale or LUT
sequence) -> VOI (VOI LUT sequence, else window center/width, else an automatic window)
-> polarity (MONOCHROME1 or Presentation LUT Shape INVERSE; applied last, once).
This module only decodes and collects the parameters; `radview.io.display` applies them.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from radview.io.errors import ImageError
from radview.types import Frame, ImageRef, LookupTable, Window

# Header elements the scan keeps (cheap to read, useful for grouping and the domain gate).
HEADER_KEYWORDS = (
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "StudyDate",
    "StudyDescription",
    "SeriesDescription",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImagerPixelSpacing",
)

_SOP_NAMES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
}

_MAX_DIM = 65535

# pydicom warns (to stderr) about every oddity of real-world headers it reads anyway; radview
# reports what matters per file instead.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?$")


def hint(header: dict[str, Any], key: str, default: int) -> int:
    """An integer header value, or the default where it is absent or malformed ('1A')."""
    v = header.get(key, default)
    if isinstance(v, list):
        v = v[0] if v else default
    try:
        return int(v) if v not in (None, "") else default
    except (TypeError, ValueError):
        try:
            return int(float(v))
        except (TypeError, ValueError):
            return default
AUTO_PENDING = "auto (not computed)"


def _value(v: Any) -> Any:
    """A JSON-friendly value of a pydicom element value."""
    from pydicom.multival import MultiValue
    from pydicom.valuerep import PersonName

    if isinstance(v, MultiValue | list | tuple):
        return [_value(x) for x in v]
    if isinstance(v, PersonName):
        return str(v)
    if isinstance(v, int | float | str):
        # pydicom's DSfloat / IS are subclasses: make them plain
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return float(v)
        return str(v)
    return str(v)


def _size_or_error(path: str) -> int:
    try:
        size = os.path.getsize(path)
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    return size


def is_dicom_file(path: str) -> bool:
    """True if the file has the DICM magic at byte 128 (cheap: reads 132 bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _read(path: str, fh, *, stop_before_pixels: bool):
    """dcmread with clear errors. Files without the DICM preamble are read with force
    (the caller only passes files whose name or content says DICOM)."""
    import pydicom

    pos = fh.tell()
    head = fh.read(132)
    fh.seek(pos)
    has_magic = len(head) == 132 and head[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(fh, stop_before_pixels=stop_before_pixels, force=not has_magic)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for broken files
        raise ImageError(path, f"truncated or corrupt DICOM file ({type(exc).__name__}: {exc})") from None
    if len(ds) == 0:
        if has_magic:
            raise ImageError(path, "truncated or corrupt DICOM file (nothing after the file meta header)")
        raise ImageError(path, "not a DICOM file (no DICM preamble and no data elements)")
    return ds


_HEADER_TAGS: list[tuple[int, str, str]] | None = None
_STRING_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UI", "UC", "UR", "UT"}


def _header_tags() -> list[tuple[int, str, str]]:
    global _HEADER_TAGS
    if _HEADER_TAGS is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        _HEADER_TAGS = [(int(tag_for_keyword(kw)), kw, dictionary_VR(tag_for_keyword(kw))) for kw in HEADER_KEYWORDS]
    return _HEADER_TAGS


def _fast_value(raw, vr: str, little: bool) -> Any:
    """Decode a raw element value without pydicom's conversion machinery (the scan's hot
    path); None where the generic path must do it."""
    data = raw.value
    if not isinstance(data, bytes):
        return None
    if vr in _STRING_VRS or vr == "PN":
        text = data.decode("latin-1").strip("\x00 ")
        return text.split("\\") if "\\" in text else text
    if vr == "US" and len(data) == 2:
        return int.from_bytes(data, "little" if little else "big")
    if vr == "IS":
        try:
            parts = [int(x) for x in data.decode("ascii").strip("\x00 ").split("\\") if x.strip()]
        except ValueError:
            return None
        return parts[0] if len(parts) == 1 else parts
    if vr == "DS":
        try:
            parts = [float(x) for x in data.decode("ascii").strip("\x00 ").split("\\") if x.strip()]
        except ValueError:
            return None
        return parts[0] if len(parts) == 1 else parts
    return None


def _header_dict(ds) -> dict[str, Any]:
    header: dict[str, Any] = {}
    store = ds._dict  # raw elements, not yet converted
    little = getattr(ds, "original_encoding", (None, True))[1] is not False
    charset = store.get(0x00080005)
    plain_text = charset is None or (isinstance(getattr(charset, "value", None), bytes)
                                     and charset.value.strip(b"\x00 ") in (b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192"))
    for tag, kw, vr in _header_tags():
        elem = store.get(tag)
        if elem is None:
            continue
        value = None
        if type(elem).__name__ == "RawDataElement" and (plain_text or vr not in ("PN", "LO", "SH", "LT", "ST", "UT", "UC")):
            value = _fast_value(elem, elem.VR or vr, little)
        if value is None:
            try:
                value = _value(ds[tag].value)
            except Exception:  # noqa: BLE001 - a malformed optional element is not fatal
                continue
        if value == "" or value == []:
            continue
        header[kw] = value
    meta = getattr(ds, "file_meta", None)
    header["TransferSyntaxUID"] = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return header


def _validate(path: str, header: dict[str, Any], has_pixels: bool, pixel_bytes: int | None) -> None:
    """Checks that need no decoding: an image (Rows, Columns, pixel data), sane dimensions,
    a known transfer syntax, and complete pixel data for native (uncompressed) syntaxes."""
    from pydicom.uid import UID

    sop = str(header.get("SOPClassUID", ""))
    kind = _SOP_NAMES.get(sop, sop or "unknown SOP class")
    if "Rows" not in header or "Columns" not in header:
        raise ImageError(path, f"no image in this DICOM file (no Rows/Columns; {kind})")
    rows, cols = header["Rows"], header["Columns"]
    if not (isinstance(rows, int) and isinstance(cols, int)) or not (0 < rows <= _MAX_DIM and 0 < cols <= _MAX_DIM):
        raise ImageError(path, f"bogus image size Rows={rows} Columns={cols}")
    if not has_pixels:
        raise ImageError(path, f"no pixel data in this DICOM file ({kind})")
    tsuid = header.get("TransferSyntaxUID", "")
    if not tsuid:
        raise ImageError(path, "no Transfer Syntax UID in the file meta information: cannot decode pixels")
    uid = UID(tsuid)
    if not uid.is_transfer_syntax:
        raise ImageError(path, f"unknown transfer syntax {tsuid}: cannot decode pixels")
    if uid.is_compressed and not _can_decode(tsuid):
        raise ImageError(path, f"unsupported transfer syntax {uid.name}: no installed decoder handles it")
    if not uid.is_compressed and pixel_bytes is not None:
        bits = hint(header, "BitsAllocated", 16)
        spp = hint(header, "SamplesPerPixel", 1)
        frames = max(1, hint(header, "NumberOfFrames", 1))
        if str(header.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":
            spp = 2  # chroma shared by pixel pairs
        need = (rows * cols * spp * frames * bits + 7) // 8  # BitsAllocated 1 is bit-packed
        if pixel_bytes < need:
            raise ImageError(
                path,
                f"truncated pixel data: {max(pixel_bytes, 0)} bytes for Rows={rows} x Columns={cols} "
                f"x {frames} frame(s) x {bits} bits (needs {need})",
            )


_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_PIXEL_TAGS = ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009))


def _scan_header(path: str, fh):
    """Read the header (stopping before pixels) from an open file, validate it, and return
    (dataset, header dict, byte offset of the pixel data element or -1)."""
    size = _size_or_error(path)
    ds = _read(path, fh, stop_before_pixels=True)
    pixel_offset = fh.tell()
    fh.seek(pixel_offset)
    tag_bytes = fh.read(4)
    header = _header_dict(ds)
    tsuid = header["TransferSyntaxUID"]
    has_pixels = False
    if len(tag_bytes) == 4:
        g, e = np.frombuffer(tag_bytes, dtype=">u2" if tsuid == _EXPLICIT_BE else "<u2")
        has_pixels = (int(g), int(e)) in _PIXEL_TAGS
    elem_header = 8 if tsuid == _IMPLICIT_LE else 12
    deflated = tsuid == "1.2.840.10008.1.2.1.99"
    if deflated:
        has_pixels = "Rows" in header  # the dataset is a deflate stream: no byte-level check
    _validate(path, header, has_pixels, None if deflated else size - pixel_offset - elem_header)
    return ds, header, pixel_offset if has_pixels else -1


def _open(path: str):
    try:
        return open(path, "rb")
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from None


_DECODABLE: dict[str, bool] = {}


def _can_decode(tsuid: str) -> bool:
    if tsuid not in _DECODABLE:
        try:
            from pydicom.pixels import get_decoder

            _DECODABLE[tsuid] = bool(get_decoder(tsuid).is_available)
        except (NotImplementedError, ValueError, KeyError):
            _DECODABLE[tsuid] = False
    return _DECODABLE[tsuid]


def read_header(path: str) -> dict[str, Any]:
    """Selected header values of a DICOM file without decoding (or reading) pixels.

    Validates what can be validated without decoding (see _validate); raises ImageError.
    """
    path = os.fspath(path)
    with _open(path) as fh:
        try:
            return _scan_header(path, fh)[1]
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed real-world headers
            raise ImageError(path, f"malformed DICOM header ({type(exc).__name__}: {exc})") from None


def _read_native(path: str, fh, header: dict[str, Any], pixel_offset: int, frame: int) -> np.ndarray | None:
    """Pixels of an uncompressed single-sample 8/16-bit frame straight from the file (no
    intermediate bytes object); None where pydicom's own decoder must do it."""
    tsuid = header["TransferSyntaxUID"]
    if tsuid not in (_EXPLICIT_LE, _IMPLICIT_LE, _EXPLICIT_BE):
        return None
    bits = hint(header, "BitsAllocated", 0)
    if bits not in (8, 16) or hint(header, "SamplesPerPixel", 1) != 1:
        return None
    rows, cols = int(header["Rows"]), int(header["Columns"])
    fh.seek(pixel_offset)
    head = fh.read(12)
    if tsuid == _IMPLICIT_LE:
        length = int(np.frombuffer(head[4:8], "<u4")[0])
        start = pixel_offset + 8
    else:
        if head[4:6] not in (b"OB", b"OW"):
            return None
        length = int(np.frombuffer(head[8:12], ">u4" if tsuid == _EXPLICIT_BE else "<u4")[0])
        start = pixel_offset + 12
    if length == 0xFFFFFFFF:
        return None  # undefined length: encapsulated, let pydicom handle it
    signed = hint(header, "PixelRepresentation", 0) == 1
    order = ">" if tsuid == _EXPLICIT_BE else "<"
    dtype = np.dtype(f"{order}{'i' if signed else 'u'}{bits // 8}")
    n = rows * cols
    fh.seek(start + frame * n * dtype.itemsize)
    arr = np.fromfile(fh, dtype=dtype, count=n)
    if arr.size != n:
        raise ImageError(path, f"truncated pixel data: frame {frame} has {arr.size} of {n} pixels")
    arr = arr.reshape(rows, cols)
    if order == ">":
        arr = arr.astype(dtype.newbyteorder("="))
    stored_bits = hint(header, "BitsStored", bits)
    if not 1 <= stored_bits <= bits:
        stored_bits = bits
    if stored_bits < bits:
        if signed:  # sign-extend from BitsStored
            shift = bits - stored_bits
            arr = (arr << shift) >> shift
        else:
            arr = arr & np.array((1 << stored_bits) - 1, dtype=arr.dtype)
    return arr


def _float_list(v: Any) -> list[float]:
    if v is None:
        return []
    if isinstance(v, list | tuple) or hasattr(v, "__iter__") and not isinstance(v, str | bytes):
        return [float(x) for x in v]
    return [float(v)]


def _lut_from_item(item: Any, name: str) -> LookupTable:
    """A LookupTable from a Modality/VOI LUT Sequence item (LUTDescriptor + LUTData)."""
    desc = [int(x) for x in item.LUTDescriptor]
    n_entries = desc[0] or 65536
    first = desc[1]
    bits = desc[2]
    # First mapped value may be signed (interpreted per Pixel Representation; US/SS both common)
    if first > 32767 and first < 65536:
        pass  # kept unsigned; callers clip the input range
    data = item.LUTData
    if isinstance(data, bytes | bytearray):
        dtype = np.uint8 if bits <= 8 and len(data) == n_entries else np.uint16
        table = np.frombuffer(data, dtype=dtype)
    else:
        table = np.asarray(list(data) if not isinstance(data, int) else [data])
    table = table[:n_entries].astype(np.float64)
    return LookupTable(first_mapped=first, table=table, bits=bits, name=name)


def _decode(path: str, ds, index: int | None) -> np.ndarray:
    from pydicom.pixels import pixel_array

    ts = ds.file_meta.get("TransferSyntaxUID")
    name = getattr(ts, "name", ts)
    try:
        return pixel_array(ds, index=index)
    except NotImplementedError as exc:
        raise ImageError(path, f"unsupported transfer syntax {name}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many kinds for broken data
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "no pixel data decoders" in msg.lower() or "missing required dependencies" in msg.lower():
            raise ImageError(path, f"unsupported transfer syntax {name}: {msg}") from None
        raise ImageError(path, f"cannot decode {name} pixel data: {msg}") from None


def load_dicom(path: str, frame: int = 0) -> Frame:
    """Decode one frame of a DICOM file (any transfer syntax pydicom + pylibjpeg decode).
    Raises ImageError only: a malformed real-world file never escapes as another exception."""
    path = os.fspath(path)
    try:
        return _load_dicom(path, frame)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(path, "not enough memory to decode this image") from None
    except Exception as exc:  # noqa: BLE001
        raise ImageError(path, f"malformed DICOM file ({type(exc).__name__}: {exc})") from None


def _load_dicom(path: str, frame: int) -> Frame:
    with _open(path) as fh:
        ds, header, pixel_offset = _scan_header(path, fh)
        n_frames = max(1, hint(header, "NumberOfFrames", 1))
        if not 0 <= frame < n_frames:
            raise ImageError(path, f"frame {frame} out of range (the file has {n_frames} frame(s))")
        header["PixelRepresentation"] = hint({"v": ds.get("PixelRepresentation", 0)}, "v", 0)
        palette = str(header.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
        arr = None if palette else _read_native(path, fh, header, pixel_offset, frame)
        if arr is None:
            fh.seek(0)
            full = _read(path, fh, stop_before_pixels=False)
            arr = _decode(path, full, frame if n_frames > 1 else None)
            if palette:
                from pydicom.pixels import apply_color_lut

                try:
                    arr = apply_color_lut(arr, full)
                except Exception as exc:  # noqa: BLE001
                    raise ImageError(path, f"cannot apply the palette colour LUT ({exc})") from None
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        arr = arr[0]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    meta = dict(header)
    meta["path"] = path
    ref = ImageRef(path, frame)
    if arr.ndim == 3:  # colour: pydicom has converted YBR to RGB already
        if arr.dtype != np.uint8:
            hi = float(arr.max()) or 1.0
            arr = np.clip(arr.astype(np.float32) * (255.0 / hi), 0, 255).astype(np.uint8)
        return Frame(ref=ref, stored=arr[..., :3], photometric="RGB", n_frames=n_frames, meta=meta,
                     auto_window=Window(127.5, 255.0, "LINEAR_EXACT", "full range"))

    # ---- modality LUT
    slope, intercept, mlut = 1.0, 0.0, None
    if "ModalityLUTSequence" in ds and len(ds.ModalityLUTSequence):
        mlut = _lut_from_item(ds.ModalityLUTSequence[0], "modality LUT")
    else:
        if "RescaleSlope" in ds and ds.RescaleSlope not in (None, ""):
            slope = float(ds.RescaleSlope)
        if "RescaleIntercept" in ds and ds.RescaleIntercept not in (None, ""):
            intercept = float(ds.RescaleIntercept)
    # ---- VOI
    voi = None
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        item = ds.VOILUTSequence[0]
        voi = _lut_from_item(item, str(item.get("LUTExplanation", "") or "VOI LUT"))
    windows: list[Window] = []
    centers = _float_list(ds.get("WindowCenter"))
    widths = _float_list(ds.get("WindowWidth"))
    explanations = ds.get("WindowCenterWidthExplanation")
    if explanations is not None and isinstance(explanations, str):
        explanations = [explanations]
    func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if func not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        func = "LINEAR"
    for i, (c, w) in enumerate(zip(centers, widths)):
        if w <= 0 or (func == "LINEAR" and w < 1):
            continue
        name = str(explanations[i]) if explanations is not None and i < len(explanations) else f"DICOM {i + 1}"
        windows.append(Window(c, w, func, name))
    # ---- polarity (applied last, once)
    pls = str(ds.get("PresentationLUTShape", "") or "").upper()
    invert = photometric == "MONOCHROME1" or pls == "INVERSE"
    frame_obj = Frame(
        ref=ref, stored=arr, slope=slope, intercept=intercept, modality_lut=mlut, voi_lut=voi,
        windows=tuple(windows), invert=invert, photometric=photometric, n_frames=n_frames, meta=meta,
    )
    if windows:
        # the file's own window is the default: the auto window is computed when asked for
        # (radview.io.display.auto_window_of), not on every load
        return _with_auto_window(frame_obj, Window(0.0, 1.0, "LINEAR_EXACT", AUTO_PENDING))
    from radview.io.display import auto_window

    return _with_auto_window(frame_obj, auto_window(frame_obj))


def _with_auto_window(frame: Frame, window: Window) -> Frame:
    from dataclasses import replace

    return replace(frame, auto_window=window)


def dataset_tags(path: str) -> list[tuple[str, str, str, str, int]]:
    """All elements of a DICOM file for the tag browser: (tag, keyword, VR, value, depth).
    Pixel data is not read; sequences are flattened with their depth."""
    path = os.fspath(path)
    _size_or_error(path)
    with _open(path) as fh:
        ds = _read(path, fh, stop_before_pixels=True)
    rows: list[tuple[str, str, str, str, int]] = []

    def walk(dataset, depth: int) -> None:
        for elem in dataset:
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            if elem.VR == "SQ":
                rows.append((tag, elem.keyword or elem.name, "SQ", f"{len(elem.value)} item(s)", depth))
                for item in elem.value:
                    walk(item, depth + 1)
                continue
            try:
                text = elem.repval if elem.VR in ("OB", "OW", "OF", "OD", "UN") else str(elem.value)
            except Exception:  # noqa: BLE001
                text = "<unreadable>"
            if len(text) > 200:
                text = text[:197] + "..."
            rows.append((tag, elem.keyword or elem.name, str(elem.VR), text, depth))

    if getattr(ds, "file_meta", None) is not None:
        walk(ds.file_meta, 0)
    walk(ds, 0)
    return rows
