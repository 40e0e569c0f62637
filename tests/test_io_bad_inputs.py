"""Bad inputs each give a named error (file + reason) and never stop a scan."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from radview.io import ImageError, load_frame, scan

from dicom_factory import write_dicom


def _good_png(path: Path) -> Path:
    Image.fromarray(np.full((8, 8), 50, np.uint8)).save(path)
    return path


def _make_bad_files(d: Path) -> dict[str, str]:
    """name -> a fragment the reason must contain."""
    d.mkdir(parents=True, exist_ok=True)
    bad: dict[str, str] = {}
    (d / "empty.dcm").write_bytes(b"")
    bad["empty.dcm"] = "empty file"
    full = write_dicom(d / "full.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).read_bytes()
    (d / "full.dcm").unlink()
    (d / "truncated.dcm").write_bytes(full[: len(full) - 3000])
    bad["truncated.dcm"] = "truncated pixel data"
    (d / "header_cut.dcm").write_bytes(full[:200])
    bad["header_cut.dcm"] = "truncated at byte 200"
    ds_full = pydicom.dcmread(d / "truncated.dcm", stop_before_pixels=True, force=True)
    cut_in = full.rindex(str(ds_full.SOPInstanceUID).encode()) + 5  # inside the SOP Instance UID value
    (d / "mid_element.dcm").write_bytes(full[:cut_in])
    bad["mid_element.dcm"] = f"truncated at byte {cut_in}: element (0008,0018) declares"
    (d / "notes.dcm").write_text("Patient notes\nnothing to see here\n")
    bad["notes.dcm"] = "not a DICOM file: no DICM preamble at byte 128 and it does not start with DICOM data " \
                       "elements (it looks like a text file)"
    sr = write_dicom(d / "report.dcm", None, SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11")
    assert "PixelData" not in pydicom.dcmread(sr)
    bad["report.dcm"] = "no image"
    no_px = write_dicom(d / "nopixels.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(no_px)
    del ds.PixelData
    ds.save_as(no_px)
    bad["nopixels.dcm"] = "no pixel data"
    ts = write_dicom(d / "mpeg.dcm", np.zeros((4, 4), np.uint8))
    ds = pydicom.dcmread(ts)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\x00" * 16])
    ds["PixelData"].VR = "OB"
    ds.save_as(ts)
    bad["mpeg.dcm"] = "unsupported transfer syntax"
    bits = write_dicom(d / "bits13.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(bits)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 13, 12, 11
    ds.save_as(bits)
    bad["bits13.dcm"] = "impossible bit depth: BitsAllocated=13"
    bits = write_dicom(d / "bits20.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(bits)
    ds.BitsStored, ds.HighBit = 20, 19
    ds.save_as(bits)
    bad["bits20.dcm"] = "impossible bit depth: BitsStored=20 with BitsAllocated=16"
    jpg = write_dicom(d / "notjpeg.dcm", np.zeros((4, 4), np.uint8))
    ds = pydicom.dcmread(jpg)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    ds.PixelData = encapsulate([b"this is no JPEG stream at all"])
    ds["PixelData"].VR = "OB"
    ds.save_as(jpg)
    bad["notjpeg.dcm"] = "corrupt JPEG Baseline (Process 1) pixel data: the first fragment is not a JPEG stream"
    bogus = write_dicom(d / "bogus.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(bogus)
    ds.Rows = 0
    ds.save_as(bogus)
    bad["bogus.dcm"] = "bogus image size"
    big = write_dicom(d / "bogus2.dcm", np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(big)
    ds.Rows, ds.Columns = 5000, 5000
    ds.save_as(big)
    bad["bogus2.dcm"] = "truncated pixel data"
    (d / "fake.png").write_bytes(b"this is a text file, not a PNG at all")
    bad["fake.png"] = "not a PNG file: its first bytes are not a PNG signature (it looks like a text file)"
    png = _good_png(d / "cut.png").read_bytes()
    (d / "badheader.png").write_bytes(png[:8] + b"\x00\x00\x00\x0dIHDR" + b"\x00" * 4)  # IHDR cut short
    (d / "cut.png").unlink()
    bad["badheader.png"] = "PNG"
    return bad


def test_each_bad_file_names_its_reason_and_the_scan_goes_on(tmp_path):
    d = tmp_path / "mixed"
    bad = _make_bad_files(d)
    _good_png(d / "good.png")
    write_dicom(d / "good.dcm", np.ones((8, 8), np.uint16), study_uid="5.5")
    r = scan(d)
    reasons = {os.path.basename(e.path): e.reason for e in r.errors}
    for name, fragment in bad.items():
        assert name in reasons, f"{name} was not reported"
        assert fragment.lower() in reasons[name].lower(), (name, reasons[name])
        # opening the file directly gives the same kind of named error
        with pytest.raises(ImageError) as info:
            load_frame(d / name)
        assert str(d / name) in str(info.value)
    assert {os.path.basename(v.ref.path) for s in r.studies for v in s.views} == {"good.png", "good.dcm"}


def test_non_utf8_file_name_is_reported_and_the_rest_loads(tmp_path):
    d = tmp_path / "names"
    d.mkdir()
    _good_png(d / "ok.png")
    raw = os.path.join(os.fsencode(d), b"caf\xe9.png")
    with open(raw, "wb") as fh:
        fh.write((d / "ok.png").read_bytes())
    r = scan(d)
    assert len(r.studies) == 1
    assert len(r.errors) == 1 and "UTF-8" in r.errors[0].reason and "caf" in r.errors[0].path
    r.errors[0].path.encode("utf-8")  # printable


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions")
def test_unreadable_file_and_folder(tmp_path):
    """Permissions do not bind root, so as root the scan runs in a forked child that drops to
    'nobody' (no exec needed: the child keeps the already-imported modules)."""
    import json

    base = Path("/tmp") / f"radview-perm-{os.getpid()}" if os.geteuid() == 0 else tmp_path
    shutil.rmtree(base, ignore_errors=True)
    d = base / "perm"
    (d / "locked").mkdir(parents=True)
    _good_png(d / "ok.png")
    _good_png(d / "secret.png")
    _good_png(d / "locked" / "inside.png")
    os.chmod(d / "secret.png", 0o000)
    os.chmod(d / "locked", 0o000)
    for p in (base, d):
        os.chmod(p, 0o777)
    uid = gid = None
    if os.geteuid() == 0:
        import pwd

        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("running as root and there is no 'nobody' user to drop to")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    import radview.io.studies  # noqa: F401 - loaded before the fork

    r_fd, w_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r_fd)
            if uid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            res = scan(d, use_index=False)
            data = json.dumps({"views": [v.ref.path for s in res.studies for v in s.views],
                               "errors": [[e.path, e.reason] for e in res.errors]}).encode()
            os.write(w_fd, data)
        finally:
            os._exit(0)
    os.close(w_fd)
    chunks = []
    while chunk := os.read(r_fd, 65536):
        chunks.append(chunk)
    os.close(r_fd)
    os.waitpid(pid, 0)
    os.chmod(d / "locked", 0o755)
    os.chmod(d / "secret.png", 0o644)
    res = json.loads(b"".join(chunks))
    shutil.rmtree(base, ignore_errors=True)
    assert [os.path.basename(p) for p in res["views"]] == ["ok.png"]
    reasons = {os.path.basename(p): r for p, r in res["errors"]}
    assert "permission denied" in reasons["secret.png"]
    assert "permission denied" in reasons["locked"]


def test_every_file_of_pydicoms_own_test_set_scans_and_decodes_or_says_why():
    """~170 real-world oddities (no meta, big endian, deflate, DICOMDIRs, bad VRs, truncated
    JPEG 2000...): the scan never raises, and every view decodes or gives an ImageError."""
    import pydicom.data

    from radview.io.display import display_image, model_image

    root = Path(pydicom.data.__file__).parent / "test_files"
    r = scan(root)
    assert len(r.studies) > 10 and r.errors
    assert all(e.reason and e.path for e in r.errors)
    assert not any("DICOMDIR" in e.path for e in r.errors)  # indexes are skipped, not failures
    decoded = failed = 0
    for s in r.studies:
        for v in s.views:
            try:
                f = load_frame(v.ref.path, v.ref.frame)
                display_image(f, max_size=64)
                model_image(f)
                decoded += 1
            except ImageError as exc:
                assert str(exc).startswith(v.ref.path)
                failed += 1
    assert decoded > 60 and failed <= 6
