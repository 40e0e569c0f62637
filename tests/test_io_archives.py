"""What real archives contain (issue 18), on generated files: PACS-named files, files without
preamble or file meta, 12-bit JPEG Extended, tiny value ranges, malformed optional LUTs,
header-valid files whose pixel data is short; and the scan's walk (symlink loops, cancel)."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radview.io import ImageError, is_image_path, load_frame, scan
from radview.io.dicom import FORCED_KEY, NOTES_KEY, dataset_tags
from radview.io.display import auto_window_of, display_image, full_range_window
from radview.io.errors import ScanCancelled
from radview.io.studies import iter_scan

from dicom_factory import encode_jpeg12, write_dicom, write_gdcm_jpeg, write_jpeg12_dicom, write_without_meta


def _smooth12(rows=64, cols=48, seed=0) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    rng = np.random.default_rng(seed)
    img = 2000 + 1500 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    return (img + rng.integers(0, 30, (rows, cols))).astype(np.uint16)


# --------------------------------------------------------------------------- names and sniffing


def test_pacs_named_files_are_found_by_their_content(tmp_path):
    d = tmp_path / "export"
    px = np.arange(64, dtype=np.uint16).reshape(8, 8)
    names = ["1.3.12.2.1107.5.2.32.35162.2012021516.1", "IM0001", "image.v2"]
    for i, name in enumerate(names):
        write_dicom(d / "SER01" / name, px + i, study_uid="1.2.3.9", series_uid="1.2.3.9.1", instance=i + 1)
    write_dicom(d / "dicom_named.png", px, study_uid="7.7")  # a DICOM file with a raster name
    (d / "README").write_text("exported by a PACS\n")
    (d / "LICENSE.v2").write_text("not an image either\n")
    (d / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (d / "notes.txt").write_text("skipped by suffix\n")
    r = scan(d)
    assert not r.errors, r.errors
    by = {s.key: s for s in r.studies}
    assert [os.path.basename(v.ref.path) for v in by["1.2.3.9"].views] == names  # ordered by instance
    assert os.path.basename(by["7.7"].views[0].ref.path) == "dicom_named.png"
    for name in names:
        assert is_image_path(str(d / "SER01" / name))
        assert load_frame(d / "SER01" / name).stored[0, 1] == 1 + names.index(name)
    assert load_frame(d / "dicom_named.png").shape == (8, 8)
    assert not is_image_path(str(d / "README")) and not is_image_path(str(d / "notes.txt"))
    with pytest.raises(ImageError, match="it looks like a text file"):
        load_frame(d / "LICENSE.v2")


def test_file_without_preamble_or_meta_reads_like_pydicom_force(tmp_path):
    px = _smooth12(16, 24)
    p = write_without_meta(tmp_path / "1.2.840.99.5", px, WindowCenter=2000, WindowWidth=3000)
    raw = p.read_bytes()
    assert raw[128:132] != b"DICM" and raw[:2] == b"\x08\x00"  # no preamble: the first element
    assert not pydicom.dcmread(p, force=True).file_meta.get("TransferSyntaxUID")
    r = scan(tmp_path)
    assert not r.errors and len(r.studies) == 1
    f = load_frame(p)
    assert np.array_equal(f.stored, px)
    assert f.meta[FORCED_KEY] is True and f.meta["TransferSyntaxUID"] == "1.2.840.10008.1.2"
    assert "Implicit VR Little Endian" in f.meta[NOTES_KEY][0] and "force=True" in f.meta[NOTES_KEY][0]
    rows = dataset_tags(str(p))
    assert rows[0][1] == "radview note" and "Implicit VR Little Endian" in rows[0][3]
    assert any(kw == "PatientID" for _, kw, *_ in rows)
    # a file meta without a Transfer Syntax UID: the encoding the data set is in (explicit here)
    q = write_dicom(tmp_path / "nots.dcm", px)
    ds = pydicom.dcmread(q)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(q, enforce_file_format=False, implicit_vr=False, little_endian=True)
    g = load_frame(q)
    assert np.array_equal(g.stored, px) and g.meta["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert "no Transfer Syntax UID" in g.meta[NOTES_KEY][0]
    # a file with its meta is not flagged
    assert FORCED_KEY not in load_frame(write_dicom(tmp_path / "ok.dcm", px)).meta


# --------------------------------------------------------------------------- 12-bit JPEG


def test_12bit_jpeg_extended_decodes(tmp_path):
    px = _smooth12()
    p = write_jpeg12_dicom(tmp_path / "j12.dcm", px)
    stream = next(pydicom.encaps.generate_frames(pydicom.dcmread(p).PixelData, number_of_frames=1))
    sof = stream.index(b"\xff\xc1")
    assert stream[sof + 4] == 12  # SOF1 (extended sequential), 12-bit sample precision
    r = scan(tmp_path)
    assert not r.errors and len(r.studies) == 1
    f = load_frame(p)
    assert f.stored.dtype == np.uint16 and f.stored.max() > 3000  # really 12-bit values
    assert np.abs(f.stored.astype(int) - px.astype(int)).max() <= 4  # q=2: near-lossless
    assert display_image(f).std() > 20
    if shutil.which("dcmdjpeg"):  # an independent decoder (dcmtk's IJG 12-bit) agrees
        out = tmp_path / "dcmtk.dcm"
        subprocess.run(["dcmdjpeg", str(p), str(out)], check=True, capture_output=True)
        ref = pydicom.dcmread(out).pixel_array
        assert np.abs(ref.astype(int) - f.stored.astype(int)).max() <= 2


def test_jpeg_extended_with_16bit_precision_from_gdcm_decodes(tmp_path):
    """GDCM's encoder writes lossy JPEG with 16-bit precision for 12-bit data: pydicom's plugins
    refuse it; radview falls back to GDCM's own reader (python-gdcm, a dependency)."""
    px = _smooth12(seed=3)
    p = write_gdcm_jpeg(tmp_path / "gdcm.dcm", px)
    ds = pydicom.dcmread(p)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51"
    with pytest.raises(RuntimeError, match="all available plugins"):
        ds.pixel_array  # noqa: B018 - pydicom's plugins alone cannot
    f = load_frame(p)
    assert np.abs(f.stored.astype(int) - px.astype(int)).max() <= 16 and f.stored.max() > 3000


