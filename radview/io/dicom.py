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

from radview.io.dicom_checks import check_encapsulated, hint, validate
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
    "PatientOrientation",  # orientation letters on the canvas (radview.state.orientation)
    "ImageLaterality",  # priors: hanging order (with Laterality)
    "Laterality",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfPatientID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "FrameTime",  # cine at the file's frame rate
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "EstimatedRadiographicMagnificationFactor",  # measure: ImagerPixelSpacing / ERMF
    "PixelSpacingCalibrationType",
    "PixelSpacingCalibrationDescription",
)

# pydicom warns (to stderr) about every oddity of real-world headers it reads anyway; radview
# reports what matters per file instead.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?$")


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
    """True if the content is DICOM: the DICM magic at byte 128, or (no preamble) a plausible
    start of data elements, as pydicom's force=True reads them. Cheap: one read of 512 bytes."""
    from radview.io.sniff import read_head, sniff_dicom

    try:
        head = read_head(path)
        size = os.path.getsize(path)
    except OSError:
        return False
    return sniff_dicom(head, size) is not None


def _read(path: str, fh, *, stop_before_pixels: bool):
    """dcmread with clear errors. A file without the DICM preamble is read with force=True
    (like pydicom) when its first bytes are DICOM data elements; else it is 'not a DICOM file'."""
    import pydicom

    from radview.io.sniff import HEAD_BYTES, describe, sniff_dicom

    pos = fh.tell()
    head = fh.read(HEAD_BYTES)
    fh.seek(pos)
    size = os.fstat(fh.fileno()).st_size
    has_magic = len(head) >= 132 and head[128:132] == b"DICM"
    if not has_magic and sniff_dicom(head, size) is None:
        raise ImageError(path, "not a DICOM file: no DICM preamble at byte 128 and it does not start with "
                               f"DICOM data elements (it looks like {describe(head)})")
    try:
        ds = pydicom.dcmread(fh, stop_before_pixels=stop_before_pixels, force=not has_magic)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for broken files
        at = fh.tell()
        if at >= size:
            raise ImageError(path, f"truncated at byte {size}: the file ends inside the DICOM header "
                                   f"({type(exc).__name__}: {exc})") from None
        raise ImageError(path, f"corrupt DICOM header at byte {at} ({type(exc).__name__}: {exc})") from None
    if len(ds) == 0:
        if has_magic:
            raise ImageError(path, f"truncated at byte {size}: nothing after the file meta header")
        raise ImageError(path, "not a DICOM file: no DICM preamble and no data elements")
    return ds


def _cut_element(ds, size: int) -> str | None:
    """'element (gggg,eeee) declares N bytes, M are in the file' when the last element read is cut
    short by the end of the file (pydicom reads such a value silently)."""
    store = ds._dict
    if not store:
        return None
    last = store[max(store)]
    length = getattr(last, "length", None)
    value = getattr(last, "value", None)
    if isinstance(value, bytes) and isinstance(length, int) and 0 < length != 0xFFFFFFFF and len(value) < length:
        tag = last.tag
        return f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares {length} bytes, {len(value)} are in the file"
    return None


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
    if not header["TransferSyntaxUID"]:
        # pydicom's force=True: no file meta (or no syntax in it) -> the encoding it found the data
        # set in (implicit VR little endian by default); said in the tag browser and Frame.meta
        implicit, little = getattr(ds, "original_encoding", (True, True))
        implicit = True if implicit is None else implicit
        little = True if little is None else little
        header["TransferSyntaxUID"] = _IMPLICIT_LE if implicit else (_EXPLICIT_LE if little else _EXPLICIT_BE)
        header[FORCED_KEY] = True
        what = "no DICM preamble and no file meta information" if meta is None or len(meta) == 0 \
            else "no Transfer Syntax UID in the file meta information"
        _note(header, f"{what}: read like pydicom's force=True, as "
                      f"{'Implicit' if implicit else 'Explicit'} VR {'Little' if little else 'Big'} Endian")
    return header


FORCED_KEY = "radview_forced"  # Frame.meta / header flag: the transfer syntax was assumed
NOTES_KEY = "radview_notes"  # Frame.meta / header: what radview assumed or ignored, for the tag browser


