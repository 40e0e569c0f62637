"""Scan-time checks of a DICOM header against its pixel data, without decoding: the errors
panel is complete before anyone clicks, and each reason names what was found (no image, no
pixel data, truncated at byte N, impossible bit depths, pixel data that is not what its
transfer syntax says...). The decode error, when one comes later, still names the file.
"""
from __future__ import annotations

from typing import Any

from radview.io.errors import ImageError

MAX_DIM = 65535

SOP_NAMES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set",
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
}

_JPEG_FAMILY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_J2K_FAMILY = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
               "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
               "1.2.840.10008.1.2.4.203"}
_RLE = "1.2.840.10008.1.2.5"
_ITEM = b"\xfe\xff\x00\xe0"
_NEWER_SYNTAXES = ("1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112")  # JPEG XL


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


_SOP_KINDS: dict[str, tuple[str, bool]] = {}
_SYNTAXES: dict[str, tuple[bool, bool]] = {}


def _syntax(tsuid: str) -> tuple[bool, bool]:
    """(a transfer syntax pydicom knows, compressed), cached: the scan asks for every file."""
    got = _SYNTAXES.get(tsuid)
    if got is None:
        from pydicom.uid import UID

        uid = UID(tsuid)
        known = uid.is_transfer_syntax
        got = _SYNTAXES[tsuid] = (known, known and uid.is_compressed)
    return got


def _sop_kind(header: dict[str, Any]) -> tuple[str, bool]:
    """(a name for the SOP class, whether it is an image storage class or unknown)."""
    sop = str(header.get("SOPClassUID", ""))
    got = _SOP_KINDS.get(sop)
    if got is None:
        got = _SOP_KINDS[sop] = _sop_kind_uncached(sop)
    return got


def _sop_kind_uncached(sop: str) -> tuple[str, bool]:
    if sop in SOP_NAMES:
        return SOP_NAMES[sop], False
    if not sop:
        return "unknown SOP class", True
    from pydicom.uid import UID

    name = UID(sop).name
    return (name if name != sop else sop), ("Image" in name or name == sop)