def test_undecodable_syntaxes_name_the_syntax_and_what_would_read_them(tmp_path):
    from pydicom.encaps import encapsulate

    cases = {"1.2.840.10008.1.2.4.110": ("JPEG XL Lossless", "jpegxl"),
             "1.2.840.10008.1.2.4.100": ("MPEG2", "video decoder")}
    for i, (tsuid, (name, reader)) in enumerate(cases.items()):
        p = write_dicom(tmp_path / f"x{i}.dcm", np.zeros((8, 8), np.uint8))
        ds = pydicom.dcmread(p)
        mpeg2 = "1.2.840.10008.1.2.4.100"  # pydicom writes only syntaxes it knows: patch the UID after
        ds.file_meta.TransferSyntaxUID = mpeg2
        ds.PixelData = encapsulate([b"\x00" * 32])
        ds["PixelData"].VR = "OB"
        ds.save_as(p)
        assert len(tsuid) == len(mpeg2)
        p.write_bytes(p.read_bytes().replace(mpeg2.encode(), tsuid.encode()))
        err = {os.path.basename(e.path): e.reason for e in scan(tmp_path).errors}[p.name]
        assert name in err and reader in err and tsuid in err
        with pytest.raises(ImageError, match=reader):
            load_frame(p)
    assert encode_jpeg12(np.zeros((8, 8), np.uint16))[:2] == b"\xff\xd8"


# --------------------------------------------------------------------------- value ranges, LUTs


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT"])
def test_float_range_keeps_a_window_of_width_0_01(tmp_path, function):
    px = np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (20, 1))  # modality 0 .. 0.0099
    p = write_dicom(tmp_path / "dose.dcm", px, RescaleSlope="0.00001", RescaleIntercept="0",
                    WindowCenter="0.005", WindowWidth="0.01", VOILUTFunction=function)
    f = load_frame(p)
    assert len(f.windows) == 1 and f.windows[0].width == pytest.approx(0.01)
    d = display_image(f)
    assert d.min() <= 3 and d.max() >= 250 and len(np.unique(d)) > 80  # a full ramp, not black
    assert np.all(np.diff(d[0].astype(int)) >= 0)
    # the auto window is in modality units, as narrow as the data
    q = write_dicom(tmp_path / "auto.dcm", px, RescaleSlope="0.00001", RescaleIntercept="0")
    g = load_frame(q)
    assert g.windows == () and 0.009 <= g.default_window.width <= 0.0101
    assert g.default_window.center == pytest.approx(0.005, abs=5e-4)
    assert len(np.unique(display_image(g))) > 80
    assert auto_window_of(f).width == pytest.approx(g.default_window.width)
    assert full_range_window(g).width == pytest.approx(0.0099)


def test_empty_modality_lut_descriptor_is_ignored_with_a_note(tmp_path):
    px = np.arange(256, dtype=np.uint16).reshape(16, 16) * 4
    p = write_dicom(tmp_path / "lut.dcm", px, RescaleSlope=2, RescaleIntercept=-10)
    ds = pydicom.dcmread(p)
    item = Dataset()
    item.add_new(0x00283002, "US", None)  # LUTDescriptor, empty
    item.add_new(0x00283006, "US", [0, 1, 2])  # LUTData
    item.ModalityLUTType = "OD"
    ds.ModalityLUTSequence = Sequence([item])
    bad_voi = Dataset()
    bad_voi.add_new(0x00283002, "US", [4096, 0])  # two values instead of three
    bad_voi.add_new(0x00283006, "US", [0] * 16)
    ds.VOILUTSequence = Sequence([bad_voi])
    ds.save_as(p)
    f = load_frame(p)
    assert np.array_equal(f.stored, px) and f.modality_lut is None and f.voi_lut is None
    assert (f.slope, f.intercept) == (2.0, -10.0)  # the rescale is used instead
    notes = f.meta[NOTES_KEY]
    assert any("ModalityLUTSequence ignored (empty LUTDescriptor)" in n for n in notes)
    assert any("VOILUTSequence ignored (LUTDescriptor has 2 value(s), needs 3)" in n for n in notes)
    assert display_image(f).std() > 30
    tag_notes = [row[3] for row in dataset_tags(str(p)) if row[1] == "radview note"]
    assert tag_notes == notes
    assert not scan(tmp_path).errors