def _note(header: dict[str, Any], text: str) -> None:
    header.setdefault(NOTES_KEY, []).append(text)


_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_PIXEL_TAGS = ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009))


def _scan_header(path: str, fh):
    """Read the header (stopping before pixels) from an open file, validate it against the
    pixel data (radview.io.dicom_checks), and return (dataset, header dict, byte offset of the
    pixel data element or -1)."""
    size = _size_or_error(path)
    ds = _read(path, fh, stop_before_pixels=True)
    pixel_offset = fh.tell()
    fh.seek(pixel_offset)
    elem = fh.read(12)
    header = _header_dict(ds)
    tsuid = header["TransferSyntaxUID"]
    has_pixels = False
    if len(elem) >= 4:
        g, e = np.frombuffer(elem[:4], dtype=">u2" if tsuid == _EXPLICIT_BE else "<u2")
        has_pixels = (int(g), int(e)) in _PIXEL_TAGS
    elem_header = 8 if tsuid == _IMPLICIT_LE else 12
    deflated = tsuid == "1.2.840.10008.1.2.1.99"
    if deflated:
        has_pixels = "Rows" in header  # the dataset is a deflate stream: no byte-level check
    validate(path, header, size=size, has_pixels=has_pixels, at_eof=pixel_offset >= size,
             cut=_cut_element(ds, size), pixel_bytes=None if deflated else size - pixel_offset - elem_header)
    if has_pixels and not deflated and len(elem) == 12 and elem[8:12] == b"\xff\xff\xff\xff" \
            and tsuid not in (_EXPLICIT_LE, _IMPLICIT_LE, _EXPLICIT_BE):
        check_encapsulated(path, fh, pixel_offset + 12, size, tsuid)
    return ds, header, pixel_offset if has_pixels else -1


def _open(path: str):
    try:
        return open(path, "rb")
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from None


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


class _BadLUT(ValueError):
    pass