def validate(path: str, header: dict[str, Any], *, size: int, has_pixels: bool, at_eof: bool,
             cut: str | None, pixel_bytes: int | None) -> None:
    """Raise ImageError with the precise reason a header cannot give an image."""
    kind, image_class = _sop_kind(header)
    if "Rows" not in header or "Columns" not in header:
        if cut:
            raise ImageError(path, f"truncated at byte {size}: {cut}")
        if at_eof and image_class and not has_pixels:
            raise ImageError(path, f"no image attributes: the file ends at byte {size}, before Rows/Columns and "
                                   f"the pixel data of this {kind} header (truncated, or a header-only file)")
        raise ImageError(path, f"no image in this DICOM file (no Rows/Columns; {kind})")
    rows, cols = header["Rows"], header["Columns"]
    if not (isinstance(rows, int) and isinstance(cols, int)) or not (0 < rows <= MAX_DIM and 0 < cols <= MAX_DIM):
        raise ImageError(path, f"bogus image size Rows={rows} Columns={cols}")
    if not has_pixels:
        if cut:
            raise ImageError(path, f"truncated at byte {size}: {cut}")
        if at_eof:
            raise ImageError(path, f"no pixel data in this DICOM file: it ends at byte {size}, after the header "
                                   f"(truncated, or not an image; {kind})")
        raise ImageError(path, f"no pixel data in this DICOM file ({kind})")
    _check_bits(path, header)
    tsuid = header.get("TransferSyntaxUID", "")
    if not tsuid:
        raise ImageError(path, "no Transfer Syntax UID in the file meta information: cannot decode pixels")
    from radview.io.dicom_decode import syntax_name, undecodable_reason

    known, compressed = _syntax(tsuid)
    if not known and tsuid not in _NEWER_SYNTAXES:
        raise ImageError(path, f"unknown transfer syntax {tsuid}: cannot decode pixels")
    if not known or compressed:
        reason = undecodable_reason(tsuid)
        if reason is not None:
            raise ImageError(path, reason)
        return
    if pixel_bytes is not None:
        bits = hint(header, "BitsAllocated", 16)
        spp = hint(header, "SamplesPerPixel", 1)
        frames = max(1, hint(header, "NumberOfFrames", 1))
        if str(header.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":
            spp = 2  # chroma shared by pixel pairs
        need = (rows * cols * spp * frames * bits + 7) // 8  # BitsAllocated 1 is bit-packed
        if pixel_bytes < need:
            raise ImageError(
                path,
                f"truncated pixel data: the file ends at byte {size}, with {max(pixel_bytes, 0)} bytes of pixel "
                f"data for Rows={rows} x Columns={cols} x {frames} frame(s) x {bits} bits (needs {need}; "
                f"{syntax_name(tsuid)})",
            )


def _check_bits(path: str, header: dict[str, Any]) -> None:
    """Bit depths and samples a decoder can honour (PS3.3 C.7.6.3)."""
    raw_alloc = header.get("BitsAllocated")
    if raw_alloc in (None, ""):
        raise ImageError(path, "no BitsAllocated in the header: cannot tell how the pixels are stored")
    alloc = hint(header, "BitsAllocated", -1)
    stored = hint(header, "BitsStored", alloc)
    spp = hint(header, "SamplesPerPixel", 1)
    rep = hint(header, "PixelRepresentation", 0)
    if alloc not in (1, 8, 16, 32, 64):
        raise ImageError(path, f"impossible bit depth: BitsAllocated={raw_alloc} (must be 1, 8, 16, 32 or 64)")
    if not 1 <= stored <= alloc:
        raise ImageError(path, f"impossible bit depth: BitsStored={stored} with BitsAllocated={alloc}")
    if spp not in (1, 3, 4):
        raise ImageError(path, f"impossible SamplesPerPixel={spp} (must be 1 or 3)")
    if rep not in (0, 1):
        raise ImageError(path, f"impossible PixelRepresentation={rep} (must be 0 or 1)")


def check_encapsulated(path: str, fh, value_start: int, size: int, tsuid: str) -> None:
    """The first fragment of encapsulated pixel data exists and starts the way its transfer
    syntax says (a JPEG marker, a JPEG 2000 codestream or box, an RLE header)."""
    from radview.io.dicom_decode import syntax_name

    name = syntax_name(tsuid)
    fh.seek(value_start)
    bot = fh.read(8)
    if len(bot) < 8:
        raise ImageError(path, f"truncated at byte {size}: the {name} pixel data ends before its first item")
    if bot[:4] != _ITEM:
        raise ImageError(path, f"corrupt {name} pixel data: it does not start with an item (found {bot[:4].hex()})")
    bot_len = int.from_bytes(bot[4:8], "little")
    frag_at = value_start + 8 + bot_len
    if frag_at + 8 > size:
        raise ImageError(path, f"truncated at byte {size}: the {name} pixel data has no fragment after its offset table")
    fh.seek(frag_at)
    item = fh.read(8 + 16)
    if item[:4] != _ITEM:
        if item[:4] == b"\xfe\xff\xdd\xe0":
            raise ImageError(path, f"no pixel data: the {name} pixel data has no fragments")
        raise ImageError(path, f"corrupt {name} pixel data: no fragment item after the offset table")
    frag_len = int.from_bytes(item[4:8], "little")
    if frag_at + 8 + frag_len > size:
        raise ImageError(path, f"truncated at byte {size}: the first {name} fragment declares {frag_len} bytes, "
                               f"{max(size - frag_at - 8, 0)} are in the file")
    head = item[8:]
    ok = True
    if tsuid in _JPEG_FAMILY:
        ok = head[:2] == b"\xff\xd8"
        what = "a JPEG stream (no SOI marker)"
    elif tsuid in _J2K_FAMILY:
        ok = head[:4] == b"\xff\x4f\xff\x51" or head[4:8] == b"jP  "
        what = "a JPEG 2000 codestream"
    elif tsuid == _RLE:
        n_seg = int.from_bytes(head[:4], "little")
        ok = len(head) >= 8 and 1 <= n_seg <= 15 and int.from_bytes(head[4:8], "little") == 64
        what = "an RLE stream (bad RLE header)"
    if not ok:
        raise ImageError(path, f"corrupt {name} pixel data: the first fragment is not {what}")