def test_header_valid_file_with_short_pixel_data_is_an_error_at_scan(tmp_path):
    p = write_dicom(tmp_path / "short.dcm", np.zeros((64, 64), np.uint16))
    raw = p.read_bytes()
    p.write_bytes(raw[:-100])
    reason = scan(tmp_path).errors[0].reason
    assert f"the file ends at byte {len(raw) - 100}" in reason and "needs 8192" in reason
    assert "8092 bytes of pixel data" in reason
    with pytest.raises(ImageError, match="truncated pixel data"):
        load_frame(p)


# --------------------------------------------------------------------------- walking the tree


def _png_tree(root):
    from PIL import Image

    (root / "a" / "b").mkdir(parents=True)
    for i, d in enumerate((root / "a", root / "a" / "b")):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(d / f"img{i}.png")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symlinks")
def test_symlink_loop_is_listed_once(tmp_path):
    root = tmp_path / "tree"
    _png_tree(root)
    os.symlink(root / "a", root / "a" / "b" / "back")  # a loop to an ancestor
    os.symlink(root / "a" / "b", root / "second")  # another way to the same folder
    r = scan(root)
    paths = [v.ref.path for s in r.studies for v in s.views]
    assert len(paths) == 2 and len({os.path.realpath(p) for p in paths}) == 2
    reasons = {os.path.basename(e.path): e.reason for e in r.errors}
    assert "symbolic link loop back to" in reasons["back"]
    assert "symbolic link to" in reasons["second"] and "lists already" in reasons["second"]


def test_scan_can_be_cancelled_while_listing_and_reading(tmp_path, monkeypatch):
    import radview.io.studies as studies

    root = tmp_path / "tree"
    for i in range(30):
        write_dicom(root / f"d{i:02d}" / "IM1", np.zeros((4, 4), np.uint16), study_uid=f"1.{i}")
    monkeypatch.setattr(studies, "_WALK_PROGRESS_DIRS", 5)
    monkeypatch.setattr(studies, "_PROGRESS_EVERY", 10)
    # 1. closing the generator (a GUI worker's quit) while listing
    gen = iter_scan(root)
    listing = [next(gen) for _ in range(3)]
    assert all(p.total is None and "listing" in p.message for p in listing)
    gen.close()
    # 2. a cancel callback, while listing and while reading headers
    calls = {"n": 0}

    def cancel_after(n):
        def cancel():
            calls["n"] += 1
            return calls["n"] > n
        return cancel

    with pytest.raises(ScanCancelled):
        scan(root, cancel=cancel_after(2))
    assert calls["n"] == 3
    calls["n"] = 0
    seen = []
    with pytest.raises(ScanCancelled):
        for p in iter_scan(root, cancel=cancel_after(7)):  # 6 walk checks, then the header loop
            seen.append(p)
    assert any(p.total == 30 and "reading headers" in p.message for p in seen)
    # what was read before the cancel is kept in the index; a full scan afterwards is complete
    r = scan(root)
    assert len(r.studies) == 30 and 0 < r.n_read < 30


def test_sniffer_finds_every_dicom_start_and_no_random_data(tmp_path):
    import struct

    from radview.io.sniff import sniff_dicom

    px = np.zeros((4, 4), np.uint16)
    with_meta = write_dicom(tmp_path / "a", px).read_bytes()
    starts = {
        "preamble": with_meta,
        "meta without preamble": with_meta[128 + 4:],  # begins with (0002,0000) explicit VR
        "implicit, no meta": write_without_meta(tmp_path / "b", px).read_bytes(),
        "explicit, no meta": write_without_meta(tmp_path / "c", px, implicit=False).read_bytes(),
    }
    e = lambda g, el, v: struct.pack("<HHI", g, el, len(v)) + v  # noqa: E731
    # an ACR-NEMA style start: group length, then an odd-length value (wrong, but real)
    starts["implicit with group length"] = (e(8, 0, struct.pack("<I", 60)) + e(8, 8, b"ORIGINAL\\PRIMARY ")
                                            + e(8, 0x16, b"1.2.840.10008.5.1.4.1.1.1\x00") + bytes(64))
    for name, data in starts.items():
        assert sniff_dicom(data[:512], len(data)) is not None, name
    rng = np.random.default_rng(18)
    for lead in (b"", b"\x08\x00", b"\x02\x00"):
        for _ in range(3000):
            blob = lead + rng.integers(0, 256, 512 - len(lead), dtype=np.uint8).tobytes()
            assert sniff_dicom(blob, 10**7) is None, blob[:16]
    for text in (b"patientId,x,y\n", b"%PDF-1.4", b"PK\x03\x04", b"\x89PNG\r\n\x1a\n", b"GIF89a"):
        assert sniff_dicom(text * 40, 4000) is None