def _lut_from_item(item: Any, name: str) -> LookupTable:
    """A LookupTable from a Modality/VOI LUT Sequence item (LUTDescriptor + LUTData); _BadLUT
    (with the reason) for an empty or malformed one."""
    raw = item.get("LUTDescriptor")
    try:
        if raw is None or raw == "" or isinstance(raw, bytes):
            desc = []
        elif isinstance(raw, int | float):
            desc = [int(raw)]
        else:
            desc = [int(x) for x in raw]
    except (TypeError, ValueError) as exc:
        raise _BadLUT(f"malformed LUTDescriptor ({exc})") from None
    if len(desc) != 3:
        raise _BadLUT(f"LUTDescriptor has {len(desc)} value(s), needs 3" if desc else "empty LUTDescriptor")
    n_entries = desc[0] or 65536
    first = desc[1]
    bits = desc[2]
    if not 1 <= bits <= 16:
        raise _BadLUT(f"LUTDescriptor says {bits} bits per entry (must be 8 to 16)")
    data = item.get("LUTData")
    if data is None or (hasattr(data, "__len__") and len(data) == 0):
        raise _BadLUT("no LUTData")
    if isinstance(data, bytes | bytearray):
        dtype = np.uint8 if bits <= 8 and len(data) == n_entries else np.uint16
        table = np.frombuffer(data[: len(data) // np.dtype(dtype).itemsize * np.dtype(dtype).itemsize], dtype=dtype)
    else:
        table = np.asarray(list(data) if not isinstance(data, int) else [data])
    if table.size == 0:
        raise _BadLUT("no LUTData")
    table = table[:n_entries].astype(np.float64)
    return LookupTable(first_mapped=first, table=table, bits=bits, name=name)


def _optional_lut(ds, keyword: str, header: dict[str, Any], what: str) -> LookupTable | None:
    """The first item of an optional LUT sequence, or None (with a note) when it is malformed:
    a bad optional LUT never makes the image unreadable."""
    if keyword not in ds:
        return None
    try:
        seq = ds[keyword].value
        if not seq:
            return None
        item = seq[0]
        name = what if keyword == "ModalityLUTSequence" else str(item.get("LUTExplanation", "") or what)
        return _lut_from_item(item, name)
    except _BadLUT as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - malformed optional element (reported, not hidden)
        reason = f"{type(exc).__name__}: {exc}"
    _note(header, f"{keyword} ignored ({reason}): the {what} is not applied")
    return None


def _number(ds, keyword: str, default: float, header: dict[str, Any]) -> float:
    if keyword not in ds:
        return default
    try:
        v = ds[keyword].value
        if v in (None, ""):
            return default
        return float(v[0] if isinstance(v, list | tuple) or type(v).__name__ == "MultiValue" else v)
    except Exception as exc:  # noqa: BLE001 - malformed optional element (reported as a note)
        _note(header, f"{keyword} ignored (malformed: {exc}); {default:g} used")
        return default


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
            if header.get(FORCED_KEY):  # the syntax radview assumed (see _header_dict), for pydicom
                from pydicom.dataset import FileMetaDataset

                if getattr(full, "file_meta", None) is None:
                    full.file_meta = FileMetaDataset()
                full.file_meta.TransferSyntaxUID = header["TransferSyntaxUID"]
            from radview.io.dicom_decode import decode

            arr = decode(path, full, frame if n_frames > 1 else None, header)
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
    if NOTES_KEY in meta:
        meta[NOTES_KEY] = list(meta[NOTES_KEY])
    meta["path"] = path
    ref = ImageRef(path, frame)
    if arr.ndim == 3:  # colour: pydicom has converted YBR to RGB already
        if arr.dtype != np.uint8:
            hi = float(arr.max()) or 1.0
            arr = np.clip(arr.astype(np.float32) * (255.0 / hi), 0, 255).astype(np.uint8)
        return Frame(ref=ref, stored=arr[..., :3], photometric="RGB", n_frames=n_frames, meta=meta,
                     auto_window=Window(127.5, 255.0, "LINEAR_EXACT", "full range"))

    # ---- modality LUT (a malformed optional LUT is ignored, with a note in Frame.meta)
    slope, intercept = 1.0, 0.0
    mlut = _optional_lut(ds, "ModalityLUTSequence", meta, "modality LUT")
    if mlut is None:
        slope = _number(ds, "RescaleSlope", 1.0, meta)
        intercept = _number(ds, "RescaleIntercept", 0.0, meta)
        if slope == 0.0:
            _note(meta, "RescaleSlope 0 ignored (it would map every pixel to one value); 1 used")
            slope = 1.0
    # ---- VOI
    voi = _optional_lut(ds, "VOILUTSequence", meta, "VOI LUT")
    windows: list[Window] = []
    try:
        centers = _float_list(ds.get("WindowCenter"))
        widths = _float_list(ds.get("WindowWidth"))
    except (TypeError, ValueError) as exc:
        _note(meta, f"WindowCenter/WindowWidth ignored (malformed: {exc})")
        centers, widths = [], []
    explanations = ds.get("WindowCenterWidthExplanation")
    if explanations is not None and isinstance(explanations, str):
        explanations = [explanations]
    func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if func not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        func = "LINEAR"
    for i, (c, w) in enumerate(zip(centers, widths)):
        # windows are real numbers: a width of 0.01 modality units is kept as it is
        if not (w > 0 and np.isfinite(w) and np.isfinite(c)):
            _note(meta, f"window {i + 1} ignored (center {c:g}, width {w:g}: the width must be > 0)")
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
            # never truncated (issue 14): binary values are summarised by repval already
            rows.append((tag, elem.keyword or elem.name, str(elem.VR), text, depth))

    # what radview assumed or ignored in this file, first (the same notes as Frame.meta's)
    header = _header_dict(ds)
    _optional_lut(ds, "ModalityLUTSequence", header, "modality LUT")
    _optional_lut(ds, "VOILUTSequence", header, "VOI LUT")
    for note in header.get(NOTES_KEY, []):
        rows.append(("", "radview note", "", note, 0))
    if getattr(ds, "file_meta", None) is not None:
        walk(ds.file_meta, 0)
    walk(ds, 0)
    return rows
